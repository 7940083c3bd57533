package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vtrace/vtrace/tracer"
	"github.com/vtrace/vtrace/tracer/event"
)

// When the tracer thread is stuck (tracer/watchdog.go), the engine's
// watchdog calls OnStuck on another goroutine; vtrace then ends the run
// itself: the log gets an error event (internal) and the verdict
// (incomplete "error"), stderr one line, and vtrace exits 126 — an
// internal error, as for a panic: vtrace failed to end the run it was
// asked to bound, which a budget's 124 ("the program took too long")
// would hide. The kernel kills every tracee as vtrace exits
// (PTRACE_O_EXITKILL).

// sinkGuard is the one way into a run's sinks (the log, the text report,
// the evidence): the tracer thread writes each event under its lock, and
// the watchdog writes the log's last lines only once it holds it — never
// in the middle of an event — and then seals it: the tracer thread, if it
// comes back, writes nothing more.
type sinkGuard struct {
	mu     sync.Mutex
	sealed bool
	sink   tracer.Sink
}

var errSealed = errors.New("the watchdog ended the run")

func (g *sinkGuard) Emit(ev event.Event) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sealed {
		return errSealed
	}
	return g.sink.Emit(ev)
}

// takeOver takes the lock, waiting at most d (the tracer thread may be
// stuck inside a write: a full pipe), and seals the sinks. It reports
// whether it got the lock, which it then keeps: the process is ending.
func (g *sinkGuard) takeOver(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !g.mu.TryLock() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	g.sealed = true
	return true
}

// exitProcess ends vtrace (a variable for the tests of stuckHandler).
var exitProcess = os.Exit

// guardSinks puts cfg's sinks behind a sinkGuard and sets the engine's
// OnStuck: the log's error event and verdict, one line on stderr, exit
// 126.
//
// It also reserves the OS threads the run will need (threads.go), now,
// before the program can use up its cgroup's pids.
func guardSinks(cfg *tracer.Config, ts traceSinks, log *runLog, stderr io.Writer) {
	go reserveThreads(spareThreads) // beside the program's start, not before it
	g := &sinkGuard{sink: cfg.Sink}
	cfg.Sink = g
	cfg.OnStuck = func(err error) {
		if g.takeOver(time.Second) {
			_ = log.fail(traceError{err: err}, ts.sum) // its error event: internal
		} else {
			err = fmt.Errorf("%w (the log could not be ended: a write to it never returned)", err)
		}
		printWithin(stderr, "vtrace: "+err.Error()+"\n", 500*time.Millisecond)
		exitProcess(exitCannotRun)
	}
}

// printWithin writes msg to w unless that takes longer than d (a stderr
// pipe nobody reads must not hold vtrace's exit).
func printWithin(w io.Writer, msg string, d time.Duration) {
	done := make(chan struct{})
	go func() {
		_, _ = io.WriteString(w, msg)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}
