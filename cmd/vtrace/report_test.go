package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/targets/expect"
)

// vtraceCmd runs the vtrace binary with args and returns its stdout,
// stderr and exit code.
func vtraceCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runCmd(t, 3*time.Minute, nil, append([]string{vtraceBin(t)}, args...)...)
}

// runCmd runs argv with env added to the test's environment and returns
// its stdout, stderr and exit code; it fails the test when argv cannot be
// run or takes longer than limit.
func runCmd(t *testing.T, limit time.Duration, env []string, argv ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%v did not finish in %v", argv, limit)
	}
	return stdout.String(), stderr.String(), code
}

// liveRun runs `vtrace run --color never -o LOG ARGS...` and returns the
// log's path, the text vtrace printed on stderr and the exit code; the
// log is validated like every log the suite writes.
func liveRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "log.jsonl")
	_, stderr, code := vtraceCmd(t, append([]string{"run", "--color", "never", "-o", log}, args...)...)
	raw, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("no log: %v\n%s", err, stderr)
	}
	checkLog(t, strings.Join(args, " "), raw)
	return log, stderr, code
}

// `vtrace report` prints exactly the text the live run printed, and
// exits with the same code, for every target of the gcc-O0 build (as the
// matrix runs them). The live run's stderr also carries the target's own
// stderr; no target writes there when it runs as intended
// (targets/*.c write to stderr only on a failure or a usage error).
func TestReportTextMatchesLive(t *testing.T) {
	requirePtrace(t)
	for _, c := range expect.Cases {
		t.Run(c.Name(), func(t *testing.T) {
			args := append([]string{"--max-vforks", strconv.Itoa(expect.MaxVforks), "--timeout", "60s", "--",
				targetPath(t, "gcc-O0", c.Target)}, c.Args...)
			log, live, liveCode := liveRun(t, args...)
			text, warn, code := vtraceCmd(t, "report", "--color", "never", log)
			if text != live {
				t.Errorf("report text differs from the live text\n--- live\n%s\n--- report\n%s", live, text)
			}
			if code != liveCode {
				t.Errorf("report exit %d, live run exit %d", code, liveCode)
			}
			if warn != "" {
				t.Errorf("report warned on a complete log: %s", warn)
			}
			// -q: the verdict only, as `run -q` prints it.
			q, _, _ := vtraceCmd(t, "report", "-q", log)
			lines := strings.Split(strings.TrimSpace(live), "\n")
			word := strings.Fields(lines[len(lines)-1])[1] // "verdict: VIOLATION — …"
			if strings.Count(q, "\n") != 1 || !strings.HasPrefix(q, strings.ToLower(word)) {
				t.Errorf("report -q printed %q; the live verdict line is %q", q, lines[len(lines)-1])
			}
		})
	}
}

// A log cut short by a job killed while vtrace wrote it: the last line is
// half a JSON object. report renders everything before it, warns, and
// exits as the events say: 1 when a story was already a violation, 4 (not
// a pass) when none was — the run never reached its verdict. A broken line
// in the middle of a log is no cut: exit 126.
func TestReportTruncatedLog(t *testing.T) {
	requirePtrace(t)
	log, live, code := liveRun(t, "--", targetPath(t, "gcc-O0", "badvfork"))
	if code != exitViolation {
		t.Fatalf("live run exit %d, want 1:\n%s", code, live)
	}
	raw, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(raw), "\n")
	cutAt := func(kind string, n int) string { // the nth line of an event kind
		for i, l := range lines {
			if strings.Contains(l, `"event":"`+kind+`"`) {
				if n--; n == 0 {
					return strings.Join(lines[:i], "") + l[:len(l)/2]
				}
			}
		}
		t.Fatalf("no %s line", kind)
		return ""
	}
	for _, c := range []struct {
		name, log string
		code      int
		shows     string // in the text
	}{
		// Killed while writing the run's verdict: story 1 was a violation.
		{"in the verdict", cutAt("verdict", 1), exitViolation, "VIOLATION child_returned_past_frame"},
		// Killed while writing story 1's verdict: no story judged yet.
		{"in the first story's verdict", cutAt("vfork_verdict", 1), exitBudget, "lands at createproc"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "cut.jsonl")
			if err := os.WriteFile(p, []byte(c.log), 0o644); err != nil {
				t.Fatal(err)
			}
			text, warn, got := vtraceCmd(t, "report", "--color", "never", p)
			if got != c.code {
				t.Errorf("exit %d, want %d", got, c.code)
			}
			if !strings.Contains(warn, "ends in the middle of a line") || !strings.Contains(warn, "ends before the run's verdict") {
				t.Errorf("warnings: %q", warn)
			}
			if !strings.Contains(text, c.shows) || !strings.HasPrefix(live, text) {
				t.Errorf("text is not the live text up to the cut (want %q in it):\n%s", c.shows, text)
			}
		})
	}
	t.Run("broken line inside", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "broken.jsonl")
		broken := strings.Join(lines[:3], "") + lines[3][:20] + "\n" + strings.Join(lines[4:], "")
		if err := os.WriteFile(p, []byte(broken), 0o644); err != nil {
			t.Fatal(err)
		}
		_, warn, got := vtraceCmd(t, "report", p)
		if got != exitCannotRun || !strings.Contains(warn, "line 4") {
			t.Errorf("exit %d (want 3), stderr %q", got, warn)
		}
	})
}

// `vtrace run --sarif --junit --html` and `vtrace report --format` on the
// run's log write the same bytes: one set of renderers over the events.
func TestRunWritesSameDocumentsAsReport(t *testing.T) {
	requirePtrace(t)
	dir := t.TempDir()
	files := map[string]string{"sarif": filepath.Join(dir, "r.sarif"), "junit": filepath.Join(dir, "r.xml"), "html": filepath.Join(dir, "r.html")}
	log, _, code := liveRun(t, "--sarif", files["sarif"], "--junit", files["junit"], "--html", files["html"], "--",
		targetPath(t, "gcc-O0", "badvfork"))
	if code != exitViolation {
		t.Fatalf("exit %d", code)
	}
	for format, live := range files {
		want, err := os.ReadFile(live)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		got, _, rc := vtraceCmd(t, "report", "--format", format, log)
		if got != string(want) {
			t.Errorf("%s: report differs from the live run's file", format)
		}
		if rc != exitViolation {
			t.Errorf("report --format %s exit %d", format, rc)
		}
	}
}

// JUnit: one test case per vfork call site plus one for the run, checked
// by parsing the XML. The seed (gcc -O0) vforks twice at one call site,
// badvfork.c:28 (createproc's `pid = vfork()`): one failing case. exitvfork
// only warns (its child calls exit()): the case is <skipped>, nothing
// fails. The same log gives the same bytes twice (no time, no host).
func TestJUnit(t *testing.T) {
	requirePtrace(t)
	type problem struct {
		Type    string `xml:"type,attr"`
		Message string `xml:"message,attr"`
	}
	type testcase struct {
		Name    string   `xml:"name,attr"`
		File    string   `xml:"file,attr"`
		Line    int      `xml:"line,attr"`
		Failure *problem `xml:"failure"`
		Skipped *problem `xml:"skipped"`
		Error   *problem `xml:"error"`
	}
	type suites struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Skipped  int `xml:"skipped,attr"`
		Suite    []struct {
			Cases []testcase `xml:"testcase"`
		} `xml:"testsuite"`
	}
	parse := func(t *testing.T, log string) suites {
		out, _, _ := vtraceCmd(t, "report", "--format", "junit", log)
		again, _, _ := vtraceCmd(t, "report", "--format", "junit", log)
		if out != again {
			t.Errorf("JUnit output differs between two renderings of one log")
		}
		var s suites
		if err := xml.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("JUnit XML does not parse: %v\n%s", err, out)
		}
		if len(s.Suite) != 1 {
			t.Fatalf("%d test suites", len(s.Suite))
		}
		return s
	}

	log, _, _ := liveRun(t, "--", targetPath(t, "gcc-O0", "badvfork"))
	s := parse(t, log)
	cases := s.Suite[0].Cases
	if len(cases) != 2 || s.Tests != 2 || s.Failures != 1 {
		t.Fatalf("want one call site and the run (1 failure), got %+v", s)
	}
	site := cases[0]
	if site.File != "badvfork.c" || site.Line != 28 || site.Failure == nil || site.Failure.Type != "violation" ||
		!strings.Contains(site.Failure.Message, "returned from createproc()") {
		t.Errorf("seed call site case: %+v %+v", site, site.Failure)
	}
	if cases[1].Name != "run" || cases[1].Failure != nil || cases[1].Error != nil {
		t.Errorf("run case: %+v", cases[1])
	}

	log, _, code := liveRun(t, "--", targetPath(t, "gcc-O0", "exitvfork"))
	if code != exitOK {
		t.Fatalf("exitvfork: exit %d, want 0 (warnings only)", code)
	}
	s = parse(t, log)
	if s.Failures != 0 || s.Skipped != 1 || s.Suite[0].Cases[0].Skipped == nil ||
		!strings.HasPrefix(s.Suite[0].Cases[0].Skipped.Message, "warning: the vfork child called exit()") {
		t.Errorf("exitvfork: want one skipped (warning) case and no failure, got %+v", s)
	}
}
