package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// diffOf runs `vtrace diff A B` and returns its output and exit code.
func diffOf(t *testing.T, a, b string) (string, int) {
	t.Helper()
	out, stderr, code := vtraceCmd(t, "diff", a, b)
	if stderr != "" {
		t.Errorf("diff stderr: %s", stderr)
	}
	return out, code
}

// section returns the lines of a diff for one fact ("  slots written:")
// at one place ("vfork call site badvfork.c:28:").
func section(out, where, what string) string {
	_, rest, ok := strings.Cut(out, "\n"+where+":\n")
	if !ok {
		return ""
	}
	if i := strings.Index(rest, "\n"+"vfork call site"); i >= 0 {
		rest = rest[:i]
	}
	_, body, ok := strings.Cut(rest, "  "+what+":\n")
	if !ok {
		return ""
	}
	lines := strings.SplitN(body, "\n", 3)
	return strings.Join(lines[:min(2, len(lines))], "\n")
}

// The same build traced twice with ASLR on: pids, stack and library
// addresses and times all differ, the meaning does not.
func TestDiffSameBuildUnderASLR(t *testing.T) {
	requirePtrace(t)
	if b, err := os.ReadFile("/proc/sys/kernel/randomize_va_space"); err != nil || strings.TrimSpace(string(b)) == "0" {
		t.Skipf("address randomisation is off on this machine (kernel.randomize_va_space: %q, %v)", b, err)
	}
	prog := targetPath(t, "gcc-O0", "badvfork")
	a, _, _ := liveRun(t, "--", prog)
	b, _, _ := liveRun(t, "--", prog)
	// ASLR did move things: the parent's stack pointer at the vfork differs.
	sp := regexp.MustCompile(`"event":"vfork".*?"sp":"(0x[0-9a-f]+)"`)
	ra, _ := os.ReadFile(a)
	rb, _ := os.ReadFile(b)
	ma, mb := sp.FindSubmatch(ra), sp.FindSubmatch(rb)
	if ma == nil || mb == nil || string(ma[1]) == string(mb[1]) {
		t.Fatalf("the two runs have the same stack pointer at the vfork (%q, %q): ASLR did not move the stack", ma, mb)
	}
	out, code := diffOf(t, a, b)
	if code != 0 || !strings.HasPrefix(out, "same meaning") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// The seed against glibc (gcc-O0: dynamic, lazy binding) and against musl
// (musl-O0: static). The story is the same at the same call site
// (badvfork.c:28): the child returns from createproc() and main's calls to
// printf and exit (main+41, main+51 in both builds: the same gcc -O0 code)
// overwrite createproc's return slot, through which the parent returns.
// The difference is the PLT: glibc's child calls exit through
// exit@plt, whose lazy-binding stub pushes the relocation index
// (`push $0x2` at exit@plt+6) onto the stack, right over createproc's
// saved %rbp, which the parent's `leave` then restores; a static musl
// binary calls exit directly, with no push. diff must name exactly that.
func TestDiffGlibcMusl(t *testing.T) {
	requirePtrace(t)
	a, _, _ := liveRun(t, "--", targetPath(t, "gcc-O0", "badvfork"))
	b, _, _ := liveRun(t, "--", targetPath(t, "musl-O0", "badvfork"))
	out, code := diffOf(t, a, b)
	if code != exitViolation {
		t.Fatalf("exit %d, want 1 (they differ):\n%s", code, out)
	}
	t.Logf("\n%s", out)
	site := "vfork call site badvfork.c:28"
	for _, c := range []struct{ what, a, b string }{
		{"slots written", "- createproc() ret; createproc() saved %rbp", "+ createproc() ret"},
		{"writers", "createproc() saved %rbp ← exit@plt+6", ""},
		{"parent used", "saved_reg %rbp at createproc+57", ""},
	} {
		s := section(out, site, c.what)
		if s == "" || !strings.Contains(s, c.a) || (c.b != "" && !strings.Contains(s, c.b)) {
			t.Errorf("%s: want %q / %q in:\n%s", c.what, c.a, c.b, s)
		}
		if strings.Contains(strings.SplitN(s, "\n", 2)[1], "saved %rbp") {
			t.Errorf("%s: musl's side names the saved %%rbp:\n%s", c.what, s)
		}
	}
	// What both share is no difference.
	for _, same := range []string{"  verdicts:", "  reasons:", "  child returned past:", "  call:"} {
		if strings.Contains(out, same+"\n") {
			t.Errorf("%s differs, but the story is the same there:\n%s", same, out)
		}
	}
	if strings.Contains(out, "only") || strings.Contains(out, "(none: no vfork here)") {
		t.Errorf("the call site was not matched across the builds:\n%s", out)
	}
}

// -O0 against -O2 (gcc, glibc): at -O2 createproc's vfork call is at
// createproc+1 (no frame set-up before it), the child clobbers the saved
// %rbx (the register -O2 keeps pid in) instead of %rbp, and main's
// `call exit` is its last instruction, so the parent lands past the end of
// main and runs the program again (targets/expect): --max-vforks 3 stops
// it, with three violations at the one call site.
func TestDiffO0O2(t *testing.T) {
	requirePtrace(t)
	a, _, _ := liveRun(t, "--", targetPath(t, "gcc-O0", "badvfork"))
	b, _, _ := liveRun(t, "--max-vforks", "3", "--", targetPath(t, "gcc-O2", "badvfork"))
	out, code := diffOf(t, a, b)
	if code != exitViolation {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	t.Logf("\n%s", out)
	site := "vfork call site badvfork.c:28"
	for _, c := range []struct{ where, what, a, b string }{
		{"run", "verdict", "- violation", "+ violation (incomplete: max_vforks)"},
		{"run", "vforks", "- 2", "+ 3"},
		{site, "call", "- createproc+8 in createproc()", "+ createproc+1 in createproc()"},
		{site, "verdicts", "- clean ×1; violation ×1", "+ violation ×3"},
		{site, "slots written", "createproc() saved %rbp", "createproc() saved %rbx"},
		{site, "parent landed", "ret_clobbered at createproc, expected main+18", "(past the end of main)"},
	} {
		s := section(out, c.where, c.what)
		if s == "" || !strings.Contains(s, c.a) || !strings.Contains(s, c.b) {
			t.Errorf("%s %s: want %q and %q in:\n%s", c.where, c.what, c.a, c.b, s)
		}
	}
}
