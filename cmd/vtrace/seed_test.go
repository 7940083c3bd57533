package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/tracer/event"
)

// The seed article's program, gcc -O0 amd64: every fact of FACTS.md's
// "what the seed program really does" must come out of vtrace's own log, in
// fast mode and in --step mode alike.
func TestSeedO0(t *testing.T) {
	requirePtrace(t)
	prog := targetPath(t, "gcc-O0", "badvfork")
	for _, mode := range []string{"fast", "step"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{"--no-aslr"}
			if mode == "step" {
				args = append(args, "--step")
			}
			r := trace(t, append(args, prog)...)
			checkSeedO0(t, r)
		})
	}
}

func checkSeedO0(t *testing.T, r *traced) {
	t.Helper()
	if r.exit != exitViolation {
		t.Errorf("vtrace exit code %d, want %d (violation)", r.exit, exitViolation)
	}
	vforks := all[*event.Vfork](r)
	if len(vforks) != 2 {
		t.Fatalf("%d vforks, want 2 (the parent lands on createproc+0 and vforks again)", len(vforks))
	}

	// Before: createproc's return slot holds main+18.
	v1 := vforks[0]
	if v1.Caller == nil || v1.Caller.Sym != "createproc" {
		t.Errorf("vfork #1 caller %v, want createproc", v1.Caller)
	}
	var slot event.Addr
	for _, f := range v1.Frames {
		if f.Sym != nil && f.Sym.Sym == "createproc" && f.RetSlot != nil {
			slot = *f.RetSlot
			if got := symStr(f.RetSym); got != "main+18" {
				t.Errorf("createproc frame returns to %s, want main+18", got)
			}
		}
	}
	if slot == 0 {
		t.Fatalf("no createproc frame with a return slot in %+v", v1.Frames)
	}

	// The child's call printf@plt at main+41 writes main+46, then its
	// call exit@plt at main+51 writes main+56 = createproc+0.
	var writes []*event.SlotWrite
	for _, w := range ofVfork[*event.SlotWrite](r, 1) {
		if w.Slot == slot {
			writes = append(writes, w)
		}
	}
	want := []struct{ by, insn, new string }{
		{"main+41", "printf@plt", "main+46"},
		{"main+51", "exit@plt", "createproc"},
	}
	if len(writes) != len(want) {
		t.Fatalf("%d writes to createproc's return slot, want %d: %+v", len(writes), len(want), writes)
	}
	for i, w := range want {
		got := writes[i]
		if got.Kind != "ret" || got.By == nil || symStr(got.By.Sym) != w.by ||
			!strings.Contains(got.By.Insn, w.insn) || symStr(got.NewSym) != w.new {
			t.Errorf("slot write %d: by %v %q new %s; want by %s (%s) new %s",
				i+1, got.By, insnOf(got.By), symStr(got.NewSym), w.by, w.insn, w.new)
		}
	}
	if !strings.HasPrefix(writes[0].By.Insn, "call") {
		t.Errorf("writer shown as %q, want the call instruction in AT&T syntax", writes[0].By.Insn)
	}

	// The saved %rbp slot above gets 2, and the child returned past createproc.
	rbp := false
	for _, w := range ofVfork[*event.SlotWrite](r, 1) {
		if w.Kind == "saved_reg" && w.Reg == "rbp" && w.New == 2 {
			rbp = true
		}
	}
	if !rbp {
		t.Errorf("no write of 0x2 into createproc's saved %%rbp slot")
	}
	past := ofVfork[*event.ChildReturnPastFrame](r, 1)
	if len(past) == 0 || past[0].FrameFn == nil || past[0].FrameFn.Sym != "createproc" || symStr(past[0].ToSym) != "main+18" {
		t.Errorf("child_return_past_frame: %+v, want from createproc into main+18", past)
	}

	// The parent returns through the clobbered slot onto createproc+0.
	land := ofVfork[*event.ParentLanding](r, 1)
	if len(land) != 1 || land[0].How != "ret_clobbered" || symStr(land[0].Sym) != "createproc" ||
		symStr(land[0].ExpectedSym) != "main+18" {
		t.Fatalf("parent_landing %+v, want ret_clobbered at createproc (expected main+18)", land)
	}

	// Child #2 dies of SIGSEGV (SI_KERNEL: the misaligned movaps in printf).
	ends := ofVfork[*event.ChildEnd](r, 2)
	if len(ends) != 1 || ends[0].How != "signal" || ends[0].Signal != "SIGSEGV" {
		t.Errorf("vfork #2 child end %+v, want SIGSEGV", ends)
	}

	// The program dies of SIGSEGV; the run's verdict is violation.
	if ex := r.mainExit(t); ex.Status != "signaled" || ex.Signal != "SIGSEGV" {
		t.Errorf("program exit %+v, want killed by SIGSEGV", ex)
	}
	if v := r.verdict(); v.Verdict != "violation" || v.Vforks != 2 {
		t.Errorf("verdict %+v, want violation over 2 vforks", v)
	}
	vv := ofVfork[*event.VforkVerdict](r, 1)
	if len(vv) != 1 || vv[0].Verdict != "violation" || !strings.Contains(vv[0].Explanation, "createproc()") {
		t.Errorf("vfork #1 verdict %+v, want a violation explained in terms of createproc()", vv)
	}
	r.assertNoneLeft(t)
}

func insnOf(i *event.Insn) string {
	if i == nil {
		return ""
	}
	return i.Insn
}

// The -O2 build restarts itself forever: the parent lands past the end of
// main (padding before _start). Budgets must end the run and leave nothing.
func TestSeedO2Budget(t *testing.T) {
	requirePtrace(t)
	prog := targetPath(t, "gcc-O2", "badvfork")
	r := trace(t, "--no-aslr", "--max-vforks", "5", "--timeout", "30s", prog)
	if r.exit != exitViolation {
		t.Errorf("exit code %d, want %d", r.exit, exitViolation)
	}
	land := ofVfork[*event.ParentLanding](r, 1)
	if len(land) != 1 || land[0].Sym == nil || land[0].How != "ret_clobbered" {
		t.Fatalf("parent_landing of vfork #1: %+v", land)
	}
	if l := land[0].Sym; l.Sym == "main" && !l.PastEnd {
		t.Errorf("landing %s reported inside main; want outside it (past its end)", symStr(l))
	}
	b := all[*event.Budget](r)
	if len(b) != 1 || b[0].Budget != "max_vforks" {
		t.Errorf("budget events %+v, want max_vforks", b)
	}
	if v := r.verdict(); v.Verdict != "violation" || v.Incomplete == "" {
		t.Errorf("verdict %+v, want an incomplete violation", v)
	}
	r.assertNoneLeft(t)

	// The wall-clock budget ends the run too.
	r = trace(t, "--no-aslr", "--timeout", "2s", "--max-vforks", "0", "--max-violations", "0", prog)
	if b := all[*event.Budget](r); len(b) != 1 || b[0].Budget != "timeout" {
		t.Errorf("budget events %+v, want timeout", b)
	}
	r.assertNoneLeft(t)

	// Under the default flags (no limit on vforks or time), the run ends
	// by itself: every restart is a violating story, and the 100th stops it.
	r = trace(t, prog)
	if b := all[*event.Budget](r); len(b) != 1 || b[0].Budget != "max_violations" || b[0].Limit != "100" {
		t.Errorf("budget events %+v, want max_violations 100", b)
	}
	if v := r.verdict(); v.Violations != 100 {
		t.Errorf("verdict %+v, want 100 violations", v)
	}
	r.assertNoneLeft(t)
}

// A budget that stops the run while a vfork child is still running: the
// story in progress is judged on what was seen and marked cut short, the
// run is not called clean-and-complete, and the exit code says so (124,
// as timeout(1) does: the run was stopped, not passed).
func TestBudgetMidStory(t *testing.T) {
	prog := targetPath(t, "gcc-O0", "badvfork")
	r := trace(t, "--step", "--max-steps", "100", prog)
	if r.exit != exitBudget {
		t.Errorf("exit code %d, want %d (no violation seen, run stopped)", r.exit, exitBudget)
	}
	vv := all[*event.VforkVerdict](r)
	if len(vv) != 1 || vv[0].Incomplete != "max_steps" || vv[0].Verdict != "clean" {
		t.Fatalf("vfork_verdict events %+v, want one clean story cut short by max_steps", vv)
	}
	if v := r.verdict(); v.Vforks != 1 || v.Incomplete != "max_steps" {
		t.Errorf("verdict %+v, want 1 vfork, incomplete max_steps", v)
	}
	r.assertNoneLeft(t)

	// -q still says the run was cut.
	out, err := exec.Command(vtraceBin(t), "run", "-q", "--step", "--max-steps", "100", prog).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitBudget {
		t.Errorf("-q run: %v, want exit %d", err, exitBudget)
	}
	if got := strings.TrimSpace(string(out)); got != "clean (incomplete: max_steps)" {
		t.Errorf("-q output %q, want %q", got, "clean (incomplete: max_steps)")
	}
}

// Correct vfork users: clean, with the target's real exit status, which is
// vtrace's own (README "Exit status").
func TestGoodTargetsClean(t *testing.T) {
	requirePtrace(t)
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"goodvfork_exec", nil, 0},
		{"goodvfork_exit", nil, 3},
		{"spawn", nil, 0},
		{"system", nil, 0},
	}
	for _, build := range []string{"gcc-O0", "gcc-O2", "clang-O2"} {
		for _, c := range cases {
			t.Run(build+"/"+c.name, func(t *testing.T) {
				// --no-aslr puts the exec'd program where the parent's code
				// was: a breakpoint restored through the wrong image would
				// corrupt it (a bug once), so every process must end well.
				r := trace(t, append([]string{"--no-aslr", targetPath(t, build, c.name)}, c.args...)...)
				for _, ex := range all[*event.Exit](r) {
					if ex.Status != "exited" {
						t.Errorf("process %d %s by %s at %v: vtrace must not disturb the programs it traces", ex.PID, ex.Status, ex.Signal, ex.Sym)
					}
				}
				if v := r.verdict(); v.Verdict != "clean" || v.Vforks == 0 {
					t.Errorf("verdict %+v, want clean with at least one vfork traced", v)
				}
				ex := r.mainExit(t)
				if ex.Status != "exited" || ex.Code == nil || *ex.Code != c.code {
					t.Errorf("exit %+v, want exited with %d", ex, c.code)
				}
				if r.exit != c.code {
					t.Errorf("vtrace exit %d, want the program's %d", r.exit, c.code)
				}
				r.assertNoneLeft(t)
			})
		}
	}
}

// requireI386 skips when this kernel cannot execute i386 programs at all
// (some VMs of this kind refuse them with ENOEXEC; see FACTS.md).
func requireI386(t *testing.T) {
	t.Helper()
	if !i386Native(t) {
		t.Skipf("this kernel cannot run i386 programs (execve: ENOEXEC); the VM tests cover them")
	}
}

// i386Native reports whether this kernel runs i386 programs: only ENOEXEC
// from execve means no; any other failure to run the probe fails the test.
func i386Native(t *testing.T) bool {
	t.Helper()
	probe := targetPath(t, "gcc-O0-m32-static", "goodvfork_exit")
	err := exec.Command(probe).Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		if errors.Is(err, syscall.ENOEXEC) {
			return false
		}
		t.Fatalf("running the i386 probe %s: %v", probe, err)
	}
	return true
}

// The seed at -m32 -O0: the return slot survives; the child zeroes the
// saved %ebx (GOT pointer) slot of createproc, and the parent, having
// restored %ebx from it, faults in a PLT stub at address 0x10.
func TestSeedI386(t *testing.T) {
	requirePtrace(t)
	requireI386(t)
	r := trace(t, "--no-aslr", targetPath(t, "gcc-O0-m32", "badvfork"))
	checkSeedI386(t, r)
	r.assertNoneLeft(t)
}

// checkSeedI386 asserts the i386 seed's story (natively here, in the VM
// harness where the kernel refuses i386): createproc's saved %ebx zeroed,
// its return slot untouched, the parent restoring %ebx from the slot and
// dying at fault address 0x10 in a PLT stub; one vfork, a violation.
func checkSeedI386(t *testing.T, r *traced) {
	t.Helper()
	if r.exit != exitViolation {
		t.Errorf("vtrace exit code %d, want %d (violation)", r.exit, exitViolation)
	}
	var ebx, ret int
	for _, w := range ofVfork[*event.SlotWrite](r, 1) {
		switch {
		case w.Kind == "saved_reg" && w.Reg == "ebx" && w.FrameFn != nil && w.FrameFn.Sym == "createproc":
			ebx++
			if w.New != 0 {
				t.Errorf("saved %%ebx of createproc set to %s, want 0x0", w.New)
			}
		case w.Kind == "ret" && w.FrameFn != nil && w.FrameFn.Sym == "createproc":
			ret++
		}
	}
	if ebx == 0 || ret != 0 {
		t.Errorf("createproc slot writes: %d saved %%ebx, %d return address; want the saved %%ebx only", ebx, ret)
	}
	c := ofVfork[*event.ParentConsume](r, 1)
	if len(c) == 0 || c[0].Kind != "saved_reg" || c[0].Reg != "ebx" {
		t.Errorf("parent_consume %+v, want the parent restoring %%ebx from the clobbered slot", c)
	}
	ex := r.mainExit(t)
	if ex.Signal != "SIGSEGV" || ex.Addr == nil || *ex.Addr != 0x10 || ex.Sym == nil || !strings.HasSuffix(ex.Sym.Sym, "@plt") {
		t.Errorf("program exit %+v (sym %v), want SIGSEGV at fault address 0x10 in a PLT stub", ex, ex.Sym)
	}
	if v := r.verdict(); v.Verdict != "violation" || v.Vforks != 1 {
		t.Errorf("verdict %+v, want violation over 1 vfork", v)
	}
}

// vtrace waits only for the tasks it traces: a child it inherited and
// never traced (bash's `sleep &` before `exec vtrace`) does not keep the
// run open. (The sleep is 600 s; the test would time out after 60.)
func TestInheritedChildNotWaited(t *testing.T) {
	bin := vtraceBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/bash", "-c", `sleep 600 >/dev/null 2>&1 & echo $! > "$1"; exec "$2" run -q /bin/true`, "_",
		filepath.Join(t.TempDir(), "sleep.pid"), bin)
	pidFile := cmd.Args[len(cmd.Args)-2]
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if b, rerr := os.ReadFile(pidFile); rerr == nil {
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("vtrace waited for a child it never traced (still running after 60 s)")
	}
	if err != nil || strings.TrimSpace(string(out)) != "clean" {
		t.Errorf("vtrace run -q /bin/true: %v, output %q", err, out)
	}
}
