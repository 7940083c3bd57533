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
	var now arch.Regs
	sig := 0
	watched := t == st.child && len(st.kid.hw.slots) > 0
	pr := st.par.run
	pwatched := t == st.parent && pr != nil && len(pr.hw)+len(pr.ehw) > 0
	// The watchpoints are enabled for the continues and disabled for the
	// steps over an int3 and on the way out; a trap a watchpoint caused
	// (its handler clears DR6) is continued from with them enabled as
	// they are: 3 debug-register writes fewer per hit (errno.go's follow
	// of python's parent traps on its libc's errno).
	armed := false
	arm := func(on bool) {
		if on == armed {
			return
		}
		if watched {
			s.hwEnable(st, on) // on: DR6 cleared, it then tells this run's traps apart
		}
		if pwatched {
			s.parentHWEnable(pr, on)
		}
		armed = on
	}
	defer arm(false)
	for {
		arm(true)
		out, err := s.advance(t, false, sig, 0)
		switch {
		case out.kind == outExec || out.kind == outGone:
			// The kernel cleared its debug registers (or it is gone):
			// nothing to disable.
			if watched {
				st.hwGone()
			}
			armed = false
		case out.kind == outNested:
			// A nested story ran: it may have used this task's debug
			// registers. They are written again before the next continue.
			arm(false)
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
			arm(false) // a step next
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
			arm(false) // a step next
			if out, err := s.advance(t, true, 0, now.PC()); err != nil || !stepped(out) {
				return out, err
			}
			continue
		}
		if watched && s.hwHit(st, &now) {
			continue
		}
		if pwatched && s.parentHWHit(pr, &now) {
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
