package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// `bash .ci/run` (what CI runs) runs the README's test command, in the
// repository root, and the GitHub workflow runs .ci/run. The command is
// not run for real here (make test takes minutes): a `make` first on PATH
// records how it was called.
func TestCIRunsTheREADMETestCommand(t *testing.T) {
	root, err := filepath.Abs(repoRoot())
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// "## Two commands": the line `make test    # ...` in its code block.
	m := regexp.MustCompile(`(?m)^(make test)\s+#`).FindSubmatch(readme)
	if m == nil {
		t.Fatalf("README.md gives no `make test` command")
	}
	want := string(m[1])

	bin := t.TempDir()
	rec := filepath.Join(bin, "called")
	fake := "#!/bin/sh\necho \"$(pwd) make $*\" >>" + rec + "\n"
	if err := os.WriteFile(filepath.Join(bin, "make"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(root, ".ci", "run"))
	cmd.Dir = t.TempDir() // .ci/run must find the root itself
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bash .ci/run: %v\n%s", err, out)
	}
	got, err := os.ReadFile(rec)
	if err != nil {
		t.Fatalf("bash .ci/run did not run make: %v", err)
	}
	if lines := strings.Split(strings.TrimSpace(string(got)), "\n"); len(lines) != 1 || lines[0] != root+" "+want {
		t.Errorf("bash .ci/run ran %q, want %q in %s", lines, want, root)
	}

	wf, err := os.ReadFile(filepath.Join(root, ".github", "workflows", "vtrace.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s+run: bash \.ci/run\s*$`).Match(wf) {
		t.Errorf(".github/workflows/vtrace.yml does not run `bash .ci/run`")
	}
}
