package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Where libc's debug file is absent — most machines — no symbol names its
// hidden functions, and a watchpoint's trap there comes after an
// instruction vtrace must still decode to tell a store from a read
// (tracer: codeStart, from the call-frame information). The parent's
// memcpy of the child's very value into a word the child changed was
// taken for a read of it: a false warning (samevalue store), while its
// memcpy out of that word is a real one (samevalue read). Run in a mount
// namespace whose /usr/lib/debug is empty, with the symbol index off, so
// that libc is read as it is on a machine without libc6-dbg.
func TestHiddenLibcStoreIsNotARead(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: an empty /usr/lib/debug needs a mount namespace of its own")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare(1) on PATH")
	}
	empty := t.TempDir()
	// Hide the debug files where there are any; fail loudly if that
	// cannot be done, rather than run with them.
	hide := `if [ -d /usr/lib/debug ]; then mount --bind "$1" /usr/lib/debug || exit 97; fi; shift; exec "$@"`
	if out, err := exec.Command(unshare, "-m", "sh", "-c", hide, "sh", empty, "true").CombinedOutput(); err != nil {
		t.Skipf("no mount namespace here (unshare -m, mount --bind): %v %s", err, out)
	}
	prog := buildC(t, "samevalue.c")
	bin := vtraceBin(t)
	for _, c := range []struct{ mode, verdict string }{{"store", "clean"}, {"read", "warning"}} {
		for _, step := range []bool{false, true} {
			args := []string{"-m", "sh", "-c", hide, "sh", empty, bin, "run", "-q"}
			if step {
				args = append(args, "--step")
			}
			cmd := exec.Command(unshare, append(args, prog, c.mode)...)
			cmd.Env = append(os.Environ(), "VTRACE_CACHE=off")
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s (step %v): %v\n%s", c.mode, step, err, stderr.String())
			}
			if got := strings.TrimSpace(stderr.String()); got != c.verdict || stdout.String() != "1\n" {
				t.Errorf("samevalue %s (step %v): verdict %q, output %q; want %q and \"1\\n\"", c.mode, step, got, stdout.String(), c.verdict)
			}
		}
	}
}
