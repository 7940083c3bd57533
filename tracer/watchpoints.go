package tracer

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
)

// Hardware watchpoints (x86 debug registers DR0–DR3, enabled by DR7).
//
// Fast mode lets the vfork child's callees run at full speed and finds their
// writes into the parent's stack by diffing when each call returns: it knows
// that a slot changed during `call exit@plt`, not which instruction inside
// exit() changed it. Where debug-register watchpoints fire, vtrace also arms
// up to four of them in the child on the slots most at risk (the return and
// saved-register slots of the frames above the vfork, nearest first) and
// names the exact writer when one triggers.
//
// Some hypervisors accept DR writes but never deliver the trap, so vtrace
// probes first and never depends on them: at the program's first stop it
// watches the first byte the program is about to store to, single-steps
// that store and reads DR6. If the bit is not set, the watchpoints are
// reported as "none" and stepping plus diffing finds every write as before.
// DR7 is written last and never read back (a read-back proves nothing about
// whether the trap will be delivered).

// watchSet is the child's watchpoints of one story.
type watchSet struct {
	slots []uint64 // slots watched by DR0–DR3 in the child; DR7 enables them only around full-speed runs
	on    bool     // the child's DR7 enables them now
	hits  int      // traps that named a writer
	// during is the call the child is inside, run at full speed, while
	// the watchpoints are enabled (writes found then are attributed to it).
	during *event.Insn
}

// hwState is what vtrace knows about debug-register watchpoints.
type hwState int

const (
	hwAuto   hwState = iota // not probed (yet)
	hwOff                   // --watchpoints off, or --step (every write is stepped)
	hwWorks                 // the probe's watchpoint fired
	hwBroken                // the probe's watchpoint did not fire (or could not be set)
)

func (h hwState) String() string {
	switch h {
	case hwOff:
		return "off"
	case hwWorks:
		return "hw"
	case hwBroken:
		return "none"
	}
	return "auto"
}

// DR7 encodings.
const (
	dr7RWWrite = 0b01
	maxHWSlots = 4
	probeSteps = 64 // instructions to look for a store at the program's start
)

// dr7Len encodes a watch length of 1, 2, 4 or 8 bytes.
func dr7Len(n int) uint64 {
	switch n {
	case 2:
		return 0b01
	case 4:
		return 0b11
	case 8:
		return 0b10
	}
	return 0b00
}

// dr7For enables write watchpoints of length size on the first n of DR0–DR3.
func dr7For(n, size int) uint64 {
	var v uint64
	for i := 0; i < n; i++ {
		v |= 1<<(2*i) | dr7RWWrite<<(16+4*i) | dr7Len(size)<<(18+4*i)
	}
	return v
}

// probeHW decides whether watchpoints fire, on the main program at its exec
// stop (before it has run an instruction): it single-steps (no watchpoint
// armed) to the first plain store — not a call or branch — then watches
// that store's first byte with DR0, plants an int3 right after it and
// continues. A trap at the instruction after the store with DR6's B0 set
// means they fire; reaching the int3 first means they do not. The store is
// never single-stepped with a watchpoint armed: qemu's TCG wedges the whole
// guest when a single-step and a data breakpoint hit the same instruction.
func (s *session) probeHW(t *task) {
	var regs arch.Regs
	mm := t.proc.mm
	s.hwProbe = "no store in the program's first instructions"
	for i := 0; i < probeSteps; i++ {
		if s.p.Regs(t.pid, &regs) != nil {
			return
		}
		in, err := s.insnAt(mm, t.pid, regs.PC())
		if err != nil {
			return
		}
		acc, unknown := in.Effects(&regs, nil)
		var target uint64
		for _, a := range acc {
			if a.Write && !a.Seg {
				target = a.Addr
				break
			}
		}
		plain := in.Class == disasm.Other || in.Class == disasm.Push
		if target == 0 || unknown || !plain {
			if out, err := s.resumeAndWait(t, true, 0); err != nil || out.kind != outTrap {
				s.hwProbe = "the program did not get that far"
				return
			}
			s.steps++
			continue
		}
		s.hw, s.hwProbe = s.probeStore(t, regs.PC(), in, target)
		return
	}
}

// probeStore runs one store with DR0 on its target and an int3 after it.
func (s *session) probeStore(t *task, pc uint64, in *disasm.Insn, target uint64) (hwState, string) {
	mm := t.proc.mm
	next := pc + uint64(in.Len)
	desc := fmt.Sprintf("DR0 on %#x, store `%s`", target, strings.Join(strings.Fields(s.insnText(mm, in)), " "))
	const owner = -1 // not a story
	if err := s.plant(mm, t.pid, next, owner); err != nil {
		return hwBroken, fmt.Sprintf("%s: %v", desc, err)
	}
	defer func() { _ = s.unclaim(mm, t.pid, next, owner) }()
	if err := s.armDR(t.pid, []uint64{target}, 1); err != nil {
		return hwBroken, fmt.Sprintf("%s: %v", desc, err)
	}
	state, what := hwBroken, "did not fire"
	var regs arch.Regs
	for tries := 0; tries < 2; tries++ {
		out, err := s.resumeAndWait(t, false, 0)
		if err != nil || out.kind != outTrap || s.p.Regs(t.pid, &regs) != nil {
			return hwAuto, "the program did not get that far"
		}
		if regs.PC() == next+1 { // the int3: the store ran without a trap
			regs.SetPC(next)
			if err := s.p.SetRegs(t.pid, &regs); err != nil {
				return hwAuto, err.Error()
			}
			break
		}
		if dr6, err := s.p.DebugReg(t.pid, 6); err == nil && dr6&1 != 0 && regs.PC() == next {
			state, what = hwWorks, "fired"
		}
		_ = s.disarmDR(t.pid) // then on to the int3
	}
	_ = s.disarmDR(t.pid)
	return state, desc + ": " + what
}

// armDR watches writes of size bytes at each address (at most four) in one
// task: addresses first, DR6 cleared, DR7 last.
func (s *session) armDR(pid int, addrs []uint64, size int) error {
	for i, a := range addrs {
		if err := s.setDR(pid, i, a); err != nil {
			return err
		}
	}
	if err := s.setDR(pid, 6, 0); err != nil {
		return err
	}
	return s.setDR(pid, 7, dr7For(len(addrs), size))
}

func (s *session) disarmDR(pid int) error {
	if err := s.setDR(pid, 7, 0); err != nil {
		return err
	}
	return s.setDR(pid, 6, 0)
}

// armSlots arms the child's watchpoints on the slots most at risk: return
// and saved-register slots of the frames above the vfork wrapper, nearest
// first, inside the live region.
func (s *session) armSlots(st *story) {
	var slots []uint64
	for i := 1; i < len(st.frames) && len(slots) < maxHWSlots; i++ {
		f := st.frames[i]
		cands := []uint64{f.RetSlot}
		for _, sv := range f.Saved {
			cands = append(cands, sv.Addr)
		}
		for _, a := range cands {
			if a != 0 && a >= st.lo && a+uint64(st.word) <= st.hi && a%uint64(st.word) == 0 && len(slots) < maxHWSlots {
				slots = append(slots, a)
			}
		}
	}
	if len(slots) == 0 {
		return
	}
	for i, a := range slots {
		if err := s.setDR(st.child.pid, i, a); err != nil {
			s.note(st.id, event.NoteWatchpointsFailed, fmt.Sprintf("arming watchpoints: %v; writes inside callees are found by diffing", err))
			return
		}
	}
	// DR7 is written only around the child's full-speed runs (hwEnable):
	// never while it is single-stepped.
	st.kid.hw.slots = slots
	var names []string
	for i, a := range slots {
		info := st.slots[a]
		what := "ret"
		if info.kind == "saved_reg" {
			what = "%" + info.reg
		}
		names = append(names, fmt.Sprintf("DR%d %s of %s at %#x", i, what, funcName(st.frameFns[info.frame]), a))
	}
	s.note(st.id, event.NoteWatchpointsArmed, strings.Join(names, ", "))
}

// hwEnable turns the child's watchpoints on (before a full-speed run:
// DR6 cleared, DR7 last) or off (before it is single-stepped again).
func (s *session) hwEnable(st *story, on bool) {
	if on {
		// The addresses too: a story nested in a call of the child (its
		// vfork) uses the child's debug registers for its own words
		// (armParentDRs). Unchanged, setDR writes nothing.
		_ = s.armDR(st.child.pid, st.kid.hw.slots, st.word)
		st.kid.hw.on = true
		return
	}
	if st.kid.hw.on {
		_ = s.setDR(st.child.pid, 7, 0)
		st.kid.hw.on = false
	}
}

// hwOffForStep turns off the watchpoints of the child t is, before it is
// single-stepped: they are on only while it runs at full speed (a step
// whose instruction a watchpoint stops is not made with them on), and a
// run leaves them on for the next (retRun.arm).
func (s *session) hwOffForStep(t *task) {
	for _, st := range s.stories {
		if st.child == t && st.kid.hw.on {
			s.hwEnable(st, false)
		}
	}
}

// hwGone records that the child's debug registers are clear: it exec'd
// (the kernel's flush_thread clears a tracer's watchpoints at exec: DR0
// and DR7 read 0 at the exec stop of a child that had them armed) or is
// gone.
func (st *story) hwGone() {
	st.kid.hw.on = false
}

// hwHit handles a SIGTRAP the child got while running a callee at full
// speed: if a watchpoint fired, the slot write is reported with the exact
// instruction that made it (the one that ends at the trap's pc, found by
// decoding the function from its start) and true is returned.
func (s *session) hwHit(st *story, now *arch.Regs) bool {
	if len(st.kid.hw.slots) == 0 {
		return false
	}
	c := st.child
	dr6, err := s.p.DebugReg(c.pid, 6)
	if err != nil || dr6&0xf == 0 {
		return false
	}
	_ = s.setDR(c.pid, 6, 0)
	writer := s.insnEndingAt(st.mm, c.pid, now.PC())
	for i, a := range st.kid.hw.slots {
		if dr6&(1<<i) == 0 {
			continue
		}
		st.kid.hw.hits++
		by := writer
		if call := s.pushingCall(st, now, a); call != nil {
			by = call
		}
		s.diffRange(st, a, a+uint64(st.word), now, by, st.kid.hw.during)
	}
	return true
}

// pushingCall names the writer of a return address a call pushed into the
// watched slot a: the trap comes with the pc at the callee's first
// instruction and the stack pointer at the pushed word, and the writer is
// the call that ends at the pushed value — not whatever instruction ends
// where the callee starts (a PLT entry's `jmp`). nil when the trap is not
// such a push.
func (s *session) pushingCall(st *story, now *arch.Regs, a uint64) *disasm.Insn {
	if now.SP() != a {
		return nil
	}
	var b [8]byte
	if s.p.ReadMem(st.child.pid, a, b[:st.word]) != nil {
		return nil
	}
	ret := binary.LittleEndian.Uint64(b[:])
	call, err := s.prevInsn(st.mm, st.child.pid, ret)
	if err != nil || call.Class != disasm.Call || call.Target != 0 && call.Target != now.PC() {
		return nil
	}
	return call
}

// insnEndingAt finds the instruction that ends at pc (the one a data
// watchpoint's trap comes after) by decoding the code around it from its
// start (codeStart); nil when that start is unknown or the decoding does
// not land on pc.
func (s *session) insnEndingAt(mm *addrSpace, pid int, pc uint64) *disasm.Insn {
	start, ok := s.codeStart(mm, pc-1)
	if !ok {
		return nil
	}
	for a := start; a < pc; {
		in, err := s.insnAt(mm, pid, a)
		if err != nil || in.Len == 0 {
			return nil
		}
		if a+uint64(in.Len) == pc {
			return in
		}
		a += uint64(in.Len)
	}
	return nil
}

// maxDecodeRun bounds how far codeStart's start may lie before the
// address: the instructions insnEndingAt decodes to reach it.
const maxDecodeRun = 1 << 16

// codeStart is an instruction boundary at or before addr from which
// decoding reaches addr's instruction: the start of the function whose
// symbol covers addr, else the start of the call-frame information entry
// (.eh_frame FDE) that covers it. The FDE is what names the code where no
// symbol does: a library's hidden functions when its debug file is absent
// (glibc's __memmove_avx_unaligned_erms, where memcpy runs; a store there
// was undecodable and its watchpoint trap taken for a read:
// TestInsnEndingAtWithoutSymbol). An FDE starts a function or one of its
// parts (a .cold one), each an instruction boundary.
func (s *session) codeStart(mm *addrSpace, addr uint64) (uint64, bool) {
	if y := s.sym(mm, addr); y != nil && y.Sym != "" && !y.PastEnd && y.Off <= maxDecodeRun {
		return addr - uint64(y.Off), true
	}
	fde, err := mm.syms().FDEForPC(addr)
	if err != nil || fde == nil || fde.Begin() > addr || addr-fde.Begin() > maxDecodeRun {
		return 0, false
	}
	return fde.Begin(), true
}

// funcName is a frame's function for notes: "createproc()".
func funcName(y *event.Sym) string {
	if y == nil || y.Sym == "" {
		return "?"
	}
	return y.Sym + "()"
}

// The parent's watchpoints (fast mode). While the parent is followed, a
// call it makes from its own frames runs at full speed only if every word
// still holding the child's value is watched for reads and writes (RW,
// one word per register, aligned): a read inside the callee (strlen,
// printf through a pointer) is then a parent_consume found by "hw", a
// write rewrites the word. With more live words than registers, or where
// watchpoints do not fire, the call is single-stepped instead, like
// --step.

const dr7RW = 0b11

// dr7ForRW enables read/write watchpoints of length size on the first n
// of DR0–DR3.
func dr7ForRW(n, size int) uint64 {
	var v uint64
	for i := 0; i < n; i++ {
		v |= 1<<(2*i) | dr7RW<<(16+4*i) | dr7Len(size)<<(18+4*i)
	}
	return v
}

// watchable reports whether the parent's live words can all be watched
// while a call runs at full speed: its stack words, and errno's bytes the
// child changed (errno.go: a failing call stores errno, maybe with the
// child's very value).
func (s *session) watchable(r *parentRun) bool {
	if s.hw != hwWorks || len(r.changed)+len(r.st.mem.errnoAddrs()) > maxHWSlots {
		return false
	}
	for x := range r.changed {
		if x%uint64(r.st.word) != 0 {
			return false
		}
	}
	return true
}

// runWatchedCall runs a call the parent makes from its own frames at full
// speed with its live words watched; if the watchpoints cannot be set,
// the call instruction is stepped (the callee is then stepped too).
func (s *session) runWatchedCall(r *parentRun, regs *arch.Regs, in *disasm.Insn, call *event.Insn, sig int) (outcome, error) {
	st, p := r.st, r.st.parent
	r.hw = r.hw[:0]
	for x := range r.changed {
		r.hw = append(r.hw, x)
	}
	slices.Sort(r.hw)
	r.ehw, r.errnoFns = st.mem.errnoAddrs(), nil // errno.go: its stores, while it is followed
	r.during = call
	if !s.armParentDRs(r) {
		_ = s.disarmDR(p.pid)
		r.hw, r.ehw = r.hw[:0], nil
		return s.advance(p, true, sig, regs.PC())
	}
	out, err := s.runCall(st, p, regs, in, sig, nil)
	if out.kind != outExec && out.kind != outGone {
		_ = s.disarmDR(p.pid)
	}
	r.hw, r.ehw = r.hw[:0], nil
	return out, err
}

// parentHWEnable turns the parent's watchpoints on (before a full-speed
// run: DR6 cleared, DR7 last) or off (before any single-step).
func (s *session) parentHWEnable(r *parentRun, on bool) {
	pid := r.st.parent.pid
	if on {
		_ = s.setDR(pid, 6, 0)
		_ = s.setDR(pid, 7, r.dr7)
		return
	}
	_ = s.setDR(pid, 7, 0)
}

// parentHWHit handles a SIGTRAP the parent got inside a watched call: for
// each watchpoint that fired, the word is read back — changed from the
// child's value, a callee rewrote it; unchanged, the instruction that
// touched it (the one ending at the trap's pc) read it, unless all it does
// is write. It returns false when no watchpoint fired.
func (s *session) parentHWHit(r *parentRun, now *arch.Regs) bool {
	st, pid := r.st, r.st.parent.pid
	dr6, err := s.p.DebugReg(pid, 6)
	if err != nil || dr6&0xf == 0 {
		return false
	}
	_ = s.setDR(pid, 6, 0)
	in := s.insnEndingAt(st.mm, pid, now.PC())
	var by *event.Insn
	if in != nil {
		by = s.insnEvent(st.mm, pid, in)
	}
	for i, x := range r.hw {
		c, live := r.changed[x]
		if dr6&(1<<i) == 0 || !live {
			continue
		}
		buf := st.scratch[x-st.lo : x-st.lo+uint64(st.word)]
		if s.p.ReadMem(pid, x, buf) != nil {
			continue
		}
		cur := st.wordAt(st.scratch, x)
		var gone uint8
		for b := 0; b < st.word; b++ {
			if c.bytes&(1<<b) != 0 && byte(cur>>(8*b)) != byte(c.val>>(8*b)) {
				gone |= 1 << b
			}
		}
		if gone != 0 {
			fate := by
			if fate == nil {
				fate = r.during
			}
			r.clear(x, gone, event.FateCallee, fate)
			continue
		}
		if in != nil && writesOnly(in, now) {
			r.clear(x, c.bytes, event.FateCallee, by) // it wrote the same value
			continue
		}
		s.consume(r, x, in, by, now.PC(), event.FoundHW)
	}
	s.errnoHits(r, dr6, in)
	return true
}

// writesOnly reports whether an instruction only writes memory (its
// operands' addresses do not matter: registers are read after it ran).
func writesOnly(in *disasm.Insn, regs *arch.Regs) bool {
	acc, unknown := in.Effects(regs, nil)
	if unknown {
		return false
	}
	w := false
	for _, a := range acc {
		if a.Seg {
			continue
		}
		if !a.Write {
			return false
		}
		w = true
	}
	return w
}

// drCache is what vtrace last wrote to a task's DR0–DR3 and DR7 (val[4]),
// valid while the task runs the image (mm) it wrote them in. vtrace is
// their only writer but for the kernel at exec, which clears them
// (flush_thread) — and the task has another image then. A new task (fork,
// vfork, clone) starts with none of its parent's (copy_thread clears its
// ptrace breakpoints); its cache starts empty all the same, so nothing
// rests on that.
//
// Each POKEUSER of DR0–DR3 or DR7 rebuilds perf hw_breakpoint events in
// the kernel, and one of DR7 disables and re-enables every watchpoint it
// leaves enabled (perf_event_disable, perf_event_enable: a cross-CPU call
// each when the task last ran on another CPU): setDR skips the writes of
// the value a register already holds — the parent's errno watchpoints
// are set at the same address at every spawn of python's subprocess
// loop. DR6 is never cached: the kernel writes it at every debug trap.
type drCache struct {
	mm    *addrSpace
	known uint8 // bit i: val[i] is what the register holds
	val   [5]uint64
}

// drSkips counts the debug-register writes setDR skipped (vtrace's
// profiling build prints it: KernelCalls).
var drSkips atomic.Int64

// setDR writes debug register n (0–7) of task pid, unless it is one of
// DR0–DR3 and DR7 and already holds v (drCache).
func (s *session) setDR(pid, n int, v uint64) error {
	t := s.byPID[pid]
	i := n
	if n == 7 {
		i = 4
	}
	var c *drCache
	if t != nil && t.proc != nil && t.proc.mm != nil && (n < 4 || n == 7) {
		c = &t.dr
		if c.mm != t.proc.mm {
			*c = drCache{mm: t.proc.mm}
		}
		if c.known&(1<<i) != 0 && c.val[i] == v {
			drSkips.Add(1)
			return nil
		}
	}
	err := s.p.SetDebugReg(pid, n, v)
	if c != nil {
		// A failed write leaves the register unknown (a DR7 write the
		// kernel could not complete is undone: the old value stays).
		c.known &^= 1 << i
		if err == nil {
			c.known |= 1 << i
			c.val[i] = v
		}
	}
	return err
}
