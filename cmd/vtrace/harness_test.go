package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/event/logcheck"
)

// The integration tests run the real vtrace binary (VTRACE_BIN, or built
// once here) on the real targets (VTRACE_TARGETS, or built by make on
// demand), exactly as a user would, and read its JSON Lines log.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	ptraceOK  sync.Once
	ptraceMsg string
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func vtraceBin(t *testing.T) string {
	t.Helper()
	if _, err := builtVtrace(); err != nil {
		t.Fatal(err)
	}
	requirePtrace(t)
	return binPath
}

// builtVtrace is VTRACE_BIN, or a static vtrace built once here. Unlike
// vtraceBin it does not need the host to allow ptrace: the VM tests use it
// and still run where ptrace is not permitted.
func builtVtrace() (string, error) {
	buildOnce.Do(func() {
		if p := os.Getenv("VTRACE_BIN"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "vtrace-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "vtrace")
		cmd := exec.Command("go", "build", "-ldflags=-E=main.vtraceEntry", "-o", binPath, ".") // as the Makefile links it
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	return binPath, buildErr
}

// requirePtrace skips the calling test when this machine does not let a
// process trace its children at all — and only then.
func requirePtrace(t *testing.T) {
	t.Helper()
	ptraceOK.Do(func() {
		cmd := exec.Command(binPath, "run", "-q", "--", "/bin/true")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == exitCannotRun &&
			strings.Contains(stderr.String(), "not permitted") {
			ptraceMsg = strings.TrimSpace(stderr.String())
		}
	})
	if ptraceMsg != "" {
		t.Skipf("ptrace is not permitted on this machine: %s", ptraceMsg)
	}
}

// targetPath returns build/targets/<build>/<name>, building it if needed.
func targetPath(t *testing.T, build, name string) string {
	t.Helper()
	dir := os.Getenv("VTRACE_TARGETS")
	if dir == "" {
		dir = filepath.Join(repoRoot(), "build", "targets")
	}
	p := filepath.Join(dir, build, name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	rel, err := filepath.Rel(repoRoot(), p)
	if err != nil || strings.HasPrefix(rel, "..") {
		t.Fatalf("target %s missing and not buildable from here", p)
	}
	cmd := exec.Command("make", "-s", "-C", repoRoot(), rel)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", rel, err, out)
	}
	return p
}

// traced is one vtrace run's outcome.
type traced struct {
	events []event.Event
	exit   int
	stderr string
	stdout string // the target's output when the log goes to a file
}

// trace runs `vtrace run --json -o LOG ARGS...` and decodes the log.
func trace(t *testing.T, args ...string) *traced {
	t.Helper()
	return traceIn(t, nil, args...)
}

// traceIn is trace with stdin read from in (nil: none).
func traceIn(t *testing.T, in io.Reader, args ...string) *traced {
	t.Helper()
	return traceWrapped(t, in, nil, args...)
}

// traceWrapped is traceIn with vtrace's command line (the binary, then
// its arguments) run through wrap: the program and arguments that run it
// (nil: as it is).
func traceWrapped(t *testing.T, in io.Reader, wrap func(vtrace []string) []string, args ...string) *traced {
	t.Helper()
	bin := vtraceBin(t)
	log := filepath.Join(t.TempDir(), "log.jsonl")
	full := append([]string{"run", "--json", "-o", log}, args...)
	argv := append([]string{bin}, full...)
	if wrap != nil {
		argv = wrap(argv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, &stdout, &stderr
	err := cmd.Run()
	r := &traced{stderr: stderr.String(), stdout: stdout.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.exit = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("vtrace %v: %v", full, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("vtrace %v did not finish in time", full)
	}
	raw, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("vtrace %v wrote no log (exit %d): %v\nstderr: %s", full, r.exit, err, r.stderr)
	}
	if r.events, err = event.ReadLog(bytes.NewReader(raw)); err != nil {
		t.Fatalf("vtrace %v (exit %d): %v\nstderr: %s", full, r.exit, err, r.stderr)
	}
	checkLog(t, strings.Join(full, " "), raw)
	return r
}

// checkLog validates a log the suite produced against docs/log.schema.json
// and the documented event order (tracer/event/logcheck). Every test that
// traces goes through here (trace, the VM jobs), so every target, build and
// mode the suite runs is checked.
func checkLog(t *testing.T, what string, raw []byte) {
	t.Helper()
	problems, err := logcheck.Check(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for _, p := range problems {
		t.Errorf("%s: the log breaks its contract: %v", what, p)
	}
}

func (r *traced) verdict() *event.Verdict { return r.events[len(r.events)-1].(*event.Verdict) }

// all returns the events of type T, in order.
func all[T event.Event](r *traced) []T {
	var out []T
	for _, ev := range r.events {
		if e, ok := ev.(T); ok {
			out = append(out, e)
		}
	}
	return out
}

// ofVfork filters events of one story.
func ofVfork[T event.Event](r *traced, n int) []T {
	var out []T
	for _, e := range all[T](r) {
		if storyOf(e) == n {
			out = append(out, e)
		}
	}
	return out
}

func storyOf(ev event.Event) int {
	b, _ := json.Marshal(ev)
	var m struct {
		Vfork int `json:"vfork"`
	}
	_ = json.Unmarshal(b, &m)
	return m.Vfork
}

func symStr(y *event.Sym) string { return y.String() }

// mainExit returns the exit event of the program vtrace started.
func (r *traced) mainExit(t *testing.T) *event.Exit {
	t.Helper()
	for _, e := range all[*event.Exit](r) {
		if e.Main {
			return e
		}
	}
	t.Fatalf("no exit event for the main program")
	return nil
}

// wantExit is the exit status the README's contract gives for the run the
// log tells: 1 for a violation, 124 for a run a budget stopped, 128+N for
// one signal N interrupted, else the program's own status (128+N for a
// death by signal N).
func (r *traced) wantExit(t *testing.T) int {
	t.Helper()
	v := r.verdict()
	switch {
	case v.Verdict == event.Violation:
		return exitViolation
	case v.Incomplete == "interrupt":
		return exitSignal + int(unix.SIGINT)
	case v.Incomplete != "":
		return exitBudget
	}
	ex := r.mainExit(t)
	if ex.Status == "exited" && ex.Code != nil {
		return *ex.Code
	}
	return exitSignal + int(unix.SignalNum(ex.Signal))
}

// assertNoneLeft checks that no process the log mentions is still alive
// (stopped, running, or a zombie).
func (r *traced) assertNoneLeft(t *testing.T) {
	t.Helper()
	seen := map[int]bool{}
	for _, ev := range r.events {
		seen[ev.Head().PID] = true
	}
	for _, v := range all[*event.Vfork](r) {
		seen[v.Child] = true
	}
	// What the program left running, let go at its end (--after-exit
	// release), runs on untraced: once it ends it is its adopter's to
	// reap (a zombie here is not vtrace's), but it must never be stopped.
	released := map[int]bool{}
	for _, d := range all[*event.Detach](r) {
		if d.Why == "program_exit" {
			for _, tid := range d.Threads {
				released[tid] = true
				seen[tid] = true
			}
		}
	}
	for pid := range seen {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// A recycled pid would not have vtrace's target as its command;
		// be strict anyway only about states that mean "left behind".
		fields := strings.Fields(string(b))
		bad := "tTZ"
		if released[pid] {
			bad = "tT"
		}
		if len(fields) > 2 && strings.ContainsAny(fields[2], bad) {
			t.Errorf("process %d left behind in state %s: %s", pid, fields[2], fields[1])
		}
	}
}
