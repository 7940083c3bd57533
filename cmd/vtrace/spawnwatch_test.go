package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// glibc's own posix_spawn child (tracer/memory.go, libcSpawnChild): fast
// mode watches only its TLS block (method libc_spawn), --full-watch and
// --step all of the parent's memory outside the stack. glibc's source
// says the child writes nothing else of the parent's but its own frame's
// argument block (the live region's diff) and errno; so the three must
// tell the same story: the same words changed (errno, when the exec
// fails), the same reads, verdicts and exit status. Static programs and
// musl's are watched whole (a static program may define what the child
// calls; musl's child can run a handler of the program's), as is a child
// running the program's own code — a vfork, a raw clone on a stack of its
// own.
func TestLibcSpawnChildWatch(t *testing.T) {
	requirePtrace(t)
	cases := [][]string{{"spawnloop", "3"}, {"spawnfail"}, {"spawnfail", "addopen"}, {"spawnfail", "spawn2"}, {"system"}, {"popen"}, {"spawnattrs"}}
	for _, b := range []struct {
		build  string
		narrow bool
	}{{"gcc-O0", true}, {"gcc-O2", true}, {"clang-O2", true}, {"gcc-O2-m32", true},
		{"gcc-O2-static", false}, {"musl-O0", false}, {"musl-O2", false}, {"gcc-O0-m32-static", false}} {
		t.Run(b.build, func(t *testing.T) {
			if strings.Contains(b.build, "m32") {
				requireI386(t)
			}
			for _, c := range cases {
				prog := targetPath(t, b.build, c[0])
				args := append([]string{"--no-aslr", "--", prog}, c[1:]...)
				name := strings.Join(c, " ")
				fast := trace(t, args...)
				full := trace(t, append([]string{"--full-watch"}, args...)...)
				step := trace(t, append([]string{"--step"}, args...)...)
				checkNarrowed(t, name, fast, b.narrow)
				checkNarrowed(t, name+" --full-watch", full, false)
				want := spawnFacts(step)
				for mode, r := range map[string]*traced{"fast": fast, "--full-watch": full} {
					if got := spawnFacts(r); got != want {
						t.Errorf("%s: %s tells\n%s\n--step tells\n%s", name, mode, got, want)
					}
				}
				if !strings.Contains(want, "global_diff") && name == "spawnfail" {
					t.Errorf("%s: --step saw no word changed outside the stack; the failing exec's errno was expected:\n%s", name, want)
				}
			}
		})
	}
	// Most machines have no libc debug file: glibc's spawn frames are
	// unnamed below posix_spawn there, and the child is told all the same.
	t.Run("no-debug-file", func(t *testing.T) {
		for _, c := range [][]string{{"spawnloop", "3"}, {"spawnfail"}, {"popen"}} {
			args := append([]string{"--no-aslr", "--", targetPath(t, "gcc-O2", c[0])}, c[1:]...)
			fast := traceHidden(t, args...)
			full := traceHidden(t, append([]string{"--full-watch"}, args...)...)
			checkNarrowed(t, c[0]+" (no debug file)", fast, true)
			if got, want := spawnFacts(fast), spawnFacts(full); got != want {
				t.Errorf("%s (no debug file): fast tells\n%s\n--full-watch tells\n%s", c[0], got, want)
			}
		}
	})
	// One process, both kinds of child in turn: each story has its own
	// plan of the watch, and every write of the vfork children is seen.
	t.Run("alternating", func(t *testing.T) {
		prog := buildC(t, "spawnalternate.c")
		var want string
		for _, mode := range []string{"--step", "--full-watch", "fast"} {
			args := []string{"--no-aslr", "--", prog}
			if mode != "fast" {
				args = append([]string{mode}, args...)
			}
			r := trace(t, args...)
			if r.stdout != "6\n" || r.exit != 0 {
				t.Errorf("%s: output %q, exit %d; want \"6\\n\", 0", mode, r.stdout, r.exit)
			}
			reads := 0
			for _, g := range all[*event.GlobalRead](r) {
				if symStr(g.Sym) == "shared" {
					reads++
				}
			}
			if reads != 3 {
				t.Errorf("%s: %d reads of the vfork children's writes to shared, want 3\n%s", mode, reads, spawnFacts(r))
			}
			for _, vf := range all[*event.Vfork](r) {
				spawn := vf.Vfork%2 == 1 // posix_spawn first, then vfork, three times
				if m := vf.Memory; mode == "fast" && (m == nil || (m.Method == event.MemLibcSpawn) != spawn) {
					t.Errorf("fast: vfork #%d (posix_spawn %v) watched %+v", vf.Vfork, spawn, m)
				}
			}
			if got := spawnFacts(r); want == "" {
				want = got
			} else if got != want {
				t.Errorf("%s tells\n%s\n--step tells\n%s", mode, got, want)
			}
		}
	})
	// The text story says how such a child is watched.
	if r := trace(t, "-v", "--", targetPath(t, "gcc-O2", "spawnloop"), "1"); !strings.Contains(r.stderr, "libc_spawn: glibc's own posix_spawn child runs none of the program's code") {
		t.Errorf("vtrace run -v spawnloop 1: the story does not say the child is watched as glibc's posix_spawn child:\n%s", r.stderr)
	}
	// A libc.so.6 not the system's (a glibc built or copied elsewhere, as
	// one being debugged is) is watched whole.
	t.Run("libc-elsewhere", func(t *testing.T) {
		sys := "/lib/x86_64-linux-gnu/libc.so.6"
		if runtime.GOARCH != "amd64" {
			t.Skip("the copied libc is x86-64's")
		}
		data, err := os.ReadFile(sys)
		if err != nil {
			t.Skipf("no %s to copy: %v", sys, err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "libc.so.6"), data, 0o755); err != nil {
			t.Fatal(err)
		}
		prog := targetPath(t, "gcc-O2", "spawnloop")
		r := trace(t, "--", "/usr/bin/env", "LD_LIBRARY_PATH="+dir, prog, "2")
		checkNarrowed(t, "spawnloop with a copied libc", r, false)
		if n := len(all[*event.Vfork](r)); n != 2 || r.exit != 0 {
			t.Errorf("spawnloop with a copied libc: %d vforks, exit %d; want 2, 0", n, r.exit)
		}
	})
	// The program's own code in the child: never narrowed.
	for _, c := range [][]string{{"gcc-O0", "clonevfork"}, {"gcc-O2", "clone3vfork"}, {"gcc-O2", "vforkloop"}} {
		checkNarrowed(t, c[0]+"/"+c[1], trace(t, "--no-aslr", "--", targetPath(t, c[0], c[1])), false)
	}
}

// checkNarrowed checks that a run's posix_spawn children were watched in
// their TLS block alone (want), or that no story was.
func checkNarrowed(t *testing.T, name string, r *traced, want bool) {
	t.Helper()
	narrowed := 0
	for _, vf := range all[*event.Vfork](r) {
		if vf.Memory == nil || vf.Memory.Method != event.MemLibcSpawn {
			continue
		}
		narrowed++
		if vf.SharedStack || vf.Memory.Bytes == 0 || vf.Memory.Bytes > 4096 || vf.Memory.Ranges != 1 {
			t.Errorf("%s: vfork #%d: narrowed watch %+v shared_stack %v: want the TLS block alone (one range, ≤ 4 KiB), the child on its own stack",
				name, vf.Vfork, *vf.Memory, vf.SharedStack)
		}
	}
	if want && narrowed == 0 {
		t.Errorf("%s: no vfork watched as glibc's posix_spawn child: %s", name, methods(r))
	}
	if !want && narrowed > 0 {
		t.Errorf("%s: %d vfork(s) watched as glibc's posix_spawn child, want none: %s", name, narrowed, methods(r))
	}
}

// methods lists each vfork's watch method, for a failure message.
func methods(r *traced) string {
	var out []string
	for _, vf := range all[*event.Vfork](r) {
		m := "no memory watch"
		if vf.Memory != nil {
			m = string(vf.Memory.Method)
		}
		out = append(out, fmt.Sprintf("#%d %s (frames %d)", vf.Vfork, m, len(vf.Frames)))
	}
	return strings.Join(out, ", ")
}

// spawnFacts is what a run says of the memory the children changed and of
// its outcome, without addresses: each story's changed words outside the
// stack, the parent's reads of them, each story's verdict, the run's
// verdict and exit status.
func spawnFacts(r *traced) string {
	var lines []string
	for _, d := range all[*event.GlobalDiff](r) {
		for _, c := range d.Changed {
			// The bits changed, not the word: musl's errno_val shares its
			// word with the thread id, which differs between runs.
			lines = append(lines, fmt.Sprintf("vfork #%d global_diff %s %s bits %#x libc=%s", d.Vfork, c.Area, symStr(c.Sym), uint64(c.Before^c.After), c.Libc))
		}
	}
	for _, g := range all[*event.GlobalRead](r) {
		lines = append(lines, fmt.Sprintf("vfork #%d global_read %s", g.Vfork, symStr(g.Sym)))
	}
	for _, v := range all[*event.VforkVerdict](r) {
		lines = append(lines, fmt.Sprintf("vfork #%d verdict %s", v.Vfork, v.Verdict))
	}
	slices.Sort(lines)
	return strings.Join(append(lines, fmt.Sprintf("run verdict %s, exit %d", r.verdict().Verdict, r.exit)), "\n")
}

// musl, static: errno_val is told by its address, not by the range it was
// watched in. Where the thread pointer sits at the end of the data's
// file-backed mapping, the TLS range stops there and errno_val is watched
// as the program's bss: the child's failing exec was reported as a write
// to the program's builtin_tls, not as libc's errno (and followed as a
// program global: a parent that read errno back got a false warning). A
// PAD that puts the two across the boundary is searched for.
func TestMuslErrnoPastThreadPointerMapping(t *testing.T) {
	requirePtrace(t)
	mcc, err := exec.LookPath("musl-gcc")
	if err != nil {
		t.Skip("no musl-gcc on PATH (scripts/install-deps.sh installs musl-tools)")
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("the errno_val offset searched for is x86-64's")
	}
	dir := t.TempDir()
	build := func(pad int) (prog string, tp, errnoAt, end uint64) {
		prog = filepath.Join(dir, fmt.Sprintf("edge%d", pad))
		if out, err := exec.Command(mcc, "-static", "-O0", fmt.Sprintf("-DPAD=%d", pad), "-o", prog, filepath.Join("testdata", "muslerrnoedge.c")).CombinedOutput(); err != nil {
			t.Fatalf("musl-gcc: %v\n%s", err, out)
		}
		out, err := exec.Command(prog, "where").Output()
		if err != nil {
			t.Fatalf("%s where: %v", prog, err)
		}
		if _, err := fmt.Sscanf(string(out), "%x %x %x", &tp, &errnoAt, &end); err != nil {
			t.Fatalf("%s where: %q: %v", prog, out, err)
		}
		return prog, tp, errnoAt, end
	}
	_, tp0, _, end0 := build(0)
	prog := ""
	for pad := int(end0-tp0) - 48; pad < int(end0-tp0)+4096 && prog == ""; pad += 8 {
		p, tp, errnoAt, end := build(pad)
		if tp < end && errnoAt >= end {
			prog = p
		}
	}
	if prog == "" {
		t.Fatal("no PAD put the thread pointer and errno_val on either side of a mapping's end")
	}
	for _, mode := range [][]string{nil, {"--step"}} {
		r := trace(t, append(mode, "--", prog)...)
		if v := r.verdict(); v.Verdict != event.Clean || r.exit != 0 {
			t.Errorf("%v: verdict %s exit %d, want clean 0: %s", mode, v.Verdict, r.exit, whyNotClean(r))
		}
		named := false
		for _, d := range all[*event.GlobalDiff](r) {
			for _, c := range d.Changed {
				named = named || c.Libc == event.LibcErrno && symStr(c.Sym) == "errno_val"
			}
		}
		if !named {
			t.Errorf("%v: the child's errno not reported as musl's errno_val:\n%s", mode, spawnFacts(r))
		}
	}
}
