package tracer

import (
	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
)

// runCall runs a call made by a followed task (the child in a shared
// frame, or the parent in fast mode) at full speed: it single-steps the
// call instruction itself, calls afterStep (nil for none) with the task
// stopped at the callee's first instruction, then continues the callee to
// an int3 at the return address (contToReturn).
func (s *session) runCall(st *story, t *task, regs *arch.Regs, in *disasm.Insn, sig int, afterStep func() error) (outcome, error) {
	pc := regs.PC()
	out, err := s.advance(t, true, sig, pc)
	if err != nil || out.kind != outTrap {
		return out, err
	}
	if afterStep != nil {
		if err := afterStep(); err != nil {
			return outcome{}, err
		}
	}
	out, err = s.contToReturn(st, t, pc+uint64(in.Len), regs.SP())
	out.ranCall = true
	return out, err
}

// contToReturn plants an int3 at retAddr and continues t until it gets back
// there with its stack pointer at sp0 (the callee returned), stepping over
// the int3 when a deeper recursion passes it and over other stories' int3s.
// A SIGTRAP that is none of vtrace's (no int3 of its own, no watchpoint) is
// the program's: it is delivered.
func (s *session) contToReturn(st *story, t *task, retAddr, sp0 uint64) (outcome, error) {
	mm := t.proc.mm
	if err := s.plant(mm, t.pid, retAddr, st.id); err != nil {
		return outcome{}, err
	}
	defer func() { _ = s.unclaim(mm, t.pid, retAddr, st.id) }()
	rr := s.newRetRun(st, t, retAddr, sp0)
	defer rr.arm(false)
	return rr.loop(nil)
}

// retRun is contToReturn's run of a callee to the int3 at its return
// address (planted by its caller).
type retRun struct {
	s                 *session
	st                *story
	t                 *task
	retAddr, sp0      uint64
	watched, pwatched bool
	armed             bool
}

func (s *session) newRetRun(st *story, t *task, retAddr, sp0 uint64) *retRun {
	pr := st.par.run
	return &retRun{s: s, st: st, t: t, retAddr: retAddr, sp0: sp0,
		watched:  t == st.child && len(st.kid.hw.slots) > 0,
		pwatched: t == st.parent && pr != nil && len(pr.hw)+len(pr.ehw) > 0}
}

// arm enables the watchpoints for the continues and disables them for the
// steps over an int3 and on the way out; a trap a watchpoint caused (its
// handler clears DR6) is continued from with them enabled as they are: 3
// debug-register writes fewer per hit (errno.go's follow of python's
// parent traps on its libc's errno). The child's are not turned off
// here, neither on the way out nor before a step over an int3: they go
// off at its next single-step (resume: hwOffForStep), and stay on from
// one run to the next (dash's child: three calls, run one after the other
// with short blocks between).
func (rr *retRun) arm(on bool) {
	if on == rr.armed {
		return
	}
	if rr.watched && on {
		rr.s.hwEnable(rr.st, on) // on: DR6 cleared, it then tells this run's traps apart
	}
	if rr.pwatched {
		rr.s.parentHWEnable(rr.st.par.run, on)
	}
	rr.armed = on
}

// loop runs the callee to its return; first, when not nil, is the outcome
// of a continue already made with the watchpoints armed (runBlock's run
// of a block into the call).
func (rr *retRun) loop(first *outcome) (outcome, error) {
	s, st, t, retAddr, sp0 := rr.s, rr.st, rr.t, rr.retAddr, rr.sp0
	mm := t.proc.mm
	pr := st.par.run
	var now arch.Regs
	sig := 0
	for {
		var out outcome
		var err error
		if first != nil {
			out, first = *first, nil
		} else {
			rr.arm(true)
			out, err = s.advance(t, false, sig, 0)
		}
		switch {
		case out.kind == outExec || out.kind == outGone:
			// The kernel cleared its debug registers (or it is gone):
			// nothing to disable.
			if rr.watched {
				st.hwGone()
			}
			rr.armed = false
		case out.kind == outNested:
			// A nested story ran: it may have used this task's debug
			// registers. They are written again before the next continue.
			rr.arm(false)
			if rr.watched {
				rr.s.hwEnable(st, false)
			}
		}
		sig = 0
		if err != nil {
			return out, err
		}
		switch out.kind {
		case outTrap, outNested:
		case outSignal:
			if t != st.child {
				// The followed parent got a signal inside the callee:
				// followParent reports it as where the parent went, as
				// --step does when it steps into the same fault.
				return out, nil
			}
			sig = int(out.sig)
			continue
		default:
			return out, nil
		}
		if err := s.p.Regs(t.pid, &now); err != nil {
			return outcome{}, err
		}
		nested := out.kind == outNested
		hit := !nested && now.PC()-1 == retAddr
		if hit || (nested && now.PC() == retAddr) {
			if hit {
				now.SetPC(retAddr)
				if err := s.p.SetRegs(t.pid, &now); err != nil {
					return outcome{}, err
				}
				st.kid.bpHits++
			}
			if now.SP() >= sp0 {
				return outcome{kind: outTrap}, nil
			}
			rr.arm(false) // a step next
			if out, err := s.advance(t, true, 0, retAddr); err != nil || !stepped(out) {
				return out, err
			}
			continue
		}
		if nested {
			continue
		}
		if _, planted := mm.bps[now.PC()-1]; planted {
			now.SetPC(now.PC() - 1)
			if err := s.p.SetRegs(t.pid, &now); err != nil {
				return outcome{}, err
			}
			rr.arm(false) // a step next
			if out, err := s.advance(t, true, 0, now.PC()); err != nil || !stepped(out) {
				return out, err
			}
			continue
		}
		if rr.watched && s.hwHit(st, &now) {
			continue
		}
		if rr.pwatched && s.parentHWHit(pr, &now) {
			if pr.errnoDone {
				return outcome{kind: outTrap}, nil // followErrno has its answer (errno.go)
			}
			continue
		}
		sig = int(unix.SIGTRAP) // the program's own SIGTRAP: deliver it
	}
}

// stepped reports whether a step over vtrace's own int3 left the task
// stopped and followable (a nested story may have run meanwhile).
func stepped(out outcome) bool { return out.kind == outTrap || out.kind == outNested }
