package tracer

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The watchdog: --timeout (or a signal) ends the run even when the tracer
// thread cannot.
//
// Stopping a run (stop.go) SIGKILLs the tracees and wakes the tracer
// thread, but only that thread — the one OS thread that makes ptrace
// calls — can resume tasks from the stops a SIGKILL leaves them in (an
// exit stop survives it), reap them and write the verdict. If it is stuck
// (a parser that never returns on a crafted binary, a loop in vtrace),
// the run would never end. The watchdog does not depend on it: once the
// run was stopped from outside the tracer thread — the timeout, SIGINT,
// SIGTERM, SIGHUP, the context, a panic in a goroutine — or the timeout
// has passed even if nothing noticed, it gives the tracer thread
// StuckGrace to finish its loop; if it has not, it claims the end of the
// run, kills every known tracee again and calls Config.OnStuck, which
// ends the process (cmd/vtrace: the log's error event and verdict, one
// line on stderr, exit 126). The kernel then detaches every tracee from
// the dead tracer thread; each was traced with PTRACE_O_EXITKILL, so each
// gets a SIGKILL first: a task that sat in a ptrace-stop — an exit stop,
// a held vfork child — dies instead of running on untraced or staying
// stopped.
//
// Exactly one side ends the run: the tracer thread claims it when its
// loop is over (claimEnd), the watchdog when it fires. The loser does
// nothing more: a watchdog that lost returns; a tracer thread that lost
// (it came back after all) blocks for ever while the process exits.

// DefaultStuckGrace is how long the tracer thread has, once the run was
// stopped from outside (or its timeout passed), to finish before the
// watchdog ends the run (README, docs/reliability.md).
const DefaultStuckGrace = 2 * time.Second

// The claim on a run's end (session.ended).
const (
	endOpen     = iota // the run goes on
	endByTracer        // the tracer thread finished its loop: it ends the run
	endByDog           // the watchdog fired: it ends the run (the process)
)

// watchdogState is the session's part of the watchdog.
type watchdogState struct {
	ended   atomic.Int32  // endOpen, endByTracer or endByDog
	dogArm  chan struct{} // closed when the run is stopped from outside the tracer thread
	armOnce sync.Once
	dogDone chan struct{} // closed when the tracer thread claims the end
}

// startWatchdog starts the watchdog of a run, if the configuration has an
// OnStuck to call. The run's timeout arms it by itself too (Timeout and
// twice the grace from Run's start: a tracer thread stuck before the
// timeout's timer started is covered); armWatchdog arms it at the stop.
func (s *session) startWatchdog() {
	s.dogArm, s.dogDone = make(chan struct{}), make(chan struct{})
	if s.cfg.OnStuck == nil {
		return
	}
	grace := s.cfg.StuckGrace
	if grace <= 0 {
		grace = DefaultStuckGrace
	}
	go func() {
		var deadline <-chan time.Time
		if s.cfg.Timeout > 0 {
			// The backstop, for a tracer thread stuck before the
			// timeout's own timer started (watchStops starts it once the
			// program is set up): a second grace covers that set-up.
			t := time.NewTimer(s.cfg.Timeout + 2*grace)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-s.dogDone:
			return
		case <-deadline:
		case <-s.dogArm:
			g := time.NewTimer(grace)
			defer g.Stop()
			select {
			case <-s.dogDone:
				return
			case <-g.C:
			}
		}
		s.fire(grace)
	}()
}

// armWatchdog starts the grace period: the run was stopped from outside
// the tracer thread. Safe from any goroutine, any number of times.
func (s *session) armWatchdog() {
	if s.dogArm == nil {
		return
	}
	s.armOnce.Do(func() { close(s.dogArm) })
}

// claimEnd is the tracer thread's claim on the end of the run, once its
// loop is over (or it returns early). If the watchdog claimed it first, it
// is ending the process: the tracer thread must not touch the tracees or
// the log any more, and blocks for ever.
func (s *session) claimEnd() {
	if s.ended.CompareAndSwap(endOpen, endByTracer) {
		if s.dogDone != nil {
			close(s.dogDone)
		}
		return
	}
	if s.ended.Load() == endByDog {
		for {
			time.Sleep(time.Hour)
		}
	}
}

// fire ends a run whose tracer thread did not finish within grace: every
// known tracee is sent SIGKILL again (unless the run was attached: the
// kernel kills those as vtrace exits), the wake commands are reaped, and
// OnStuck is called.
func (s *session) fire(grace time.Duration) {
	if !s.ended.CompareAndSwap(endOpen, endByDog) {
		return
	}
	reason, limit := s.stopStateTry()
	why := "its --timeout " + s.cfg.Timeout.String() + " passed"
	switch {
	case reason == "interrupt":
		why = "it was interrupted (" + limit + ")"
	case reason != "" && reason != "timeout":
		why = "a budget stopped it (" + reason + " " + limit + ")"
	}
	if s.stopMu.TryLock() {
		if s.cfg.AttachPID == 0 {
			for tid := range s.live {
				_ = s.p.Kill(tid, unix.SIGKILL) // any goroutine may send it
			}
		}
		wakes := s.wakes
		s.wakes = nil
		s.stopMu.Unlock()
		reapWithin(wakes, 500*time.Millisecond)
	}
	if s.cfg.Debug {
		buf := make([]byte, 1<<20)
		fmt.Fprintf(os.Stderr, "vtrace watchdog: the goroutines:\n%s\n", buf[:runtime.Stack(buf, true)])
	}
	what := "the traced processes were killed"
	if s.cfg.AttachPID != 0 {
		what = "the kernel kills the attached process as vtrace exits (PTRACE_O_EXITKILL: vtrace could not remove its breakpoints)"
	}
	s.cfg.OnStuck(fmt.Errorf("internal error: the tracer thread did not finish within %v after the run was stopped (%s): it is stuck; %s (--debug shows the stacks)",
		grace, why, what))
}

// stopStateTry is stopState without waiting for a lock a stuck thread
// might hold.
func (s *session) stopStateTry() (reason, limit string) {
	if !s.stopMu.TryLock() {
		return "", ""
	}
	defer s.stopMu.Unlock()
	return s.stopReason, s.stopLimit
}

// reapWithin waits, at most d in all, for wake commands to end (each exits
// at once): one not reaped would outlive vtrace.
func reapWithin(wakes []*os.Process, d time.Duration) {
	done := make(chan struct{})
	go func() {
		for _, p := range wakes {
			_, _ = p.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}
