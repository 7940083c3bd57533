package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestMutationSmall runs the mutation test on 200 copies (make test; `make
// mutation` runs 10,000): no internal error, no hang, every log ends with
// its verdict, nothing left behind.
func TestMutationSmall(t *testing.T) {
	bin, targets := os.Getenv("VTRACE_BIN"), os.Getenv("VTRACE_TARGETS")
	if bin == "" || targets == "" {
		t.Skip("VTRACE_BIN and VTRACE_TARGETS not set (make test sets them)")
	}
	if err := exec.Command(bin, "run", "-q", "true").Run(); err != nil {
		t.Skipf("vtrace cannot trace here: %v", err)
	}
	n := 200
	if s := os.Getenv("VTRACE_MUTATION_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	var out, progress bytes.Buffer
	o := options{vtrace: bin, n: n, jobs: 2, pids: 64, seed: 13, timeout: 5 * time.Second, grace: 20 * time.Second, keep: t.TempDir()}
	bad, err := runAll(o, []string{
		filepath.Join(targets, "gcc-O0", "goodvfork_exec"),
		filepath.Join(targets, "gcc-O0", "badvfork"),
		filepath.Join(targets, "musl-O0", "goodvfork_exec"),
	}, &out, &progress)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	if bad > 0 {
		t.Errorf("%d of %d mutated copies broke vtrace:\n%s", bad, n, out.String())
	}
}
