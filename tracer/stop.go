package tracer

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/internal/ptrace"
)

// Stopping a run: a budget (max_steps, max_vforks), the timeout, an
// interrupt (SIGINT/SIGTERM/SIGHUP to vtrace, or the context) records a
// reason once and SIGKILLs every tracee. The tracer thread notices at its
// next stop: stories unwind with errStopped, the main loop sweeps every
// task out of whatever stop it sits in, reaps them all, and the run ends
// with a budget event and the verdict of what was seen.

// stopRun records why the run ends and SIGKILLs every tracee — or, when
// a budget stops a run with OnBudget "detach", sends each a SIGSTOP, so
// that each reports a stop at which vtrace lets it go (suppressing that
// SIGSTOP). Safe from any goroutine; the first reason wins.
func (s *session) stopRun(reason, limit string) {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.stopReason != "" {
		if !s.detachingLocked() {
			// Asked again (a second SIGTERM): kill whatever is left.
			for tid := range s.live {
				_ = s.p.Kill(tid, unix.SIGKILL)
			}
		}
		return
	}
	s.stopReason, s.stopLimit = reason, limit
	if s.attachPID != 0 {
		return // the tracer thread interrupts every task (attach.go)
	}
	for tid, tgid := range s.live {
		if s.detachingLocked() {
			_ = s.p.Tgkill(tgid, tid, unix.SIGSTOP)
		} else {
			_ = s.p.Kill(tid, unix.SIGKILL)
		}
	}
}

// detaching reports whether the run is stopping by a budget with
// OnBudget "detach": every task is let go rather than killed. An
// interrupt always kills.
func (s *session) detaching() bool {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	return s.detachingLocked()
}

func (s *session) detachingLocked() bool {
	if s.attachPID != 0 {
		return s.stopReason != "" // an attached process is always let go
	}
	return s.cfg.OnBudget == "detach" && s.stopReason != "" && s.stopReason != "interrupt"
}

// stopState is the reason the run is stopping and its limit, or "".
func (s *session) stopState() (reason, limit string) {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	return s.stopReason, s.stopLimit
}

func (s *session) stopping() bool {
	r, _ := s.stopState()
	return r != ""
}

// setLive tracks a task to signal when the run stops; a task born after
// the stop is killed (or stopped, to be let go) at once.
func (s *session) setLive(tid, tgid int) {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	s.live[tid] = tgid
	switch {
	case s.attachPID != 0:
		// an attached run's tasks are interrupted by the tracer thread
	case s.detachingLocked():
		_ = s.p.Tgkill(tgid, tid, unix.SIGSTOP)
	case s.stopReason != "":
		_ = s.p.Kill(tid, unix.SIGKILL)
	}
}

// setGone forgets a task that was reaped or let go.
func (s *session) setGone(tid int) {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	delete(s.live, tid)
}

// killAll SIGKILLs every known tracee (after a panic in vtrace).
func (s *session) killAll() {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	for pid := range s.live {
		_ = s.p.Kill(pid, unix.SIGKILL)
	}
}

// sweep, once the run is stopping and no story runs, kills every known
// task and resumes it from whatever stop it is in (an exit stop survives
// SIGKILL) — or, when detaching, lets go every task that sits in a stop
// vtrace holds it in (the others report their SIGSTOP and are let go by
// dispatch).
func (s *session) sweep() {
	if s.swept || !s.stopping() {
		return
	}
	s.swept = true
	if s.detaching() {
		s.interruptAll() // attach.go
		for _, t := range s.byPID {
			switch t.state {
			case taskHeld, taskParked:
				s.detach(t, 0)
			}
		}
		for pid := range s.unknown {
			_ = s.p.Detach(pid, 0) // in its first stop, not yet registered
			delete(s.unknown, pid)
		}
		s.heldParents = nil
		return
	}
	for pid := range s.byPID {
		_ = s.p.Kill(pid, unix.SIGKILL)
		_ = s.p.Cont(pid, 0)
	}
	// A new task whose first stop came before its creator's event
	// (s.unknown) is in no list stopRun signals, and sits in that stop:
	// its creator, killed, never reports the event that would register it.
	for pid := range s.unknown {
		_ = s.p.Kill(pid, unix.SIGKILL)
		_ = s.p.Cont(pid, 0)
	}
}

// detach lets a task in a ptrace-stop go, delivering sig, and forgets it.
// Its debug registers are cleared first: a watchpoint left armed would
// kill it with SIGTRAP once nobody traces it.
func (s *session) detach(t *task, sig int) {
	s.beforeDetach(t) // attach.go
	_ = s.disarmDR(t.pid)
	s.unclobberTF(t)
	_ = s.p.Detach(t.pid, sig)
	delete(s.byPID, t.pid)
	s.setGone(t.pid)
}

// stopSignal is the signal to pass on when letting a task go from a stop:
// the signal of a signal-delivery stop (but not the SIGSTOP vtrace sent to
// make it stop), none for an event or a group stop.
func stopSignal(st ptrace.Stop) int {
	if !st.Status.Stopped() || st.Event() != 0 {
		return 0
	}
	if sig := st.Status.StopSignal(); sig != unix.SIGSTOP && sig != unix.SIGTRAP {
		return int(sig)
	}
	return 0
}

// errStoryBudget cuts one story short: it took more single-steps than
// MaxStorySteps allows. The run goes on.
var errStoryBudget = errors.New("story step budget spent")

// countStep charges one single-step of a story to the budgets.
func (s *session) countStep(st *story) error {
	s.steps++
	st.steps++
	if s.cfg.MaxStorySteps > 0 && st.steps > s.cfg.MaxStorySteps {
		return errStoryBudget
	}
	if s.cfg.MaxSteps > 0 && s.steps > s.cfg.MaxSteps {
		s.stopRun("max_steps", strconv.FormatInt(s.cfg.MaxSteps, 10))
		return errStopped
	}
	if s.steps&1023 == 0 && s.stopping() {
		return errStopped
	}
	return nil
}

// watchStops stops the run when the context ends, the timeout passes, or
// SIGINT/SIGTERM/SIGHUP arrives, so that the wait loop drains and the log
// is closed with a verdict.
func (s *session) watchStops(ctx context.Context) func() {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, unix.SIGINT, unix.SIGTERM, unix.SIGHUP)
	var timeout <-chan time.Time
	var timer *time.Timer
	if s.cfg.Timeout > 0 {
		timer = time.NewTimer(s.cfg.Timeout)
		timeout = timer.C
	}
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-done:
		case <-ctx.Done():
			// A signal cancels the CLI's context too, maybe first: name
			// the signal if it comes with it (the budget's limit, the
			// detach event's signal).
			limit := "context canceled"
			select {
			case sig := <-sigc:
				limit = sig.String()
			case <-time.After(50 * time.Millisecond):
			}
			s.stopRun("interrupt", limit)
			s.wakeTracer()
			s.armWatchdog()
		case sig := <-sigc:
			s.stopRun("interrupt", sig.String())
			s.wakeTracer()
			s.armWatchdog()
		case <-timeout:
			s.stopRun("timeout", s.cfg.Timeout.String())
			s.wakeTracer()
			s.armWatchdog()
		}
	}()
	return func() {
		signal.Stop(sigc)
		if timer != nil {
			timer.Stop()
		}
		close(done)
		<-exited // a wake command it started is in s.wakes, for reapWakes
	}
}

// wakeTracer starts cfg.WakeCommand, a program that exits at once: its exit
// ends the tracer's blocking wait4, so the tracer sweeps up tasks that sit
// in a stop instead of waiting for events that never come.
func (s *session) wakeTracer() {
	cmd := s.cfg.WakeCommand
	if len(cmd) == 0 {
		cmd = []string{"/bin/sh", "-c", ":"}
	}
	p, err := os.StartProcess(cmd[0], cmd, &os.ProcAttr{Env: []string{"VTRACE_WAKE=1"}})
	if err == nil {
		s.stopMu.Lock()
		s.wakes = append(s.wakes, p)
		s.stopMu.Unlock()
	}
}

// reapWakes waits for the wake commands to end (each exits at once). The
// tracer's wait4(-1) may have reaped one already; one it has not would be
// left behind, a zombie or still running, when vtrace exits (the mutation
// test saw it in the run's cgroup).
func (s *session) reapWakes() {
	s.stopMu.Lock()
	wakes := s.wakes
	s.wakes = nil
	s.stopMu.Unlock()
	for _, p := range wakes {
		_, _ = p.Wait() // ECHILD when already reaped
	}
}
