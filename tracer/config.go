package tracer

import (
	"os"
	"time"

	"github.com/vtrace/vtrace/tracer/event"
)

// Mode chooses how the vfork child is followed.
type Mode int

const (
	// Fast is depth-guided stepping: the child is single-stepped only in the
	// vfork-calling frame and the frames it returns into; each call made
	// from there runs at full speed up to an int3 at its return address,
	// and writes made inside it are found by diffing the parent's live
	// stack (or named exactly by debug registers where they fire).
	Fast Mode = iota
	// Step single-steps every instruction of the child.
	Step
)

func (m Mode) String() string {
	if m == Step {
		return "step"
	}
	return "fast"
}

// Sink receives the events of a run, in order, on the tracer thread.
type Sink interface {
	Emit(ev event.Event) error
}

// Config is what to trace and how.
type Config struct {
	Path  string   // resolved executable path
	Argv  []string // argv[0] included
	Env   []string
	Files []*os.File // the target's stdin, stdout, stderr

	// AttachPID, if set, is a running process to attach to (vtrace
	// attach) instead of starting Path: it is let go, never killed, when
	// the run is stopped.
	AttachPID int

	Mode       Mode
	TraceInsns bool // --trace-insns: a child_step event per child instruction (step mode)
	NoASLR     bool
	// CPU pins the tracer thread and its tracees; -1 leaves them unpinned.
	CPU int
	// Watchpoints: "auto" probes debug registers and uses them when they
	// fire, "off" never arms them.
	Watchpoints string
	// FullWatch: fast mode watches all of the parent's writable memory in
	// glibc's posix_spawn children too (memory.go, libcSpawnChild).
	FullWatch bool

	// Budgets. The run-level ones (MaxSteps, MaxVforks, Timeout,
	// MaxViolations) stop the run: every traced process is killed, or
	// detached when OnBudget is "detach". MaxStorySteps only cuts the one
	// story short (it is judged on what was seen; its tasks run on) — the
	// runaway protection that leaves a healthy workload alone: a program
	// that restarts itself through a clobbered return address (the -O2
	// seed) is stopped by MaxViolations, not by counting its vforks.
	MaxSteps      int64         // single-steps over the whole run; 0 = unlimited
	MaxVforks     int           // vfork stories; 0 = unlimited
	Timeout       time.Duration // 0 = none
	MaxViolations int           // violating stories; 0 = unlimited
	MaxStorySteps int64         // single-steps in one story; 0 = unlimited
	OnBudget      string        // "kill" (default) or "detach"
	// AfterExit is what becomes of the traced processes still running when
	// the program itself has ended (a daemon or a background job it
	// started): "release" (default) lets them go on untraced once no story
	// is in progress, so that the run ends with the program, as the
	// program's caller sees it end natively; "follow" traces them to their
	// end, as strace -f does.
	AfterExit string

	// Prefetch reads the program's and its libraries' symbols on another
	// goroutine while the program starts (worth it with a second CPU).
	Prefetch bool

	Version string
	Sink    Sink

	// WakeCommand is a program that exits at once, started when the run
	// is stopped from outside the tracer thread: its exit ends the
	// tracer's blocking wait4 (default: /bin/sh -c :). cmd/vtrace points
	// it at its own binary.
	WakeCommand []string
	// Debug prints the stack of an internal error.
	Debug bool

	// OnStuck, if set, arms the watchdog (watchdog.go): when the run was
	// stopped from outside the tracer thread (the timeout, a signal, the
	// context) or its Timeout has passed, and the tracer thread has not
	// finished within StuckGrace (0: DefaultStuckGrace), OnStuck is
	// called, once, on another goroutine, with an internal error to
	// report. It is expected to end the process (whose exit makes the
	// kernel kill every tracee: PTRACE_O_EXITKILL); Run does not return
	// then.
	OnStuck    func(err error)
	StuckGrace time.Duration
}

// Defaults used by the CLI: no limit on a run's length, vforks or steps —
// a clean 100,000-spawn build runs to its end — but at most 100 violating
// stories, and 2,000,000 single-steps (about half a minute) per story.
const (
	DefaultMaxSteps      = 0
	DefaultMaxVforks     = 0
	DefaultTimeout       = 0
	DefaultMaxViolations = 100
	DefaultMaxStorySteps = 2_000_000
)

// Result summarises a finished run.
type Result struct {
	Verdict    event.Judgement
	Vforks     int
	Incomplete string // budget that stopped the run, if any
	Steps      int64
}
