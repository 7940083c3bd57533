package tracer

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
)

// A panic in one of the session's own goroutines (the symbol prefetch) is
// a bug in vtrace: it must not crash the process with a goroutine dump
// (Go's exit 2, the usage code) nor leave the program stopped. Run
// returns it as an internal error, having killed every tracee, and emits
// no verdict of its own (the caller writes the error event, then one).
func TestGoroutinePanicIsAnInternalError(t *testing.T) {
	old := prefetchProgram
	defer func() { prefetchProgram = old }()
	prefetchProgram = func(string) { panic("prefetch exploded") }

	var rec recorder
	start := time.Now()
	_, err := Run(context.Background(), Config{
		Path: "/bin/sleep", Argv: []string{"sleep", "30"}, Env: os.Environ(),
		Mode: Fast, CPU: -1, Watchpoints: "off", Prefetch: true, Sink: &rec,
	})
	if err != nil && strings.Contains(err.Error(), "operation not permitted") {
		t.Skipf("ptrace not permitted here: %v", err)
	}
	if err == nil || !strings.HasPrefix(err.Error(), "internal error: prefetch exploded") {
		t.Fatalf("Run returned %v, want an internal error naming the panic", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the run took %v: the panic did not stop it (sleep 30 ran on)", d)
	}
	var pid int
	for _, ev := range rec.evs {
		if _, ok := ev.(*event.Verdict); ok {
			t.Errorf("a verdict was emitted before the error: %#v", ev)
		}
		if s, ok := ev.(*event.Start); ok {
			pid = s.PID
		}
	}
	if pid != 0 && unix.Kill(pid, 0) == nil {
		t.Errorf("the program (pid %d) outlived the run", pid)
	}
}
