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

	Mode       Mode
	TraceInsns bool // --trace-insns: a child_step event per child instruction (step mode)
	NoASLR     bool
	// CPU pins the tracer thread and its tracees; -1 leaves them unpinned.
	CPU int
	// Watchpoints: "auto" probes debug registers and uses them when they
	// fire, "off" never arms them.
	Watchpoints string

	MaxSteps  int64         // single-steps over the whole run; 0 = unlimited
	MaxVforks int           // vfork stories; 0 = unlimited
	Timeout   time.Duration // 0 = none

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
}

// Defaults used by the CLI.
const (
	DefaultMaxSteps  = 20_000_000
	DefaultMaxVforks = 100
	DefaultTimeout   = 60 * time.Second
)

// Result summarises a finished run.
type Result struct {
	Verdict    event.Judgement
	Vforks     int
	Incomplete string // budget that stopped the run, if any
	Steps      int64
}
