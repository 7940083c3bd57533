package tracer

import (
	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/internal/ptrace"
)

// outKind is what stopped a task that a story resumed.
type outKind int

const (
	outTrap   outKind = iota // a single-step finished, or a SIGTRAP (int3)
	outExec                  // PTRACE_EVENT_EXEC: the task has a new image
	outExit                  // PTRACE_EVENT_EXIT: the task is about to exit
	outGone                  // the task was reaped (killed without an exit stop)
	outSignal                // a signal-delivery stop; resume with the signal to deliver it
)

type outcome struct {
	kind   outKind
	status unix.WaitStatus // outExit, outGone
	sig    unix.Signal     // outSignal
	// nested: the task made a vfork of its own, whose story has run; the
	// task is stopped wherever that story left it.
	nested bool
	// ranCall: a call was run through to its return (fast mode).
	ranCall bool
	// delivered: a signal was delivered on the way (a handler may have
	// run): the task's pc is no longer where the request alone leaves it.
	delivered bool
}

// advance resumes a task a story is following — one single-step, or a
// continue — delivering sig, and waits for its next stop that matters to
// the story. Events on the way (fork/clone children, VFORK_DONE, group
// stops) are handled and the same request re-issued. pc is the task's
// current pc: if one of vtrace's int3s sits there, the original byte is put
// back for the duration of one step so the real instruction executes.
func (s *session) advance(t *task, step bool, sig int, pc uint64) (outcome, error) {
	mm := t.proc.mm
	if _, ok := mm.bps[pc]; ok && pc != 0 {
		out, err := s.stepMasked(t, sig, pc)
		if err != nil || out.kind != outTrap || step || out.nested {
			return out, err
		}
		sig = 0
	}
	return s.resumeAndWait(t, step, sig)
}

// stepMasked single-steps over an int3 vtrace planted at pc.
func (s *session) stepMasked(t *task, sig int, pc uint64) (outcome, error) {
	mm := t.proc.mm
	bp := mm.bps[pc]
	if err := s.pokeByte(t.pid, pc, bp.orig); err != nil {
		return outcome{}, err
	}
	out, err := s.resumeAndWait(t, true, sig)
	if _, still := mm.bps[pc]; still && out.kind != outExec && out.kind != outGone {
		if perr := s.pokeByte(t.pid, pc, 0xcc); perr != nil && err == nil {
			err = perr
		}
	}
	return out, err
}

func (s *session) resumeAndWait(t *task, step bool, sig int) (outcome, error) {
	delivered := sig != 0
	for {
		var err error
		if step {
			err = s.t.Step(t.pid, sig)
		} else {
			err = s.t.Cont(t.pid, sig)
		}
		if err != nil && !ptrace.TaskGone(err) {
			return outcome{}, err
		}
		sig = 0
		st, werr := s.waitFor(t.pid)
		if werr != nil {
			return outcome{}, werr
		}
		ws := st.Status
		switch {
		case ws.Exited() || ws.Signaled():
			return outcome{kind: outGone, status: ws}, nil
		case !ws.Stopped():
			continue
		}
		switch ev := st.Event(); ev {
		case 0:
		case ptrace.EventFork, ptrace.EventClone:
			if msg, err := s.t.EventMsg(t.pid); err == nil {
				s.newTask(t, int(msg), ev == ptrace.EventClone, false)
			}
			continue
		case ptrace.EventVfork:
			if s.vforkBudgetSpent(t) {
				continue
			}
			if err := s.story(t); err != nil {
				return outcome{}, err
			}
			return outcome{kind: outTrap, nested: true}, nil
		case ptrace.EventExec:
			t.execed = true
			return outcome{kind: outExec}, nil
		case ptrace.EventExit:
			msg, _ := s.t.EventMsg(t.pid)
			return outcome{kind: outExit, status: unix.WaitStatus(msg)}, nil
		default: // VFORK_DONE, or an event vtrace did not ask for
			continue
		}
		stop := ws.StopSignal()
		if stop == unix.SIGTRAP {
			return outcome{kind: outTrap, delivered: delivered}, nil
		}
		if stop == unix.SIGSTOP && t.initialStop {
			t.initialStop = false
			continue
		}
		info, err := s.t.SigInfo(t.pid)
		if err != nil {
			continue // a group-stop: resume it
		}
		if benign(stop) {
			// SIGCHLD from the vfork child's exit and the like: deliver it
			// with the next resume and go on following the task.
			sig = int(stop)
			delivered = true
			continue
		}
		s.recordFault(t, stop, info)
		return outcome{kind: outSignal, sig: stop}, nil
	}
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
