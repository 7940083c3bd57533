package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// vtraceRun runs the vtrace binary with args and returns its stdout,
// stderr and exit status.
func vtraceRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(vtraceBin(t), args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("vtrace %v: %v", args, err)
	}
	return so.String(), se.String(), code
}

// nativeOutput is what a program prints on stdout run without vtrace (its
// exit status aside): the ground truth for where its output goes under
// vtrace.
func nativeOutput(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%v: %v", argv, err)
	}
	return string(out)
}

// parseJSONL decodes a log line by line, as `jq` or a script would: every
// line must be one event, and the last the verdict.
func parseJSONL(t *testing.T, log string) []event.Event {
	t.Helper()
	var evs []event.Event
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; sc.Scan(); n++ {
		ev, err := event.Decode(sc.Bytes())
		if err != nil {
			t.Fatalf("stdout line %d is not a log event: %v\n%.300s", n, err, sc.Text())
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		t.Fatalf("no log on stdout")
	}
	if _, ok := evs[len(evs)-1].(*event.Verdict); !ok {
		t.Fatalf("the log on stdout does not end with the verdict")
	}
	return evs
}

// With the log on stdout (--json, -o -), stdout holds only JSON Lines
// whatever the program prints, and the program's stdout is on vtrace's
// stderr, complete and in order (README "The log stream"). With -q the
// only other thing on stderr is the verdict line, at the end.
func TestJSONStdoutIsOnlyTheLog(t *testing.T) {
	seed := targetPath(t, "gcc-O0", "badvfork")
	// Python prints half a megabyte, runs seq (a vfork: _posixsubprocess)
	// which prints 600 kB more into the same stdout, then prints again.
	py := `import sys, subprocess
sys.stdout.write("".join("python line %d\n" % i for i in range(30000))); sys.stdout.flush()
subprocess.run(["seq", "1", "100000"], check=True)
sys.stdout.write("python: done\n")`
	cases := []struct {
		name string
		argv []string
		flag string
		big  bool // prints at least 1 MiB
	}{
		// The seed prints "child proc:0" and "0" (targets/README.md).
		{"seed --json", []string{seed}, "--json", false},
		{"seed -o -", []string{seed}, "-o-", false},
		{"seq 1 170000 (1.08 MB)", []string{"seq", "1", "170000"}, "--json", true},
		{"python3 + seq (1.1 MB, a vfork)", []string{"python3", "-c", py}, "--json", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := nativeOutput(t, c.argv...)
			if c.big && len(want) < 1<<20 {
				t.Fatalf("the program printed %d bytes natively, want at least 1 MiB", len(want))
			}
			args := append([]string{"run", "-q", c.flag, "--"}, c.argv...)
			stdout, stderr, code := vtraceRun(t, args...)
			evs := parseJSONL(t, stdout)
			v := evs[len(evs)-1].(*event.Verdict)
			if got := string(v.Verdict) + "\n"; stderr != want+got {
				t.Errorf("stderr (%d bytes) is not the program's stdout (%d bytes) then the verdict line %q; differs from byte %d",
					len(stderr), len(want), got, firstDiff(stderr, want+got))
			}
			if code == exitUsage || code == exitLogWrite || code == exitCannotRun {
				t.Errorf("vtrace exit %d", code)
			}
		})
	}
}

func firstDiff(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// vtrace leaves a real workload alone: no CPU pinning unless asked, so
// nproc (sched_getaffinity) sees every CPU it sees without vtrace.
func TestNprocUnchanged(t *testing.T) {
	want := nativeOutput(t, "nproc")
	stdout, stderr, code := vtraceRun(t, "run", "-q", "--", "nproc")
	if stdout != want || code != 0 {
		t.Errorf("vtrace run -- nproc: %q (exit %d), nproc alone: %q\nstderr: %s", stdout, code, want, stderr)
	}
	if want == "1\n" {
		t.Logf("this machine gives the test one CPU: pinning could not be told from no pinning here")
	}
}

// A program doing 2,000 posix_spawns runs to its end under the default
// flags: every spawn traced, clean, the program's own status (no budget
// counts clean vforks or wall time; README "Budgets").
func TestManySpawnsRunToTheEnd(t *testing.T) {
	prog := targetPath(t, "gcc-O2", "spawnloop")
	r := trace(t, prog, "2000")
	if r.stdout != "spawnloop: 2000 spawns\n" || r.exit != 0 {
		t.Errorf("spawnloop 2000: stdout %q, exit %d; want all 2000 spawns and exit 0\nstderr: %s", r.stdout, r.exit, tail(r.stderr, 2000))
	}
	if v := r.verdict(); v.Vforks != 2000 || v.Verdict != event.Clean || v.Incomplete != "" {
		t.Errorf("verdict %+v, want 2000 clean vforks, complete", v)
	}
}

// Output sized for people: a clean run prints a few lines whatever its
// size — the start line, the program's end, one table row per call site,
// the verdict.
func TestCleanRunsAreShort(t *testing.T) {
	mk := t.TempDir()
	// make runs each recipe line with posix_spawn (GNU make 4.3:
	// clone(CLONE_VM|CLONE_VFORK)), here 4 of them.
	if err := os.WriteFile(filepath.Join(mk, "Makefile"), []byte("all: a b c d\na b c d:\n\t@true $@\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		args   []string
		vforks int
	}{
		{"make -C dir", []string{"make", "-s", "-C", mk}, 4},
		{"spawnloop 1000", []string{targetPath(t, "gcc-O2", "spawnloop"), "1000"}, 1000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := trace(t, c.args...)
			if v := r.verdict(); v.Vforks != c.vforks || v.Verdict != event.Clean {
				t.Fatalf("verdict %+v, want %d clean vforks", v, c.vforks)
			}
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			if len(lines) > 10 {
				t.Errorf("%d lines on stderr, want at most 10:\n%s", len(lines), tail(r.stderr, 3000))
			}
			if !strings.Contains(r.stderr, "vfork call sites:") {
				t.Errorf("no summary table:\n%s", r.stderr)
			}
		})
	}
}

// -o never writes over the program it traces.
func TestLogRefusesTheProgram(t *testing.T) {
	prog := filepath.Join(t.TempDir(), "true")
	data, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prog, data, 0o755); err != nil {
		t.Fatal(err)
	}
	before := sha256.Sum256(data)
	_, stderr, code := vtraceRun(t, "run", "-o", prog, prog)
	after, _ := os.ReadFile(prog)
	if code != exitUsage || !strings.Contains(stderr, "is the program itself") {
		t.Errorf("exit %d, stderr %q; want %d and a refusal", code, stderr, exitUsage)
	}
	if sha256.Sum256(after) != before {
		t.Errorf("the program was changed (%d bytes now, %d before)", len(after), len(data))
	}
}

// SIGTERM to vtrace (a CI runner cancelling a job) stops the run: the
// program is killed, the log ends with the verdict, and the exit status
// is 143 (128+SIGTERM), as a shell reports a job killed by SIGTERM.
func TestSIGTERMStopsTheRun(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log.jsonl")
	cmd := exec.Command(vtraceBin(t), "run", "-o", log, "--", "sleep", "60")
	se, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The start line comes once the program runs under ptrace.
	line, err := bufio.NewReader(se).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "vtrace ") {
		t.Fatalf("first stderr line %q (%v), want the start line", line, err)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Errorf("vtrace after SIGTERM: %v, want exit %d", err, 128+int(syscall.SIGTERM))
	}
	r := &traced{events: readLogFile(t, log)}
	if b := all[*event.Budget](r); len(b) != 1 || b[0].Budget != "interrupt" {
		t.Errorf("budget events %+v, want one interrupt", b)
	}
	r.assertNoneLeft(t)
}
