package main

import (
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// Most machines have no debug file for libc (Debian's libc6-dbg, the
// test hosts', is seldom installed): no symbol names libc's hidden
// functions there. These tests run vtrace as it runs on such a machine:
// in a mount namespace whose /usr/lib/debug is empty, the symbol index
// off (it would hold the names read with the debug files).

// hideDebug is the sh script that hides /usr/lib/debug behind its first
// argument and runs the rest.
const hideDebug = `if [ -d /usr/lib/debug ]; then mount --bind "$1" /usr/lib/debug || exit 97; fi; shift; exec "$@"`

// traceHidden is trace, run where libc's debug file is hidden; it skips
// the test where no mount namespace can be made.
func traceHidden(t *testing.T, args ...string) *traced {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: an empty /usr/lib/debug needs a mount namespace of its own")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare(1) on PATH")
	}
	empty := t.TempDir()
	if out, err := exec.Command(unshare, "-m", "sh", "-c", hideDebug, "sh", empty, "true").CombinedOutput(); err != nil {
		t.Skipf("no mount namespace here (unshare -m, mount --bind): %v %s", err, out)
	}
	return traceWrapped(t, nil, func(vtrace []string) []string {
		return append([]string{unshare, "-m", "sh", "-c", hideDebug, "sh", empty, "env", "VTRACE_CACHE=off"}, vtrace...)
	}, args...)
}

// A watchpoint's trap in a hidden function comes after an instruction
// vtrace must still decode to tell a store from a read (tracer:
// codeStart, from the call-frame information). The parent's memcpy of the
// child's very value into a word the child changed was taken for a read
// of it: a false warning (samevalue store), while its memcpy out of that
// word is a real one (samevalue read).
func TestHiddenLibcStoreIsNotARead(t *testing.T) {
	prog := buildC(t, "samevalue.c")
	for _, c := range []struct{ mode, verdict string }{{"store", "clean"}, {"read", "warning"}} {
		for _, step := range [][]string{nil, {"--step"}} {
			r := traceHidden(t, append(append([]string{"-q"}, step...), prog, c.mode)...)
			if v := r.verdict(); v == nil || string(v.Verdict) != c.verdict || r.stdout != "1\n" || r.exit != 0 {
				t.Errorf("samevalue %s %v: verdict %+v, output %q, exit %d; want %s, \"1\\n\", 0\n%s", c.mode, step, v, r.stdout, r.exit, c.verdict, r.stderr)
			}
		}
	}
}

// glibc's posix_spawn makes its clone3 from hidden functions, and clone3
// ends its call-frame information right before the syscall. Its parent's
// frames are unwound from clone3's code (symbols: FuncCode's cfiGapFunc),
// then by the CFI of the hidden functions, up to the program's: each
// story names the program's callers, as with the debug file
// (TestUnwindMemoCallersSameSP). Before, the frame-pointer fallback took a
// rodata address for clone3's return and the callers were unknown.
func TestHiddenLibcSpawnCallers(t *testing.T) {
	want := [][]string{{"g", "h1", "main"}, {"g", "h2", "main"}, {"g", "h1", "h3", "main"}}
	prog := buildC(t, "spawncallers.c", "-O0")
	r := traceHidden(t, "-q", "--no-aslr", prog)
	vs := all[*event.Vfork](r)
	for n, v := range vs {
		if got, w := spawnCallerFrames(v), want[n%3]; !slices.Equal(got, w) {
			t.Errorf("vfork %d: the program's frames are %v, want %v", v.Vfork, got, w)
		}
		// That libc's debug file was hidden: clone3 has no name, and its
		// frame is unwound from its code.
		if f := v.Frames[0]; f.Sym != nil && f.Sym.Sym != "" || f.Method != "code" {
			t.Errorf("vfork %d: frame #0 is %+v (%s), want clone3 unnamed and unwound from its code", v.Vfork, f.Sym, f.Method)
		}
	}
	if v := r.verdict(); len(vs) != 6 || v == nil || v.Verdict != "clean" {
		t.Errorf("%d vforks, verdict %+v; want 6, clean\n%s", len(vs), v, r.stderr)
	}
}

// The matrix's dynamically linked glibc builds again, as on a machine
// without libc's debug file: every case keeps its verdict and key facts
// (the static builds carry libc's symbols in the program; musl has no
// debug file to hide).
func TestMatrixHiddenLibcDebug(t *testing.T) {
	requirePtrace(t)
	runMatrix(t, []string{"gcc-O0", "gcc-O2", "clang-O2", "gcc-O0-m32"}, traceHidden)
}
