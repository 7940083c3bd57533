package tracer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"golang.org/x/arch/x86/x86asm"
	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
	"github.com/vtrace/vtrace/tracer/internal/unwind"
)

// The child phase: the parent stays in its vfork event stop (registers
// readable, never runnable) while the child runs, until the child execs,
// exits or dies. Every write into the parent's live stack and every return
// past a live parent frame is recorded.
//
// A child on its own stack (glibc posix_spawn, clone with a stack) cannot
// clobber the parent through call/ret, so in fast mode it runs at full
// speed and its writes are found by diffing (runChildFree). A child on the
// parent's stack is single-stepped in the frames it shares with the parent;
// in fast mode each call made from there runs at full speed up to an int3
// at its return address (callThrough), in step mode every instruction is
// stepped.

// childRun is the state of stepping one child: where it is, how deep in
// calls below the shared frames, and what the last step makes certain.
type childRun struct {
	st   *story
	regs arch.Regs
	acc  []disasm.Access
	sig  int // a signal to deliver with the next step
	// calls are the stack pointers at the calls the child is inside,
	// below the shared frames (step mode steps through callees; fast mode
	// through a call that does not return): it is in one while its stack
	// pointer is below the call's. Counting calls and rets would not do:
	// longjmp and the unwinder leave several at once, and i386's
	// lazy-binding resolver enters the function with a `ret $n`.
	calls []uint64
	// pendingCall is a call stepped from a shared frame whose target is
	// read at the next step (step mode).
	pendingCall *event.Insn
	// prev is the instruction stepped last; when the registers are next
	// read, a stack pointer above a live frame's return slot is its doing.
	prev *disasm.Insn
	// outer is the call from a shared frame the child is inside, stepped
	// (step mode, or fast mode's call that does not return: longjmp, a
	// throw).
	outer *event.Insn
	// escaped: the child left calls without a ret (longjmp, the
	// unwinder); until it runs in a live frame's function again, its pc
	// tells which frame it jumped into.
	escaped bool
	predict silentPredictor
	// fresh: regs are the child's registers now (a block has just run).
	fresh bool
	// blocks are the decoder's scratch (block.go): blocks[cur] is the
	// one decodeBlock fills; a block and the one its ret goes on into
	// (retLink) are decoded in both.
	blocks   [2]block
	cur      int
	link     retLink   // runBlock's: the ret a block goes on through
	call     callLink  // runBlock's: the call a block goes on into
	atRet    arch.Regs // blockAfterRet's: the registers at the ret it runs
	exits    []uint64  // runBlock's: the int3s planted for one run
	blockPCs []uint64  // blockAt's scratch
	// quietTraps: with --step, the SIGTRAP after the step of an
	// instruction that raises none of its own (disasm.Insn.OwnTrapFree)
	// is taken for the step's without reading the siginfo (resume). Only
	// while the process holds no perf event: perf_event_open's sigtrap
	// events raise SIGTRAP (TRAP_PERF) at whichever instruction touches
	// the watched address or overflows the counter. Checked when the
	// child starts (its file descriptors, the parent's copied at the
	// vfork) and at each of its system calls (perf_event_open, and the
	// calls that may make the kernel send it a SIGTRAP later: a POSIX
	// timer's, turn it off: asyncTrapCall).
	quietTraps bool
	// tainted: the last step was not of such an instruction, or ended
	// otherwise than in the step's trap: a SIGTRAP it queued (a system
	// call: kill(getpid(), SIGTRAP) queues it process-wide, beside the
	// step's own) is reported at the next step, before that instruction
	// runs, so the next step reads the siginfo.
	tainted bool
}

// hasPerfEvents tells whether pid holds a perf event file descriptor (true
// when that cannot be read).
func hasPerfEvents(pid int) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return true
	}
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == "anon_inode:[perf_event]" {
			return true
		}
	}
	return false
}

// asyncTrapCall reports whether the system call regs are about to make
// may set up a SIGTRAP the process gets later, at whichever instruction
// (quietTraps then ends): perf_event_open (its sigtrap events),
// timer_create (a POSIX timer whose signal may be SIGTRAP: trapchild
// timer), mq_notify (a message queue's notification signal) and
// fcntl(F_SETSIG) (the signal of O_ASYNC input), by the numbers of the
// task's ABI (sysNames; amd64's when the registers name none).
func asyncTrapCall(regs *arch.Regs) bool {
	a := regs.Arch
	if a == nil || a.PtrSize != 4 {
		a = arch.AMD64
	}
	switch sysName(a, regs.AX()) {
	case "perf_event_open", "timer_create", "mq_notify":
		return true
	case "fcntl", "fcntl64":
		return regs.SyscallArg(1) == unix.F_SETSIG
	}
	return false
}

// depth is the number of calls the child is inside below the shared frames.
func (r *childRun) depth() int { return len(r.calls) }

// popCalls forgets the calls the child has left: its stack pointer is back
// at or above theirs (a ret, or a longjmp past several).
func (r *childRun) popCalls(sp uint64) {
	n := len(r.calls)
	for n > 0 && sp >= r.calls[n-1] {
		n--
	}
	if n < len(r.calls) && r.prev != nil && r.prev.Class != disasm.Ret {
		r.escaped = true // a non-local exit: longjmp, the unwinder
	}
	r.calls = r.calls[:n]
}

func (s *session) followChild(st *story) error {
	if err := s.awaitFirstStop(st); err != nil {
		return err
	}
	// A run of a call leaves the child's watchpoints on (retRun.arm): off
	// when the story ends with the child still in it (cut short; its exec
	// or end clears them itself).
	defer s.hwEnable(st, false)
	// The child's exec stop waits for its program's path (childEnded):
	// the first time the child is let run, /proc/PID/exe is looked up
	// meanwhile (resume).
	s.lookUpExe = st.child.pid
	if !st.stepChild {
		return s.runChildFree(st)
	}
	if s.hw == hwWorks {
		s.armSlots(st)
	}
	r := &childRun{st: st, tainted: true}
	r.quietTraps = s.cfg.Mode == Step && !hasPerfEvents(st.child.pid)
	for {
		done, err := s.stepChildOnce(r)
		if done || err != nil {
			return err
		}
	}
}

// runChildFree runs a child on its own stack at full speed to its end.
func (s *session) runChildFree(st *story) error {
	sig := 0
	for {
		out, err := s.advance(st.child, false, sig, 0)
		if err != nil {
			return err
		}
		sig = 0
		switch out.kind {
		case outTrap:
			// An int3 of vtrace's (another story's, in code this child
			// shares): run the original instruction and go on.
			out, err = s.stepOverInt3(st.child)
			switch {
			case err != nil:
				return err
			case out.kind == outSignal:
				sig = int(out.sig)
			case out.kind != outTrap && out.kind != outNested:
				return s.childEnded(st, out)
			}
		case outNested:
		case outSignal:
			sig = int(out.sig)
		default:
			return s.childEnded(st, out)
		}
	}
}

// stepChildOnce executes the child's next instruction (a call from a
// shared frame in fast mode: the whole call) and checks what it did. done
// is true when the child has ended.
func (s *session) stepChildOnce(r *childRun) (done bool, err error) {
	st, c, mm := r.st, r.st.child, r.st.mm
	if err := s.countStep(st); err != nil {
		return false, err
	}
	pc, in, derr := r.predict.insn(s, r)
	var unknown bool
	if pc == 0 { // not a predicted silent instruction: read where the child is
		if !r.fresh {
			if err := s.p.Regs(c.pid, &r.regs); err != nil {
				return false, fmt.Errorf("read child registers: %w", err)
			}
		}
		r.fresh = false
		pc = r.regs.PC()
		r.popCalls(r.regs.SP())
		s.checkLeftFrames(st, r)
		r.predict.read(r.prev != nil)
		s.checkJumpedOut(st, r)
		if r.depth() == 0 && !r.escaped {
			r.outer = nil
		}
		if r.pendingCall != nil {
			s.emitChildCall(st, r.pendingCall, pc)
			r.pendingCall = nil
		}
		in, derr = s.insnAt(mm, c.pid, pc)
		if derr == nil {
			if b := s.blockAt(r, in); b != nil {
				if link := s.linkRet(r, b); !b.short || link != nil || s.linkCall(r, b, nil, 0) != nil {
					return s.runBlock(r, b, 0, link)
				}
			}
			if b := s.blockAfterRet(r, in); b != nil {
				return s.runBlock(r, b, 1, nil)
			}
		}
		unknown = derr != nil
		if derr == nil {
			r.acc, unknown = in.Effects(&r.regs, r.acc[:0])
		}
	} else {
		r.acc = r.acc[:0]
	}
	if s.cfg.TraceInsns {
		s.emit(&event.ChildStep{Header: s.hdr("child_step", c.pid), Vfork: st.id, N: st.kid.steps,
			PC: event.Addr(pc), SP: event.Addr(r.regs.SP()), Sym: s.sym(mm, pc), Insn: s.insnText(mm, in)})
	}
	class := disasm.Other
	if derr == nil {
		class = in.Class
	}
	throughCall := class == disasm.Call && r.depth() == 0 && s.cfg.Mode == Fast
	if throughCall && noReturnFuncs[s.callTarget(st, st.child.pid, in, &r.regs)] {
		// longjmp or a throw: it leaves the shared frames by moving the
		// stack pointer, which only a step sees.
		throughCall = false
	}
	if class == disasm.Call && r.outer != nil && s.cfg.Mode == Fast && unwinderHelpers[s.callTarget(st, st.child.pid, in, &r.regs)] {
		// Inside a stepped throw: the unwinder's own searches (the FDE
		// lookup, the frame interpreter, the personality routine) return
		// normally and run at full speed; static libgcc's first FDE
		// search sorts every FDE of the program (millions of steps).
		out, err := s.runCall(st, c, &r.regs, in, r.sig, nil)
		r.predict.after(s, pc, in, derr, r.sig, outcome{}, err)
		r.sig, r.prev = 0, in
		st.kid.steps++
		switch {
		case err != nil:
			return false, err
		case out.kind == outSignal:
			r.sig = int(out.sig)
		case out.kind != outTrap && out.kind != outNested:
			return true, s.childEnded(st, out)
		}
		s.diffRegion(st, nil, r.outer)
		return false, nil
	}
	var out outcome
	if throughCall {
		out, err = s.callThrough(st, &r.regs, in, r.acc, r.sig)
	} else {
		quiet := derr == nil && in.OwnTrapFree()
		if !quiet && derr == nil && in.Class == disasm.Syscall && asyncTrapCall(&r.regs) {
			r.quietTraps = false
		}
		s.silentStep = quiet && r.quietTraps && !r.tainted
		out, err = s.advance(c, true, r.sig, pc)
		s.silentStep = false
		r.tainted = !quiet || err != nil || out.kind != outTrap || out.delivered
	}
	r.predict.after(s, pc, in, derr, r.sig, out, err)
	r.sig = 0
	r.prev = nil
	if derr == nil {
		r.prev = in
	}
	st.kid.steps++
	if err != nil {
		return false, err
	}
	switch out.kind {
	case outTrap:
	case outNested:
		return false, nil
	case outSignal:
		r.sig = int(out.sig) // delivered with the next step
		return false, nil
	default:
		return true, s.childEnded(st, out)
	}
	if throughCall {
		return false, nil // callThrough checked the push and the callee's writes
	}
	s.checkWrites(st, &r.regs, in, r.acc, unknown)
	if class == disasm.Call {
		if r.depth() == 0 {
			r.pendingCall = s.insnEvent(mm, c.pid, in)
			r.outer = r.pendingCall
		}
		r.calls = append(r.calls, r.regs.SP())
	}
	return false, nil
}

// silentPredictor knows the child's pc without reading its registers when
// the last step executed a "silent" instruction (one that changes only
// registers and falls through) and nothing else happened: the next one is
// right after it. A silent instruction at that pc is then stepped without
// a register read — a third of a step's cost — since it writes nothing and
// needs no register to judge.
//
// With --step, after a direct jump that reads no memory, the pc is one of
// the jump's successors, each a silent instruction or such a jump again
// (a loop's back edge): then only the pc is read (procs.PC, half the cost
// of a register read), and what else the register read would be for is
// already known. The stack pointer is the one read last: after predicts
// only after instructions that leave it where it was, and every step it
// does not predict reads the registers; with it unchanged, popCalls and
// checkLeftFrames, which judge it, find what they found when it was read
// (jumpOK: they did judge it, with the instruction before known). The
// pc is judged by checkJumpedOut only after an escape, and a call's
// target (pendingCall) comes from a register read: both are left to one.
type silentPredictor struct {
	next uint64 // the certain pc, or 0
	// jump is the direct jump stepped last, when its successor is to be
	// read with procs.PC (--step); nil otherwise.
	jump *disasm.Insn
	// jumpOK: the stack pointer was judged when the registers were last
	// read (with an instruction before it known) and has not moved since.
	jumpOK bool
}

// read records a register read whose stack pointer the stepper judged
// (judged: an instruction stepped before it was known, r.prev).
func (p *silentPredictor) read(judged bool) { p.jumpOK = judged }

// reset forgets what the last step made certain (a block ran).
func (p *silentPredictor) reset() { p.next, p.jump, p.jumpOK = 0, nil, false }

// insn returns the predicted pc and its instruction when the prediction
// holds and that instruction is silent too (or, with --step, a jump that
// reads no memory); pc 0 otherwise.
func (p *silentPredictor) insn(s *session, r *childRun) (uint64, *disasm.Insn, error) {
	if s.cfg.TraceInsns {
		return 0, nil, nil
	}
	next := p.next
	if next == 0 && p.jump != nil && !r.escaped && r.pendingCall == nil {
		return p.jumpedTo(s, r)
	}
	if next == 0 {
		return 0, nil, nil
	}
	in, ok := p.steppable(s, r, next)
	if !ok {
		return 0, nil, nil
	}
	return next, in, nil
}

// steppable returns the instruction at pc when the predictor may step it
// without a register read: not where vtrace planted an int3 (stepping
// over one needs the certain pc: a SIGTRAP sent from outside looks like a
// step), and silent — or, with --step, a jump that reads no memory
// (OwnTrapFree): it writes nothing, and after it the registers (or the
// pc) are read, where a jump out of the shared frames is seen. (Fast
// mode reads them at a jump: a block may start there.)
func (p *silentPredictor) steppable(s *session, r *childRun, pc uint64) (*disasm.Insn, bool) {
	if _, planted := r.st.mm.bps[pc]; planted {
		return nil, false
	}
	in, err := s.insnAt(r.st.mm, r.st.child.pid, pc)
	if err != nil {
		return nil, false
	}
	if !in.Silent() && !(s.cfg.Mode == Step && in.OwnTrapFree()) {
		return nil, false
	}
	return in, true
}

// jumpedTo reads the pc after the direct jump p.jump and returns it with
// its instruction when it went one of its ways and that one is steppable
// (else 0). Only when the way it likely went is steppable (else the
// register read that comes anyway would follow the pc's): its target, and
// for a conditional jump forwards the way on too — a backward one is a
// loop's back edge, taken all but the last time (spin's loop: the pc alone
// at every turn, and the registers too at its end).
func (p *silentPredictor) jumpedTo(s *session, r *childRun) (uint64, *disasm.Insn, error) {
	j := p.jump
	fall := j.PC + uint64(j.Len)
	to, ok := p.steppable(s, r, j.Target)
	if !ok {
		return 0, nil, nil
	}
	var on *disasm.Insn
	if j.Class == disasm.CondJump && j.Target > j.PC {
		if on, ok = p.steppable(s, r, fall); !ok {
			return 0, nil, nil
		}
	}
	pc, err := s.p.PC(r.st.child.pid)
	switch {
	case err != nil:
	case pc == j.Target:
		return pc, to, nil
	case pc == fall && j.Class == disasm.CondJump:
		if on == nil {
			on, ok = p.steppable(s, r, fall)
		}
		if ok {
			return pc, on, nil
		}
	}
	return 0, nil, nil
}

// after records what the step of the instruction at pc makes certain.
func (p *silentPredictor) after(s *session, pc uint64, in *disasm.Insn, derr error, sig int, out outcome, err error) {
	p.next, p.jump = 0, nil
	clean := derr == nil && sig == 0 && err == nil && out.kind == outTrap && !out.delivered
	switch {
	case !clean:
	case in.Silent() && !in.NamesSP():
		// After an instruction that may move the stack pointer the
		// registers are read: a stack pointer above a live frame is the
		// child leaving it.
		p.next = pc + uint64(in.Len)
		return
	case p.jumpOK && s.cfg.Mode == Step && in.OwnTrapFree() && in.Target != 0 &&
		(in.Class == disasm.Jump || in.Class == disasm.CondJump):
		p.jump = in
		return
	}
	p.jumpOK = false
}

// callThrough executes a call made from a shared frame (fast mode): it
// single-steps the call itself — its push is the write that clobbers a
// slot — then runs the callee at full speed to its return (runCall). When
// the callee returns, the live region is diffed and every change
// attributed to this call.
//
// A direct call whose push lands below the parent's live region and
// outside the watched memory (python3.11's child calls child_exec with 24
// arguments pushed) is not stepped: the step could show nothing, and the
// callee is its known target. The child runs from the call itself to the
// int3 at its return address — a stop fewer.
func (s *session) callThrough(st *story, regs *arch.Regs, in *disasm.Insn, acc []disasm.Access, sig int) (outcome, error) {
	c, mm := st.child, st.mm
	callInsn := s.insnEvent(mm, c.pid, in)
	pc := regs.PC()
	if _, planted := mm.bps[pc]; sig == 0 && in.Target != 0 && !planted && len(acc) > 0 && s.blockStoresOK(st, acc) {
		s.emitChildCall(st, callInsn, in.Target)
		st.kid.hw.during = callInsn
		out, err := s.contToReturn(st, c, pc+uint64(in.Len), regs.SP())
		out.ranCall = true
		return s.calledThrough(st, callInsn, out, err)
	}
	out, err := s.runCall(st, c, regs, in, sig, func() error {
		s.checkWrites(st, regs, in, acc, false)
		var now arch.Regs
		if err := s.p.Regs(c.pid, &now); err != nil {
			return err
		}
		s.emitChildCall(st, callInsn, now.PC())
		st.kid.hw.during = callInsn
		return nil
	})
	return s.calledThrough(st, callInsn, out, err)
}

// calledThrough diffs, after a call callThrough ran, what the callee
// changed.
func (s *session) calledThrough(st *story, callInsn *event.Insn, out outcome, err error) (outcome, error) {
	if err != nil || out.kind != outTrap {
		return out, err // the child ended inside the callee: childEnded diffs
	}
	s.diffRegion(st, nil, callInsn)
	s.diffGlobals(st, nil, callInsn)
	st.kid.hw.during = nil
	return out, nil
}

// checkWrites compares the words an instruction could have written in the
// live region with what vtrace last saw there. Instructions whose effects
// cannot be modelled (syscalls, xsave, undecodable) diff the whole region.
func (s *session) checkWrites(st *story, pre *arch.Regs, in *disasm.Insn, acc []disasm.Access, unknown bool) {
	s.checkGlobalStores(st, pre, in, acc, unknown)
	if unknown {
		s.diffRange(st, st.lo, st.hi, pre, in, nil)
		return
	}
	for _, a := range acc {
		if !a.Write || a.Seg {
			continue
		}
		lo, hi := a.Addr, a.Addr+uint64(a.Size)
		if hi <= st.lo || lo >= st.hi {
			continue
		}
		w := uint64(st.word)
		lo = max(lo&^(w-1), st.lo)
		hi = min((hi+w-1)&^(w-1), st.hi)
		s.diffRange(st, lo, hi, pre, in, nil)
	}
}

// diffRegion diffs the whole live region, attributing changes to the call
// they happened during (or to nobody, at the child's end).
func (s *session) diffRegion(st *story, pre *arch.Regs, during *event.Insn) {
	s.diffRange(st, st.lo, st.hi, pre, nil, during)
}

// diffRange reads [lo,hi) of the live region from the parent (the memory
// is shared) and reports each word that differs from the shadow.
func (s *session) diffRange(st *story, lo, hi uint64, pre *arch.Regs, in *disasm.Insn, during *event.Insn) {
	buf := st.scratch[lo-st.lo : hi-st.lo]
	if err := s.p.ReadMem(st.parent.pid, lo, buf); err != nil {
		s.note(st.id, event.NoteStackUnreadable, fmt.Sprintf("read parent stack [%#x,%#x): %v", lo, hi, err))
		return
	}
	var by *event.Insn
	for a := lo; a+uint64(st.word) <= hi; a += uint64(st.word) {
		if (a-st.lo)%regionChunk == 0 {
			// A chunk unchanged since vtrace last looked is skipped whole
			// (regionChunk is a multiple of the word).
			if end := min(a+regionChunk, hi); bytes.Equal(st.shadow[a-st.lo:end-st.lo], st.scratch[a-st.lo:end-st.lo]) {
				a = end - uint64(st.word)
				continue
			}
		}
		old, cur := st.wordAt(st.shadow, a), st.wordAt(st.scratch, a)
		if old == cur {
			continue
		}
		st.putWord(st.shadow, a, cur)
		if _, slot := st.slots[a]; !slot && a < st.ownHi {
			st.putWord(st.orig, a, cur) // the child's own stack: not a change to the parent's
			continue
		}
		if in != nil && by == nil {
			by = s.insnEvent(st.mm, st.child.pid, in)
		}
		s.emitWrite(st, a, old, cur, by, during, pre)
	}
}

// emitWrite reports one changed word as a slot_write or stack_write.
func (s *session) emitWrite(st *story, a, old, cur uint64, by, during *event.Insn, pre *arch.Regs) {
	frame := st.frameOf(a)
	if info, ok := st.slots[a]; ok {
		ev := &event.SlotWrite{Header: s.hdr("slot_write", st.child.pid), Vfork: st.id, Slot: event.Addr(a),
			Kind: info.kind, Reg: info.reg, Frame: info.frame, FrameFn: st.frameFns[info.frame],
			Old: event.Addr(old), New: event.Addr(cur), By: by, During: during, FoundBy: foundBy(by, during)}
		if info.kind == event.SlotRet {
			ev.OldSym, ev.NewSym = s.codeSym(st.mm, old), s.codeSym(st.mm, cur)
		}
		if !s.countWriteEvent(st) {
			if len(st.kid.writes) == 0 {
				st.kid.writes = append(st.kid.writes, ev) // judged, not logged
			}
			return
		}
		if by != nil && pre != nil {
			ev.Backtrace = s.backtrace(st, pre)
		}
		st.kid.writes = append(st.kid.writes, ev)
		st.kid.noteWriter(a, by)
		s.emit(ev)
		return
	}
	st.kid.noteWriter(a, by)
	k := &st.kid
	if ev, ok := k.byWord[a]; ok {
		// The same word again: one event for all, first and last writer.
		k.counts[a]++
		ev.New, ev.LastBy, ev.LastDuring = event.Addr(cur), by, during
		return
	}
	if !s.countWriteEvent(st) {
		return
	}
	if k.byWord == nil {
		k.byWord, k.counts = map[uint64]*event.StackWrite{}, map[uint64]int{}
	}
	k.stackWrites++
	k.byWord[a], k.counts[a] = &event.StackWrite{Header: s.hdr("stack_write", st.child.pid), Vfork: st.id, Addr: event.Addr(a),
		Size: st.word, Frame: frame, FrameFn: st.frameFns[frame], Old: event.Addr(old), New: event.Addr(cur),
		By: by, During: during, FoundBy: foundBy(by, during)}, 1
	k.order = append(k.order, a)
}

// maxWriteEvents caps the slot_write and stack_write events of one story
// (docs/log-format.md): past it, writes are only counted.
const maxWriteEvents = 1000

// countWriteEvent counts one more write event of the story; false when the
// cap is reached (the first time, a note says so).
func (s *session) countWriteEvent(st *story) bool {
	if st.kid.events >= maxWriteEvents {
		if !st.kid.capped {
			st.kid.capped = true
			s.note(st.id, event.NoteWritesCapped, fmt.Sprintf("more than %d words of the parent's stack changed: later ones are counted in slot_diff, not logged one by one", maxWriteEvents))
		}
		return false
	}
	st.kid.events++
	return true
}

// flushWrites emits the story's stack_write events, one per word, in the
// order the words were first changed (once: at the child's end, or when
// the story stops without one).
func (s *session) flushWrites(st *story) {
	k := &st.kid
	if k.flushed {
		return
	}
	k.flushed = true
	for _, a := range k.order {
		ev := k.byWord[a]
		if n := k.counts[a]; n > 1 {
			ev.Count = n
		} else {
			ev.LastBy, ev.LastDuring = nil, nil
		}
		ev.T = s.hdr("", 0).T
		s.emit(ev)
	}
	k.byWord, k.order, k.counts = nil, nil, nil
}

// foundBy names how a write was found: the stepped instruction itself, a
// watchpoint inside a callee (exact writer and the call it was in), or a
// diff of the snapshot after a call or at the child's end.
func foundBy(by, during *event.Insn) event.FoundBy {
	switch {
	case by != nil && during != nil:
		return event.FoundHW
	case by != nil:
		return event.FoundStep
	}
	return event.FoundDiff
}

// backtrace unwinds the child at the writing instruction.
func (s *session) backtrace(st *story, regs *arch.Regs) []*event.Sym {
	frames, _ := unwind.Unwind(regs, taskMemory{s, st.child.pid}, st.mm.syms(), 16)
	var bt []*event.Sym
	for i, f := range frames {
		pc := f.PC
		if i > 0 {
			pc--
		}
		bt = append(bt, s.sym(st.mm, pc))
	}
	return bt
}

// checkLeftFrames notices the child's stack pointer above the return slot
// of a live parent frame, after the instruction stepped last (r.prev): the
// child has left that frame — by its ret, or by any instruction that moved
// the stack pointer (longjmp, the C++ unwinder) — and its next calls reuse
// the slot. Each frame is counted once, innermost first. Frames whose
// return address is in a register (glibc's vfork wrapper) are not at
// stake; frame 0 counts when its return address is on the stack (the vfork
// syscall made by an ordinary function: syscall(), a helper).
func (s *session) checkLeftFrames(st *story, r *childRun) {
	if !st.shared || r.prev == nil {
		return
	}
	sp := r.regs.SP()
	if sp > st.hi {
		return // not on the parent's stack at all
	}
	for i := st.kid.left; i < len(st.frames); i++ {
		f := st.frames[i]
		untrusted := f.Method == string(event.MethodFP) || f.Method == string(event.MethodNone)
		if f.RetSlot == 0 || i == 0 && untrusted {
			if sp < f.CFA {
				return
			}
			st.kid.left = i + 1
			continue
		}
		if sp <= f.RetSlot {
			return
		}
		how := event.LeaveSP
		if r.prev.Class == disasm.Ret {
			how = event.LeaveRet
		}
		s.leftFrame(st, r, i, how)
	}
}

// leftFrame reports that the child left live frame i.
func (s *session) leftFrame(st *story, r *childRun, i int, how event.LeaveKind) {
	st.kid.left = i + 1
	r.escaped = false
	pc := r.regs.PC()
	ev := &event.ChildReturnPastFrame{Header: s.hdr("child_return_past_frame", st.child.pid), Vfork: st.id,
		Frame: i, FrameFn: st.frameFns[i], How: how, By: *s.insnEvent(st.mm, st.child.pid, r.prev),
		During: r.outer, To: event.Addr(pc), ToSym: s.sym(st.mm, pc)}
	st.kid.returns = append(st.kid.returns, ev)
	s.emit(ev)
}

// checkJumpedOut follows a child that left calls without a ret (longjmp,
// the unwinder) while its stack pointer is still below the next live
// frame's return slot (i386's longjmp lands in main with setjmp's
// arguments still pushed): once its pc is in the function of an outer
// live frame j, at a stack pointer inside that frame, it has left every
// frame below j — by the jump that took it there.
func (s *session) checkJumpedOut(st *story, r *childRun) {
	if !r.escaped || r.depth() > 0 || !st.shared || r.prev == nil {
		return
	}
	sp, pc := r.regs.SP(), r.regs.PC()
	y := s.sym(st.mm, pc)
	if y == nil || y.Sym == "" {
		return
	}
	for j := st.kid.left + 1; j < len(st.frames); j++ {
		f := st.frames[j]
		fn := st.frameFns[j]
		if fn == nil || fn.Sym != y.Sym || fn.Module != y.Module || sp >= f.CFA {
			continue
		}
		r.escaped = false
		for i := st.kid.left; i < j; i++ {
			g := st.frames[i]
			if g.RetSlot == 0 || i == 0 && (g.Method == string(event.MethodFP) || g.Method == string(event.MethodNone)) {
				continue
			}
			s.leftFrame(st, r, i, event.LeaveJump)
		}
		st.kid.left = j
		return
	}
}

// noReturnFuncs are the functions that leave their caller's frame without
// returning to it: the longjmp family and the C++ unwinder's entries.
var noReturnFuncs = map[string]bool{
	"longjmp": true, "_longjmp": true, "siglongjmp": true, "__longjmp_chk": true,
	"__libc_longjmp": true, "__libc_siglongjmp": true, "__longjmp": true,
	"__cxa_throw": true, "__cxa_rethrow": true, "_Unwind_RaiseException": true,
	"_Unwind_Resume": true, "_Unwind_Resume_or_Rethrow": true, "_Unwind_ForcedUnwind": true,
}

// unwinderHelpers are functions the C++ unwinder calls that return
// normally (fast mode runs them at full speed inside a stepped throw).
var unwinderHelpers = map[string]bool{
	"_Unwind_Find_FDE": true, "_dl_find_object": true, "dl_iterate_phdr": true, "__dl_iterate_phdr": true,
	"uw_frame_state_for": true, "uw_init_context_1": true, "uw_update_context": true, "uw_update_context_1": true,
	"execute_cfa_program": true, "execute_stack_op": true, "__gxx_personality_v0": true,
	"search_object": true, "init_object": true, "linear_search_fdes": true,
	"malloc": true, "free": true, "__cxa_get_globals": true, "__cxa_get_globals_fast": true,
}

// callTarget names the function a call (registers regs, before it) goes
// to — directly, through its PLT entry or through a pointer (a GOT entry,
// a register, read through pid) —, without a "@plt" or a compiler's ".cold"/".isra" suffix;
// "" when not at a function's start or unknown.
func (s *session) callTarget(st *story, pid int, in *disasm.Insn, regs *arch.Regs) string {
	target := in.Target
	if target == 0 && len(in.Inst.Args) > 0 {
		switch a := in.Inst.Args[0].(type) {
		case x86asm.Reg:
			if n, ok := disasm.DWARFReg(a, st.arch); ok {
				target = regs.R[n]
			}
		case x86asm.Mem:
			acc, _ := in.Effects(regs, nil)
			for _, m := range acc {
				if !m.Write && !m.Seg && m.Size == st.word {
					var b [8]byte
					if s.p.ReadMem(pid, m.Addr, b[:st.word]) == nil {
						target = binary.LittleEndian.Uint64(b[:])
					}
					break
				}
			}
		}
	}
	if target == 0 {
		return ""
	}
	y := s.sym(st.mm, target)
	if y == nil || y.Off != 0 {
		return ""
	}
	name, _, _ := strings.Cut(strings.TrimSuffix(y.Sym, "@plt"), ".")
	return name
}

func (s *session) emitChildCall(st *story, by *event.Insn, target uint64) {
	ts := s.sym(st.mm, target)
	if ts != nil && ts.Off == 0 && (ts.Sym == "exit" || ts.Sym == "exit@plt") {
		st.kid.calledExit = true
	}
	s.emit(&event.ChildCall{Header: s.hdr("child_call", st.child.pid), Vfork: st.id, By: *by,
		Target: event.Addr(target), TargetSym: ts, Depth: len(st.kid.returns)})
}

func (s *session) insnEvent(mm *addrSpace, pid int, in *disasm.Insn) *event.Insn {
	return &event.Insn{PID: pid, PC: event.Addr(in.PC), Sym: s.sym(mm, in.PC), Insn: s.insnText(mm, in)}
}

// letExecGo lets the child that exec'd run its new program, once: it
// shares nothing with the parent any more, so it is set up and let go
// first, and starts its program while the parent's memory is diffed
// (childEnded) and what vtrace left there is taken out (runBlock: the
// int3s of a run into a call) — the wall time of every spawn. Its events
// keep their place in the log: childEnded tells them (execPath, emitExec).
func (s *session) letExecGo(st *story) {
	if st.kid.execGone {
		return
	}
	st.kid.execGone = true
	c := st.child
	st.kid.execPath = s.p.ExePath(c.pid)
	// The new program cannot trap on the old stack's slots: the kernel
	// cleared the debug registers at the exec (hwGone).
	st.hwGone()
	st.kid.emitExec = s.execSetup(c, st.kid.execPath) // gives the child its own address space
	// No story needs the exit of the program it became (nor of the tasks
	// it makes, which inherit this; a vfork child of theirs on a stack of
	// its own gets its exit stop back in awaitFirstStop): one stop fewer
	// per spawn.
	_ = s.exitStops(c, false)
	c.set(taskRunning)
	s.cont(c, 0)
}

// childEnded closes the child's part of the story: a last diff of the live
// region (writes made since the last check, attributed to the call the
// child was in), then how it ended. The child then runs on by itself (an
// exec'd program) or to its exit.
func (s *session) childEnded(st *story, out outcome) error {
	c := st.child
	var path string
	var emitExec func()
	if out.kind == outExec {
		s.letExecGo(st)
		path, emitExec = st.kid.execPath, st.kid.emitExec
	}
	s.diffRegion(st, nil, st.kid.hw.during)
	s.diffGlobals(st, nil, st.kid.hw.during)
	s.flushWrites(st)
	ev := &event.ChildEnd{Header: s.hdr("child_end", c.pid), Vfork: st.id, Steps: st.kid.steps, Hits: st.kid.bpHits,
		HWHits: st.kid.hw.hits}
	if st.kid.calledExit {
		ev.Via = "exit()"
	}
	switch out.kind {
	case outExec:
		ev.How = event.EndExec
		ev.Path = path
	case outExit, outGone:
		if out.kind == outExit {
			s.recordChildEnd(st)
		}
		ws := out.status
		switch {
		case ws.Exited():
			code := ws.ExitStatus()
			ev.How, ev.Code = event.EndExit, &code
		case ws.Signaled():
			ev.How, ev.Signal = event.EndSignal, event.SignalName(int(ws.Signal()))
			if f, ok := s.faultOf(c.proc, ws.Signal(), st.mm); ok {
				ev.SiCode, ev.Addr, ev.PC, ev.Sym = f.siCode, f.addr, f.pc, f.sym
			} else if ws.Signal() == unix.SIGKILL && s.stopping() {
				ev.How = event.EndKilled
			}
		default:
			ev.How = event.EndKilled
		}
	}
	st.kid.end = ev
	s.emit(ev)
	switch out.kind {
	case outExec:
		emitExec() // resumed above
	case outExit:
		c.set(taskEnded)
		s.cont(c, 0)
	case outGone:
		c.set(taskEnded)
		s.gone(c, out.status)
	}
	if s.stopping() {
		return errStopped
	}
	return nil
}
