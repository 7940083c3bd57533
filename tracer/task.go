package tracer

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/internal/ptrace"
)

// process is one thread group: its memory image and the signals it was
// last delivered.
type process struct {
	tgid int
	// mm is the image the process runs. A vfork child shares its parent's
	// until it execs; between an exec event and the new image's first
	// read (execStop) it is nil: the old image's breakpoints and code
	// cache no longer describe its memory.
	mm   *addrSpace
	main bool // the program vtrace started
	// faults are the last delivery of each signal to the process (a death
	// by one of them is told with its details: faultOf). One per signal:
	// a SIGCHLD another thread takes after a thread's SIGSEGV stop must
	// not hide the fault the process dies of.
	faults map[unix.Signal]*fault
	// tasks is how many of its threads are registered (tasks.register,
	// forget): with one, an exec event's task is the thread that exec'd
	// (execSetup).
	tasks int
}

// taskState is where a traced thread is in vtrace's hands. It changes only
// through task.set, which knows every legal move (the table below): the
// engine's assumptions about who may resume a task are written down once.
type taskState int

const (
	// taskNew: created by a fork/clone event; its first stop (SIGSTOP)
	// has not been seen. The dispatcher resumes it at that stop.
	taskNew taskState = iota
	// taskNewHeld: a vfork child whose first stop has not been seen; it
	// must stay there until its story starts following it.
	taskNewHeld
	// taskHeld: stopped and kept so — a vfork child waiting for its story
	// (its first stop seen), or a vfork parent held in its event stop
	// while another story runs.
	taskHeld
	// taskRunning: running free; the dispatcher handles its stops.
	taskRunning
	// taskFollowed: a story owns its stops (the child or the parent of a
	// vfork being followed); the dispatcher never resumes it.
	taskFollowed
	// taskParked: stopped on an int3 planted for another task of its
	// address space, rewound onto the original instruction; resumed when
	// that breakpoint is removed.
	taskParked
	// taskEnded: a vfork child whose end its story reported; only its exit
	// stop and its reaping are still to come.
	taskEnded
)

var taskStateNames = [...]string{"new", "new-held", "held", "running", "followed", "parked", "ended"}

func (s taskState) String() string { return taskStateNames[s] }

// taskMoves lists, for each state, the states a task may move to.
var taskMoves = map[taskState][]taskState{
	taskNew:      {taskRunning, taskNewHeld},
	taskNewHeld:  {taskHeld, taskNew},
	taskHeld:     {taskFollowed, taskRunning},
	taskRunning:  {taskFollowed, taskHeld, taskParked},
	taskFollowed: {taskRunning, taskEnded},
	taskParked:   {taskRunning},
	taskEnded:    {},
}

// task is one traced thread.
type task struct {
	pid   int
	proc  *process
	state taskState
	// parkedAt is the breakpoint a parked task waits on.
	parkedAt uint64
	// clearTF: vtrace single-stepped a popf that cleared the trap flag.
	// The kernel then takes the TF it sets for each later step for the
	// program's own and leaves it set when the task is continued: it is
	// cleared before the task runs free again (unclobberTF).
	clearTF bool
	// halted: the run lets its tasks go, and vtrace made this one report a
	// stop (haltForDetach: a SIGSTOP, or PTRACE_INTERRUPT if seized).
	halted bool
	// adrift: a story gave way while waiting for this task, which runs
	// (giveway.go); its next stop clears what the story left on it.
	adrift bool
	// inherited are the int3s (address -> original byte) planted in the
	// memory a fork copied into this task: undone at its first stop,
	// before it runs an instruction (firstStop), or when it is let go
	// there (detach).
	inherited map[uint64]byte
	// exitStops is whether the task has PTRACE_O_TRACEEXIT, as far as
	// vtrace knows: set by the options it gave the task (ExitStops, the
	// program's first stop), inherited by a new task from the task whose
	// event made it (the kernel copies the tracer's options to a task it
	// attaches automatically: ptrace_init_task), kept by an exec (the
	// options are the task's, exec leaves them) but unknown after a
	// thread's exec (it takes over the leader's pid, not its options).
	exitStops exitStopsState
	// reaped: its death was handled (gone); a story that took the death
	// later (tasks.deaths) handles it again, and gone does nothing then.
	reaped bool
	// dr is what vtrace wrote to its debug registers (setDR).
	dr drCache
}

// exitStopsState is a task's PTRACE_O_TRACEEXIT: unknown, on or off.
type exitStopsState int8

const (
	exitStopsUnknown exitStopsState = iota
	exitStopsOn
	exitStopsOff
)

// set moves the task to a new state; a move the table does not allow is a
// bug in vtrace (the session turns the panic into an internal error and
// kills every tracee).
func (t *task) set(to taskState) {
	if t.state == to {
		return
	}
	for _, ok := range taskMoves[t.state] {
		if ok == to {
			t.state = to
			return
		}
	}
	panic(fmt.Sprintf("task %d: illegal state change %s -> %s", t.pid, t.state, to))
}

// firstStopSeen reports whether the task's initial SIGSTOP has come.
func (t *task) firstStopSeen() bool { return t.state != taskNew && t.state != taskNewHeld }

// tasks is the registry of traced threads and of the stops that arrive
// before vtrace can take them.
type tasks struct {
	byPID map[int]*task
	// unknown holds stops of pids whose creation event has not been seen
	// yet: a new child's SIGSTOP can arrive before its parent's
	// fork/vfork/clone event.
	unknown map[int]ptrace.Stop
	// postponed holds stops of tasks an enclosing story owns that arrived
	// while a nested story waited for another task; that story takes them
	// when it waits for the task again.
	postponed map[int]ptrace.Stop
	// deaths holds the deaths of tasks an enclosing story owns that were
	// reaped while a nested story waited for another task: handled at
	// once (gone: the exit event, the registry), and kept for the story
	// that waits for the task again, which would wait for ever for a stop
	// of a task that no longer exists (a shell without exit stops,
	// followed through a call, exiting while another shell's story ran:
	// diesnested.c, make -j4). Not a stop vtrace holds (giveway.go:
	// holding).
	deaths map[int]ptrace.Stop
}

// register makes t the task under its pid.
func (ts *tasks) register(t *task) {
	ts.forget(t.pid)
	ts.byPID[t.pid] = t
	if t.proc != nil {
		t.proc.tasks++
	}
}

// forget removes the task under pid, if any, from the registry.
func (ts *tasks) forget(pid int) {
	if t := ts.byPID[pid]; t != nil {
		if t.proc != nil {
			t.proc.tasks--
		}
		delete(ts.byPID, pid)
	}
}

func newTasks() tasks {
	return tasks{byPID: map[int]*task{}, unknown: map[int]ptrace.Stop{}, postponed: map[int]ptrace.Stop{}, deaths: map[int]ptrace.Stop{}}
}
