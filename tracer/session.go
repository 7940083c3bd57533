package tracer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/ptrace"
	"github.com/vtrace/vtrace/tracer/internal/symbols"
)

// errStopped unwinds a story when the run is being stopped (budget, timeout,
// interrupt) or a task it followed vanished.
var errStopped = errors.New("run stopped")

// process is one thread group.
type process struct {
	tgid int
	mm   *addrSpace
	main bool // the program vtrace started
	// fault is the last signal delivered to the process (reported as its
	// fate if it dies of it).
	fault *fault
}

type fault struct {
	sig  unix.Signal
	info ptrace.SigInfo
	pc   uint64
}

// task is one traced thread.
type task struct {
	pid  int
	proc *process
	// initialStop: a new task's first stop (SIGSTOP) has not been seen yet.
	initialStop bool
	// hold: keep the task stopped at its initial stop (a vfork child whose
	// story has not started).
	hold bool
	// parked: stopped at a breakpoint planted for another task; resumed when
	// that breakpoint is removed.
	parkedAt uint64
	// inStory: the task's stops are consumed by a story, not dispatched.
	inStory bool
	// ended: a vfork child whose end a story already reported.
	ended bool
	// execed: the task has a new image that proc.mm does not describe yet
	// (between its exec event and execStop): its memory is not proc.mm's.
	execed bool
}

// session is one run of vtrace: it owns the tracer thread, every task, and
// the event stream.
type session struct {
	cfg   Config
	t     *ptrace.Thread
	start time.Time

	tasks map[int]*task
	// early holds stops of pids whose creation event has not been seen yet:
	// a new child's SIGSTOP can arrive before its parent's fork/vfork event.
	early map[int]ptrace.Stop
	// deferred vfork parents, held in their event stop while another story
	// runs.
	deferred []*task

	mainPID int
	vforks  int
	steps   int64
	hw      hwState
	hwProbe string // what the watchpoint probe saw

	tally tally

	stopMu     sync.Mutex
	stopReason string // set once: "timeout", "interrupt", "max_steps", "max_vforks"
	stopLimit  string
	live       map[int]bool // pids to SIGKILL when stopping (guarded by stopMu)

	insnBuf [16]byte
	swept   bool // sweep done
}

// Run traces cfg.Path until every task has ended, streaming events to
// cfg.Sink. It returns an error only when tracing could not start; what
// the target did is in the events and the Result.
func Run(ctx context.Context, cfg Config) (Result, error) {
	s := &session{
		cfg:   cfg,
		tasks: map[int]*task{},
		early: map[int]ptrace.Stop{},
		live:  map[int]bool{},
	}
	var res Result
	err := ptrace.Run(cfg.CPU, func(t *ptrace.Thread) (err error) {
		s.t = t
		defer func() {
			// A bug in vtrace must not leave stopped tracees behind.
			if r := recover(); r != nil {
				for pid := range s.live {
					_ = ptrace.Kill(pid, unix.SIGKILL)
				}
				if os.Getenv("VTRACE_DEBUG") != "" {
					fmt.Fprintf(os.Stderr, "%v\n%s", r, debug.Stack())
				}
				err = fmt.Errorf("internal error: %v (tracees killed; VTRACE_DEBUG=1 shows the stack)", r)
			}
		}()
		res, err = s.run(ctx)
		return err
	})
	return res, err
}

func (s *session) run(ctx context.Context) (Result, error) {
	if err := ptrace.BecomeSubreaper(); err != nil {
		return Result{}, fmt.Errorf("become child subreaper: %w", err)
	}
	s.start = time.Now()
	if s.cfg.Watchpoints == "off" || s.cfg.Mode == Step {
		s.hw = hwOff // --step steps every write: nothing for watchpoints to add
	}
	pid, err := s.t.Start(ptrace.StartSpec{
		Path: s.cfg.Path, Argv: s.cfg.Argv, Env: s.cfg.Env,
		Files: s.cfg.Files, NoASLR: s.cfg.NoASLR,
	})
	if err != nil {
		return Result{}, startError(s.cfg.Path, err)
	}
	s.mainPID = pid
	s.setLive(pid, true)
	// The exec SIGTRAP stop comes first (PTRACE_TRACEME).
	st, err := s.t.Wait()
	if err != nil {
		return Result{}, fmt.Errorf("wait for %s to start: %w", s.cfg.Path, err)
	}
	if st.PID != pid || !st.Status.Stopped() {
		return Result{}, fmt.Errorf("%s did not start under ptrace (status %#x)", s.cfg.Path, int(st.Status))
	}
	if err := s.t.SetOptions(pid); err != nil {
		_ = ptrace.Kill(pid, unix.SIGKILL)
		s.drain()
		return Result{}, err
	}
	proc := &process{tgid: pid, main: true}
	t := &task{pid: pid, proc: proc}
	s.tasks[pid] = t
	mm, err := s.newAddrSpace(pid)
	if err != nil {
		_ = ptrace.Kill(pid, unix.SIGKILL)
		s.drain()
		return Result{}, err
	}
	proc.mm = mm
	if s.cfg.Prefetch {
		// The program's and its libraries' symbols are read while it
		// runs to its first vfork, not when that vfork holds it.
		offCPU(s.cfg.CPU, func() { symbols.PrefetchProgram(s.cfg.Path) })
	}

	if s.hw == hwAuto {
		s.probeHW(t)
	}
	s.emit(&event.Start{Header: s.hdr("start", pid), Argv: s.cfg.Argv, Mode: s.cfg.Mode.String(),
		Version: s.cfg.Version, NoASLR: s.cfg.NoASLR, CPU: s.cfg.CPU, Watchpoints: s.hw.String(),
		WatchpointProbe: s.hwProbe})
	s.emit(&event.Exec{Header: s.hdr("exec", pid), Path: s.cfg.Path, Arch: mm.arch.Name})

	stopWatch := s.watchStops(ctx)
	defer stopWatch()

	s.resume(t, 0)
	s.loop()
	return s.finish(), nil
}

// loop dispatches stops until no tracee is left.
func (s *session) loop() {
	for {
		if len(s.deferred) > 0 && !s.stopping() {
			p := s.deferred[0]
			s.deferred = s.deferred[1:]
			s.vforkStop(p)
			continue
		}
		s.sweep()
		if st, ok := s.pendingStop(); ok {
			s.dispatch(st)
			continue
		}
		st, err := s.t.Wait()
		if err != nil {
			// ECHILD: every task (and every orphan we adopted) is reaped.
			return
		}
		if t := s.tasks[st.PID]; t != nil && st.Event() == ptrace.EventVfork {
			s.vforkStop(t)
			continue
		}
		s.dispatch(st)
	}
}

// pendingStop returns a stop of a known task that arrived while a story
// held the task, and was kept for later.
func (s *session) pendingStop() (ptrace.Stop, bool) {
	for pid, st := range s.early {
		if t := s.tasks[pid]; t != nil && !t.inStory {
			delete(s.early, pid)
			return st, true
		}
	}
	return ptrace.Stop{}, false
}

// vforkStop starts a story for a task in its vfork event stop, unless a
// budget says the run is over.
func (s *session) vforkStop(t *task) {
	if s.vforkBudgetSpent(t) {
		s.resume(t, 0)
		return
	}
	if err := s.story(t); err != nil && !errors.Is(err, errStopped) {
		s.note(0, fmt.Sprintf("vfork story of %d abandoned: %v", t.pid, err))
	}
}

// vforkBudgetSpent ends the run when the vfork budget is spent, and
// reports whether the run is ending. The new child is then registered so
// that it is killed too: left in its initial stop, it would outlive vtrace.
func (s *session) vforkBudgetSpent(t *task) bool {
	if !s.stopping() && s.cfg.MaxVforks > 0 && s.vforks >= s.cfg.MaxVforks {
		s.stopRun("max_vforks", strconv.Itoa(s.cfg.MaxVforks))
	}
	if !s.stopping() {
		return false
	}
	if msg, err := s.t.EventMsg(t.pid); err == nil && s.tasks[int(msg)] == nil {
		s.newTask(t, int(msg), false, false)
	}
	return true
}

// dispatch handles a stop outside any story: new tasks, exits, signals,
// execs, and breakpoints hit by tasks they were not planted for.
func (s *session) dispatch(st ptrace.Stop) {
	t := s.tasks[st.PID]
	if t == nil {
		if st.Status.Stopped() {
			if s.stopping() {
				// A new task of a run that is ending: kill it, and let it go
				// on from this stop (and from its exit stop) to die.
				_ = ptrace.Kill(st.PID, unix.SIGKILL)
				_ = s.t.Cont(st.PID, 0)
				return
			}
			s.early[st.PID] = st // a new task whose creation event is still to come
		}
		return // an adopted orphan's exit, or a task already forgotten
	}
	ws := st.Status
	switch {
	case ws.Exited() || ws.Signaled():
		s.gone(t, ws)
	case !ws.Stopped():
		s.resume(t, 0)
	case st.Event() != 0:
		s.eventStop(t, st.Event())
	case ws.StopSignal() == unix.SIGSTOP && t.initialStop:
		t.initialStop = false
		if !t.hold {
			s.resume(t, 0)
		}
	case ws.StopSignal() == unix.SIGTRAP && s.parkIfForeignBreakpoint(t):
	default:
		s.signalStop(t, ws.StopSignal())
	}
}

func (s *session) eventStop(t *task, ev int) {
	switch ev {
	case ptrace.EventFork, ptrace.EventClone:
		if msg, err := s.t.EventMsg(t.pid); err == nil {
			s.newTask(t, int(msg), ev == ptrace.EventClone, false)
		}
	case ptrace.EventVfork:
		// Another story is running: hold this parent (and so its child,
		// which stays in its initial stop) until that story ends.
		if msg, err := s.t.EventMsg(t.pid); err == nil {
			s.newTask(t, int(msg), false, true)
		}
		s.deferred = append(s.deferred, t)
		return
	case ptrace.EventExec:
		s.execStop(t)
	}
	s.resume(t, 0)
}

// execStop gives a process that exec'd a fresh address space.
func (s *session) execStop(t *task) {
	// A non-leader thread's exec takes over the leader's pid; the old tid
	// is gone (its exit is never reported).
	if msg, err := s.t.EventMsg(t.pid); err == nil && int(msg) != t.pid {
		delete(s.tasks, int(msg))
		s.setLive(int(msg), false)
	}
	mm, err := s.newAddrSpace(t.pid)
	if err != nil {
		s.note(0, fmt.Sprintf("exec of %d: %v", t.pid, err))
		return
	}
	t.proc.mm = mm
	t.execed = false
	path, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", t.pid))
	s.emit(&event.Exec{Header: s.hdr("exec", t.pid), Path: path, Arch: mm.arch.Name})
}

// newTask registers a task created by parent (fork, vfork or clone event).
// A held task (a vfork child) stays in its initial stop until a story
// resumes it; the hold is set before a stop that arrived early is
// dispatched, or the child would run off unobserved.
func (s *session) newTask(parent *task, pid int, clone, hold bool) *task {
	c := &task{pid: pid, initialStop: true, hold: hold}
	if clone && sameThreadGroup(parent.proc.tgid, pid) {
		c.proc = parent.proc
	} else {
		// A fork copies the address space: same mappings, own memory. A
		// vfork child shares it until it execs; the story sets that up.
		mm := *parent.proc.mm
		mm.pid = pid
		mm.code = map[uint64]*insnEntry{}
		mm.bps = map[uint64]*breakpoint{}
		c.proc = &process{tgid: pid, mm: &mm}
	}
	s.tasks[pid] = c
	s.setLive(pid, true)
	if st, ok := s.early[pid]; ok {
		delete(s.early, pid)
		s.dispatch(st)
	}
	return c
}

func sameThreadGroup(tgid, pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n == tgid
		}
	}
	return false
}

// signalStop handles a signal-delivery stop (or a group-stop) outside a story.
func (s *session) signalStop(t *task, sig unix.Signal) {
	info, err := s.t.SigInfo(t.pid)
	if err != nil {
		// EINVAL: a group-stop, not a signal delivery. Resuming ends it
		// (vtrace does not emulate job control for tracees).
		s.resume(t, 0)
		return
	}
	s.recordFault(t, sig, info)
	s.resume(t, int(sig))
}

func (s *session) recordFault(t *task, sig unix.Signal, info ptrace.SigInfo) {
	f := &fault{sig: sig, info: info}
	var regs arch.Regs
	if s.t.Regs(t.pid, &regs) == nil {
		f.pc = regs.PC()
	}
	t.proc.fault = f
	// The signal may kill the process: its maps must be read (mm.syms)
	// while it is still there to be asked, and again if the fault is in
	// code mapped since they were (a library, before any vfork refreshed
	// them).
	if mm := t.proc.mm; f.pc != 0 && !mm.syms().IsCode(f.pc) && hasFaultAddr(sig) {
		s.refresh(mm, t.pid)
	}
}

// gone handles a task's death (it was reaped).
func (s *session) gone(t *task, ws unix.WaitStatus) {
	delete(s.tasks, t.pid)
	s.setLive(t.pid, false)
	if t.ended || t.pid != t.proc.tgid {
		return
	}
	ev := &event.Exit{Header: s.hdr("exit", t.pid), Main: t.proc.main}
	if ws.Exited() {
		code := ws.ExitStatus()
		ev.Status, ev.Code = "exited", &code
	} else {
		ev.Status, ev.Signal = "signaled", unix.SignalName(ws.Signal())
		if f, ok := s.faultOf(t.proc, ws.Signal(), t.proc.mm); ok {
			ev.SiCode, ev.Addr, ev.PC, ev.Sym = f.siCode, f.addr, f.pc, f.sym
		}
	}
	s.emit(ev)
}

// faultFields are the details of a fatal signal shared by the exit and
// child_end events.
type faultFields struct {
	siCode string
	addr   *event.Addr // fault address, for signals that have one
	pc     *event.Addr
	sym    *event.Sym
}

// faultOf describes the fault that killed p with sig, if vtrace saw the
// signal's delivery stop (recordFault).
func (s *session) faultOf(p *process, sig unix.Signal, mm *addrSpace) (faultFields, bool) {
	f := p.fault
	if f == nil || f.sig != sig {
		return faultFields{}, false
	}
	out := faultFields{siCode: siCodeName(f.sig, f.info.Code)}
	if hasFaultAddr(f.sig) {
		a := event.Addr(f.info.Addr)
		out.addr = &a
	}
	if f.pc != 0 {
		pc := event.Addr(f.pc)
		out.pc, out.sym = &pc, s.sym(mm, f.pc)
	}
	return out, true
}

// resume continues a stopped task, delivering sig. Errors mean the task is
// gone (killed meanwhile); its exit will be reaped.
func (s *session) resume(t *task, sig int) {
	_ = s.t.Cont(t.pid, sig)
}

// waitFor returns the next stop of pid, dispatching every other stop that
// arrives meanwhile.
func (s *session) waitFor(pid int) (ptrace.Stop, error) {
	if st, ok := s.early[pid]; ok {
		delete(s.early, pid)
		return st, nil
	}
	for {
		st, err := s.t.Wait()
		if err != nil {
			return ptrace.Stop{}, fmt.Errorf("wait for %d: %w", pid, err)
		}
		if st.PID == pid {
			return st, nil
		}
		if t := s.tasks[st.PID]; t != nil && t.inStory {
			// A task of an enclosing story (a nested vfork's outer parent
			// is held, so only its death can show up here).
			if st.Status.Exited() || st.Status.Signaled() {
				s.gone(t, st.Status)
			} else {
				s.early[st.PID] = st // handled once the story lets go of it
			}
			continue
		}
		s.dispatch(st)
	}
}

// watchStops kills every tracee when the context ends, the timeout passes,
// or SIGINT/SIGTERM/SIGHUP arrives, so the wait loop drains and the log is
// closed with a verdict.
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
			wakeWaiter()
		case sig := <-sigc:
			s.stopRun("interrupt", sig.String())
			wakeWaiter()
		case <-timeout:
			s.stopRun("timeout", s.cfg.Timeout.String())
			wakeWaiter()
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

// WakeCommand is a program that exits at once. When the run is stopped from
// outside the tracer thread, vtrace starts it: its exit ends the tracer's
// blocking wait4, so the tracer sweeps up tasks that sit in a stop (an exit
// stop survives SIGKILL) instead of waiting for events that never come.
// cmd/vtrace points it at its own binary.
var WakeCommand = []string{"/bin/sh", "-c", ":"}

func wakeWaiter() {
	p, err := os.StartProcess(WakeCommand[0], WakeCommand, &os.ProcAttr{Env: []string{"VTRACE_WAKE=1"}})
	if err == nil {
		_ = p.Release() // reaped by the tracer's wait4(-1)
	}
}

// sweep kills every known task and resumes it from whatever stop it is in,
// once the run is stopping.
func (s *session) sweep() {
	if s.swept || !s.stopping() {
		return
	}
	s.swept = true
	for pid := range s.tasks {
		_ = ptrace.Kill(pid, unix.SIGKILL)
		_ = s.t.Cont(pid, 0)
	}
}

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
		_ = ptrace.Kill(pid, unix.SIGKILL)
	}
}

// stopReasonNow is the budget that is stopping the run, or "".
func (s *session) stopReasonNow() string {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	return s.stopReason
}

func (s *session) stopping() bool {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	return s.stopReason != ""
}

func (s *session) setLive(pid int, alive bool) {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if alive {
		s.live[pid] = true
		if s.stopReason != "" {
			_ = ptrace.Kill(pid, unix.SIGKILL)
		}
	} else {
		delete(s.live, pid)
	}
}

// drain reaps everything left after a failed start.
func (s *session) drain() {
	for {
		if _, err := s.t.Wait(); err != nil {
			return
		}
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

func (s *session) hdr(name string, pid int) event.Header {
	return event.Header{V: event.Version, Event: name, T: time.Since(s.start).Nanoseconds(), PID: pid}
}

func (s *session) emit(ev event.Event) {
	if s.cfg.Sink != nil {
		_ = s.cfg.Sink.Emit(ev)
	}
}

func (s *session) note(story int, msg string) {
	s.emit(&event.Note{Header: s.hdr("note", s.mainPID), Vfork: story, Msg: msg})
}

// finish emits the budget event (if any) and the run's verdict.
func (s *session) finish() Result {
	s.stopMu.Lock()
	reason, limit := s.stopReason, s.stopLimit
	s.stopMu.Unlock()
	if reason != "" {
		s.emit(&event.Budget{Header: s.hdr("budget", s.mainPID), Budget: reason, Limit: limit})
	}
	v := s.tally.verdict()
	v.Header = s.hdr("verdict", s.mainPID)
	v.Incomplete = reason
	s.emit(v)
	return Result{Verdict: v.Verdict, Vforks: v.Vforks, Incomplete: reason, Steps: s.steps}
}

// offCPU runs fn on a goroutine whose thread is kept off cpu, the one the
// tracer and its tracees are pinned to: the scheduler would otherwise often
// wake it there (next to the thread that woke it) and it would preempt them.
func offCPU(cpu int, fn func()) {
	go func() {
		if cpu >= 0 {
			runtime.LockOSThread() // never unlocked: the thread ends with fn
			var set unix.CPUSet
			if unix.SchedGetaffinity(0, &set) == nil {
				set.Clear(cpu)
				if set.Count() > 0 {
					_ = unix.SchedSetaffinity(0, &set)
				}
			}
		}
		fn()
	}()
}
