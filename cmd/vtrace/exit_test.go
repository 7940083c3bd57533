package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// shellStatus is the status a shell reports for a command run without
// vtrace: its exit code, or 128+N when signal N killed it. It is the
// ground truth of the "no violation" rows of the exit status table.
func shellStatus(t *testing.T, argv ...string) int {
	t.Helper()
	err := exec.Command(argv[0], argv[1:]...).Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	t.Fatalf("%v: %v", argv, err)
	return -1
}

// cancelOnWrite cancels a run's context at the first write of its text
// report — the start line, written once the program runs — to interrupt
// that run the way SIGINT does (the engine stops on either).
type cancelOnWrite struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	cancel context.CancelFunc
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cancel()
	return w.buf.Write(p)
}

// TestExitStatusTable runs vtrace in-process, run(ctx, args, stdout,
// stderr), for every row of the exit status table (README "Exit status",
// `vtrace run --help`), and checks the code main would exit with.
func TestExitStatusTable(t *testing.T) {
	vtraceBin(t) // skips where ptrace is not permitted
	seed := targetPath(t, "gcc-O0", "badvfork")
	dir := t.TempDir()
	// A file with the execute bit that is no program: execve says ENOEXEC.
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("\x00\x01 not a program\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Ground truth for the program-status rows: what a shell reports for
	// the same commands run alone.
	segv := []string{"sh", "-c", "kill -SEGV $$"}
	if got := shellStatus(t, segv...); got != 128+int(syscall.SIGSEGV) {
		t.Fatalf("sh killing itself with SIGSEGV: status %d, want %d", got, 128+int(syscall.SIGSEGV))
	}
	cases := []struct {
		name   string
		args   []string
		want   int
		stderr string // a substring of what vtrace says
		log    string // with -o LOG: the log's error event kind ("" = a normal log)
	}{
		{name: "program exits 0", args: []string{"-q", "--", "true"}, want: shellStatus(t, "true")},
		{name: "program exits 7", args: []string{"-q", "--", "sh", "-c", "exit 7"}, want: shellStatus(t, "sh", "-c", "exit 7")},
		{name: "program killed by SIGSEGV", args: append([]string{"-q", "--"}, segv...), want: 139},
		// The seed program's first vfork is a violation (targets/README.md),
		// and the program then dies of SIGSEGV: the violation wins.
		{name: "violation", args: []string{"-q", seed}, want: 1, stderr: "violation"},
		{name: "violation --error-exitcode 42", args: []string{"-q", "--error-exitcode", "42", seed}, want: 42},
		{name: "usage: duration without a unit", args: []string{"--timeout", "5", "true"}, want: 125, stderr: "use a unit, e.g. 5s"},
		{name: "usage: negative budget", args: []string{"--max-vforks", "-1", "true"}, want: 125, stderr: "must not be negative"},
		{name: "usage: negative steps", args: []string{"--max-steps", "-5", "true"}, want: 125, stderr: "must not be negative"},
		{name: "usage: -q and -v", args: []string{"-q", "-v", "true"}, want: 125},
		{name: "usage: no program", args: nil, want: 125, stderr: "no program"},
		{name: "usage: unknown flag", args: []string{"--no-such-flag", "true"}, want: 125},
		{name: "usage: --error-exitcode 300", args: []string{"--error-exitcode", "300", "true"}, want: 125},
		{name: "cannot trace: not executable", args: []string{"-o", filepath.Join(dir, "noexec.jsonl"), "/etc/passwd"}, want: 126,
			stderr: "permission denied", log: "cannot_trace"},
		{name: "cannot trace: exec format error", args: []string{"-o", filepath.Join(dir, "enoexec.jsonl"), garbage}, want: 126,
			stderr: "exec format error", log: "cannot_trace"},
		{name: "not found", args: []string{"-o", filepath.Join(dir, "notfound.jsonl"), "/nonexistent/prog"}, want: 127,
			stderr: "no such file", log: "not_found"},
		{name: "not found in PATH", args: []string{"vtrace-no-such-program"}, want: 127, stderr: "not found in PATH"},
		// /dev/full: every write fails with ENOSPC.
		{name: "log write failed: disk full", args: []string{"-q", "-o", "/dev/full", "--", "sh", "-c", "echo ran"}, want: 74,
			stderr: "no space left on device"},
		// --step --max-steps 100 stops the seed inside its first vfork
		// child, before any violation is seen (TestBudgetMidStory).
		{name: "budget, no violation", args: []string{"-q", "--step", "--max-steps", "100", seed}, want: 124, stderr: "clean (incomplete: max_steps)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"run"}, c.args...), &stdout, &stderr)
			if got := exitCode(err); got != c.want {
				t.Fatalf("exit status %d (%v), want %d\nstderr: %s", got, err, c.want, stderr.String())
			}
			said := stderr.String()
			if err != nil && !silent(err) {
				said += err.Error()
			}
			if !strings.Contains(said, c.stderr) {
				t.Errorf("vtrace said %q, want it to say %q", said, c.stderr)
			}
			if c.log != "" {
				evs := readLogFile(t, c.args[1])
				e, ok := evs[0].(*event.Error)
				if len(evs) != 2 || !ok || e.Kind != c.log || evs[1].(*event.Verdict).Incomplete != "error" {
					t.Errorf("log %s: %d events, first %#v; want an error event (%s) and the verdict (incomplete: error)", c.args[1], len(evs), evs[0], c.log)
				}
			}
		})
	}

	t.Run("log write failed: disk full, the program ran", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"run", "-q", "-o", "/dev/full", "--", "sh", "-c", "echo ran"}, &stdout, &stderr)
		if exitCode(err) != 74 || stdout.String() != "ran\n" {
			t.Errorf("exit %d, program stdout %q; want 74 and the program's own output", exitCode(err), stdout.String())
		}
	})

	// A log on a stdout whose reader has gone (EPIPE): the trace goes on,
	// the program's output (on stderr with --json) is complete, exit 74.
	t.Run("log write failed: closed pipe", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		defer w.Close()
		var stderr bytes.Buffer
		err = run(context.Background(), []string{"run", "-q", "--json", "--", "seq", "1000"}, w, &stderr)
		if got := exitCode(err); got != 74 || !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("exit %d (%v), want 74 for a broken pipe", got, err)
		}
		want, _ := exec.Command("seq", "1000").Output()
		if !strings.HasPrefix(stderr.String(), string(want)) {
			t.Errorf("the program's output on stderr is not complete: %q … %q", stderr.String()[:min(300, stderr.Len())], tail(stderr.String(), 200))
		}
	})

	// An interrupt (the context cancelled once the program runs; SIGINT
	// does the same) stops a run that saw no violation: 130, as a shell
	// reports SIGINT, never 0.
	t.Run("interrupt, no violation", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stderr := &cancelOnWrite{cancel: cancel}
		var stdout bytes.Buffer
		err := run(ctx, []string{"run", "--", "sleep", "60"}, &stdout, stderr)
		if got := exitCode(err); got != 128+int(syscall.SIGINT) {
			t.Errorf("exit %d (%v), want %d\nstderr: %s", got, err, 128+int(syscall.SIGINT), stderr.buf.String())
		}
		if !strings.Contains(stderr.buf.String(), "run stopped: interrupt") {
			t.Errorf("the verdict does not say the run was interrupted:\n%s", stderr.buf.String())
		}
	})
}

func readLogFile(t *testing.T, path string) []event.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("log: %v", err)
	}
	defer f.Close()
	evs, err := event.ReadLog(f)
	if err != nil {
		t.Fatalf("log %s: %v", path, err)
	}
	return evs
}
