package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/tracer/event"
)

// Programs built with AddressSanitizer (gcc -fsanitize=address), as CI
// jobs build their tests. Its LeakSanitizer checks for leaks at exit by
// stopping the process's threads with ptrace, which a traced process
// refuses (a task has one tracer): under vtrace, as under strace -f and
// gdb, it reports "LeakSanitizer does not work under ptrace" and the
// program exits 1 — and a vfork child that then dies in ASan too spins
// for ever in AsanDie (a counter in the memory it shares with its parent
// says the parent already died). That is ptrace's, not vtrace's to mend
// without changing the program's environment; with
// ASAN_OPTIONS=detect_leaks=0 (README, "Sanitizers") the program exits,
// prints and is judged as untraced. This test holds both: the documented
// failure, and the workaround on a clean program, a posix_spawn and the
// seed (its child's return crashes the parent: exit 1 natively too).
func TestAddressSanitizedPrograms(t *testing.T) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc on PATH")
	}
	dir := t.TempDir()
	built := false
	build := func(target string, more ...string) string {
		out := filepath.Join(dir, target)
		for _, m := range more {
			out += "+" + strings.TrimSuffix(filepath.Base(m), ".c")
		}
		src := filepath.Join(repoRoot(), "targets", target+".c")
		args := append([]string{"-O0", "-fsanitize=address", "-o", out, src}, more...)
		if b, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
			if !built {
				t.Skipf("gcc cannot build with -fsanitize=address here (no libasan?): %v\n%s", err, b)
			}
			t.Fatalf("gcc %v: %v\n%s", args, err, b)
		}
		built = true
		return out
	}
	run := func(env []string, argv ...string) (string, string, int) {
		t.Helper()
		// A bound: the seed's ASan build spins for ever where its leak
		// check failed first (above).
		return runCmd(t, 2*time.Minute, env, argv...)
	}
	withEnv := func(env string) func([]string) []string {
		return func(vtrace []string) []string { return append([]string{"env", env}, vtrace...) }
	}
	hasNote := func(r *traced) bool {
		for _, n := range all[*event.Note](r) {
			if n.Code == event.NoteLeakSanitizer {
				return true
			}
		}
		return false
	}
	good := build("goodvfork_exec")

	// Leak detection on (ASan's default): natively 0; traced, LeakSanitizer
	// cannot stop the threads and the exit status becomes 1 — which the
	// leak_sanitizer note explains.
	leaksOn := "ASAN_OPTIONS=detect_leaks=1"
	if _, _, code := run([]string{leaksOn}, good); code != 0 {
		t.Fatalf("goodvfork_exec with ASan exits %d natively, want 0", code)
	}
	r := traceWrapped(t, nil, withEnv(leaksOn), "-q", good)
	if r.exit != 1 || !strings.Contains(r.stderr, "LeakSanitizer does not work under ptrace") || !hasNote(r) {
		t.Errorf("traced with leak detection on: exit %d, leak_sanitizer note %v, stderr %q; want 1, a note and LeakSanitizer's ptrace hint (README, \"Sanitizers\", says so)", r.exit, hasNote(r), r.stderr)
	}

	// The check turned off by the environment's other option, or by the
	// program's own defaults (the program exits 0: vtrace must not say
	// the check failed).
	for name, c := range map[string]struct {
		env  string
		prog string
	}{
		"leak_check_at_exit=0":   {"ASAN_OPTIONS=leak_check_at_exit=0", good},
		"__asan_default_options": {"ASAN_OPTIONS=", build("goodvfork_exec", filepath.Join(repoRoot(), "cmd", "vtrace", "testdata", "asannoleaks.c"))},
	} {
		r := traceWrapped(t, nil, withEnv(c.env), "-q", c.prog)
		if r.exit != 0 || hasNote(r) {
			t.Errorf("leak check off by %s: traced exit %d, leak_sanitizer note %v; want 0 and no note\n%s", name, r.exit, hasNote(r), r.stderr)
		}
	}

	// detect_leaks=0: as untraced, and no note.
	leaksOff := "ASAN_OPTIONS=detect_leaks=0"
	for _, c := range []struct{ target, verdict string }{
		{"goodvfork_exec", "clean"}, {"spawn", "clean"}, {"badvfork", "violation"},
	} {
		prog := good
		if c.target != "goodvfork_exec" {
			prog = build(c.target)
		}
		nout, _, ncode := run([]string{leaksOff}, prog)
		r := traceWrapped(t, nil, withEnv(leaksOff), "-q", prog)
		if v := r.verdict(); r.stdout != nout || r.exit != ncode || string(v.Verdict) != c.verdict || hasNote(r) {
			t.Errorf("%s with detect_leaks=0: traced exit %d, output %q, verdict %s, leak_sanitizer note %v; untraced exit %d, output %q; want the same, %s and no note\n%s",
				c.target, r.exit, r.stdout, v.Verdict, hasNote(r), ncode, nout, c.verdict, r.stderr)
		}
	}
}
