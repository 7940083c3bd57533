package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/targets/expect"
	"github.com/vtrace/vtrace/tracer/event"
)

// Issue 11, "right on real programs": the checks of its items that the
// matrix (targets/expect, TestMatrix) cannot express - real programs
// (Python), --step mode, a long run, the writer named by a hardware
// watchpoint, and clone flags against strace. Each expectation comes from
// the program and the kernel/libc, never from vtrace's output, and says
// why. Where today's engine does not meet one yet, expect.PendingTest
// names the fix it waits for: the difference is logged, and the check
// fails once it passes, until the mark is removed.

// checkExpect reports the differences between a run and its expectation:
// as failures, or - for an expectation marked pending (targets/expect,
// pending.go), which today's engine does not meet yet - as a log line,
// failing instead once the expectation is met, so that the mark goes when
// the fix lands.
func checkExpect(t *testing.T, e expect.Expect, bad []string) {
	t.Helper()
	switch {
	case e.Pending != "" && len(bad) > 0:
		t.Logf("PENDING (%s): %v", e.Pending, bad)
	case e.Pending != "":
		t.Errorf("as expected although marked pending: remove the mark in targets/expect/pending.go (%s)", e.Pending)
	default:
		for _, b := range bad {
			t.Error(b)
		}
	}
}

func intp(n int) *int { return &n }

// Item 1, real programs: Python's os.posix_spawn and subprocess.run of a
// missing program. Both go through glibc's posix_spawn (strace: one
// clone3(CLONE_VM|CLONE_VFORK) whose child's execve fails with ENOENT;
// subprocess uses posix_spawn when close_fds=False and the path has a
// directory), whose child stores the error in the parent's args.err and
// _exit(127)s: the libc's error channel, a clean story. Both programs catch
// FileNotFoundError and exit 0.
func TestIssue11PythonSpawnError(t *testing.T) {
	requirePtrace(t)
	progs := []struct{ name, code string }{
		{"os.posix_spawn", "import os\ntry:\n    os.posix_spawn('/nonexistent/x', ['x'], os.environ)\nexcept FileNotFoundError:\n    pass\n"},
		{"subprocess.run", "import subprocess\ntry:\n    subprocess.run(['/nonexistent'], close_fds=False)\nexcept FileNotFoundError:\n    pass\n"},
	}
	for _, p := range progs {
		t.Run(p.name, func(t *testing.T) {
			// Debian's Python, not a shim first on PATH (FACTS.md).
			requireProgram(t, "/usr/bin/python3")
			argv := []string{"/usr/bin/python3", "-c", p.code}
			ref := straceRef(t, argv)
			if ref.code != 0 || ref.vforks["clone3"] != 1 || ref.vforkCount() != 1 {
				t.Fatalf("without vtrace: exit %d, vfork-like calls %v; the test expects exit 0 and one clone3 (glibc 2.36's posix_spawn): re-check by hand", ref.code, ref.vforks)
			}
			for _, mode := range []string{"fast", "step"} {
				t.Run(mode, func(t *testing.T) {
					args := []string{"--"}
					if mode == "step" {
						args = []string{"--step", "--"}
					}
					r := trace(t, append(args, argv...)...)
					e := expect.Expect{Verdict: "clean", Vforks: 1, ChildEnd: "exit", ReturnsPast: -1, Exit: intp(0),
						LibcChannel: "spawn_error", Pending: expect.PendingTest("python/" + p.name)}
					bad := e.Check(expect.Summarize(r.events))
					if ends := all[*event.ChildEnd](r); len(ends) != 1 || ends[0].Code == nil || *ends[0].Code != 127 {
						bad = append(bad, fmt.Sprintf("child_end %s, want exit status 127 (glibc's SPAWN_ERROR)", jsonOf(ends)))
					}
					checkExpect(t, e, bad)
					r.assertNoneLeft(t)
				})
			}
		})
	}
}

// Items 4, 5, 6 in --step mode, which single-steps every child
// instruction: the same truth as in fast mode (targets/expect) - a return
// through `vzeroupper; ret`, leaving the frame by longjmp or unwinding, a
// parent reading the child's text inside printf - must be told there too.
func TestIssue11Step(t *testing.T) {
	requirePtrace(t)
	cases := []expect.Case{{Target: "vzeroret"}, {Target: "longjmpvfork"}, {Target: "throwvfork"}, {Target: "printchild"}}
	for _, build := range []string{"gcc-O0", "gcc-O2", "clang-O2", "musl-O2", "gcc-O2-m32"} {
		if expect.I386(build) && !i386Native(t) {
			t.Logf("%s: this kernel cannot run i386 programs; not checked here", build)
			continue
		}
		for _, c := range cases {
			if !expect.Built(c.Target, build) {
				continue
			}
			t.Run(build+"/"+c.Name(), func(t *testing.T) {
				r := trace(t, "--step", "--max-vforks", strconv.Itoa(expect.MaxVforks), "--timeout", "60s",
					targetPath(t, build, c.Target))
				e := expect.For(c, build)
				e.Pending = expect.PendingTest("step/" + c.Name())
				// In --step mode the return past the frame is the
				// stack-pointer load inside glibc's __longjmp, a hidden
				// function: only libc's debug file names it.
				if c.Target == "longjmpvfork" && !strings.Contains(build, "static") && !strings.HasPrefix(build, "musl") {
					if why := libcUnnamed(t, expect.I386(build)); why != "" {
						t.Logf("the writer's name is not checked: %s", why)
						e.PastBy = ""
					}
				}
				checkExpect(t, e, e.Check(expect.Summarize(r.events)))
				r.assertNoneLeft(t)
			})
		}
	}
}

// libcUnnamed says why the C library of the given arch cannot name its
// hidden functions here (no build-id debug file), or "".
func libcUnnamed(t *testing.T, i386 bool) string {
	t.Helper()
	lib := "/lib/x86_64-linux-gnu/libc.so.6"
	if i386 {
		lib = "/lib32/libc.so.6"
	}
	f, err := elf.Open(lib)
	if err != nil {
		return fmt.Sprintf("%s: %v", lib, err)
	}
	defer f.Close()
	note := f.Section(".note.gnu.build-id")
	if note == nil {
		return lib + " has no build id"
	}
	b, err := note.Data()
	if err != nil || len(b) < 16 {
		return fmt.Sprintf("%s: build id unreadable (%v)", lib, err)
	}
	id := fmt.Sprintf("%x", b[16:]) // after namesz, descsz, type and "GNU\0"
	debug := filepath.Join("/usr/lib/debug/.build-id", id[:2], id[2:]+".debug")
	if _, err := os.Stat(debug); err != nil {
		return fmt.Sprintf("%s has no debug file (%s; Debian: libc6-dbg)", lib, debug)
	}
	return ""
}

// Item 4 on the seed itself: with glibc's AVX-512/EVEX string functions
// disabled by a tunable, strlen and friends are the AVX2 versions, which
// end with `vzeroupper; ret`. The seed's story does not depend on which
// strlen libc picked: in --step mode the child still returns from
// createproc() into main (FACTS.md), which vtrace must report.
func TestIssue11StepAVX2Libc(t *testing.T) {
	requirePtrace(t)
	t.Setenv("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD,-EVEX")
	prog := targetPath(t, "gcc-O0", "badvfork")
	r := trace(t, "--step", "--no-aslr", prog)
	s := expect.Summarize(r.events)
	e := expect.Expect{Verdict: "violation", ReturnsPast: 1,
		Reasons: []string{"child_returned_past_frame", "parent_consumed_clobbered_slot"},
		Pending: expect.PendingTest("step/badvfork AVX2")}
	checkExpect(t, e, e.Check(s))
}

// Item 7: a correct vfork() in a loop in main(), 500 rounds. Every story
// must end (the parent rewrites `pid`, the one word its -O0 child changed,
// right after vfork returns), before the next vfork: 500 complete stories,
// none nested, the program's own exit. The budgets only guard the test:
// the run must not need them.
func TestIssue11VforkLoop500(t *testing.T) {
	requirePtrace(t)
	r := trace(t, "--timeout", "120s", targetPath(t, "gcc-O0", "vforkloop"), "500")
	e := expect.Expect{Verdict: "clean", Vforks: 500, ChildEnd: "exec", ReturnsPast: -1, Exit: intp(0), Complete: true,
		Pending: expect.PendingTest("loop500")}
	checkExpect(t, e, e.Check(expect.Summarize(r.events)))
	r.assertNoneLeft(t)
}

// Item 8: a data watchpoint traps after the write, with the pc at the next
// instruction to run; for a `call`, that is the callee's first instruction,
// and the writer of the pushed return address is the call that ends at the
// pushed value - not the instruction that happens to end where the callee
// starts (a PLT entry's last `jmp`, a function's `ret`). hwcallwriter's
// child, back in main() past spawn()'s frame, calls inner() - at full
// speed, under the watchpoints - whose `call leaf` pushes inner+5 over
// spawn()'s saved %rbp; leaf begins right after inner's `ret`. Each write
// found by a watchpoint whose new value is a return address (objdump: the
// instruction of the program ending there is a call) must name that call
// as its writer (a push or mov that stores such a value is its own
// writer: inner's `push %rax` puts main's return address back).
func TestIssue11WatchpointCallWriter(t *testing.T) {
	requirePtrace(t)
	for _, build := range []string{"gcc-O0", "clang-O2", "gcc-O0-nopie"} {
		t.Run(build, func(t *testing.T) {
			prog := targetPath(t, build, "hwcallwriter")
			r := trace(t, "--no-aslr", prog)
			if st := all[*event.Start](r)[0]; st.Watchpoints != "hw" {
				t.Skipf("hardware watchpoints do not fire here (watchpoints %q, probe: %s): item 8 is about their writer", st.Watchpoints, st.WatchpointProbe)
			}
			calls := callEnds(t, prog)
			var bad []string
			checked := 0
			check := func(what string, by *event.Insn, newSym *event.Sym, new event.Addr) {
				if newSym == nil || newSym.Module != filepath.Base(prog) || newSym.Sym == "" {
					return
				}
				call, ok := calls[symOff{newSym.Sym, newSym.Off}]
				if !ok {
					return // not a return address of this program
				}
				if by != nil && (strings.HasPrefix(by.Insn, "push") || strings.HasPrefix(by.Insn, "mov")) {
					// A store of a value that happens to be a return address
					// (inner's `push %rax` puts main's back): its own writer.
					return
				}
				checked++
				if by == nil || by.Sym == nil || by.Sym.Sym != call.fn || by.Sym.Off != call.off {
					bad = append(bad, fmt.Sprintf("%s = %s (%s+%d, the return address of `%s` at %s+%d): writer %s, want that call",
						what, new, newSym.Sym, newSym.Off, call.text, call.fn, call.off, writerOf(by)))
				}
			}
			for _, w := range all[*event.SlotWrite](r) {
				if w.FoundBy == "hw" {
					check(fmt.Sprintf("slot %s", w.Slot), w.By, w.NewSym, w.New)
				}
			}
			if checked == 0 {
				t.Fatalf("no write found by a watchpoint stored a return address of %s: nothing to check (the target or the engine's watchpoints changed)", filepath.Base(prog))
			}
			e := expect.Expect{Pending: expect.PendingTest("hw-call-writer")}
			checkExpect(t, e, bad)
		})
	}
}

type symOff struct {
	fn  string
	off uint64
}

type callSite struct {
	fn   string
	off  uint64
	text string
}

// callEnds maps each return address of prog's own code (function+offset of
// the instruction after a call) to that call, from objdump -d.
func callEnds(t *testing.T, prog string) map[symOff]callSite {
	t.Helper()
	requireProgram(t, "objdump")
	out, err := exec.Command("objdump", "-d", "--no-show-raw-insn", prog).Output()
	if err != nil {
		t.Fatalf("objdump -d %s: %v", prog, err)
	}
	f, err := elf.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[uint64]string{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
			funcs[s.Value] = s.Name
		}
	}
	fnHeader := regexp.MustCompile(`^([0-9a-f]+) <([^>]+)>:$`)
	insnLine := regexp.MustCompile(`^\s*([0-9a-f]+):\s+(.*)$`)
	ends := map[symOff]callSite{}
	var fn string
	var start uint64
	var pending *callSite // a call whose end is the next instruction's address
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := fnHeader.FindStringSubmatch(line); m != nil {
			start, _ = strconv.ParseUint(m[1], 16, 64)
			fn = m[2]
			if name, ok := funcs[start]; ok {
				fn = name
			}
			pending = nil
			continue
		}
		m := insnLine.FindStringSubmatch(line)
		if m == nil || fn == "" {
			continue
		}
		addr, _ := strconv.ParseUint(m[1], 16, 64)
		if pending != nil {
			ends[symOff{fn, addr - start}] = *pending
			pending = nil
		}
		if text := strings.Join(strings.Fields(m[2]), " "); strings.HasPrefix(text, "call") {
			pending = &callSite{fn: fn, off: addr - start, text: text}
		}
	}
	return ends
}

func writerOf(in *event.Insn) string {
	if in == nil {
		return "none"
	}
	return fmt.Sprintf("%s `%s`", symStr(in.Sym), strings.Join(strings.Fields(in.Insn), " "))
}

// Item 9: the flags of each vfork-like call must name every bit as
// `strace -f` decodes the same call (strace decodes them from the kernel's
// <linux/sched.h> values). For clone the exit signal is part of the flags
// word (strace prints SIGCHLD among them); clone3 has no signal bits in
// its flags. Programs: clonevfork and clone3vfork (vtrace's own), glibc's
// posix_spawn (clone3) and musl's (clone), and cloneflags, which passes
// CLONE_FS, CLONE_FILES, CLONE_SIGHAND, CLONE_SYSVSEM, CLONE_SETTLS,
// CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID, CLONE_IO
// (clone), CLONE_CLEAR_SIGHAND (clone3, above 32 bits) and, as root,
// CLONE_NEWPID.
func TestIssue11CloneFlags(t *testing.T) {
	requirePtrace(t)
	requireProgram(t, "strace")
	runs := []struct {
		build, target string
		args          []string
	}{
		{"gcc-O2", "clonevfork", nil}, {"gcc-O2", "clone3vfork", nil}, {"gcc-O2", "spawn", nil},
		{"musl-O2", "spawn", nil}, {"gcc-O2-m32", "clonevfork", nil},
		{"gcc-O2", "cloneflags", nil}, {"gcc-O2", "cloneflags", []string{"clone3"}},
		{"gcc-O2", "cloneflags", []string{"newpid"}},
		{"musl-O2", "cloneflags", nil}, {"gcc-O2-m32", "cloneflags", nil}, {"gcc-O2-m32", "cloneflags", []string{"clone3"}},
	}
	for _, run := range runs {
		c := expect.Case{Target: run.target, Args: run.args}
		t.Run(run.build+"/"+c.Name(), func(t *testing.T) {
			if expect.I386(run.build) && !i386Native(t) {
				t.Skipf("this kernel cannot run i386 programs")
			}
			if c.Name() == "cloneflags newpid" && os.Geteuid() != 0 {
				t.Skipf("CLONE_NEWPID needs CAP_SYS_ADMIN; not root (euid %d)", os.Geteuid())
			}
			prog := targetPath(t, run.build, run.target)
			want := straceCloneFlags(t, append([]string{prog}, run.args...))
			r := trace(t, append([]string{prog}, run.args...)...)
			var got []string
			for _, v := range all[*event.Vfork](r) {
				got = append(got, v.Flags)
			}
			var bad []string
			if len(got) != len(want) {
				bad = append(bad, fmt.Sprintf("vtrace saw %d vfork-like calls %q, strace -f %d %q", len(got), got, len(want), want))
			} else {
				for i := range got {
					if !sameFlagSet(got[i], want[i]) {
						bad = append(bad, fmt.Sprintf("vfork #%d flags %q, strace -f decodes %q", i+1, got[i], want[i]))
					}
				}
			}
			e := expect.Expect{Pending: expect.PendingTest("flags/" + c.Name())}
			checkExpect(t, e, bad)
		})
	}
}

// straceCloneFlags runs argv under strace -f and returns the flags of
// each successful clone/clone3 with CLONE_VFORK, as strace prints them.
func straceCloneFlags(t *testing.T, argv []string) []string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "strace.txt")
	cmd := exec.Command("strace", append([]string{"-f", "-qq", "-o", out, "-e", "trace=clone,clone3", "-e", "signal=none", "--"}, argv...)...)
	if err := cmd.Run(); err != nil {
		t.Fatalf("strace -f %q: %v (the program must exit 0 without vtrace)", argv, err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	flagsRE := regexp.MustCompile(`\bflags=([A-Z0-9_|x]+)`)
	pending := map[string]string{}
	var flags []string
	for _, line := range strings.Split(string(b), "\n") {
		pid, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		if strings.HasSuffix(rest, "<unfinished ...>") {
			pending[pid] = rest
			continue
		}
		if strings.HasPrefix(rest, "<... ") {
			rest = pending[pid] + rest
		}
		m := flagsRE.FindStringSubmatch(rest)
		if m == nil || !strings.Contains(m[1], "CLONE_VFORK") {
			continue
		}
		if ret := rest[strings.LastIndex(rest, "=")+1:]; strings.HasPrefix(strings.TrimSpace(ret), "-") {
			continue // failed
		}
		flags = append(flags, m[1])
	}
	if len(flags) == 0 {
		t.Fatalf("strace -f %q shows no vfork-like clone: re-check the program by hand", argv)
	}
	return flags
}

func sameFlagSet(a, b string) bool {
	set := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, f := range strings.Split(s, "|") {
			m[f] = true
		}
		return m
	}
	x, y := set(a), set(b)
	if len(x) != len(y) {
		return false
	}
	for f := range x {
		if !y[f] {
			return false
		}
	}
	return true
}
