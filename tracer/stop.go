package tracer

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"slices"
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

// stopProgramExit is the stop reason of a run whose program has ended
// while processes it started still run (Config.AfterExit "release"): they
// are let go, as a budget with OnBudget "detach" lets go every task.
const stopProgramExit = "program_exit"

// stopRun records why the run ends and SIGKILLs every tracee — or, when
// the run lets its tasks go (attach, --on-budget detach), sends none: the
// tracer thread makes the tasks that run report a stop (haltForDetach),
// where it lets them go. Safe from any goroutine; the first reason wins.
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
	s.stopped.Store(true)
	if s.detachingLocked() {
		return // the tracer thread stops what runs (haltForDetach)
	}
	for tid := range s.live {
		_ = s.p.Kill(tid, unix.SIGKILL)
	}
}

// stopLiveForDetach sends SIGSTOP to every task of a run that lets its
// tasks go: the fallback when the tracer thread could not be woken to do
// it itself (the wake command did not start). A task vtrace holds in a
// stop then has a SIGSTOP pending when it is let go: detach runs it on to
// that SIGSTOP first.
func (s *session) stopLiveForDetach() {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.attachPID != 0 {
		return // a seized task is interrupted, by the tracer thread only
	}
	for tid, tgid := range s.live {
		_ = s.p.Tgkill(tgid, tid, unix.SIGSTOP)
	}
}

// detaching reports whether the run is stopping by a budget with
// OnBudget "detach": every task is let go rather than killed. An
// interrupt always kills.
func (s *session) detaching() bool {
	if !s.stopped.Load() {
		return false // every single-step asks: no lock while the run goes on
	}
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	return s.detachingLocked()
}

func (s *session) detachingLocked() bool {
	if s.attachPID != 0 || s.stopReason == stopProgramExit {
		return s.stopReason != "" // an attached process is always let go
	}
	return s.cfg.OnBudget == "detach" && s.stopReason != "" && s.stopReason != "interrupt"
}

// stopState is the reason the run is stopping and its limit, or "".
func (s *session) stopState() (reason, limit string) {
	if !s.stopped.Load() {
		return "", ""
	}
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	return s.stopReason, s.stopLimit
}

func (s *session) stopping() bool {
	r, _ := s.stopState()
	return r != ""
}

// setLive tracks a task to signal when the run stops; a task born after
// the stop is killed at once (one born while the run lets its tasks go
// reports its first stop, where it is let go).
func (s *session) setLive(tid, tgid int) {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	s.live[tid] = tgid
	if s.stopReason != "" && !s.detachingLocked() {
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
// vtrace holds it in, and makes the others report a stop, where dispatch
// lets them go.
func (s *session) sweep() {
	if !s.stopping() {
		return
	}
	if s.detaching() {
		s.haltForDetach(0) // each round: a task let go while it ran is halted here
	}
	if s.swept {
		return
	}
	s.swept = true
	if s.detaching() {
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

// haltForDetach, once the run lets its tasks go, makes every task that
// runs report a stop, where it is let go (dispatch), so that no wait of a
// story or of the main loop is for a stop that cannot come. An attached
// process's tasks are seized: each is interrupted (PTRACE_INTERRUPT; one
// already in a ptrace-stop keeps the interrupt pending, and its detach
// clears it). A started program's tasks were not seized and cannot be
// interrupted: those that run are sent SIGSTOP, which each reports at
// once, and a task vtrace holds in a ptrace-stop is sent none — let go
// from that stop, it would stop for good on the SIGSTOP, untraced (was:
// --on-budget detach left a vfork child stopped, its parent in vfork).
// awaited is a task a story resumed and waits for (0: none); a new task
// reports its first stop anyway. Each task is halted once.
func (s *session) haltForDetach(awaited int) {
	if s.attachPID != 0 {
		s.interruptAll() // attach.go
		return
	}
	for pid, t := range s.byPID {
		if t.halted || !t.firstStopSeen() {
			continue
		}
		if _, ok := s.postponed[pid]; ok {
			continue // its stop is in: a story will take it
		}
		if pid == awaited || t.state == taskRunning || t.state == taskEnded {
			_ = s.p.Tgkill(t.proc.tgid, pid, unix.SIGSTOP)
			t.halted = true
		}
	}
}

// detach lets a task in a ptrace-stop go, delivering sig, and forgets it.
// Its debug registers are cleared first: a watchpoint left armed would
// kill it with SIGTRAP once nobody traces it; a task stopped on an int3
// vtrace has removed is moved back onto the restored instruction. A task
// that cannot be let go from where it stands is resumed or halted instead,
// and let go at its next stop (dispatch): one with a SIGSTOP pending (a
// SIGSTOP sent while it ran, which it had not taken yet: untraced, it
// would stop for good), and one that is not in a stop at all (it runs).
func (s *session) detach(t *task, sig int) {
	if s.attachPID == 0 && s.p.StopPending(t.pid) {
		s.letGoLater(t)
		s.cont(t, sig)
		return
	}
	s.beforeDetach(t) // attach.go
	// A fork child let go at its first stop: the int3s it inherited out.
	for addr, orig := range t.inherited {
		if _, err := s.pokeByte(t.pid, addr, orig); err == nil {
			delete(t.inherited, addr)
		}
	}
	_ = s.disarmDR(t.pid)
	s.unclobberTF(t)
	s.rewindRemovedInt3(t)
	if err := s.p.Detach(t.pid, sig); err != nil && ptrace.TaskGone(err) {
		// Not in a stop (it runs), or dead (its end is still to reap).
		s.letGoLater(t)
		t.halted = false // halted afresh: it ran on from whatever stop it had reported
		s.haltForDetach(t.pid)
		return
	}
	s.detached = append(s.detached, t.pid)
	s.forget(t.pid)
	s.setGone(t.pid)
}

// letGoLater marks a task to be let go at its next stop: it is no
// story's any more, so that stop reaches dispatch.
func (s *session) letGoLater(t *task) {
	switch t.state {
	case taskHeld, taskFollowed, taskParked, taskNew:
		t.set(taskRunning)
	}
}

// rewindRemovedInt3 moves a task stopped on an int3 vtrace has removed
// since (its pc just past it) back onto the restored instruction, as
// classifyTrap does for a task that goes on traced.
func (s *session) rewindRemovedInt3(t *task) {
	if t.proc.mm == nil {
		return
	}
	if info, err := s.p.SigInfo(t.pid); err == nil && info.Signo == int32(unix.SIGTRAP) && info.Code == siKernel {
		s.classifyTrap(t, false)
	}
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

// StopSignals are the signals that stop a run: SIGINT, SIGTERM and
// SIGHUP, but those the process was started with ignored — nohup's
// SIGHUP, the SIGINT of a non-interactive shell's `cmd &` (signal.Ignored
// knows it of these two, which Go leaves ignored when it starts): they
// stay ignored, by vtrace and by the program, which inherits them
// through fork and exec as it would without vtrace (a handler would be
// reset to the default by its exec).
func StopSignals() []os.Signal {
	var out []os.Signal
	for _, sig := range []unix.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP} {
		if !signal.Ignored(sig) {
			out = append(out, sig)
		}
	}
	return out
}

// watchStops stops the run when the context ends, the timeout passes, or
// SIGINT/SIGTERM/SIGHUP arrives, so that the wait loop drains and the log
// is closed with a verdict.
func (s *session) watchStops(ctx context.Context) func() {
	sigc := make(chan os.Signal, 1)
	if stop := StopSignals(); len(stop) > 0 {
		signal.Notify(sigc, stop...)
	}
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
			s.armWatchdog()
			s.wake(done)
		case sig := <-sigc:
			s.stopRun("interrupt", sig.String())
			s.armWatchdog()
			s.wake(done)
		case <-timeout:
			s.stopRun("timeout", s.cfg.Timeout.String())
			s.armWatchdog()
			s.wake(done)
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

// wake wakes the tracer thread after a stop decided outside it. A wake
// command that cannot start (fork failing under a pids cap) is tried again
// every 50 ms until the tracer thread is done; meanwhile a started program
// whose tasks are let go is sent SIGSTOP from here (stopLiveForDetach) —
// an attached process's tasks can only be interrupted by the tracer
// thread, which the watchdog bounds.
func (s *session) wake(done <-chan struct{}) {
	for i := 0; !s.wakeTracer(); i++ {
		if i == 0 && s.detaching() {
			s.stopLiveForDetach()
		}
		select {
		case <-done:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// wakeTracer starts cfg.WakeCommand, a program that exits at once: its exit
// ends the tracer's blocking wait4, so the tracer sweeps up tasks that sit
// in a stop instead of waiting for events that never come.
// It reports whether the command started.
func (s *session) wakeTracer() bool {
	cmd := s.cfg.WakeCommand
	if len(cmd) == 0 {
		cmd = []string{"/bin/sh", "-c", ":"}
	}
	p, err := os.StartProcess(cmd[0], cmd, &os.ProcAttr{Env: []string{"VTRACE_WAKE=1"}})
	if err != nil {
		return false
	}
	s.stopMu.Lock()
	s.wakes = append(s.wakes, p)
	s.stopMu.Unlock()
	return true
}

// wakeReaped forgets the wake command pid, which the tracer's wait4(-1)
// has just reaped: its os.Process (a pidfd) is released now, not at the
// end of the run — a story that blocks for minutes starts one a second
// (armWake), and each kept a descriptor (752 after 12 minutes, found by
// the review).
func (s *session) wakeReaped(pid int) {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	for i, p := range s.wakes {
		if p.Pid == pid {
			_ = p.Release()
			s.wakes = slices.Delete(s.wakes, i, i+1)
			return
		}
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
