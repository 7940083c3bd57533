package tracer

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/internal/ptrace"
)

// outKind is what stopped a task that a story resumed.
type outKind int

const (
	outTrap   outKind = iota // a single-step finished, or a SIGTRAP (int3, watchpoint)
	outExec                  // PTRACE_EVENT_EXEC: the task has a new image
	outExit                  // PTRACE_EVENT_EXIT: the task is about to exit
	outGone                  // the task was reaped (killed without an exit stop)
	outSignal                // a signal-delivery stop; resume with the signal to deliver it
	// outNested: the task made a vfork of its own, whose story has run;
	// the task is stopped wherever that story left it (its registers must
	// be read again: the request did not simply complete).
	outNested
	// outVfork: the task is the parent a story is following, and it
	// vforked again: it is stopped in that vfork's event stop, whose story
	// begins once the current one has ended (story.go).
	outVfork
)

type outcome struct {
	kind   outKind
	status unix.WaitStatus // outExit, outGone
	sig    unix.Signal     // outSignal
	// ranCall: a call was run through to its return (fast mode).
	ranCall bool
	// delivered: a signal was delivered on the way (a handler may have
	// run): the task's pc is no longer where the request alone leaves it.
	delivered bool
}

// advance resumes a task a story is following — one single-step, or a
// continue — delivering sig, and waits for its next stop that matters to
// the story. pc is the task's current pc: if one of vtrace's int3s sits
// there, the original byte is put back for the duration of one step so the
// real instruction executes.
func (s *session) advance(t *task, step bool, sig int, pc uint64) (outcome, error) {
	var fx *flagsFixup
	if step && pc != 0 && !s.silentStep {
		// (A silent step's instruction is neither pushf nor popf: it
		// moves no stack data.)
		fx = s.stepFlags(t, pc)
	}
	// stepped: the step of a pushf is over, whichever way it was made.
	stepped := func(out outcome, err error) {
		if fx != nil && (err == nil && out.kind == outTrap || errors.Is(err, errStopped) && s.detaching()) {
			// Also when the run lets its tasks go: the task stands in the
			// stop that ended the step, and is let go from there.
			s.undoPushedTF(t, fx)
		}
	}
	if mm := t.proc.mm; mm != nil && pc != 0 {
		if _, ok := mm.bps[pc]; ok {
			out, err := s.stepMasked(t, sig, pc)
			stepped(out, err)
			if err != nil || out.kind != outTrap || step {
				return out, err
			}
			sig = 0
		}
	}
	out, err := s.resumeAndWait(t, step, sig)
	stepped(out, err)
	return out, err
}

// stepMasked single-steps over an int3 vtrace planted at pc.
func (s *session) stepMasked(t *task, sig int, pc uint64) (outcome, error) {
	mm := t.proc.mm
	bp := mm.bps[pc]
	if _, err := s.pokeByte(t.pid, pc, bp.orig); err != nil {
		return outcome{}, err
	}
	out, err := s.resumeAndWait(t, true, sig)
	if _, still := mm.bps[pc]; still && out.kind != outExec && out.kind != outGone {
		if _, perr := s.pokeByte(t.pid, pc, 0xcc); perr != nil && err == nil {
			err = perr
		}
	}
	return out, err
}

// resumeAndWait issues one request and classifies the stop it leads to.
// Stops on the way that are not the story's business are handled and the
// request re-issued: a fork/clone child is registered, VFORK_DONE and
// group-stops pass, a harmless signal (SIGCHLD from the vfork child's
// exit) is delivered with the next request. A vfork of the task itself
// runs its story now, nested (outNested).
func (s *session) resumeAndWait(t *task, step bool, sig int) (outcome, error) {
	return s.resume(t, step, sig, false)
}

// resume is resumeAndWait; with holdBenign, a harmless signal for t is
// not delivered on the way but returned (outSignal), for the caller to
// deliver with a single-step (a block of the child run at full speed:
// the handler must be stepped as --step steps it).
func (s *session) resume(t *task, step bool, sig int, holdBenign bool) (outcome, error) {
	delivered := sig != 0
	silent := s.silentStep && step
	s.silentStep = false
	for {
		var err error
		if step {
			s.hwOffForStep(t)
			err = s.p.Step(t.pid, sig)
		} else {
			s.unclobberTF(t)
			err = s.p.Cont(t.pid, sig)
			if err == nil && s.lookUpExe == t.pid {
				s.lookUpExe = 0
				s.p.LookUpExe(t.pid)
			}
		}
		if err != nil && !ptrace.TaskGone(err) {
			return outcome{}, err
		}
		sig = 0
		var st ptrace.Stop
		var werr error
		if silent {
			st, werr = s.waitStep(t.pid)
		} else {
			st, werr = s.waitFor(t.pid)
		}
		if werr != nil {
			return outcome{}, werr
		}
		ws := st.Status
		switch {
		case ws.Exited() || ws.Signaled():
			return outcome{kind: outGone, status: ws}, nil
		case s.detaching():
			return outcome{}, errStopped // the story unwinds; its tasks are let go where they stand
		case !ws.Stopped():
			continue
		}
		switch ev := st.Event(); ev {
		case 0:
		case ptrace.EventFork, ptrace.EventClone:
			if msg, ok := s.eventMsg(t, ev); ok {
				c := s.newTask(t, int(msg), ev == ptrace.EventClone, false)
				if f := s.onThread; f != nil && s.threadOf == t && c.proc.mm == t.proc.mm {
					f() // a thread, or a process in the same memory
				}
			}
			continue
		case ptrace.EventVfork:
			if f := s.beforeVfork; f != nil && s.vforkOf == t {
				f() // (once: it does nothing the second time)
			}
			if st := s.following(t); st != nil {
				return outcome{kind: outVfork}, nil
			}
			out, err := s.vforkEvent(t, true)
			if err != nil {
				return outcome{}, err
			}
			if out == vforkSkipped {
				if s.detaching() {
					// The vfork stopped the run (--max-vforks), whose tasks
					// are let go: t is let go from this event stop as the
					// story unwinds. Resumed, it would wait in vfork for
					// its new child, and the story for it.
					return outcome{}, errStopped
				}
				continue
			}
			return outcome{kind: outNested}, nil
		case ptrace.EventExec:
			// The old image's breakpoints and code no longer describe
			// this task's memory.
			t.proc.mm = nil
			return outcome{kind: outExec}, nil
		case ptrace.EventExit:
			msg, _ := s.p.EventMsg(t.pid)
			return outcome{kind: outExit, status: unix.WaitStatus(msg)}, nil
		default: // VFORK_DONE, or an event vtrace did not ask for
			continue
		}
		stop := ws.StopSignal()
		if stop == unix.SIGTRAP && silent && !delivered {
			// The step of an instruction that raises no SIGTRAP of its
			// own (disasm.Insn.OwnTrapFree: one that changes registers
			// and flags only, or a jump that reads no memory), with no
			// signal delivered: the SIGTRAP is the step's, and the
			// siginfo read that tells vtrace's traps from the program's
			// (classifyTrap) is left out — a quarter of the kernel calls
			// of --step. Such an instruction is not int3, int1, int n,
			// into, a system call, popf or iret (disasm classes Halt,
			// Syscall, unknown, stack reads); a hardware watchpoint it
			// hits is vtrace's (only vtrace arms the debug registers).
			// The stepper sets silentStep only when, besides, the step
			// before was of such an instruction too (a SIGTRAP that a
			// system call queued — kill(getpid(), SIGTRAP) queues it
			// process-wide, beside the step's own — is reported at the
			// next step, before that instruction runs) and the process
			// holds no perf event (whose sigtrap mode raises SIGTRAP at
			// any instruction): childRun.quietTraps, tainted. So the
			// program's own SIGTRAPs pass as natively
			// (TestSignalsAsNative). What this cannot see is a SIGTRAP
			// that another process sends the child with kill() while it
			// is stepped: it is taken for the step's.
			return outcome{kind: outTrap}, nil
		}
		if stop == unix.SIGTRAP {
			switch s.classifyTrap(t, step) {
			case trapOurs:
				return outcome{kind: outTrap, delivered: delivered}, nil
			case trapRemoved:
				continue // rewound onto the restored instruction: run it
			}
			// The program's own SIGTRAP: delivered, as without vtrace.
		}
		if benign(stop) {
			// Not a stop signal: a signal-delivery stop, never a
			// group-stop, and its siginfo is not needed (signalStop).
			if holdBenign {
				return outcome{kind: outSignal, sig: stop}, nil
			}
			// SIGCHLD from the vfork child's exit and the like: deliver it
			// with the next resume and go on following the task.
			sig = int(stop)
			delivered = true
			continue
		}
		info, err := s.p.SigInfo(t.pid)
		if err != nil {
			continue // a group-stop: resume it
		}
		s.recordFault(t, stop, info)
		return outcome{kind: outSignal, sig: stop}, nil
	}
}

// waitFor returns the next stop of pid, dispatching every other stop that
// arrives meanwhile. Stops of tasks an enclosing story owns are kept for
// it (postponed); their deaths are handled at once.
func (s *session) waitFor(pid int) (ptrace.Stop, error) {
	st, _, err := s.waitForOr(pid, nil)
	return st, err
}

// waitForOr is waitFor, ending as well (taken true, no stop) as soon as
// taken reports that a dispatch made while it waited, in a story nested
// there, handled the stop itself: a new vfork child's first stop, which
// the dispatcher takes (firstStop) when it is not this story's to wait
// for — it came while another process's story, nested in this wait,
// waited for its own child. Without it the wait went on for a stop that
// had come and gone, every tracee held (20 processes spawning at once).
func (s *session) waitForOr(pid int, taken func() bool) (ptrace.Stop, bool, error) {
	var probe blockProbe
	for {
		// Checked on every round: a story nested in a dispatch below (a
		// vfork of another task while this story follows its parent)
		// may have postponed this very stop.
		if st, ok := s.postponed[pid]; ok {
			delete(s.postponed, pid)
			return st, false, nil
		}
		if st, ok := s.unknown[pid]; ok {
			delete(s.unknown, pid)
			return st, false, nil
		}
		if st, ok := s.deaths[pid]; ok {
			// pid died while a story nested in this wait ran (elsewhere).
			delete(s.deaths, pid)
			return st, false, nil
		}
		if taken != nil && taken() {
			return ptrace.Stop{}, true, nil
		}
		switch {
		case !s.stopping():
		case !s.detaching():
			// The run is ending: every task was sent SIGKILL and the
			// tracer woken (stop.go). The story unwinds now rather than
			// wait for a stop that may never come (a task held in a stop
			// vtrace has not resumed, postponed here, never reports
			// again); the main loop's sweep kills and resumes every task
			// from wherever it stands, and reaps them.
			return ptrace.Stop{}, false, errStopped
		default:
			// The run lets its tasks go: pid, which a story resumed, is
			// made to report a stop (with every other task that runs),
			// where the story unwinds and lets it go — it is not given up
			// while it runs: detached then, it would keep the debug
			// registers and the trap flag vtrace set (the vfork child of
			// TestAttachDetachMidStory died of SIGTRAP in 5 of 25 runs).
			// A task that already reported its stop is taken above
			// (postponed, unknown); one that never ran again does not
			// come here (waitFor follows a resume, or a new task's first
			// stop, which always comes).
			s.haltForDetach(pid)
		}
		// A story that blocks other tasks vtrace holds gives way
		// (giveway.go).
		if ran, err := s.giveWay(pid, &probe); err != nil {
			return ptrace.Stop{}, false, err
		} else if ran {
			continue // held stories ran nested: pid's stop may be in
		}
		disarm := s.armWake(&probe)
		st, err := s.p.Wait()
		disarm()
		if err != nil {
			return ptrace.Stop{}, false, fmt.Errorf("wait for %d: %w", pid, err)
		}
		if st.PID == pid {
			return st, false, nil
		}
		s.elsewhere(st)
	}
}

// elsewhere handles, while waitFor waits for another task, the stop st.
func (s *session) elsewhere(st ptrace.Stop) {
	if t := s.byPID[st.PID]; t != nil && t.state == taskFollowed {
		// A task of an enclosing story (a nested vfork's outer parent
		// is held, so only its death can show up here).
		if st.Status.Exited() || st.Status.Signaled() {
			s.gone(t, st.Status)
			s.deaths[st.PID] = st // for the story that waits for it
		} else {
			s.postponed[st.PID] = st
		}
		return
	}
	s.dispatch(st)
}

// waitStep is waitFor(pid) right after pid was single-stepped over an
// instruction that raises no SIGTRAP of its own (--step's silent steps:
// most of them): while no stop is kept for later, no task is held and
// the run goes on, waitFor's first round comes down to its wait — no
// stop of pid can be kept (pid has just been resumed from its stop), no
// story can give way to one (giveWay), no wake is armed (armWake) — and
// this is that round without the checks, which cost a fair part of a
// step's own work in the tracer; its wait is WaitStepped (the step
// cannot block: no system call). Any other case is waitFor's.
func (s *session) waitStep(pid int) (ptrace.Stop, error) {
	if len(s.postponed) > 0 || len(s.unknown) > 0 || len(s.deaths) > 0 || s.stopped.Load() || s.holding() {
		return s.waitFor(pid)
	}
	st, err := s.p.WaitStepped()
	if err != nil {
		return ptrace.Stop{}, fmt.Errorf("wait for %d: %w", pid, err)
	}
	if st.PID == pid {
		return st, nil
	}
	s.elsewhere(st)
	return s.waitFor(pid)
}

// benign reports whether a signal's default action is to be ignored: such a
// signal arriving while a story follows a task is delivered and the story
// goes on.
func benign(sig unix.Signal) bool {
	switch sig {
	case unix.SIGCHLD, unix.SIGWINCH, unix.SIGURG, unix.SIGCONT:
		return true
	}
	return false
}
