package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/report"
)

// vforkLine is the line of the C source that calls vfork(), found in the
// source itself: the ground truth for where an annotation must land.
func vforkLine(t *testing.T, src string) int {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	call := regexp.MustCompile(`\bvfork\(\)`)
	for n := 1; sc.Scan(); n++ {
		if l := sc.Text(); call.MatchString(l) && !strings.HasPrefix(strings.TrimSpace(l), "*") {
			return n
		}
	}
	t.Fatalf("%s: no vfork() call", src)
	return 0
}

// Under GitHub Actions vtrace appends a markdown summary to
// $GITHUB_STEP_SUMMARY (after what earlier steps wrote) and prints one
// ::error workflow command at the seed's vfork call: file is the source as
// the repository names it, line the vfork() call's.
func TestGitHubActions(t *testing.T) {
	seed := targetPath(t, "gcc-O0", "badvfork")
	src := filepath.Join(repoRoot(), "targets", "badvfork.c")
	line := vforkLine(t, src)
	summary := filepath.Join(t.TempDir(), "step_summary.md")
	earlier := "## an earlier step's summary\n"
	if err := os.WriteFile(summary, []byte(earlier), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(repoRoot())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(vtraceBin(t), "run", "-q", seed)
	cmd.Env = append(os.Environ(), "GITHUB_ACTIONS=true", "GITHUB_STEP_SUMMARY="+summary, "GITHUB_WORKSPACE="+root)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitViolation {
		t.Fatalf("vtrace: %v, want exit %d\nstderr: %s", err, exitViolation, stderr.String())
	}

	md, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	s := string(md)
	if !strings.HasPrefix(s, earlier) {
		t.Errorf("the step summary does not start with the earlier step's: %.200q", s)
	}
	if len(md) > report.MaxStepSummary {
		t.Errorf("step summary of %d bytes, GitHub takes at most %d", len(md), report.MaxStepSummary)
	}
	for _, want := range []string{
		"### vtrace: ❌ VIOLATION",
		"| verdict | vforks | function | source | worst finding |",
		fmt.Sprintf("| ❌ violation | 2 | <code>createproc</code> | <code>badvfork.c:%d</code> | the vfork child returned from createproc() into main()", line),
		"<details><summary>",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("step summary lacks %q:\n%s", want, s)
		}
	}
	// The table comes before the details.
	if strings.Index(s, "| verdict |") > strings.Index(s, "<details>") {
		t.Errorf("details before the table")
	}

	var errs, warns []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		switch {
		case strings.HasPrefix(l, "::error "):
			errs = append(errs, l)
		case strings.HasPrefix(l, "::warning "):
			warns = append(warns, l)
		}
	}
	want := fmt.Sprintf("::error file=targets/badvfork.c,line=%d,title=vtrace%%3A vfork violation in createproc()::", line)
	if len(errs) != 1 || !strings.HasPrefix(errs[0], want) {
		t.Errorf("::error lines %q, want one starting %q", errs, want)
	}
	// The seed's second vfork is clean (targets/README.md): no warning.
	if len(warns) != 0 {
		t.Errorf("::warning lines %q, want none", warns)
	}
}
