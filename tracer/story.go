package tracer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
	"github.com/vtrace/vtrace/tracer/internal/unwind"
)

// slotInfo describes a return-address or saved-register slot of a live
// parent frame.
type slotInfo struct {
	kind  event.SlotKind
	reg   string
	frame int
}

// story is everything vtrace learns about one vfork.
type story struct {
	id            int
	parent, child *task
	mm            *addrSpace
	arch          *arch.Arch
	word          int
	regs0         arch.Regs // the parent at its vfork event stop
	frames        []unwind.Frame
	frameFns      []*event.Sym

	// The parent's live stack region [lo, hi): from its stack pointer at
	// the vfork to the outermost frame it unwound. orig is its content at
	// the vfork; shadow what vtrace last saw there.
	lo, hi       uint64
	orig, shadow []byte
	scratch      []byte
	slots        map[uint64]slotInfo

	shared    bool // the child runs on the parent's stack
	stepChild bool

	// What the child did.
	depth        int // calls the child is inside, below the stepped frames (step mode)
	during       *event.Insn
	returnedPast []int
	slotWrites   int
	stackWrites  int
	calledExit   bool
	cut          string   // why the story was cut short (a budget, "error"), or ""
	hwSlots      []uint64 // slots watched by DR0–DR3 in the child
	hwDR7        uint64   // DR7 enabling them, written only around full-speed runs
	hwHits       int
	childSteps   int64
	bpHits       int
	acc          []disasm.Access

	// What the parent did.
	consumed  map[uint64]event.SlotKind // address → kind
	consumes  []*event.ParentConsume
	landing   *event.ParentLanding
	resumeSig int // a signal the parent stopped with, delivered when it resumes
	// Reported events the explanation quotes.
	writes  []*event.SlotWrite
	returns []*event.ChildReturnPastFrame
	end     *event.ChildEnd
}

// Linux syscall numbers of the vfork family, per arch.
var vforkSyscalls = map[*arch.Arch]map[uint64]string{
	arch.AMD64: {58: "vfork", 56: "clone", 435: "clone3"},
	arch.I386:  {190: "vfork", 120: "clone", 435: "clone3"},
}

const (
	cloneVM    = 0x100
	cloneVfork = 0x4000
)

// story traces one vfork from the parent's PTRACE_EVENT_VFORK stop to the
// parent's landing. On return the parent has been resumed (unless it is
// itself followed by an enclosing story, which then goes on stepping it).
func (s *session) story(p *task) error {
	s.vforks++
	st := &story{id: s.vforks, parent: p, mm: p.proc.mm, consumed: map[uint64]event.SlotKind{}}
	outer := p.inStory
	p.inStory = true
	defer func() {
		p.inStory = outer
		if st.child != nil {
			st.child.inStory = false
		}
		if !outer && s.tasks[p.pid] == p {
			s.resume(p, st.resumeSig)
		}
	}()

	msg, err := s.t.EventMsg(p.pid)
	if err != nil {
		return err
	}
	if err := s.t.Regs(p.pid, &st.regs0); err != nil {
		return err
	}
	st.arch, st.word = st.regs0.Arch, st.regs0.Arch.PtrSize
	s.refresh(st.mm, p.pid)

	c := s.tasks[int(msg)]
	if c == nil {
		c = s.newTask(p, int(msg), false, true)
	}
	c.proc.mm = st.mm // a vfork child shares the parent's memory until it execs
	c.hold, c.inStory = true, true
	st.child = c

	if err := s.capture(st); err != nil {
		return err
	}
	err = s.follow(st)
	if err != nil {
		// Judge what was seen so far: a story cut short by a budget (or
		// an error) still counts, and says it was cut.
		st.cut = "error"
		if r := s.stopReasonNow(); r != "" {
			st.cut = r
		}
	}
	s.tally.add(s.verdict(st))
	return err
}

// follow runs a captured story: the child until it ends, then the parent
// until it leaves the affected frames.
func (s *session) follow(st *story) error {
	if err := s.awaitInitialStop(st.child); err != nil {
		return err
	}
	if st.stepChild && s.hw == hwWorks {
		s.armSlots(st)
	}
	endErr := s.followChild(st)
	// No int3 may outlive the child: the parent runs the same bytes.
	if err := s.releaseAll(st.mm, st.parent.pid, st.id); err != nil {
		s.note(st.id, fmt.Sprintf("removing breakpoints: %v", err))
	}
	if endErr != nil {
		return endErr
	}
	s.emitSlotDiff(st)
	return s.followParent(st)
}

// capture records the vfork site, the parent's frames and slots, and the
// snapshot of its live stack.
func (s *session) capture(st *story) error {
	p, regs := st.parent, &st.regs0
	ev := &event.Vfork{Header: s.hdr("vfork", p.pid), Vfork: st.id, Child: st.child.pid, SP: event.Addr(regs.SP())}
	name, ok := vforkSyscalls[st.arch][regs.OrigAX]
	if !ok {
		name = fmt.Sprintf("syscall %d", regs.OrigAX)
	}
	ev.Syscall = name
	st.shared = true
	var childSP uint64
	switch name {
	case "clone":
		flags := regs.SyscallArg(0)
		ev.Flags = cloneFlags(flags)
		childSP = regs.SyscallArg(1)
	case "clone3":
		var args [64]byte
		if err := s.t.ReadMem(p.pid, regs.SyscallArg(0), args[:]); err == nil {
			ev.Flags = cloneFlags(binary.LittleEndian.Uint64(args[0:]))
			if base := binary.LittleEndian.Uint64(args[40:]); base != 0 {
				childSP = base + binary.LittleEndian.Uint64(args[48:])
			}
		}
	}
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

	frames, err := unwind.Unwind(regs, taskMemory{s, p.pid}, st.mm.syms(), 64)
	if len(frames) == 0 {
		// Not even the vfork frame unwinds (no CFI, no frame pointer):
		// keep a frame 0 made of the registers, so that every write still
		// belongs to a frame, and say that the callers are unknown.
		s.note(st.id, fmt.Sprintf("unwinding the parent: %v; its callers and their return slots are unknown", err))
		frames = []unwind.Frame{{PC: pc, CFA: regs.SP(), RetReg: -1, Method: "none"}}
	}
	st.frames = frames
	st.slots = map[uint64]slotInfo{}
	for i, f := range frames {
		fn := s.sym(st.mm, f.PC)
		if i > 0 {
			// A return address can point just past a noreturn call, into
			// the next function: name the frame by the call itself.
			fn = s.sym(st.mm, f.PC-1)
		}
		st.frameFns = append(st.frameFns, fn)
		ef := event.Frame{Index: i, PC: event.Addr(f.PC), Sym: s.sym(st.mm, f.PC), CFA: event.Addr(f.CFA),
			Ret: event.Addr(f.Ret), RetSym: s.sym(st.mm, f.Ret), Method: event.UnwindMethod(f.Method)}
		if f.RetSlot != 0 {
			a := event.Addr(f.RetSlot)
			ef.RetSlot = &a
			st.slots[f.RetSlot] = slotInfo{kind: "ret", frame: i}
		} else if f.RetReg >= 0 {
			ef.RetReg = st.arch.RegName(f.RetReg)
		}
		for _, sv := range f.Saved {
			ef.Saved = append(ef.Saved, event.SavedSlot{Reg: st.arch.RegName(sv.Reg), Slot: event.Addr(sv.Addr), Value: event.Addr(sv.Value)})
			st.slots[sv.Addr] = slotInfo{kind: "saved_reg", reg: st.arch.RegName(sv.Reg), frame: i}
		}
		ev.Frames = append(ev.Frames, ef)
	}
	if len(frames) > 1 {
		// Only a trustworthy unwind can prove corruption: the frame-pointer
		// fallback reads whatever %ebp/%rbp holds (i386 glibc clone has no
		// CFI at its syscall and skips main that way).
		trusted := frames[0].Method != "fp" && frames[1].Method != "fp"
		if r := frames[1].Ret; trusted && !st.mm.syms().IsCode(r) {
			ev.CorruptBefore = &event.CorruptFrame{Frame: 1, Fn: st.frameFns[1], Ret: event.Addr(r)}
		}
		ev.Caller = st.frameFns[1]
		if in, err := s.prevInsn(st.mm, p.pid, frames[0].Ret); err == nil && in.Class == disasm.Call {
			ev.Call = &event.Insn{PID: p.pid, PC: event.Addr(in.PC), Sym: s.sym(st.mm, in.PC), Insn: s.insnText(st.mm, in)}
		}
	}

	st.lo, st.hi = s.liveRegion(st, childSP)
	st.orig = make([]byte, st.hi-st.lo)
	if err := s.t.ReadMem(p.pid, st.lo, st.orig); err != nil {
		return fmt.Errorf("snapshot parent stack [%#x,%#x): %w", st.lo, st.hi, err)
	}
	st.shadow = append([]byte(nil), st.orig...)
	st.scratch = make([]byte, len(st.orig))
	ev.Live = event.Region{Lo: event.Addr(st.lo), Hi: event.Addr(st.hi)}

	st.stepChild = st.shared || s.cfg.Mode == Step
	switch {
	case s.cfg.Mode == Step:
		ev.Mechanism = "step"
	case st.stepChild && s.hw == hwWorks:
		ev.Mechanism = "depth+hw"
	case st.stepChild:
		ev.Mechanism = "depth"
	default:
		ev.Mechanism = "diff"
	}
	s.emit(ev)
	return nil
}

// liveRegion is the part of the parent's stack the child must not change:
// from the parent's stack pointer to the outermost frame vtrace unwound. A
// child stack placed inside it (musl's posix_spawn puts it in a local
// buffer) is the child's own, so the region starts above it.
func (s *session) liveRegion(st *story, childSP uint64) (uint64, uint64) {
	lo := st.regs0.SP()
	hi := uint64(0)
	// Up to the outermost frame when the unwind reached it (it returns to
	// 0); when it stopped early, the frames above are unknown but just as
	// live: up to the end of the stack mapping.
	if n := len(st.frames); n > 1 && st.frames[n-1].Ret == 0 {
		hi = st.frames[n-1].CFA
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
	const maxRegion = 1 << 20
	if hi-lo > maxRegion {
		hi = lo + maxRegion
	}
	if !st.shared && childSP > lo && childSP < hi {
		// The clone wrappers leave the child's start-up words at its stack
		// pointer for it to pop (glibc clone: fn and arg; musl __clone:
		// arg), and the child's first call reuses them: they are its own.
		lo = (childSP+uint64(st.word)-1)&^uint64(st.word-1) + 2*uint64(st.word)
		if lo > hi {
			lo = hi
		}
	}
	return lo, hi
}

// prevInsn decodes the instruction that ends right before addr (the call
// before a return address, the syscall before an event stop's pc).
func (s *session) prevInsn(mm *addrSpace, pid int, addr uint64) (*disasm.Insn, error) {
	for _, n := range []uint64{2, 5, 6, 3, 7, 4, 8, 9, 10} {
		in, err := s.insnAt(mm, pid, addr-n)
		if err == nil && uint64(in.Len) == n {
			if in.Class == disasm.Call || in.Class == disasm.Syscall {
				return in, nil
			}
		}
	}
	return nil, errors.New("no call or syscall instruction ends there")
}

func cloneFlags(f uint64) string {
	names := []struct {
		bit  uint64
		name string
	}{{cloneVM, "CLONE_VM"}, {cloneVfork, "CLONE_VFORK"}, {0x200, "CLONE_FS"},
		{0x400, "CLONE_FILES"}, {0x800, "CLONE_SIGHAND"}, {0x10000, "CLONE_THREAD"},
		{0x100000, "CLONE_SETTLS"}, {0x200000, "CLONE_PARENT_SETTID"},
		{0x1000000, "CLONE_CHILD_SETTID"}, {0x200000, "CLONE_CHILD_CLEARTID"},
		{0x1000, "CLONE_PIDFD"}, {0x8000, "CLONE_PARENT"}, {0x20000000, "CLONE_CLEAR_SIGHAND"}}
	var parts []string
	for _, n := range names {
		if f&n.bit != 0 {
			parts = append(parts, n.name)
			f &^= n.bit
		}
	}
	if sig := f & 0xff; sig != 0 {
		parts = append(parts, unix.SignalName(unix.Signal(sig)))
		f &^= 0xff
	}
	if f != 0 {
		parts = append(parts, fmt.Sprintf("%#x", f))
	}
	return strings.Join(parts, "|")
}

// awaitInitialStop waits for a new vfork child's first stop (its SIGSTOP).
func (s *session) awaitInitialStop(c *task) error {
	if !c.initialStop {
		return nil // already seen (it arrived before the parent's event)
	}
	st, err := s.waitFor(c.pid)
	if err != nil {
		return err
	}
	if st.Status.Exited() || st.Status.Signaled() {
		s.gone(c, st.Status)
		return errStopped
	}
	c.initialStop = false
	return nil
}

// emitSlotDiff reports every slot before and after the child ran, and every
// changed word of the live region.
func (s *session) emitSlotDiff(st *story) {
	ev := &event.SlotDiff{Header: s.hdr("slot_diff", st.parent.pid), Vfork: st.id}
	for _, f := range st.frames {
		if f.RetSlot != 0 {
			ev.Slots = append(ev.Slots, s.slotState(st, f.RetSlot))
		}
		for _, sv := range f.Saved {
			ev.Slots = append(ev.Slots, s.slotState(st, sv.Addr))
		}
	}
	for a := st.lo; a+uint64(st.word) <= st.hi; a += uint64(st.word) {
		before, after := st.wordAt(st.orig, a), st.wordAt(st.shadow, a)
		if before != after {
			ev.Changed = append(ev.Changed, event.WordChange{Addr: event.Addr(a), Frame: st.frameOf(a),
				Before: event.Addr(before), After: event.Addr(after)})
		}
	}
	s.emit(ev)
}

func (s *session) slotState(st *story, addr uint64) event.SlotState {
	info := st.slots[addr]
	ss := event.SlotState{Slot: event.Addr(addr), Kind: info.kind, Reg: info.reg, Frame: info.frame}
	if !st.inRegion(addr) {
		return ss
	}
	before, after := st.wordAt(st.orig, addr), st.wordAt(st.shadow, addr)
	ss.Before, ss.After, ss.Changed = event.Addr(before), event.Addr(after), before != after
	if info.kind == "ret" {
		ss.BeforeSym, ss.AfterSym = s.codeSym(st.mm, before), s.codeSym(st.mm, after)
	}
	return ss
}

// codeSym symbolises a value only if it points into mapped code.
func (s *session) codeSym(mm *addrSpace, v uint64) *event.Sym {
	m, ok := mm.syms().MappingAt(v)
	if !ok || !strings.Contains(m.Perms, "x") {
		return nil
	}
	return s.sym(mm, v)
}

func (st *story) inRegion(a uint64) bool {
	return a >= st.lo && a+uint64(st.word) <= st.hi
}

func (st *story) wordAt(buf []byte, a uint64) uint64 {
	off := a - st.lo
	if st.word == 4 {
		return uint64(binary.LittleEndian.Uint32(buf[off:]))
	}
	return binary.LittleEndian.Uint64(buf[off:])
}

func (st *story) putWord(buf []byte, a, v uint64) {
	off := a - st.lo
	if st.word == 4 {
		binary.LittleEndian.PutUint32(buf[off:], uint32(v))
		return
	}
	binary.LittleEndian.PutUint64(buf[off:], v)
}

// frameOf returns the index of the parent frame holding addr.
func (st *story) frameOf(a uint64) int {
	for i, f := range st.frames {
		if a < f.CFA {
			return i
		}
	}
	return len(st.frames) - 1
}
