package tracer

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
	"github.com/vtrace/vtrace/tracer/internal/unwind"
)

// followChild runs the vfork child, with the parent held in its event stop,
// until the child execs, exits or dies, recording every write into the
// parent's live stack and every return past a live parent frame.
//
// A child on its own stack (glibc posix_spawn, clone with a stack) cannot
// clobber the parent through call/ret, so in fast mode it runs at full
// speed and its writes are found by diffing. A child on the parent's stack
// is single-stepped in the frames it shares with the parent; in fast mode
// each call made from there runs at full speed up to an int3 at its return
// address (callThrough), in step mode every instruction is stepped.
func (s *session) followChild(st *story) error {
	c, mm := st.child, st.mm
	var regs arch.Regs
	sig := 0
	var pendingCall *event.Insn // step mode: a call stepped from a shared frame, target read next
	// next is the child's pc when the last step makes it certain (a silent
	// instruction ran, nothing else happened), else 0. A silent
	// instruction at next is stepped without reading the registers: it
	// writes nothing and needs none — that read is a third of a step's
	// cost.
	var next uint64
	for {
		if !st.stepChild {
			out, err := s.advance(c, false, sig, 0)
			if err != nil {
				return err
			}
			sig = 0
			switch out.kind {
			case outTrap:
				if !out.nested {
					sig = int(unix.SIGTRAP) // the program's own SIGTRAP
				}
				continue
			case outSignal:
				sig = int(out.sig)
				continue
			}
			return s.childEnded(st, out)
		}

		if err := s.countStep(); err != nil {
			return err
		}
		var pc uint64
		var in *disasm.Insn
		var derr error
		// Not where vtrace planted an int3: stepping over one needs the
		// certain pc (a SIGTRAP sent from outside looks like a step).
		if _, planted := mm.bps[next]; next != 0 && !planted && !s.cfg.TraceInsns {
			if in, derr = s.insnAt(mm, c.pid, next); derr == nil && in.Silent() {
				pc = next
			}
		}
		var acc []disasm.Access
		unknown := false
		if pc == 0 { // not a predicted silent instruction: read where the child is
			if err := s.t.Regs(c.pid, &regs); err != nil {
				return fmt.Errorf("read child registers: %w", err)
			}
			pc = regs.PC()
			if pendingCall != nil {
				s.emitChildCall(st, pendingCall, pc)
				pendingCall = nil
			}
			in, derr = s.insnAt(mm, c.pid, pc)
			unknown = derr != nil
			if derr == nil {
				acc, unknown = in.Effects(&regs, st.acc[:0])
				st.acc = acc
			}
		}
		if s.cfg.TraceInsns {
			s.emit(&event.ChildStep{Header: s.hdr("child_step", c.pid), Vfork: st.id, N: st.childSteps,
				PC: event.Addr(pc), SP: event.Addr(regs.SP()), Sym: s.sym(mm, pc), Insn: s.insnText(mm, in)})
		}
		class := disasm.Other
		if derr == nil {
			class = in.Class
		}
		silent := derr == nil && in.Silent()
		sharedFrame := st.depth == 0
		var out outcome
		var err error
		if class == disasm.Call && sharedFrame && s.cfg.Mode == Fast {
			out, err = s.callThrough(st, &regs, in, acc, sig)
		} else {
			out, err = s.advance(c, true, sig, pc)
		}
		next = 0
		if silent && sig == 0 && err == nil && out.kind == outTrap && !out.nested && !out.delivered {
			next = pc + uint64(in.Len)
		}
		sig = 0
		st.childSteps++
		if err != nil {
			return err
		}
		switch out.kind {
		case outTrap:
		case outSignal:
			sig = int(out.sig) // delivered with the next step
			continue
		default:
			return s.childEnded(st, out)
		}
		if out.nested {
			continue
		}
		if class == disasm.Call && s.cfg.Mode == Fast && sharedFrame {
			continue // callThrough checked the push and the callee's writes
		}
		s.checkWrites(st, &regs, in, acc, unknown)
		switch class {
		case disasm.Call:
			if sharedFrame {
				pendingCall = s.insnEvent(mm, c.pid, in)
			}
			st.depth++
		case disasm.Ret:
			if st.depth > 0 {
				st.depth--
			} else {
				s.checkReturnPast(st, &regs, in)
			}
		}
	}
}

// callThrough executes a call made from a shared frame (fast mode): it
// single-steps the call itself — its push is the write that clobbers a
// slot — then plants an int3 at the return address and lets the callee run
// at full speed. When the callee returns, the live region is diffed and
// every change attributed to this call.
func (s *session) callThrough(st *story, regs *arch.Regs, in *disasm.Insn, acc []disasm.Access, sig int) (outcome, error) {
	c, mm := st.child, st.mm
	pc := regs.PC()
	out, err := s.advance(c, true, sig, pc)
	if err != nil || out.kind != outTrap || out.nested {
		return out, err
	}
	s.checkWrites(st, regs, in, acc, false)
	callInsn := s.insnEvent(mm, c.pid, in)
	var now arch.Regs
	if err := s.t.Regs(c.pid, &now); err != nil {
		return outcome{}, err
	}
	s.emitChildCall(st, callInsn, now.PC())
	st.during = callInsn
	out, err = s.contToReturn(st, c, pc+uint64(in.Len), regs.SP())
	if err != nil || out.kind != outTrap {
		return out, err // the child ended inside the callee: childEnded diffs
	}
	s.diffRegion(st, nil, callInsn)
	st.during = nil
	return out, nil
}

// checkWrites compares the words an instruction could have written in the
// live region with what vtrace last saw there. Instructions whose effects
// cannot be modelled (syscalls, xsave, undecodable) diff the whole region.
func (s *session) checkWrites(st *story, pre *arch.Regs, in *disasm.Insn, acc []disasm.Access, unknown bool) {
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
	if err := s.t.ReadMem(st.parent.pid, lo, buf); err != nil {
		s.note(st.id, fmt.Sprintf("read parent stack [%#x,%#x): %v", lo, hi, err))
		return
	}
	var by *event.Insn
	for a := lo; a+uint64(st.word) <= hi; a += uint64(st.word) {
		old, cur := st.wordAt(st.shadow, a), st.wordAt(st.scratch, a)
		if old == cur {
			continue
		}
		st.putWord(st.shadow, a, cur)
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
		st.slotWrites++
		ev := &event.SlotWrite{Header: s.hdr("slot_write", st.child.pid), Vfork: st.id, Slot: event.Addr(a),
			Kind: info.kind, Reg: info.reg, Frame: info.frame, FrameFn: st.frameFns[info.frame],
			Old: event.Addr(old), New: event.Addr(cur), By: by, During: during, FoundBy: foundBy(by, during)}
		if info.kind == "ret" {
			ev.OldSym, ev.NewSym = s.codeSym(st.mm, old), s.codeSym(st.mm, cur)
		}
		if by != nil && pre != nil {
			ev.Backtrace = s.backtrace(st, pre)
		}
		st.writes = append(st.writes, ev)
		s.emit(ev)
		return
	}
	st.stackWrites++
	s.emit(&event.StackWrite{Header: s.hdr("stack_write", st.child.pid), Vfork: st.id, Addr: event.Addr(a),
		Size: st.word, Frame: frame, FrameFn: st.frameFns[frame], Old: event.Addr(old), New: event.Addr(cur),
		By: by, During: during, FoundBy: foundBy(by, during)})
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

// checkReturnPast notices a ret, executed in a shared frame, that popped a
// live parent frame's return slot: the child has left the function that
// called vfork, and its next calls reuse the parent's frames.
func (s *session) checkReturnPast(st *story, pre *arch.Regs, in *disasm.Insn) {
	slot := pre.SP()
	for i := 1; i < len(st.frames); i++ {
		if st.frames[i].RetSlot != slot {
			continue
		}
		st.returnedPast = append(st.returnedPast, i)
		var now arch.Regs
		_ = s.t.Regs(st.child.pid, &now)
		ev := &event.ChildReturnPastFrame{Header: s.hdr("child_return_past_frame", st.child.pid), Vfork: st.id,
			Frame: i, FrameFn: st.frameFns[i], By: *s.insnEvent(st.mm, st.child.pid, in),
			To: event.Addr(now.PC()), ToSym: s.sym(st.mm, now.PC())}
		st.returns = append(st.returns, ev)
		s.emit(ev)
		return
	}
}

func (s *session) emitChildCall(st *story, by *event.Insn, target uint64) {
	ts := s.sym(st.mm, target)
	if ts != nil && ts.Off == 0 && (ts.Sym == "exit" || ts.Sym == "exit@plt") {
		st.calledExit = true
	}
	s.emit(&event.ChildCall{Header: s.hdr("child_call", st.child.pid), Vfork: st.id, By: *by,
		Target: event.Addr(target), TargetSym: ts, Depth: len(st.returnedPast)})
}

func (s *session) insnEvent(mm *addrSpace, pid int, in *disasm.Insn) *event.Insn {
	return &event.Insn{PID: pid, PC: event.Addr(in.PC), Sym: s.sym(mm, in.PC), Insn: s.insnText(mm, in)}
}

// childEnded closes the child's part of the story: a last diff of the live
// region (writes made since the last check, attributed to the call the
// child was in), then how it ended.
func (s *session) childEnded(st *story, out outcome) error {
	c := st.child
	s.diffRegion(st, nil, st.during)
	ev := &event.ChildEnd{Header: s.hdr("child_end", c.pid), Vfork: st.id, Steps: st.childSteps, Hits: st.bpHits,
		HWHits: st.hwHits}
	if st.calledExit {
		ev.Via = "exit()"
	}
	switch out.kind {
	case outExec:
		ev.How = "exec"
		ev.Path, _ = os.Readlink(fmt.Sprintf("/proc/%d/exe", c.pid))
	case outExit, outGone:
		ws := out.status
		switch {
		case ws.Exited():
			code := ws.ExitStatus()
			ev.How, ev.Code = "exit", &code
		case ws.Signaled():
			ev.How, ev.Signal = "signal", unix.SignalName(ws.Signal())
			if f, ok := s.faultOf(c.proc, ws.Signal(), st.mm); ok {
				ev.SiCode, ev.Addr, ev.PC, ev.Sym = f.siCode, f.addr, f.pc, f.sym
			} else if ws.Signal() == unix.SIGKILL && s.stopping() {
				ev.How = "killed"
			}
		default:
			ev.How = "killed"
		}
	}
	st.end = ev
	s.emit(ev)
	c.inStory = false // from here on the child is an ordinary task
	switch out.kind {
	case outExec:
		if len(st.hwSlots) > 0 {
			_ = s.disarmDR(c.pid) // the new program must not trap on the old stack's slots
		}
		s.execStop(c) // emits exec, gives the child its own address space
		c.hold = false
		s.resume(c, 0)
	case outExit:
		c.ended = true
		c.hold = false
		s.resume(c, 0)
	case outGone:
		c.ended = true
		s.gone(c, out.status)
	}
	if s.stopping() {
		return errStopped
	}
	return nil
}

// siCodeName names a siginfo si_code for the signals vtrace reports.
func siCodeName(sig unix.Signal, code int32) string {
	switch code {
	case 0x80:
		return "SI_KERNEL"
	case 0:
		return "SI_USER"
	case -6:
		return "SI_TKILL"
	}
	switch sig {
	case unix.SIGSEGV:
		switch code {
		case 1:
			return "SEGV_MAPERR"
		case 2:
			return "SEGV_ACCERR"
		}
	case unix.SIGBUS:
		switch code {
		case 1:
			return "BUS_ADRALN"
		case 2:
			return "BUS_ADRERR"
		}
	case unix.SIGILL:
		switch code {
		case 1:
			return "ILL_ILLOPC"
		case 2:
			return "ILL_ILLOPN"
		}
	case unix.SIGTRAP:
		switch code {
		case 1:
			return "TRAP_BRKPT"
		case 2:
			return "TRAP_TRACE"
		case 4:
			return "TRAP_HWBKPT"
		}
	}
	return strings.TrimSpace(fmt.Sprintf("%d", code))
}

func hasFaultAddr(sig unix.Signal) bool {
	switch sig {
	case unix.SIGSEGV, unix.SIGBUS, unix.SIGILL, unix.SIGFPE:
		return true
	}
	return false
}
