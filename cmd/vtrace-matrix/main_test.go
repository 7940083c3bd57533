package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// On a kernel that refuses i386 programs the matrix runs their rows in the
// qemu VM. Forced here with -i386 vm (this kernel may run them natively):
// the seed's i386 builds, dynamic (the VM gets the i386 loader and libc)
// and static, each row run in the VM, marked so, and as expected.
func TestMatrixI386InVM(t *testing.T) {
	root := repoRoot()
	bin := os.Getenv("VTRACE_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "vtrace")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/vtrace")
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	targets := os.Getenv("VTRACE_TARGETS")
	if targets == "" {
		targets = filepath.Join(root, "build", "targets")
		for _, b := range []string{"gcc-O0-m32", "gcc-O0-m32-static"} {
			if out, err := exec.Command("make", "-C", root, "build/targets/"+b+"/badvfork", "build/targets/gcc-O0-m32-static/goodvfork_exit").CombinedOutput(); err != nil {
				t.Fatalf("make %s: %v\n%s", b, err, out)
			}
		}
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"-vtrace", bin, "-targets", targets, "-root", root, "-i386", "vm", "-target", "badvfork"}, &stdout, &stderr)
	out := stdout.String()
	if strings.Contains(out, "not run: the VM cannot be used here") {
		t.Skipf("the VM cannot be used here:\n%s", out)
	}
	if code != 0 {
		t.Fatalf("vtrace-matrix exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	}
	rows := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasPrefix(line, "badvfork ") { // a table row, not a note
			continue
		}
		rows++
		want := "native"
		if strings.Contains(f[1], "-m32") {
			want = "vm"
		}
		if f[2] != want || !strings.HasSuffix(line, "✓") {
			t.Errorf("row %q: want where %s and ✓", line, want)
		}
	}
	if rows != 14 {
		t.Errorf("%d badvfork rows, want 14 (one per build)\n%s", rows, out)
	}
}
