package tracer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/arch/x86/x86asm"
	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/ptrace"
	"github.com/vtrace/vtrace/tracer/internal/symbols"
)

// errStopped unwinds a story when the run is being stopped (budget, timeout,
// interrupt) or a task it followed vanished.
var errStopped = errors.New("run stopped")

// session is one run of vtrace: it owns the tracer thread, every task, the
// stories in progress and the event stream.
type session struct {
	cfg   Config
	p     procs
	start time.Time

	tasks
	// stories is the stack of stories in progress: a vfork made by a task
	// a story follows (a vfork child that vforks in turn) runs as a nested
	// story on top of it. Empty between stories.
	stories []*story
	// unreadableNoted: the files with code already named in a
	// symbols_unreadable note (capture.go: unreadableNotes).
	unreadableNoted map[string]bool
	// unreadableOf is the last Space whose unreadable files were noted:
	// a Space's list never changes (symbols.Space.Unreadable), and a
	// program that spawns in a loop shows the same one at every vfork.
	unreadableOf *symbols.Space
	// lookUpExe is the vfork child whose /proc/PID/exe is looked up when
	// it is next continued (child.go: followChild).
	lookUpExe int
	// beforeVfork, while set, is called when task vforkOf's vfork event is
	// seen, before its story runs (block.go: a block run into a call
	// tells the call first, as it does when the call was stepped).
	beforeVfork func()
	vforkOf     *task
	// onThread, while set, is called when task threadOf makes a thread
	// or a process in its memory (clone(CLONE_VM)), before it is resumed
	// (parentblock.go: a parent block's calls are handed over to int3s at
	// their returns).
	onThread func()
	threadOf *task
	// regionFree are live-region buffers of ended stories (capture.go:
	// regionBufs).
	regionFree [][]byte
	// mapsOpen are the address spaces whose maps are kept open
	// (addrspace.go: refresh), oldest first; at most maxMapsOpen.
	mapsOpen []*mapsHandle
	// unwindPages are the page buffers of the parents' unwinds
	// (capture.go: unwindParent), kept from one to the next.
	unwindPages []memPage
	// heldParents are vfork parents held in their event stop because
	// another story was running when they vforked; the main loop starts
	// their stories, in order, once the stack is empty.
	heldParents []*task
	// parkedSeen: a task was parked on an int3 since holding last found
	// none (giveway.go).
	parkedSeen bool
	// waitGen counts the waits of waitFor that a timer may end (giveway.go:
	// armWake), guarded by wakeMu.
	wakeMu  sync.Mutex
	waitGen uint64

	mainPID int
	// mainEnded: the program vtrace started (or attached to) was reaped;
	// what it left running is let go (Config.AfterExit).
	mainEnded bool
	vforks    int
	steps     int64
	hw        hwState
	hwProbe   string // what the watchpoint probe saw
	// silentStep: the next resume single-steps an instruction that
	// raises no SIGTRAP of its own (disasm.Insn.OwnTrapFree), whose
	// SIGTRAP needs no siginfo to be told vtrace's (resume). Set by the
	// child's stepper for one resume.
	silentStep bool

	tally tally

	goErr error         // a panic in one of the session's goroutines (guarded by stopMu)
	wakes []*os.Process // wake commands started (guarded by stopMu)

	attachState // vtrace attach (attach.go); zero when vtrace started the program

	watchdogState // watchdog.go

	stopMu     sync.Mutex
	stopReason string // set once: "timeout", "interrupt", "max_steps", "max_vforks"
	stopLimit  string
	// stopped is set, after stopReason, when the run stops: the tracer
	// thread's checks on every stop (stopping, detaching) read it without
	// taking stopMu while the run goes on.
	stopped atomic.Bool
	live    map[int]int // tid → tgid of every traced task, to signal when stopping (guarded by stopMu)
	swept   bool        // the sweep after a stop is done

	insnBuf [16]byte
}

func newSession(cfg Config, p procs) *session {
	return &session{cfg: cfg, p: p, tasks: newTasks(), live: map[int]int{}, start: time.Now()}
}

// Run traces cfg.Path until every task has ended, streaming events to
// cfg.Sink. It returns an error only when tracing could not start; what
// the target did is in the events and the Result.
func Run(ctx context.Context, cfg Config) (Result, error) {
	var res Result
	err := ptrace.Run(cfg.CPU, func(t *ptrace.Thread) (err error) {
		s := newSession(cfg, livePtrace{t})
		s.startWatchdog()
		defer func() {
			r := recover()
			// The tracer thread ends the run, unless the watchdog is
			// ending it already (then this blocks for ever).
			s.claimEnd()
			// A bug in vtrace must not leave stopped tracees behind.
			if r != nil {
				s.killAll()
				if cfg.Debug {
					fmt.Fprintf(os.Stderr, "%v\n%s", r, debug.Stack())
				}
				err = fmt.Errorf("internal error: %v (tracees killed; --debug shows the stack)", r)
			}
		}()
		defer s.reapWakes()
		defer s.closeMaps()
		res, err = s.run(ctx, t)
		return err
	})
	return res, err
}

// run starts the program and follows it to the end.
func (s *session) run(ctx context.Context, t *ptrace.Thread) (Result, error) {
	if s.cfg.AttachPID != 0 {
		return s.attach(ctx) // attach.go
	}
	if err := ptrace.BecomeSubreaper(); err != nil {
		return Result{}, fmt.Errorf("become child subreaper: %w", err)
	}
	s.start = time.Now()
	pid, err := t.Start(ptrace.StartSpec{
		Path: s.cfg.Path, Argv: s.cfg.Argv, Env: s.cfg.Env,
		Files: s.cfg.Files, NoASLR: s.cfg.NoASLR,
	})
	if err != nil {
		return Result{}, startError(s.cfg.Path, err)
	}
	// The exec SIGTRAP stop comes first (PTRACE_TRACEME). Another child
	// may end meanwhile — one vtrace inherited, or an orphan it adopted
	// as a subreaper in an earlier run of this process (tests call run
	// in-process): not the program, and not waited for.
	var st ptrace.Stop
	for st.PID != pid {
		if st, err = s.p.Wait(); err != nil {
			return Result{}, fmt.Errorf("wait for %s to start: %w", s.cfg.Path, err)
		}
	}
	if !st.Status.Stopped() {
		return Result{}, fmt.Errorf("%s did not start under ptrace (status %#x)", s.cfg.Path, int(st.Status))
	}
	if err := t.SetOptions(pid); err != nil {
		s.abortStart(pid)
		return Result{}, err
	}
	return s.follow(ctx, pid)
}

// follow traces the program from its exec stop (pid is stopped there,
// with the options set) until every task has ended.
func (s *session) follow(ctx context.Context, pid int) (Result, error) {
	s.mainPID = pid
	s.setLive(pid, pid)
	if s.cfg.Watchpoints == "off" || s.cfg.Mode == Step {
		s.hw = hwOff // --step steps every write: nothing for watchpoints to add
	}
	mm, err := s.newAddrSpace(pid)
	if err != nil {
		s.abortStart(pid)
		return Result{}, fmt.Errorf("%w: %v", ErrCannotTrace, err)
	}
	main := &task{pid: pid, proc: &process{tgid: pid, mm: mm, main: true}, state: taskRunning,
		exitStops: exitStopsOn} // run: ptrace.Options, at its exec stop
	s.register(main)
	if s.cfg.Prefetch {
		// The program's and its libraries' symbols are read while it
		// runs to its first vfork, not when that vfork holds it.
		s.goOffCPU(func() { prefetchProgram(s.cfg.Path) })
	}

	if s.hw == hwAuto {
		s.probeHW(main)
	}
	s.emit(&event.Start{Header: s.hdr("start", pid), Argv: s.cfg.Argv, Mode: s.cfg.Mode.String(),
		Version: s.cfg.Version, NoASLR: s.cfg.NoASLR, FullWatch: s.cfg.FullWatch, CPU: s.cfg.CPU, Watchpoints: s.hw.String(),
		WatchpointProbe: s.hwProbe})
	ex := &event.Exec{Header: s.hdr("exec", pid), Path: s.p.ExePath(pid), Arch: mm.arch.Name}
	if ex.Path == "" {
		ex.Path = s.cfg.Path
	}
	if isScript(s.cfg.Path) {
		// The kernel ran the #! line's interpreter: that is the program
		// (and its arch); the script is what the user named.
		ex.Script = s.cfg.Path
	}
	s.emit(ex)

	stopWatch := s.watchStops(ctx)
	defer stopWatch()

	s.cont(main, 0)
	s.loop()
	s.claimEnd()
	if err := s.goroutineErr(); err != nil {
		return Result{}, err // no verdict: the caller reports the error, then one
	}
	return s.finish(), nil
}

// isScript reports whether the file at path starts with "#!".
func isScript(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [2]byte
	n, _ := f.Read(b[:])
	return n == 2 && string(b[:]) == "#!"
}

// abortStart kills the program after a failed start and reaps it. Once
// its options are set, the SIGKILLed program stops once more, at its exit
// (PTRACE_O_TRACEEXIT: an exit stop survives SIGKILL), and must be resumed
// from there to die; the wait ends when it is reaped (a child vtrace
// inherited and never traced is not waited for).
func (s *session) abortStart(pid int) {
	_ = s.p.Kill(pid, unix.SIGKILL)
	for {
		st, err := s.p.Wait()
		if err != nil {
			return
		}
		switch {
		case st.PID == pid && (st.Status.Exited() || st.Status.Signaled()):
			return
		case st.Status.Stopped():
			_ = s.p.Cont(st.PID, 0)
		}
	}
}

// loop dispatches stops until no tracee is left. Stories start here (a
// vfork of a running task) and run to their end before the loop goes on.
func (s *session) loop() {
	for {
		if s.mainEnded && s.cfg.AfterExit != "follow" && s.anyLeftRunning() {
			// No story is in progress here: the processes the program
			// left running are let go (first reason wins: a budget that
			// stopped the run already is not replaced).
			s.stopRun(stopProgramExit, "")
		}
		if len(s.heldParents) > 0 && !s.stopping() {
			p := s.heldParents[0]
			s.heldParents = s.heldParents[1:]
			s.storyOutside(p)
			continue
		}
		s.sweep()
		if st, ok := s.takePostponed(); ok {
			s.dispatch(st)
			continue
		}
		if len(s.byPID) == 0 && len(s.unknown) == 0 {
			// Every traced task is reaped (or let go). Zombies the program
			// left (vfork children it never reaped, adopted by vtrace, the
			// subreaper, when it died) are reaped; children vtrace
			// inherited and never traced are not waited for.
			s.p.ReapDead()
			return
		}
		st, err := s.p.Wait()
		if err != nil {
			// ECHILD: every task (and every orphan we adopted) is reaped.
			return
		}
		s.dispatch(st)
	}
}

// anyLeftRunning reports whether a traced task other than one already
// dying (its exit stop seen, only its reaping to come) is left: what the
// program left running when it ended.
func (s *session) anyLeftRunning() bool {
	if len(s.unknown) > 0 {
		return true
	}
	for _, t := range s.byPID {
		if t.state != taskEnded {
			return true
		}
	}
	return false
}

// takePostponed returns a stop that arrived while a story owned its task,
// once no story owns it any more.
func (s *session) takePostponed() (ptrace.Stop, bool) {
	for pid, st := range s.postponed {
		if t := s.byPID[pid]; t == nil || t.state != taskFollowed {
			delete(s.postponed, pid)
			return st, true
		}
	}
	return ptrace.Stop{}, false
}

// dispatch handles a stop of a task no story is waiting for: new tasks,
// exits, signals, execs, vforks, and breakpoints hit by tasks they were
// not planted for.
func (s *session) dispatch(st ptrace.Stop) {
	t := s.byPID[st.PID]
	if t == nil {
		if s.unknownLetGo(st) { // attach.go: let go, not killed
			return
		}
		if st.Status.Stopped() {
			if s.stopping() {
				// A new task of a run that is ending: kill it, and let it go
				// on from this stop (and from its exit stop) to die.
				_ = s.p.Kill(st.PID, unix.SIGKILL)
				_ = s.p.Cont(st.PID, 0)
				return
			}
			if st.Event() == ptrace.EventExit {
				// A new task killed before vtrace learnt of it: its
				// creator was killed too (exit_group) while it sat in the
				// clone event stop, whose message is then unreadable
				// (eventMsg), so no creation event will ever name it. It
				// is dying: let it (held here, it kept its whole thread
				// group from being reaped, and vtrace waited for ever —
				// vtrace tracing vtrace).
				_ = s.p.Cont(st.PID, 0)
				return
			}
			s.unknown[st.PID] = st // a new task whose creation event is still to come
			return
		}
		delete(s.unknown, st.PID) // one killed before its creation event came (sweep)
		s.wakeReaped(st.PID)      // a wake command's exit, reaped by this wait
		return                    // an adopted orphan's exit, or a task already forgotten
	}
	ws := st.Status
	switch {
	case ws.Exited() || ws.Signaled():
		s.gone(t, ws)
	case s.detaching():
		s.detach(t, s.letGoSignal(t, st))
	case s.stopping():
		// The run is ending: no stop may hold a task, whatever state
		// vtrace had it in (a vfork child whose first stop came after the
		// sweep would otherwise wait there forever, and vtrace with it).
		_ = s.p.Kill(t.pid, unix.SIGKILL)
		s.cont(t, 0)
	case !ws.Stopped():
		s.cont(t, 0)
	case t.adrift && s.adriftStop(t, ws.StopSignal(), st.Event()): // giveway.go
	case st.Seized():
		s.seizedStop(t, st) // attach.go: tasks of an attached process
	case st.Event() != 0:
		s.eventStop(t, st.Event())
	case ws.StopSignal() == unix.SIGSTOP && !t.firstStopSeen():
		s.firstStop(t)
	case ws.StopSignal() == unix.SIGTRAP && s.parkIfForeignBreakpoint(t):
	default:
		s.signalStop(t, ws.StopSignal())
	}
}

// restoreInherited puts the program's bytes back where a new process's
// copy of its creator's memory holds vtrace's int3s (newTask), at its
// first stop, before it runs.
func (s *session) restoreInherited(t *task) {
	for addr, orig := range t.inherited {
		_, _ = s.pokeByte(t.pid, addr, orig)
	}
	t.inherited = nil
}

// firstStop handles a new task's initial SIGSTOP: it runs on, unless it is
// a vfork child held for its story.
//
// A new process that is not a vfork child (a fork: a shell's subshell, a
// command substitution, a pipeline's stage, a hook git runs) is spared
// its exit stop here, as an exec'd vfork child is (childEnded): no story
// reads the end of a task that is not a vfork child (a vfork child of
// its own on a stack of its own gets the stop back in awaitFirstStop,
// one on its parent's stack does without, a parent followed as it
// exits is reaped instead: outGone), and the exit stop held every fork
// child at its end, a stop and two context switches on the way of the
// parent that waits for it (dash's `$(echo)`: five stops per fork, now
// four). Its own forks and threads inherit that. A thread keeps what its
// process has.
func (s *session) firstStop(t *task) {
	s.restoreInherited(t)
	if t.state == taskNewHeld {
		t.set(taskHeld)
		return
	}
	if t.proc.tgid == t.pid && !t.proc.main {
		_ = s.exitStops(t, false)
	}
	t.set(taskRunning)
	s.cont(t, 0)
}

func (s *session) eventStop(t *task, ev int) {
	switch ev {
	case ptrace.EventFork, ptrace.EventClone:
		if pid, ok := s.eventMsg(t, ev); ok {
			s.newTask(t, int(pid), ev == ptrace.EventClone, false)
		}
	case ptrace.EventVfork:
		if out, _ := s.vforkEvent(t, false); out != vforkSkipped {
			return
		}
		if s.detaching() {
			// --max-vforks with --on-budget detach: let it go here, in its
			// event stop (resumed, it would wait in vfork for its child,
			// and vtrace for it).
			s.detach(t, 0)
			return
		}
	case ptrace.EventExec:
		s.execStop(t)
	case ptrace.EventExit:
		if t.pid == s.mainPID {
			s.leakSanitizerNote(t)
		}
	}
	s.cont(t, 0)
}

// leakSanitizerNote says, at the program's exit stop (its memory and
// environment still readable), that its LeakSanitizer could not have run:
// the check stops the process's threads with ptrace, and a traced process
// has a tracer already. It reports a fatal error and the program exits 1
// (under strace and gdb too), where untraced it would not; the note says
// why, and how to run it under vtrace.
func (s *session) leakSanitizerNote(t *task) {
	// A failed check ends the program through the sanitizer's Die, with
	// a status other than 0 (ASan's exitcode 1, LSan's 23): a program
	// that exits 0 ran none (its own defaults turned it off).
	msg, err := s.p.EventMsg(t.pid)
	ws := unix.WaitStatus(msg)
	if err != nil || ws.Exited() && ws.ExitStatus() == 0 {
		return
	}
	if module := s.p.LeakSanitizer(t.pid); module != "" {
		end := fmt.Sprintf("exit status %d", ws.ExitStatus())
		if !ws.Exited() {
			end = "death by " + event.SignalName(int(ws.Signal())) // abort_on_error
		}
		s.note(0, event.NoteLeakSanitizer, fmt.Sprintf("the program has LeakSanitizer (%s): its leak check at exit needs ptrace, which a traced process refuses, so it failed and made the %s; run it with ASAN_OPTIONS=detect_leaks=0 under vtrace (README, \"Sanitizers\")", module, end))
	}
}

// vforkOutcome is what became of a vfork event.
type vforkOutcome int

const (
	vforkSkipped vforkOutcome = iota // the run is ending: no story; resume the parent
	vforkHeld                        // another story runs: the parent is held for later
	vforkRan                         // its story ran; the parent is where the story left it
)

// vforkEvent is the one entry of a vfork event into the engine, wherever
// it was seen. awaited says that a story was waiting for exactly this task
// (the vfork child of an outer story vforks in turn): its story runs now,
// nested. A vfork of a task nobody waits for runs now when no story is in
// progress, else its parent is held in its event stop until the stack of
// stories is empty.
//
// A story's error (it could not go on, or the run is stopping) is returned
// to a story that awaited the task; elsewhere it is reported and the run
// goes on.
func (s *session) vforkEvent(p *task, awaited bool) (vforkOutcome, error) {
	if !s.stopping() && s.cfg.MaxVforks > 0 && s.vforks >= s.cfg.MaxVforks {
		s.stopRun("max_vforks", fmt.Sprint(s.cfg.MaxVforks))
	}
	if s.stopping() {
		// The new child is registered so that it is killed too: left in
		// its initial stop, it would outlive vtrace.
		if msg, ok := s.eventMsg(p, ptrace.EventVfork); ok && s.byPID[int(msg)] == nil {
			s.newTask(p, int(msg), false, false)
		}
		return vforkSkipped, nil
	}
	if n := len(s.stories); !awaited && n > 0 && p.state != taskFollowed &&
		(s.stories[n-1].par.running || !s.inStoryMemory(p)) {
		// The story on top may be waiting, through its tasks, for this
		// one: its parent, followed after its child is gone, in a
		// shell's waitpid for the command whose own vfork this is
		// (nested shells, make); its child in a waitpid for a fork of
		// its own that vforks. Holding this parent until that story
		// ends would wait for ever: its story runs now, nested; stops
		// of the enclosing stories' tasks meanwhile are postponed for
		// them (waitFor). Only another thread of a story's memory (or
		// of its child's) is held while a child runs: the stories would
		// share the int3s and the stack.
		s.storyOutside(p)
		return vforkRan, nil
	}
	if !awaited && len(s.stories) > 0 {
		if msg, ok := s.eventMsg(p, ptrace.EventVfork); ok && s.byPID[int(msg)] == nil {
			s.newTask(p, int(msg), false, true)
		}
		p.set(taskHeld)
		s.heldParents = append(s.heldParents, p)
		return vforkHeld, nil
	}
	if !awaited {
		s.storyOutside(p)
		return vforkRan, nil
	}
	return vforkRan, s.story(p)
}

// inStoryMemory reports whether t runs in the memory of a story in
// progress (the parent's image, which its vfork child shares).
func (s *session) inStoryMemory(t *task) bool {
	for _, st := range s.stories {
		if t.proc.mm == st.mm {
			return true
		}
	}
	return false
}

// eventMsg is the message of the event stop t sits in
// (PTRACE_GETEVENTMSG): the new task of a fork, vfork or clone, the former
// tid of an exec. A SIGKILL — vtrace's own when the run stops, or anyone's
// — takes a task out of its event stop into its exit stop, where the
// message is its exit status (9): a pid read then would be some other
// process's (the mutation test saw "child 9"; vtrace waited for it for
// ever, and killed pid 9). The message is trusted only if the task's
// siginfo, read after it, still names the event: a task never goes back
// into an event stop it left.
func (s *session) eventMsg(t *task, ev int) (uint64, bool) {
	msg, err := s.p.EventMsg(t.pid)
	if err != nil || !s.inEvent(t, ev) {
		return 0, false
	}
	return msg, true
}

// inEvent reports whether t's siginfo names the event stop ev.
func (s *session) inEvent(t *task, ev int) bool {
	info, err := s.p.SigInfo(t.pid)
	return err == nil && info.Signo == int32(unix.SIGTRAP) && info.Code == int32(unix.SIGTRAP)|int32(ev)<<8
}

// storyOutside runs the story of a vfork no story awaited, reporting an
// error that cut it short.
func (s *session) storyOutside(p *task) {
	_ = s.story(p) // a story's own errors are in its events; errStopped ends the loop's next round
}

// execStop gives a process that exec'd a fresh address space.
func (s *session) execStop(t *task) {
	s.execSetup(t, s.p.ExePath(t.pid))()
}

// execSetup is execStop in two halves: it sets up the address space now
// (t stopped in its exec event) and returns what emits the exec event (or
// the note that the image is unreadable), for the caller to run where the
// event belongs in the log — after t has been resumed, if need be.
func (s *session) execSetup(t *task, path string) (emit func()) {
	// A non-leader thread's exec takes over the leader's pid; the old tid
	// is gone (its exit is never reported). The message is checked
	// (eventMsg) only when it names another tid: when it is t's own,
	// there is nothing to do whether it can be trusted or not (one
	// siginfo fewer at every spawn's exec). It is not even read when t's
	// process has no other thread vtrace knows of (every spawn's exec):
	// a thread that could exec is a traced one that runs, and those are
	// registered (a new one is held in its first stop until its creation
	// event registers it: tasks.unknown).
	msg, err := uint64(t.pid), error(nil)
	if t.proc.tasks > 1 {
		msg, err = s.p.EventMsg(t.pid)
	}
	if err == nil && int(msg) != t.pid && s.inEvent(t, ptrace.EventExec) {
		s.forget(int(msg))
		s.setGone(int(msg))
	}
	if err != nil || int(msg) != t.pid {
		// Another thread's exec: the task under this pid is that thread,
		// with its own options.
		t.exitStops = exitStopsUnknown
	}
	t.proc.mm = nil
	pid := t.pid
	mm, err := s.newAddrSpace(pid)
	if err != nil {
		return func() { s.note(0, event.NoteExecUnreadable, fmt.Sprintf("exec of %d: %v", pid, err)) }
	}
	t.proc.mm = mm
	return func() { s.emit(&event.Exec{Header: s.hdr("exec", pid), Path: path, Arch: mm.arch.Name}) }
}

// newTask registers a task created by parent (fork, vfork or clone event).
// A held task (a vfork child) stays in its initial stop until a story
// follows it; the state is set before a stop that arrived early is
// dispatched, or the child would run off unobserved.
func (s *session) newTask(parent *task, pid int, clone, held bool) *task {
	c := &task{pid: pid, state: taskNew, exitStops: parent.exitStops}
	if held {
		c.state = taskNewHeld
	}
	if clone && s.p.SameThreadGroup(parent.proc.tgid, pid) {
		c.proc = parent.proc
	} else if !held && parent.proc.mm != nil && !s.copiesMemory(parent, false) {
		// clone(CLONE_VM) without CLONE_THREAD or CLONE_VFORK (the kernel
		// reports a fork event): a process of its own in the parent's
		// memory — vtrace's int3s there are its too (an int3 it runs into
		// is vtrace's, not a SIGTRAP to deliver to it), and it shares the
		// memory as a thread does (sharedWithOthers, onThread).
		c.proc = &process{tgid: pid, mm: parent.proc.mm}
	} else {
		// A fork copies the address space: same mappings, own memory. A
		// vfork child shares it until it execs; the story sets that up.
		c.proc = &process{tgid: pid, mm: parent.proc.mm.forkCopy(pid)}
		if parent.proc.mm != nil && len(parent.proc.mm.bps) > 0 && s.copiesMemory(parent, held) {
			// A fork (not a vfork: that child shares the memory) made
			// while vtrace's int3s sit in the parent's memory copies them:
			// the child would trap on them where the program has none
			// (targets/forkinchild.c: a fork inside a call the vfork child
			// runs at full speed). So does a clone(CLONE_VFORK) without
			// CLONE_VM, which the kernel reports as a vfork (held).
			c.inherited = map[uint64]byte{}
			for addr, bp := range parent.proc.mm.bps {
				c.inherited[addr] = bp.orig
			}
		}
	}
	s.register(c)
	s.setLive(pid, c.proc.tgid)
	if st, ok := s.unknown[pid]; ok {
		delete(s.unknown, pid)
		s.dispatch(st)
	}
	return c
}

// copiesMemory reports whether the new process whose creation parent's
// event stop reports has a copy of parent's memory, with vtrace's int3s
// in it to undo (rather than parent's own memory: a vfork, or a clone or
// clone3 with CLONE_VM — which the kernel reports as a fork event when it
// has no CLONE_VFORK). vfork says which event: for a vfork event only
// flags read without CLONE_VM make a copy (clone(CLONE_VFORK|SIGCHLD));
// when they cannot be read the child is taken to share the memory, as the
// story does (begin). For a fork event, only a known sharing is sharing.
func (s *session) copiesMemory(parent *task, vfork bool) bool {
	var regs arch.Regs
	if s.p.Regs(parent.pid, &regs) != nil {
		return !vfork
	}
	m := s.cloneCallAt(parent.pid, &regs).memory()
	if vfork {
		return m == memCopy
	}
	return m != memShared
}

// signalStop handles a signal-delivery stop (or a group-stop) outside a story.
//
// A benign signal (the SIGCHLD that ends every spawn of a program that
// waits for its children) is passed on without its siginfo: only a stop
// signal's stop can be a group-stop, and no process dies of a benign
// signal, so its details would never be told (recordFault, faultOf).
func (s *session) signalStop(t *task, sig unix.Signal) {
	if benign(sig) {
		s.cont(t, int(sig))
		return
	}
	info, err := s.p.SigInfo(t.pid)
	if err != nil {
		// EINVAL: a group-stop, not a signal delivery. Resuming ends it
		// (vtrace does not emulate job control for tracees).
		s.cont(t, 0)
		return
	}
	s.recordFault(t, sig, info)
	s.cont(t, int(sig))
}

// gone handles a task's death (it was reaped).
func (s *session) gone(t *task, ws unix.WaitStatus) {
	if t.reaped {
		return // handled when it was reaped, in a nested story (tasks.deaths)
	}
	t.reaped = true
	s.forget(t.pid)
	s.setGone(t.pid)
	if t.proc.main && t.pid == t.proc.tgid {
		s.mainEnded = true
	}
	if t.state == taskEnded || t.pid != t.proc.tgid {
		return
	}
	ev := &event.Exit{Header: s.hdr("exit", t.pid), Main: t.proc.main}
	if ws.Exited() {
		code := ws.ExitStatus()
		ev.Status, ev.Code = "exited", &code
	} else {
		ev.Status, ev.Signal = "signaled", event.SignalName(int(ws.Signal()))
		if f, ok := s.faultOf(t.proc, ws.Signal(), t.proc.mm); ok {
			ev.SiCode, ev.Addr, ev.PC, ev.Sym = f.siCode, f.addr, f.pc, f.sym
		}
	}
	s.emit(ev)
}

// cont continues a stopped task, delivering sig. Errors mean the task is
// gone (killed meanwhile); its exit will be reaped.
func (s *session) cont(t *task, sig int) {
	s.unclobberTF(t)
	_ = s.p.Cont(t.pid, sig)
}

// flagsFixup is what stepping a pushf leaves to undo (stepFlags).
type flagsFixup struct {
	slot uint64 // where the pushf stores the flags (the stack pointer after it)
	next uint64 // the pc after the pushf
}

// stepFlags is called before vtrace single-steps the instruction at pc,
// for the instructions that move the trap flag between the flags register
// and memory. While vtrace steps a task the CPU's TF is really set:
//   - a popf that loads a clear trap flag marks the task (task.clearTF;
//     rr#3270's `pushw; popfw` then trapped the program at full speed,
//     killing it with a SIGTRAP it never asked for);
//   - a pushf stores vtrace's TF into the program's memory, and the popf
//     that loads it back later sets it as the program's own (the kernel
//     stops counting it as the tracer's: arch/x86/kernel/step.c,
//     is_setting_trap_flag), so the task traps at full speed (Go's
//     runtime.asyncPreempt saves the flags so; targets/pushfvfork.c). The
//     returned fixup clears it in the stored word after the step, as gdb
//     does after a displaced pushf, unless the program's own TF was set.
func (s *session) stepFlags(t *task, pc uint64) *flagsFixup {
	mm := t.proc.mm
	if mm == nil {
		return nil
	}
	in, err := s.insnAt(mm, t.pid, pc)
	if err != nil {
		return nil
	}
	var size int
	switch in.Inst.Op {
	case x86asm.POPF, x86asm.POPFD, x86asm.POPFQ:
	case x86asm.PUSHF:
		size = 2
	case x86asm.PUSHFD:
		size = 4
	case x86asm.PUSHFQ:
		size = 8
	default:
		return nil
	}
	var regs arch.Regs
	if s.p.Regs(t.pid, &regs) != nil {
		return nil
	}
	if size == 0 { // popf
		var b [2]byte
		if s.p.ReadMem(t.pid, regs.SP(), b[:]) == nil && binary.LittleEndian.Uint16(b[:])&arch.FlagTF == 0 {
			t.clearTF = true
		}
		return nil
	}
	if regs.Flags&arch.FlagTF != 0 {
		return nil // the program's own trap flag (ptrace hides the one it forces)
	}
	return &flagsFixup{slot: regs.SP() - uint64(size), next: pc + uint64(in.Len)}
}

// undoPushedTF clears the trap flag vtrace's step left in the word a pushf
// stored, once the step is over: only when the pushf did execute (the task
// stands right after it, its stack pointer on the word).
func (s *session) undoPushedTF(t *task, fx *flagsFixup) {
	var regs arch.Regs
	if s.p.Regs(t.pid, &regs) != nil || regs.PC() != fx.next || regs.SP() != fx.slot {
		return
	}
	var b [2]byte
	if s.p.ReadMem(t.pid, fx.slot, b[:]) != nil {
		return
	}
	if v := binary.LittleEndian.Uint16(b[:]); v&arch.FlagTF != 0 {
		binary.LittleEndian.PutUint16(b[:], v&^arch.FlagTF)
		_ = s.p.WriteMem(t.pid, fx.slot, b[:])
	}
}

// unclobberTF clears the trap flag of a task about to run free when a
// single-stepped popf cleared it (task.clearTF): as the program left it.
func (s *session) unclobberTF(t *task) {
	if !t.clearTF {
		return
	}
	t.clearTF = false
	var regs arch.Regs
	if s.p.Regs(t.pid, &regs) == nil && regs.Flags&arch.FlagTF != 0 {
		regs.Flags &^= arch.FlagTF
		_ = s.p.SetRegs(t.pid, &regs)
	}
}

func (s *session) hdr(name string, pid int) event.Header {
	return event.Header{V: event.Version, Event: name, T: time.Since(s.start).Nanoseconds(), PID: pid}
}

func (s *session) emit(ev event.Event) {
	if s.cfg.Sink != nil {
		_ = s.cfg.Sink.Emit(ev)
	}
}

// note reports something about the trace itself (not about the target):
// a stable code, and the details (often an error from the system).
func (s *session) note(story int, code event.NoteCode, detail string) {
	s.emit(&event.Note{Header: s.hdr("note", s.mainPID), Vfork: story, Code: code, Msg: detail})
}

// finish emits the budget event (if any) and the run's verdict.
func (s *session) finish() Result {
	reason, limit := s.stopState()
	s.emitDetach(reason, limit) // attach.go
	if reason == stopProgramExit {
		reason = "" // the run went to the program's end: nothing was stopped
	}
	if reason != "" {
		s.emit(&event.Budget{Header: s.hdr("budget", s.mainPID), Budget: reason, Limit: limit})
	}
	v := s.tally.verdict()
	v.Header = s.hdr("verdict", s.mainPID)
	v.Incomplete = reason
	s.emit(v)
	return Result{Verdict: v.Verdict, Vforks: v.Vforks, Incomplete: reason, Steps: s.steps}
}

// prefetchProgram reads the program's symbols ahead (a variable: a test
// makes it panic).
var prefetchProgram = symbols.PrefetchProgram

// WaitIndexWrites waits, at most d, for the symbol index entries being
// built and written (the program's, read ahead on another goroutine) to be
// in place, and reports whether none is left: vtrace calls it before it
// exits, so that the next run of a short program with a big entry reads
// it rather than builds it again (symbols.WaitIndexWrites).
func WaitIndexWrites(d time.Duration) bool { return symbols.WaitIndexWrites(d) }

// goOffCPU runs fn on its own goroutine (see offCPU). A panic there is a
// bug in vtrace, not the end of vtrace: it is recovered, the run is
// stopped (every tracee killed) and Run returns it as an internal error,
// which the log records as its error event before the verdict.
func (s *session) goOffCPU(fn func()) {
	offCPU(s.cfg.CPU, func() {
		defer func() {
			if r := recover(); r != nil {
				if s.cfg.Debug {
					fmt.Fprintf(os.Stderr, "%v\n%s", r, debug.Stack())
				}
				s.stopMu.Lock()
				if s.goErr == nil {
					s.goErr = fmt.Errorf("internal error: %v (in a background goroutine; tracees killed; --debug shows the stack)", r)
				}
				s.stopMu.Unlock()
				s.stopRun("interrupt", "internal error")
				s.wakeTracer()
				s.armWatchdog()
			}
		}()
		fn()
	})
}

// goroutineErr is the panic a goroutine of the session recovered, if any.
func (s *session) goroutineErr() error {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	return s.goErr
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
