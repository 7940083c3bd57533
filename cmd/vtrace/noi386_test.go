package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// On a kernel that refuses i386 programs, execve of one fails with ENOEXEC
// (FACTS.md: "IA-32 emulation off"). This kernel may well run them, so the
// refusal is reproduced where vtrace meets it — execve's answer — by
// testdata/noexecve.c, a seccomp filter under which every execve fails
// with ENOEXEC. vtrace must say in one line that this kernel cannot run
// 32-bit programs, and exit 126 (could not trace); a 64-bit program refused the same way gets
// its own one-line reason. (TestVMIA32EmulationParam tries a real kernel
// that refuses them, when the VM's kernel honours ia32_emulation=0.)
func TestI386Refused(t *testing.T) {
	bin := vtraceBin(t)
	helper := filepath.Join(t.TempDir(), "noexecve")
	if out, err := exec.Command("gcc", "-O2", "-o", helper, filepath.Join("testdata", "noexecve.c")).CombinedOutput(); err != nil {
		t.Fatalf("build noexecve: %v\n%s", err, out)
	}
	cases := []struct {
		build string
		want  string
	}{
		{"gcc-O0-m32", "this kernel cannot run 32-bit (i386) programs"},
		{"gcc-O0-m32-static", "this kernel cannot run 32-bit (i386) programs"},
		{"gcc-O0", "this kernel cannot execute this ELF file"},
	}
	for _, c := range cases {
		t.Run(c.build, func(t *testing.T) {
			prog := targetPath(t, c.build, "badvfork")
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(helper, bin, "run", prog)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitCannotRun {
				t.Fatalf("vtrace run %s under noexecve: %v, want exit %d\nstderr: %s", prog, err, exitCannotRun, stderr.String())
			}
			lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "vtrace: ") || !strings.Contains(lines[0], c.want) {
				t.Errorf("stderr %q, want one line saying %q", stderr.String(), c.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}
