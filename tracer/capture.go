package tracer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
	"github.com/vtrace/vtrace/tracer/internal/symbols"
	"github.com/vtrace/vtrace/tracer/internal/unwind"
)

// cloneCall is the system call that made a new task, read at its
// creator's event stop: its name (vfork, clone or clone3; "" for another), its
// flags (clone, clone3: flagsRead) and the child's stack top (0: none given,
// the child runs on its creator's stack).
type cloneCall struct {
	name      string
	flags     uint64
	flagsRead bool
	childSP   uint64
}

// cloneMemory is what a new task's memory is, as its creator's call says.
type cloneMemory int

const (
	memUnknown cloneMemory = iota // the flags could not be read (clone3's struct, an unknown call)
	memShared                     // vfork, or CLONE_VM: the creator's own memory
	memCopy                       // no CLONE_VM: a copy, as after fork
)

// memory tells, from the call alone, whether the new task shares its
// creator's memory. The kernel reports PTRACE_EVENT_VFORK for every
// CLONE_VFORK (kernel_clone), with or without CLONE_VM: clone(CLONE_VFORK
// | SIGCHLD) suspends the parent as vfork does, but its child has a copy
// of the memory; and it reports clone(CLONE_VM | SIGCHLD) as a fork.
func (c cloneCall) memory() cloneMemory {
	switch {
	case c.name == "vfork":
		return memShared
	case !c.flagsRead:
		return memUnknown
	case c.flags&unix.CLONE_VM != 0:
		return memShared
	}
	return memCopy
}

// cloneCallAt decodes the call of the task pid, stopped at its fork, vfork
// or clone event with registers regs. The registers are the kernel's
// arguments whatever made the call (libc's wrapper, syscall(), an inline
// syscall instruction), in the kernel's order for the arch: clone's flags
// and stack are its first two arguments on amd64 and i386 alike (%rdi,
// %rsi; %ebx, %ecx); clone3's are in the struct clone_args its first
// argument points to.
func (s *session) cloneCallAt(pid int, regs *arch.Regs) cloneCall {
	return cloneCallIn(regs, func(addr uint64, buf []byte) error { return s.p.ReadMem(pid, addr, buf) })
}

// cloneCallIn is cloneCallAt, reading the task's memory with read.
func cloneCallIn(regs *arch.Regs, read func(addr uint64, buf []byte) error) cloneCall {
	var c cloneCall
	switch name := sysName(regs.Arch, regs.OrigAX); name {
	case "vfork":
		c.name = name
	case "clone":
		c.name = name
		c.flags, c.flagsRead = regs.SyscallArg(0), true
		c.childSP = regs.SyscallArg(1)
	case "clone3":
		c.name = name
		// struct clone_args: flags, pidfd, child_tid, parent_tid,
		// exit_signal, stack, stack_size, ... (all 64-bit).
		var args [64]byte
		if read(regs.SyscallArg(0), args[:]) == nil {
			c.flags, c.flagsRead = binary.LittleEndian.Uint64(args[0:]), true
			if base := binary.LittleEndian.Uint64(args[40:]); base != 0 {
				c.childSP = base + binary.LittleEndian.Uint64(args[48:])
			}
		}
	}
	return c
}

// capture records, with the parent held in its vfork event stop, the
// vfork site, the parent's frames and their slots, and the snapshot of its
// live stack, and emits the vfork event that opens the story.
func (s *session) capture(st *story) error {
	p, regs := st.parent, &st.regs0
	defer func() {
		// The pages read in this stop are where the next vfork here
		// (a loop of spawns) reads again: begin reads them in one batch.
		st.mm.lastPages = st.mm.lastPages[:0]
		if st.stopMem != nil {
			for _, pg := range st.stopMem.pages {
				st.mm.lastPages = append(st.mm.lastPages, pg.base)
			}
		}
		st.stopMem = nil // valid in this stop only
	}()
	ev := &event.Vfork{Header: s.hdr("vfork", p.pid), Vfork: st.id, Child: st.child.pid, SP: event.Addr(regs.SP())}
	call := st.call
	ev.Syscall = call.name
	if call.name == "" {
		ev.Syscall = fmt.Sprintf("syscall %d", regs.OrigAX)
	}
	if call.flagsRead {
		// clone's flags carry the exit signal in their low byte; clone3's
		// are only the flags, as strace prints its flags= (its
		// exit_signal is a field of its own).
		ev.Flags = cloneFlags(call.flags, call.name == "clone")
	}
	// A copy (no CLONE_VM) runs on its own copy of the stack, child stack
	// or not: it shares none of the parent's.
	st.shared = !st.copy
	childSP := call.childSP
	if childSP != 0 {
		st.shared = false
		a := event.Addr(childSP)
		ev.ChildStack = &a
	}
	ev.SharedStack = st.shared

	pc := regs.PC()
	site := event.Insn{PID: p.pid, PC: event.Addr(pc), Sym: s.sym(st.mm, pc)}
	if in, err := s.prevInsn(st.mm, p.pid, pc); err == nil {
		site.PC = event.Addr(in.PC)
		site.Sym = s.sym(st.mm, in.PC)
		site.Insn = s.insnText(st.mm, in)
	}
	ev.Site = site

	var unwindErr error
	var mem *pageMemory
	st.frames, mem, unwindErr = s.unwindParent(st.mm, st.stopMem, regs)
	// The memo of the image's unwind has these frames (reused or just
	// made), but for their saved values: their slots are its slots.
	memo := st.mm.unwound
	if len(st.frames) == 0 {
		memo = nil
		// Not even the vfork frame unwinds (no CFI, no frame pointer):
		// keep a frame 0 made of the registers, so that every write still
		// belongs to a frame; the callers are unknown (method "none").
		st.frames = []unwind.Frame{{PC: pc, CFA: regs.SP(), RetReg: -1, Method: string(event.MethodNone)}}
	}
	s.recordFrames(st, ev, memo)
	if len(st.frames) > 1 {
		// Only a trustworthy unwind can prove corruption: the frame-pointer
		// fallback reads whatever %ebp/%rbp holds (i386 glibc clone has no
		// CFI at its syscall and skips main that way).
		trusted := st.frames[0].Method != "fp" && st.frames[1].Method != "fp"
		if r := st.frames[1].Ret; trusted && !st.mm.syms().IsCode(r) {
			ev.CorruptBefore = &event.CorruptFrame{Frame: 1, Fn: st.frameFns[1], Ret: event.Addr(r)}
		}
		ev.Caller = st.frameFns[1]
		if in, err := s.prevInsn(st.mm, p.pid, st.frames[0].Ret); err == nil && in.Class == disasm.Call {
			ev.Call = s.insnEvent(st.mm, p.pid, in)
		}
	}

	var capped bool
	st.lo, st.hi, st.ownHi, capped = liveRegion(st, childSP)
	st.mm.lastRegion = [2]uint64{st.lo, st.hi}
	ev.Live = event.Region{Lo: event.Addr(st.lo), Hi: event.Addr(st.hi)}

	// A copy is run free in every mode: nothing it does reaches the
	// parent, so there is nothing to step for.
	st.stepChild = !st.copy && (st.shared || s.cfg.Mode == Step)
	switch {
	case st.copy:
		ev.Mechanism = event.MechCopy
	case s.cfg.Mode == Step:
		ev.Mechanism = event.MechStep
	case st.stepChild && s.hw == hwWorks:
		ev.Mechanism = event.MechDepthHW
	case st.stepChild:
		ev.Mechanism = event.MechDepth
	default:
		ev.Mechanism = event.MechDiff
	}
	st.orig, st.shadow, st.scratch = s.regionBufs(st, int(st.hi-st.lo))
	// The unwind read the pages of the frames at this same stop: the
	// snapshot is taken from them when they hold all of it.
	var err error
	if !mem.copyOut(st.lo, st.orig) {
		err = s.p.ReadMem(p.pid, st.lo, st.orig)
	}
	if err != nil {
		// The stack cannot be read (%rsp in unmapped memory): the story
		// is unchecked (story), told from what was seen — this event.
		s.emit(ev)
		st.captured = true
		return fmt.Errorf("snapshot parent stack [%#x,%#x): %w", st.lo, st.hi, err)
	}
	copy(st.shadow, st.orig)
	if !st.copy {
		// A copy cannot change the parent's globals: not snapshotted. (Its
		// stack is, as for any story: the diff at the child's end shows it
		// unchanged, and the parent phase then has nothing to follow.)
		ev.Memory = s.watchGlobals(st)
	}
	s.emit(ev)
	st.captured = true
	if call.memory() == memUnknown {
		s.note(st.id, event.NoteCloneFlagsUnknown, fmt.Sprintf("the flags of %s could not be read: the child is taken to share the parent's memory, as after vfork", ev.Syscall))
	}
	s.globalsNotes(st)
	s.unreadableNotes(st)
	if unwindErr != nil && st.frames[0].Method == string(event.MethodNone) {
		s.note(st.id, event.NoteUnwindFailed, fmt.Sprintf("unwinding the parent: %v; its callers and their return slots are unknown", unwindErr))
	}
	if len(st.frames) == maxFrames {
		s.note(st.id, event.NoteUnwindTruncated, fmt.Sprintf("the parent has more than %d frames: the slots of the outer ones are not known", maxFrames))
	}
	for i, f := range st.frames {
		if f.CFIErr != "" {
			fn := "?"
			if sym := st.frameFns[i]; sym != nil && sym.Sym != "" {
				fn = sym.Sym
			}
			s.note(st.id, event.NoteCFIUnreadable, fmt.Sprintf("CFI unreadable for %s(), using %s: %s", fn, f.Method, f.CFIErr))
		}
	}
	if capped {
		s.note(st.id, event.NoteRegionTruncated, fmt.Sprintf("the parent's live stack is larger than %d bytes: only [%#x, %#x) is watched", maxRegion, st.lo, st.hi))
	}
	return nil
}

// regionBufs returns the story's three buffers of n bytes for the live
// region (orig, shadow, scratch), in one buffer kept from an ended story
// when one is large enough (dropRegion gives it back).
func (s *session) regionBufs(st *story, n int) (orig, shadow, scratch []byte) {
	var b []byte
	for i := len(s.regionFree) - 1; i >= 0; i-- {
		if cap(s.regionFree[i]) >= 3*n {
			b = s.regionFree[i][:3*n]
			s.regionFree = slices.Delete(s.regionFree, i, i+1)
			clear(b[:n]) // orig is read into; shadow is copied from it, scratch is read into before use
			break
		}
	}
	if b == nil {
		b = make([]byte, 3*n)
	}
	st.regionBuf = b
	return b[:n:n], b[n : 2*n : 2*n], b[2*n : 3*n : 3*n]
}

// dropRegion gives the story's live-region buffers back for the next
// story (at most maxRegionFree kept: the stories in progress at once).
func (s *session) dropRegion(st *story) {
	if st.regionBuf == nil {
		return
	}
	if len(s.regionFree) < maxRegionFree {
		s.regionFree = append(s.regionFree, st.regionBuf)
	}
	st.regionBuf, st.orig, st.shadow, st.scratch = nil, nil, nil, nil
}

const maxRegionFree = 4

// unreadableNotes says, once per file in a run (a note of the run, not of
// the story that met it first), which files mapped with code could not be
// read: their functions have no names and their frames are unwound from
// the machine code (TestCraftedUnreadableHeader: an ELF header byte the
// kernel ignores).
func (s *session) unreadableNotes(st *story) {
	sp, ok := st.mm.syms().(*symbols.Space)
	if !ok || sp == s.unreadableOf {
		return
	}
	s.unreadableOf = sp
	for _, u := range sp.Unreadable() {
		if s.unreadableNoted[u.Path] {
			continue
		}
		if s.unreadableNoted == nil {
			s.unreadableNoted = map[string]bool{}
		}
		s.unreadableNoted[u.Path] = true
		s.note(0, event.NoteSymbolsUnread, fmt.Sprintf("%s could not be read (%v): its code has no symbols and no CFI, its frames are unwound from the machine code", u.Path, u.Err))
	}
}

// unwindMemo is the last unwind of a vfork parent in an image: a program
// that vforks in a loop vforks from the same frames, and an unwind depends
// only on the registers and words of memory it needed (unwind.Deps) and
// the CFI and code of the modules, which the same symbols.Space names.
// When all of them are as they were, so are the frames, but for the values
// of their saved-register slots, which are read again (a loop counter
// saved in a callee-saved register changes at every vfork).
type unwindMemo struct {
	space  *symbols.Space
	regs   arch.Regs
	deps   *unwind.Deps
	frames []unwind.Frame
	err    error
	// slots is the index of the frames' slots (recordFrames), once made.
	slots map[uint64]slotInfo
	// evFrames and frameFns are what recordFrames made of frames itself
	// (not of a copy with other saved values), once made: the vfork
	// events of a loop's stories share them (no one changes an event's
	// frames, nor a story's frameFns), as they share the frames.
	evFrames []event.Frame
	frameFns []*event.Sym
	evPID    int // the parent they name (RetStoredBy)
}

// unwinds counts the parents' unwinds made and reused, for KernelCalls.
var unwinds struct{ done, reused atomic.Int64 }

// unwindParent unwinds a parent held in its vfork event stop, or gives the
// frames of the image's last unwind when nothing it needed changed (its
// words are read again, a page at a time, and compared). The frames are
// shared when their saved values are the same too: no one changes them.
//
// It also returns the pages it read, valid while the task stays in this
// stop (and until the next unwind: their buffers are reused).
func (s *session) unwindParent(mm *addrSpace, mem *pageMemory, regs *arch.Regs) ([]unwind.Frame, *pageMemory, error) {
	sp, _ := mm.syms().(*symbols.Space)
	// The task stays stopped: its pages serve both (and served begin's
	// read of the clone3 arguments). Their buffers are the last unwind's
	// (nothing keeps a page).
	defer func() { s.unwindPages = mem.pages[:0] }()
	if m := mm.unwound; m != nil && sp != nil && m.space == sp && m.regs.Arch == regs.Arch && sameRegs(&m.regs, regs, m.deps.Regs) {
		if frames, ok := m.reuse(mem); ok {
			unwinds.reused.Add(1)
			return frames, mem, m.err
		}
	}
	unwinds.done.Add(1)
	frames, deps, err := unwind.UnwindDeps(regs, mem, mm.syms(), maxFrames)
	mm.unwound = nil
	if sp != nil {
		mm.unwound = &unwindMemo{space: sp, regs: *regs, deps: deps, frames: frames, err: err}
	}
	return frames, mem, err
}

// reuse reads the memo's words again: when every read fails or succeeds
// as it did and every needed word holds the same value, it returns the
// memo's frames, each saved-register value read again from its slot (the
// word its read gave: the same reads, at the same addresses).
//
// The memo then takes those values (its frames a new slice: the ones
// given before are not changed): a loop whose saved values change once,
// between its first vfork and the next, gets the memo's own frames again
// from then on (recordFrames shares what it made of them).
func (m *unwindMemo) reuse(mem unwind.Memory) ([]unwind.Frame, bool) {
	var changed []int // the reads whose word changed (none of them needed)
	var vals []uint64
	for i, w := range m.deps.Reads {
		v, err := mem.ReadWord(w.Addr, w.Size)
		switch {
		case (err != nil) != w.Failed:
			return nil, false
		case err != nil || v == w.Val:
		case w.Needed:
			return nil, false
		default:
			changed, vals = append(changed, i), append(vals, v)
		}
	}
	if len(changed) == 0 {
		return m.frames, true
	}
	frames := slices.Clone(m.frames)
	for i := range frames {
		saved := slices.Clone(frames[i].Saved)
		for j := range saved {
			v, err := mem.ReadWord(saved[j].Addr, m.regs.Arch.PtrSize)
			if err != nil {
				return nil, false // read above: cannot fail now (the task is stopped)
			}
			saved[j].Value = v
		}
		frames[i].Saved = saved
	}
	for k, i := range changed {
		m.deps.Reads[i].Val = vals[k]
	}
	m.frames, m.evFrames, m.frameFns = frames, nil, nil
	return frames, true
}

// sameRegs reports whether a and b hold the same value in every register
// of the mask (bit n: DWARF register n).
func sameRegs(a, b *arch.Regs, mask uint32) bool {
	for n := range a.R {
		if mask&(1<<n) != 0 && a.R[n] != b.R[n] {
			return false
		}
	}
	return true
}

// Bounds of a capture: frames unwound, bytes of live stack snapshotted.
const (
	maxFrames = 64
	maxRegion = 1 << 20
)

// recordFrames names each frame, indexes its slots, and puts the frames
// into the vfork event. The index is memo's when memo (the unwind the
// frames come from) has one: it depends only on the frames' slot
// addresses and registers, which a reused unwind keeps, and no one
// changes it after this.
func (s *session) recordFrames(st *story, ev *event.Vfork, memo *unwindMemo) {
	own := memo != nil && len(st.frames) > 0 && len(memo.frames) == len(st.frames) && &st.frames[0] == &memo.frames[0]
	if own && memo.evFrames != nil && memo.slots != nil && memo.evPID == st.parent.pid {
		// The memo's own frames, named in its Space (unwindParent reuses
		// a memo only with the image's Space): as they were named.
		st.slots, st.frameFns, ev.Frames = memo.slots, memo.frameFns, memo.evFrames
		return
	}
	index := memo == nil || memo.slots == nil
	if index {
		n := 0
		for _, f := range st.frames {
			n += len(f.Saved)
			if f.RetSlot != 0 {
				n++
			}
		}
		st.slots = make(map[uint64]slotInfo, n)
		if memo != nil {
			memo.slots = st.slots
		}
	} else {
		st.slots = memo.slots
	}
	st.frameFns = make([]*event.Sym, 0, len(st.frames))
	ev.Frames = make([]event.Frame, 0, len(st.frames))
	for i, f := range st.frames {
		fn := s.sym(st.mm, f.PC)
		if i > 0 {
			// A return address can point just past a noreturn call, into
			// the next function: name the frame by the call itself.
			fn = s.sym(st.mm, f.PC-1)
		}
		st.frameFns = append(st.frameFns, fn)
		ef := event.Frame{Index: i, PC: event.Addr(f.PC), Sym: s.sym(st.mm, f.PC), CFA: event.Addr(f.CFA),
			Ret: event.Addr(f.Ret), RetSym: s.sym(st.mm, f.Ret), Method: event.UnwindMethod(f.Method)}
		if f.RetStored != 0 {
			ef.RetStoredBy = &event.Insn{PID: st.parent.pid, PC: event.Addr(f.RetStored), Sym: s.sym(st.mm, f.RetStored)}
			if in, err := s.insnAt(st.mm, st.parent.pid, f.RetStored); err == nil {
				ef.RetStoredBy = s.insnEvent(st.mm, st.parent.pid, in)
			}
		}
		if f.RetSlot != 0 {
			a := event.Addr(f.RetSlot)
			ef.RetSlot = &a
			if index {
				st.slots[f.RetSlot] = slotInfo{kind: event.SlotRet, frame: i}
			}
		} else if f.RetReg >= 0 {
			ef.RetReg = st.arch.RegName(f.RetReg)
		}
		if len(f.Saved) > 0 {
			ef.Saved = make([]event.SavedSlot, 0, len(f.Saved))
		}
		for _, sv := range f.Saved {
			ef.Saved = append(ef.Saved, event.SavedSlot{Reg: st.arch.RegName(sv.Reg), Slot: event.Addr(sv.Addr), Value: event.Addr(sv.Value)})
			if index {
				st.slots[sv.Addr] = slotInfo{kind: event.SlotSavedReg, reg: st.arch.RegName(sv.Reg), frame: i}
			}
		}
		ev.Frames = append(ev.Frames, ef)
	}
	if own {
		memo.evFrames, memo.frameFns, memo.evPID = ev.Frames, st.frameFns, st.parent.pid
	}
}

// liveRegion is the part of the parent's stack the child must not change:
// from the parent's stack pointer to the outermost frame vtrace unwound. A
// child stack placed inside it (musl's posix_spawn puts it in a local
// buffer) is the child's own: its plain words below ownHi are not the
// parent's business; the return and saved-register slots of the parent's
// frames there still are (rr#1595: a stack top at the bottom of the
// caller's array puts the child's first call over clone()'s return slot,
// which the parent pops when it resumes).
func liveRegion(st *story, childSP uint64) (lo, hi, ownHi uint64, capped bool) {
	lo = st.regs0.SP()
	// Up to the outermost frame when the unwind reached it (it returns to
	// 0, or, on a Go goroutine's stack, into runtime.goexit); when it
	// stopped early, the frames above are unknown but just as live: up to
	// the end of the stack mapping.
	if n := len(st.frames); n > 1 && st.frames[n-1].Ret == 0 {
		hi = st.frames[n-1].CFA
	}
	for _, f := range st.frames {
		if goroutineEntry(st.mm, f.Ret) {
			hi = f.CFA
			break
		}
	}
	if m, ok := st.mm.syms().MappingAt(lo); ok && (hi <= lo || hi > m.End) {
		hi = m.End
		// A thread's control block (and TLS, below it) tops its stack
		// mapping; other threads write it (pthread_join): not the stack.
		if tp := st.regs0.TP; tp > lo && tp < hi {
			hi = tp &^ uint64(st.word-1)
		}
	}
	if hi <= lo {
		hi = lo + uint64(st.word)
	}
	if hi-lo > maxRegion {
		hi, capped = lo+maxRegion, true
	}
	if !st.shared && childSP > lo && childSP < hi {
		// The clone wrappers leave the child's start-up words at its stack
		// pointer for it to pop (glibc clone: fn and arg; musl __clone:
		// arg), and the child's first call reuses them: they are its own.
		ownHi = min((childSP+uint64(st.word)-1)&^uint64(st.word-1)+2*uint64(st.word), hi)
	}
	return lo, hi, ownHi, capped
}

// goroutineEntry reports whether ret is the return address Go's runtime
// gives a goroutine's first function: runtime.goexit, at the top of the
// goroutine's stack. A goroutine's stack is a block of Go's heap, so the
// mapping holding it goes on above with other goroutines' stacks, which
// the program's other threads write all the time (vtrace tracing vtrace
// blamed their writes on the vfork child and followed the parent for
// 400,000 steps).
func goroutineEntry(mm *addrSpace, ret uint64) bool {
	if ret == 0 {
		return false
	}
	switch mm.symbolize(ret - 1).Name {
	case "runtime.goexit", "runtime.goexit.abi0":
		return true
	}
	return false
}

// prevInsn decodes the call or syscall instruction that ends right before
// addr (the call before a return address, the syscall before an event
// stop's pc).
func (s *session) prevInsn(mm *addrSpace, pid int, addr uint64) (*disasm.Insn, error) {
	for _, n := range []uint64{2, 5, 6, 3, 7, 4, 8, 9, 10} {
		if n > addr {
			continue // it would start below address 0 (a pushed word that is no return address)
		}
		in, err := s.insnAt(mm, pid, addr-n)
		if err == nil && uint64(in.Len) == n {
			if in.Class == disasm.Call || in.Class == disasm.Syscall {
				return in, nil
			}
		}
	}
	return nil, errors.New("no call or syscall instruction ends there")
}

// cloneFlagNames are the clone flags in bit order, as strace prints them.
var cloneFlagNames = []struct {
	bit  uint64
	name string
}{
	{unix.CLONE_NEWTIME, "CLONE_NEWTIME"}, // clone3 only: in clone's flags this bit is the exit signal's
	{unix.CLONE_VM, "CLONE_VM"}, {unix.CLONE_FS, "CLONE_FS"}, {unix.CLONE_FILES, "CLONE_FILES"},
	{unix.CLONE_SIGHAND, "CLONE_SIGHAND"}, {unix.CLONE_PIDFD, "CLONE_PIDFD"}, {unix.CLONE_PTRACE, "CLONE_PTRACE"},
	{unix.CLONE_VFORK, "CLONE_VFORK"}, {unix.CLONE_PARENT, "CLONE_PARENT"}, {unix.CLONE_THREAD, "CLONE_THREAD"},
	{unix.CLONE_NEWNS, "CLONE_NEWNS"}, {unix.CLONE_SYSVSEM, "CLONE_SYSVSEM"}, {unix.CLONE_SETTLS, "CLONE_SETTLS"},
	{unix.CLONE_PARENT_SETTID, "CLONE_PARENT_SETTID"}, {unix.CLONE_CHILD_CLEARTID, "CLONE_CHILD_CLEARTID"},
	{unix.CLONE_DETACHED, "CLONE_DETACHED"}, {unix.CLONE_UNTRACED, "CLONE_UNTRACED"},
	{unix.CLONE_CHILD_SETTID, "CLONE_CHILD_SETTID"}, {unix.CLONE_NEWCGROUP, "CLONE_NEWCGROUP"},
	{unix.CLONE_NEWUTS, "CLONE_NEWUTS"}, {unix.CLONE_NEWIPC, "CLONE_NEWIPC"}, {unix.CLONE_NEWUSER, "CLONE_NEWUSER"},
	{unix.CLONE_NEWPID, "CLONE_NEWPID"}, {unix.CLONE_NEWNET, "CLONE_NEWNET"}, {unix.CLONE_IO, "CLONE_IO"},
	{unix.CLONE_CLEAR_SIGHAND, "CLONE_CLEAR_SIGHAND"}, {unix.CLONE_INTO_CGROUP, "CLONE_INTO_CGROUP"},
}

// cloneFlags names clone flags like strace: each bit by name, in bit
// order, unknown bits in hex. clone(2) carries the exit signal in the low
// byte (named last); clone3's flags have no signal in them.
func cloneFlags(f uint64, withSignal bool) string {
	var parts []string
	sig := uint64(0)
	if withSignal {
		sig, f = f&0xff, f&^0xff
	}
	for _, n := range cloneFlagNames {
		if f&n.bit != 0 {
			parts = append(parts, n.name)
			f &^= n.bit
		}
	}
	if f != 0 {
		parts = append(parts, fmt.Sprintf("%#x", f))
	}
	if sig != 0 {
		parts = append(parts, unix.SignalName(unix.Signal(sig)))
	}
	return strings.Join(parts, "|")
}
