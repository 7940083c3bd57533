package tracer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/ptrace"
)

// Attaching to a running process (vtrace attach PID; Config.AttachPID).
//
// Every thread listed in /proc/PID/task is seized (PTRACE_SEIZE, with the
// options of every run; the list is read again until no new thread shows
// up), then interrupted (PTRACE_INTERRUPT), and vtrace waits until each
// has reported a stop: an interrupt stop; a group-stop if the process was
// stopped (job control), which it is left in (PTRACE_LISTEN); or a signal
// that was pending, which is delivered at once (the interrupt stop comes
// after it). Then the start and attach events are written, every thread
// runs on, and the run goes on exactly as `run`'s: the same dispatch, the
// same stories. Tasks the process creates are seized too; their first
// stop is a PTRACE_EVENT_STOP, not a SIGSTOP (dispatch: seizedStop).
//
// Debug-register watchpoints are probed in a short-lived helper process
// vtrace starts for that (the probe single-steps a program from its exec;
// an attached thread may sit in a blocking system call, where a single
// step would not come back).
//
// Ending: an attached process is never killed by vtrace. A signal
// (SIGINT, SIGTERM, SIGHUP), --timeout or a budget makes the run detach:
// the stop reason is recorded from any goroutine (stopRun, which sends no
// signal to an attached process), and the tracer thread, woken by the
// WakeCommand's exit (dispatch of an unknown pid) or at its next sweep,
// interrupts every task; each reports a stop, where the usual detach path
// lets it go (dispatch, letGo, sweep: s.detach): debug registers cleared,
// a story in flight unwound (its int3s removed by release), and any int3
// left in the process's code put back before its last thread goes. The
// log gets a detach event, then the budget and the verdict.

// ErrNoProcess is an attach to a pid that does not exist.
var ErrNoProcess = errors.New("no such process")

// attachState is the session's part of an attach; zero in a run that
// started its program.
type attachState struct {
	attachPID int   // the process attached to (its thread group id); 0: vtrace started the program
	detached  []int // tids let go
}

// attacher is what attaching needs of the live ptrace thread, beyond procs.
type attacher interface {
	Seize(pid int) error
	Interrupt(pid int) error
	Listen(pid int) error
	Start(s ptrace.StartSpec) (int, error)
}

// attach seizes the running process cfg.AttachPID and follows it until it
// ends or the run is stopped (then it is let go).
func (s *session) attach(ctx context.Context) (Result, error) {
	at, ok := s.p.(attacher)
	if !ok {
		return Result{}, fmt.Errorf("%w: attach needs the live ptrace thread", ErrCannotTrace)
	}
	tgid, err := threadGroup(s.cfg.AttachPID)
	if err != nil {
		return Result{}, err
	}
	s.attachPID, s.mainPID = tgid, tgid
	s.start = time.Now()
	if s.cfg.Watchpoints == "off" || s.cfg.Mode == Step {
		s.hw = hwOff
	} else {
		s.probeInHelper(at)
	}
	exe := s.p.ExePath(tgid)
	if s.cfg.Prefetch && exe != "" {
		s.goOffCPU(func() { prefetchProgram(exe) })
	}
	tids, err := s.seizeAll(at, tgid)
	if err != nil {
		return Result{}, err
	}
	mm, err := s.newAddrSpace(tgid)
	if err != nil {
		seized := map[int]bool{}
		for _, tid := range tids {
			seized[tid] = true
		}
		s.releaseSeized(at, seized)
		return Result{}, fmt.Errorf("%w: attach %d: %v", ErrCannotTrace, tgid, err)
	}
	proc := &process{tgid: tgid, mm: mm, main: true}
	for _, tid := range tids {
		s.register(&task{pid: tid, proc: proc, state: taskRunning})
		s.setLive(tid, tgid)
	}
	stopWatch := s.watchStops(ctx)
	defer stopWatch()

	stopped, groupStopped, later := s.gather(at, tids)
	argv := cmdline(tgid)
	if len(argv) == 0 {
		argv = []string{exe}
	}
	s.emit(&event.Start{Header: s.hdr("start", tgid), Argv: argv, Mode: s.cfg.Mode.String(),
		Version: s.cfg.Version, FullWatch: s.cfg.FullWatch, CPU: s.cfg.CPU, Watchpoints: s.hw.String(), WatchpointProbe: s.hwProbe})
	s.emit(&event.Attach{Header: s.hdr("attach", tgid), Threads: tids, Exe: exe, Stopped: len(groupStopped) > 0})
	for _, t := range stopped {
		s.cont(t, 0)
	}
	for _, t := range groupStopped {
		s.listen(t)
	}
	for _, st := range later {
		s.dispatch(st)
	}
	s.loop()
	s.claimEnd()
	if err := s.goroutineErr(); err != nil {
		return Result{}, err // as in follow: the caller reports it, then the verdict
	}
	return s.finish(), nil
}

// seizeAll seizes every thread of process tgid, reading its task list
// again until a pass finds no new thread (one created meanwhile by a
// thread not yet seized). Threads created by a seized thread are seized
// by the kernel (PTRACE_O_TRACECLONE) and reported as new tasks.
func (s *session) seizeAll(at attacher, tgid int) ([]int, error) {
	seized := map[int]bool{}
	for pass := 0; ; pass++ {
		tids, err := taskList(tgid)
		if err != nil {
			if len(seized) == 0 {
				return nil, fmt.Errorf("%w: attach %d: %w", ErrCannotTrace, tgid, ErrNoProcess)
			}
			break // it died meanwhile: its exit will come
		}
		fresh := 0
		for _, tid := range tids {
			if seized[tid] {
				continue
			}
			if err := at.Seize(tid); err != nil {
				if ptrace.TaskGone(err) {
					continue // the thread ended meanwhile
				}
				if len(seized) > 0 {
					s.releaseSeized(at, seized)
				}
				return nil, attachError(tgid, tid, err)
			}
			seized[tid] = true
			fresh++
		}
		if fresh == 0 || pass > 100 {
			break
		}
	}
	if len(seized) == 0 {
		return nil, fmt.Errorf("%w: attach %d: %w", ErrCannotTrace, tgid, ErrNoProcess)
	}
	tids := make([]int, 0, len(seized))
	for tid := range seized {
		tids = append(tids, tid)
	}
	sort.Ints(tids)
	return tids, nil
}

// releaseSeized lets go the threads seized before an attach failed: each
// is interrupted and detached at its stop.
func (s *session) releaseSeized(at attacher, seized map[int]bool) {
	for tid := range seized {
		_ = at.Interrupt(tid)
	}
	for len(seized) > 0 {
		st, err := s.p.Wait()
		if err != nil {
			return
		}
		if !seized[st.PID] {
			continue
		}
		if st.Status.Stopped() {
			sig := 0
			if !st.Seized() && st.Event() == 0 {
				sig = int(st.Status.StopSignal()) // a pending signal: delivered
			}
			_ = s.p.Detach(st.PID, sig)
		}
		delete(seized, st.PID)
	}
}

// gather interrupts every seized thread and waits until each has stopped:
// stopped are in their interrupt stop, groupStopped in a group-stop (the
// process was stopped by job control), later are stops to dispatch once
// the run has started (an exit, an event that came before the interrupt).
// A signal pending at attach time is delivered at once. It gives up
// waiting when the run is stopped meanwhile.
func (s *session) gather(at attacher, tids []int) (stopped, groupStopped []*task, later []ptrace.Stop) {
	pending := map[int]bool{}
	for _, tid := range tids {
		if err := at.Interrupt(tid); err == nil {
			pending[tid] = true
		}
	}
	for len(pending) > 0 && !s.stopping() {
		st, err := s.p.Wait()
		if err != nil {
			break
		}
		t := s.byPID[st.PID]
		if t == nil {
			if st.Status.Stopped() {
				s.unknown[st.PID] = st // a thread created meanwhile: its clone event comes
			}
			continue
		}
		ws := st.Status
		switch {
		case !ws.Stopped() || (st.Event() != 0 && !st.Seized()):
			delete(pending, t.pid)
			later = append(later, st)
		case st.Seized() && ws.StopSignal() == unix.SIGTRAP:
			delete(pending, t.pid)
			stopped = append(stopped, t)
		case st.Seized():
			delete(pending, t.pid)
			groupStopped = append(groupStopped, t)
		default:
			// A signal that was pending when vtrace attached: delivered
			// now, as it would have been; the interrupt stop follows.
			sig := ws.StopSignal()
			if info, err := s.p.SigInfo(t.pid); err == nil {
				s.recordFault(t, sig, info)
			}
			s.cont(t, int(sig))
		}
	}
	return stopped, groupStopped, later
}

// seizedStop handles a PTRACE_EVENT_STOP of a seized task outside a story:
// a new task's first stop, an interrupt (or the trap after a SIGCONT ended
// a group-stop: it runs on), or a group-stop (it stays stopped).
func (s *session) seizedStop(t *task, st ptrace.Stop) {
	switch {
	case !t.firstStopSeen():
		s.firstStop(t)
	case st.Status.StopSignal() == unix.SIGTRAP:
		s.cont(t, 0)
	default:
		s.listen(t)
	}
}

// listen leaves a seized task in its group-stop, stopped.
func (s *session) listen(t *task) {
	if at, ok := s.p.(attacher); ok && at.Listen(t.pid) == nil {
		return
	}
	s.cont(t, 0)
}

// unknownLetGo handles, in a run that lets its tasks go (attach, or
// --on-budget detach), a stop of a pid vtrace does not know: a new task
// whose creation event has not come is let go at once (the run no longer
// follows events). In an attached run this is also where the
// WakeCommand's exit lands, in the main loop or in a story's wait: every
// task is interrupted. It reports whether the stop was handled.
func (s *session) unknownLetGo(st ptrace.Stop) bool {
	if !s.detaching() {
		return false
	}
	s.interruptAll()
	if !st.Status.Stopped() {
		return false
	}
	_ = s.p.Detach(st.PID, 0)
	delete(s.unknown, st.PID)
	if s.attachPID != 0 {
		s.detached = append(s.detached, st.PID)
	}
	s.setGone(st.PID)
	return true
}

// interruptAll, once an attached run is stopping, makes every traced task
// report a stop, where it is let go. A task already in a ptrace-stop keeps
// the interrupt pending; detaching it clears it. Each task is interrupted
// once (task.halted).
func (s *session) interruptAll() {
	if s.attachPID == 0 || !s.stopping() {
		return
	}
	at, ok := s.p.(attacher)
	if !ok {
		return
	}
	for pid, t := range s.byPID {
		if !t.halted {
			_ = at.Interrupt(pid)
			t.halted = true
		}
	}
}

// letGoSignal is the signal to deliver when letting a task go from stop
// st. An attached process gets every signal it was stopping for (vtrace
// sent it none), except the traps of vtrace's own breakpoints, single
// steps and watchpoints; a run's tasks as stopSignal says.
func (s *session) letGoSignal(t *task, st ptrace.Stop) int {
	if s.attachPID == 0 {
		return stopSignal(st)
	}
	if !st.Status.Stopped() || st.Event() != 0 || st.Seized() {
		return 0
	}
	sig := st.Status.StopSignal()
	if sig == unix.SIGTRAP {
		if info, err := s.p.SigInfo(t.pid); err != nil || info.Code > 0 {
			return 0 // from the kernel: an int3, a step, a watchpoint
		}
	}
	return int(sig)
}

// beforeDetach, in an attached run, puts back any int3 still in the
// process's code before its last thread is let go (stories remove theirs
// as they unwind; this is the net under them), noting that it had to.
func (s *session) beforeDetach(t *task) {
	if s.attachPID == 0 {
		return
	}
	mm := t.proc.mm
	if mm == nil || len(mm.bps) == 0 {
		return
	}
	for _, o := range s.byPID {
		if o != t && o.proc.mm == mm {
			return // another task of this image still holds it
		}
	}
	var addrs []string
	for addr := range mm.bps {
		if err := s.unplant(mm, t.pid, addr); err == nil {
			addrs = append(addrs, fmt.Sprintf("%#x", addr))
		}
	}
	s.note(0, event.NoteInt3Left, "removed at detach: "+strings.Join(addrs, " "))
}

// emitDetach writes the detach event of an attached run that was stopped.
func (s *session) emitDetach(reason, limit string) {
	if reason == "" || (s.attachPID == 0 && reason != stopProgramExit) {
		return
	}
	if reason == stopProgramExit && len(s.detached) == 0 {
		return // what was left ended before it could be let go
	}
	ev := &event.Detach{Header: s.hdr("detach", s.mainPID), Why: reason, Threads: append([]int(nil), s.detached...)}
	sort.Ints(ev.Threads)
	if reason == "interrupt" {
		for _, sig := range []unix.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP} {
			if limit == sig.String() {
				ev.Signal = unix.SignalName(sig)
			}
		}
	}
	s.emit(ev)
}

// probeInHelper probes debug-register watchpoints (probeHW) in a helper
// process vtrace starts for it (the WakeCommand, which exits at once, or
// /bin/true) and kills: they fire or not for the whole machine.
func (s *session) probeInHelper(at attacher) {
	argv := s.cfg.WakeCommand
	if len(argv) == 0 {
		argv = []string{"/bin/true"}
	}
	pid, err := at.Start(ptrace.StartSpec{Path: argv[0], Argv: argv, Env: []string{"VTRACE_WAKE=1"}})
	if err != nil {
		s.hwProbe = "helper process: " + err.Error()
		return
	}
	defer func() {
		_ = s.p.Kill(pid, unix.SIGKILL)
		for {
			st, err := s.p.Wait()
			if err != nil || (st.PID == pid && (st.Status.Exited() || st.Status.Signaled())) {
				return
			}
		}
	}()
	if st, err := s.p.Wait(); err != nil || st.PID != pid || !st.Status.Stopped() {
		s.hwProbe = "helper process did not start under ptrace"
		return
	}
	mm, err := s.newAddrSpace(pid)
	if err != nil {
		s.hwProbe = "helper process: " + err.Error()
		return
	}
	s.probeHW(&task{pid: pid, proc: &process{tgid: pid, mm: mm}, state: taskRunning})
	s.hwProbe = "in a helper process: " + s.hwProbe
}

// threadGroup is the process (thread group id) of pid, which may name any
// of its threads.
func threadGroup(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("%w: attach %d: %w", ErrCannotTrace, pid, ErrNoProcess)
	}
	if v := statusField(b, "Tgid"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n, nil
		}
	}
	return pid, nil
}

// taskList is the threads of process tgid (/proc/PID/task).
func taskList(tgid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", tgid))
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, n)
		}
	}
	return tids, nil
}

// cmdline is the process's argv (/proc/PID/cmdline).
func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// statusField is the value of a "Name:\tvalue" line of /proc/PID/status.
func statusField(b []byte, name string) string {
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// attachError explains, in one line, why the kernel refused to let vtrace
// seize a thread: already traced (by whom), a kernel thread, or the policy
// (kernel.yama.ptrace_scope, whose value it reads, and CAP_SYS_PTRACE).
func attachError(tgid, tid int, err error) error {
	if !errors.Is(err, ptrace.ErrNotPermitted) {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("%w: attach %d: %w", ErrCannotTrace, tgid, ErrNoProcess)
		}
		return fmt.Errorf("%w: attach %d: %v", ErrCannotTrace, tgid, err)
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if tracer, _ := strconv.Atoi(statusField(status, "TracerPid")); tracer != 0 {
		// TracerPid is the tracing thread; name its process.
		if tg, err := threadGroup(tracer); err == nil {
			tracer = tg
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", tracer))
		return fmt.Errorf("%w: attach %d: ptrace refused (EPERM): it is already traced by pid %d (%s); one tracer at a time",
			ErrCannotTrace, tgid, tracer, strings.TrimSpace(string(comm)))
	}
	if statusField(status, "Kthread") == "1" || (len(cmdline(tgid)) == 0 && !exeReadable(tgid)) {
		return fmt.Errorf("%w: attach %d: ptrace refused (EPERM): it is a kernel thread, which cannot be traced", ErrCannotTrace, tgid)
	}
	scope := "not set (no Yama in this kernel)"
	if b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil {
		scope = strings.TrimSpace(string(b))
		switch scope {
		case "1":
			scope += " (only descendants, unless CAP_SYS_PTRACE)"
		case "2":
			scope += " (only with CAP_SYS_PTRACE)"
		case "3":
			scope += " (no attaching at all, until reboot)"
		}
	}
	capNote := "vtrace lacks CAP_SYS_PTRACE"
	if hasCapSysPtrace() {
		capNote = "vtrace has CAP_SYS_PTRACE"
	}
	return fmt.Errorf("%w: attach %d: ptrace refused (EPERM): kernel.yama.ptrace_scope = %s; %s (in a container: --cap-add SYS_PTRACE, and the seccomp profile)",
		ErrCannotTrace, tgid, scope, capNote)
}

func exeReadable(pid int) bool {
	_, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil
}

// hasCapSysPtrace reports whether vtrace's effective capabilities include
// CAP_SYS_PTRACE (bit 19 of CapEff).
func hasCapSysPtrace() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	v, err := strconv.ParseUint(statusField(b, "CapEff"), 16, 64)
	return err == nil && v&(1<<unix.CAP_SYS_PTRACE) != 0
}
