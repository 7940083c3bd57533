package tracer

import (
	"context"
	"os"
	"os/signal"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Stopping a run: a budget (max_steps, max_vforks), the timeout, an
// interrupt (SIGINT/SIGTERM/SIGHUP to vtrace, or the context) records a
// reason once and SIGKILLs every tracee. The tracer thread notices at its
// next stop: stories unwind with errStopped, the main loop sweeps every
// task out of whatever stop it sits in, reaps them all, and the run ends
// with a budget event and the verdict of what was seen.

// stopRun records why the run ends and SIGKILLs every tracee. Safe from any
// goroutine; the first reason wins.
func (s *session) stopRun(reason, limit string) {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.stopReason != "" {
		return
	}
	s.stopReason, s.stopLimit = reason, limit
	for pid := range s.live {
		_ = s.p.Kill(pid, unix.SIGKILL)
	}
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

// setLive tracks the pids to kill when the run stops; a task born after
// the stop is killed at once.
func (s *session) setLive(pid int, alive bool) {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if alive {
		s.live[pid] = true
		if s.stopReason != "" {
			_ = s.p.Kill(pid, unix.SIGKILL)
		}
	} else {
		delete(s.live, pid)
	}
}

// killAll SIGKILLs every known tracee (after a panic in vtrace).
func (s *session) killAll() {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	for pid := range s.live {
		_ = s.p.Kill(pid, unix.SIGKILL)
	}
}

// sweep kills every known task and resumes it from whatever stop it is in,
// once the run is stopping (an exit stop survives SIGKILL).
func (s *session) sweep() {
	if s.swept || !s.stopping() {
		return
	}
	s.swept = true
	for pid := range s.byPID {
		_ = s.p.Kill(pid, unix.SIGKILL)
		_ = s.p.Cont(pid, 0)
	}
}

// countStep charges one single-step to the budget.
func (s *session) countStep() error {
	s.steps++
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
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-ctx.Done():
			s.stopRun("interrupt", "context canceled")
			s.wakeTracer()
		case sig := <-sigc:
			s.stopRun("interrupt", sig.String())
			s.wakeTracer()
		case <-timeout:
			s.stopRun("timeout", s.cfg.Timeout.String())
			s.wakeTracer()
		}
	}()
	return func() {
		signal.Stop(sigc)
		if timer != nil {
			timer.Stop()
		}
		close(done)
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
		_ = p.Release() // reaped by the tracer's wait4(-1)
	}
}
