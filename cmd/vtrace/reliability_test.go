package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/elfpatch"
	"github.com/vtrace/vtrace/tracer/event"
)

// Hostile inputs (issue 13, docs/reliability.md): crafted binaries,
// hostile targets, a log that cannot be written. Each test is a row of
// the table in docs/reliability.md.

// crafted writes a patched copy of a target binary.
func crafted(t *testing.T, build, name string, patch func([]byte) ([]byte, error)) string {
	t.Helper()
	orig, err := os.ReadFile(targetPath(t, build, name))
	if err != nil {
		t.Fatal(err)
	}
	data, err := patch(orig)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// A malformed FDE (its augmentation length changed: the program still
// runs natively) was an internal error, exit 126, in delve's parser. Now
// the frame is unwound from its code, a note says so, and the run ends as
// natively.
func TestCraftedFDE(t *testing.T) {
	prog := crafted(t, "gcc-O0", "goodvfork_exec", func(d []byte) ([]byte, error) { return elfpatch.BreakFDEAugmentation(d, 0x7f) })
	native := shellStatus(t, prog)
	r := trace(t, "-q", prog)
	if r.exit != native {
		t.Errorf("exit %d, want the program's own %d\nstderr: %s", r.exit, native, r.stderr)
	}
	var noted bool
	for _, n := range all[*event.Note](r) {
		if n.Code == event.NoteCFIUnreadable && strings.Contains(n.Msg, "CFI unreadable for main(), using ") {
			noted = true
		}
	}
	if !noted {
		t.Errorf("no cfi_unreadable note for main: %v", all[*event.Note](r))
	}
	if v := r.verdict(); v.Verdict != event.Clean || v.Vforks != 1 {
		t.Errorf("verdict %s with %d vforks, want clean with 1", v.Verdict, v.Vforks)
	}
	r.assertNoneLeft(t)
}

// A .symtab with a bogus sh_size: 0x7fffffffffffff00 crashed the prefetch
// goroutine (a goroutine dump, exit 2), 1 GiB cost 1 GB of RSS. Now the
// table is read as far as the file holds it.
func TestCraftedSymtabSize(t *testing.T) {
	for _, size := range []uint64{0x7fffffffffffff00, 1 << 30} {
		prog := crafted(t, "gcc-O0", "goodvfork_exec", func(d []byte) ([]byte, error) { return elfpatch.SetSectionSize(d, ".symtab", size) })
		bin := vtraceBin(t)
		cmd := exec.Command(bin, "run", "-q", prog)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf(".symtab sh_size %#x: %v\n%s", size, err, out)
			continue
		}
		if kb := maxRSSKB(cmd.ProcessState); kb > 100<<10 {
			t.Errorf(".symtab sh_size %#x: vtrace's max RSS %d MB", size, kb>>10)
		}
	}
}

// maxRSSKB is a finished process's peak resident set, in KiB (getrusage:
// of vtrace itself; the program's is not counted, it is vtrace's child's).
func maxRSSKB(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}

// An ELF header byte the kernel ignores (EI_DATA says big-endian) but
// vtrace's ELF reader refuses: the program runs natively, so it runs
// traced — its arch comes from its registers at the exec stop, as the
// kernel set them — and its story is told without its symbols, a
// symbols_unreadable note naming the file. Found by the mutation test:
// vtrace once killed the program at its exec stop and waited for it
// forever (held in the exit stop PTRACE_O_TRACEEXIT adds after a SIGKILL);
// then it refused it (126) for the ELF header it read at every exec.
func TestCraftedUnreadableHeader(t *testing.T) {
	prog := crafted(t, "musl-O0", "goodvfork_exec", func(d []byte) ([]byte, error) {
		d = bytes.Clone(d)
		d[5] = 2 // EI_DATA: ELFDATA2MSB
		return d, nil
	})
	if got := shellStatus(t, prog); got != 0 {
		t.Skipf("the kernel refuses the crafted file here (status %d)", got)
	}
	bin := vtraceBin(t)
	for _, mode := range [][]string{nil, {"--step"}} {
		log := filepath.Join(t.TempDir(), "log.jsonl")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, bin, append(append([]string{"run", "-q", "-o", log}, mode...), prog)...).CombinedOutput()
		hung := ctx.Err() != nil
		cancel()
		if hung {
			t.Fatalf("%v: vtrace hung on a program it cannot read\n%s", mode, out)
		}
		if err != nil {
			t.Errorf("%v: vtrace: %v, want the program's exit 0\n%s", mode, err, out)
		}
		var noted bool
		var v *event.Verdict
		for _, ev := range readLogFile(t, log) {
			switch e := ev.(type) {
			case *event.Note:
				noted = noted || e.Code == event.NoteSymbolsUnread && e.Vfork == 0 && strings.Contains(e.Msg, prog)
			case *event.Verdict:
				v = e
			}
		}
		if !noted {
			t.Errorf("%v: no symbols_unreadable note naming %s", mode, prog)
		}
		if v == nil || v.Verdict != "clean" || v.Vforks != 1 {
			t.Errorf("%v: verdict %+v, want clean with 1 vfork (goodvfork_exec's child execs at once)", mode, v)
		}
	}
}

// buildC compiles a test program of testdata with the system's C compiler.
func buildC(t *testing.T, src string, flags ...string) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler (cc) on PATH")
	}
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(src), ".c"))
	args := append(append([]string{"-O0", "-o", out}, flags...), filepath.Join("testdata", src))
	if b, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("cc %v: %v\n%s", args, err, b)
	}
	return out
}

// A vfork made with %rsp in unmapped memory: vtrace cannot read the
// parent's stack. The story is reported unchecked with the reason, both
// tasks are let go (the issue saw them held until --timeout, forever with
// none), and the run ends as natively — in both modes.
func TestAbandonedStoryBadRSP(t *testing.T) {
	prog := buildC(t, "badrsp.c")
	want, err := exec.Command(prog).Output()
	if err != nil {
		t.Fatalf("natively: %v", err)
	}
	for _, mode := range [][]string{nil, {"--step"}} {
		start := time.Now()
		r := trace(t, append(append([]string{"-q"}, mode...), prog)...)
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("%v: the run took %v", mode, d)
		}
		if r.exit != 0 || r.stdout != string(want) {
			t.Errorf("%v: exit %d, output %q; natively 0, %q\n%s", mode, r.exit, r.stdout, want, r.stderr)
		}
		checkUncheckedStory(t, mode, r, "bad address", "giving the reason")
		if len(all[*event.Exit](r)) != 2 {
			t.Errorf("%v: %d exit events, want the parent's and the child's", mode, len(all[*event.Exit](r)))
		}
		r.assertNoneLeft(t)
	}
}

// A program killed by a real-time signal: the exit event names it
// SIGRTMIN+N (the C library has no name for it) and vtrace exits 128+N as
// a shell reports it. Before, the name was empty and the status 128.
func TestRealtimeSignalExit(t *testing.T) {
	argv := []string{"bash", "-c", "kill -s RTMIN+2 $$"}
	native := shellStatus(t, argv...)
	if native != 128+36 {
		t.Fatalf("bash killing itself with SIGRTMIN+2: status %d, want %d", native, 128+36)
	}
	r := trace(t, append([]string{"-q", "--"}, argv...)...)
	if ex := r.mainExit(t); ex.Signal != "SIGRTMIN+2" {
		t.Errorf("exit event signal %q, want SIGRTMIN+2", ex.Signal)
	}
	if r.exit != native {
		t.Errorf("vtrace exit %d, want %d as natively", r.exit, native)
	}
}

// Files the kernel will not run: vtrace says why (126, cannot_trace in the
// log, which still ends with its verdict), as execve refuses them.
func TestUnrunnableFiles(t *testing.T) {
	bin := vtraceBin(t)
	dir := t.TempDir()
	prog, err := os.ReadFile(targetPath(t, "gcc-O0", "goodvfork_exec"))
	if err != nil {
		t.Fatal(err)
	}
	foreign := bytes.Clone(prog)
	foreign[18], foreign[19] = 0xb7, 0 // e_machine: EM_AARCH64
	files := map[string][]byte{
		"empty":         {},
		"truncated ELF": prog[:100],
		"foreign arch":  foreign,
	}
	cases := map[string]string{"directory": dir}
	for name, data := range files {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
		cases[name] = p
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			if err := syscall.Exec(p, []string{p}, nil); err == nil {
				t.Fatal("unreachable")
			} else if name != "directory" && !errors.Is(err, syscall.ENOEXEC) && !errors.Is(err, syscall.EIO) {
				t.Logf("execve says %v", err)
			}
			log := filepath.Join(t.TempDir(), "log.jsonl")
			out, err := exec.Command(bin, "run", "-q", "-o", log, p).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitCannotRun {
				t.Errorf("vtrace: %v, want exit %d\n%s", err, exitCannotRun, out)
			}
			// The log of a run that could not start: its error event and
			// the verdict (TestExitStatusTable checks the same form).
			raw, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			checkLog(t, name, raw)
			evs := readLogFile(t, log)
			if e, ok := evs[0].(*event.Error); !ok || e.Kind != "cannot_trace" || len(evs) != 2 {
				t.Errorf("log %v, want a cannot_trace error and the verdict", evs)
			}
		})
	}
}

// A #! script: the exec event names the program that runs, the
// interpreter (and its arch), with the script apart.
func TestScriptNamesInterpreter(t *testing.T) {
	script := filepath.Join(t.TempDir(), "hello.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hello\nexit 5\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	interp, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	r := trace(t, "-q", script)
	if r.exit != 5 || r.stdout != "hello\n" {
		t.Errorf("exit %d, output %q; want 5 and hello as natively", r.exit, r.stdout)
	}
	ex := all[*event.Exec](r)
	if len(ex) == 0 || ex[0].Path != interp || ex[0].Script != script || ex[0].Arch != "amd64" {
		t.Errorf("exec events %+v, want path %s (the interpreter), script %s", ex, interp, script)
	}
}

// A stripped program, a static-pie one, and one with neither CFI nor
// frame pointers: each is traced to its end with the verdict a program
// with every aid gets (clean), and its own exit status.
func TestStrippedStaticPIENoCFI(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler (cc) on PATH")
	}
	src := filepath.Join(repoRoot(), "targets", "goodvfork_exec.c")
	dir := t.TempDir()
	build := func(name string, flags ...string) string {
		out := filepath.Join(dir, name)
		if b, err := exec.Command(cc, append(append([]string{"-O0", "-o", out}, flags...), src)...).CombinedOutput(); err != nil {
			t.Fatalf("cc %v: %v\n%s", flags, err, b)
		}
		return out
	}
	stripped := build("stripped")
	if b, err := exec.Command("strip", stripped).CombinedOutput(); err != nil {
		t.Fatalf("strip: %v\n%s", err, b)
	}
	progs := map[string]string{
		"stripped":   stripped,
		"static-pie": build("static-pie", "-static-pie"),
		"no CFI, no frame pointer": build("nocfi", "-fomit-frame-pointer", "-fno-asynchronous-unwind-tables",
			"-fno-unwind-tables", "-Wl,--no-eh-frame-hdr"),
	}
	for name, p := range progs {
		t.Run(name, func(t *testing.T) {
			native := shellStatus(t, p)
			r := trace(t, "-q", p)
			if r.exit != native {
				t.Errorf("exit %d, natively %d\n%s", r.exit, native, r.stderr)
			}
			if v := r.verdict(); v.Verdict != event.Clean || v.Vforks != 1 || v.Unchecked != 0 {
				t.Errorf("verdict %+v, want clean over 1 checked vfork", v)
			}
			r.assertNoneLeft(t)
		})
	}
}

// ptrace refused: vtrace's program is already traced (vtrace run under
// strace -f), so its PTRACE_TRACEME fails. vtrace says so and exits 126.
// (vtrace run under vtrace run refuses the same way, but the outer
// vtrace sometimes delivers a SIGTRAP to the inner one, a Go program: an
// open bug, noted in docs/reliability.md, not what this row checks.)
func TestPtraceRefused(t *testing.T) {
	bin := vtraceBin(t)
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatalf("strace (scripts/install-deps.sh installs it): %v", err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(strace, "-f", "-o", "/dev/null", "--", bin, "run", "-q", "--", "/bin/true")
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitCannotRun {
		t.Errorf("vtrace under strace: %v, want exit %d\n%s", err, exitCannotRun, stderr.String())
	}
	if !strings.Contains(stderr.String(), "ptrace not permitted") {
		t.Errorf("vtrace did not say ptrace was refused:\n%s", stderr.String())
	}
}

// Blocked, ignored and caught signals, and a vfork child: the program's
// output and status are the same natively and under vtrace, both modes.
func TestSignalsBlockedAndIgnored(t *testing.T) {
	prog := buildC(t, "sigmask.c")
	want, err := exec.Command(prog).Output()
	native := shellStatus(t, prog)
	if native != 3 || err == nil {
		t.Fatalf("natively: status %d (%v), output %q", native, err, want)
	}
	for _, mode := range [][]string{nil, {"--step"}} {
		r := trace(t, append(append([]string{"-q"}, mode...), prog)...)
		if r.exit != native || r.stdout != string(want) {
			t.Errorf("%v: exit %d, output %q; natively %d, %q", mode, r.exit, r.stdout, native, want)
		}
	}
}

// A vfork child that never ends (spin's child single-stepped for ever):
// --timeout stops the run — every task killed, the log closed with a
// budget event and its verdict, exit 124 — and nothing is left.
func TestChildThatNeverEnds(t *testing.T) {
	start := time.Now()
	r := trace(t, "-q", "--timeout", "2s", "--max-story-steps", "0", targetPath(t, "gcc-O0", "spin"), "100000000000")
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the run took %v after a 2 s timeout", d)
	}
	if r.exit != exitBudget {
		t.Errorf("exit %d, want %d", r.exit, exitBudget)
	}
	if b := all[*event.Budget](r); len(b) != 1 || b[0].Budget != "timeout" {
		t.Errorf("budget events %+v, want one timeout", b)
	}
	r.assertNoneLeft(t)
}

// 60,000 frames of recursion before a vfork: the unwind stops at its
// bound and the snapshot at 1 MiB, each with a note; the story is clean
// and the run short.
func TestDeepRecursion(t *testing.T) {
	prog := buildC(t, "recurse.c")
	start := time.Now()
	r := trace(t, "-q", prog)
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the run took %v", d)
	}
	if r.exit != 0 || r.verdict().Verdict != event.Clean {
		t.Errorf("exit %d, verdict %s; want 0 and clean", r.exit, r.verdict().Verdict)
	}
	codes := map[event.NoteCode]bool{}
	for _, n := range all[*event.Note](r) {
		codes[n.Code] = true
	}
	if !codes[event.NoteUnwindTruncated] || !codes[event.NoteRegionTruncated] {
		t.Errorf("notes %v, want unwind_truncated and region_truncated", codes)
	}
}

// A fork storm under a pids cap (scripts/pidlimit.sh: a cgroup's
// pids.max): forks fail in the program as they do natively, vtrace ends,
// and nothing is left.
func TestForkStormUnderPidsCap(t *testing.T) {
	bin := vtraceBin(t)
	limit := filepath.Join(repoRoot(), "scripts", "pidlimit.sh")
	storm := []string{"sh", "-c", "for i in $(seq 80); do (sleep 0.3) & done; wait"}
	native := exec.Command(limit, append([]string{"40"}, storm...)...)
	if err := native.Run(); err == nil {
		t.Fatal("80 sleeps under pids.max 40 did not fail")
	} else if native.ProcessState.ExitCode() == 125 {
		t.Skip("no pids cgroup can be made here (scripts/pidlimit.sh exits 125)")
	}
	log := filepath.Join(t.TempDir(), "log.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, limit, append([]string{"40", bin, "run", "-q", "-o", log, "--"}, storm...)...)
	out, _ := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("vtrace under a pids cap did not end\n%s", out)
	}
	if got, want := cmd.ProcessState.ExitCode(), native.ProcessState.ExitCode(); got != want {
		t.Errorf("exit %d, natively %d\n%s", got, want, out)
	}
	raw, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	checkLog(t, "fork storm", raw)
	r := &traced{events: readLogFile(t, log)}
	r.assertNoneLeft(t)
}

// vtrace killed by each signal while the program runs. SIGINT, SIGTERM and
// SIGHUP stop the run: the program is killed, the log ends with its
// verdict, the status is 128+N. SIGKILL cannot be caught: the program dies
// with vtrace (PTRACE_O_EXITKILL), and the log holds only whole lines.
func TestVtraceKilledBySignal(t *testing.T) {
	bin := vtraceBin(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "log.jsonl")
			cmd := exec.Command(bin, "run", "-o", log, "--", "sh", "-c", "sleep 60; echo not killed")
			se, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if line, err := bufio.NewReader(se).ReadString('\n'); err != nil || !strings.HasPrefix(line, "vtrace ") {
				t.Fatalf("first stderr line %q (%v), want the start line", line, err)
			}
			time.Sleep(100 * time.Millisecond) // sh has started sleep
			_ = cmd.Process.Signal(sig)
			err = cmd.Wait()
			raw, rerr := os.ReadFile(log)
			if rerr != nil {
				t.Fatal(rerr)
			}
			var pids []int
			for _, line := range bytes.SplitAfter(raw, []byte("\n")) {
				if len(line) == 0 {
					continue
				}
				ev, derr := event.Decode(bytes.TrimSpace(line))
				if derr != nil || line[len(line)-1] != '\n' {
					t.Fatalf("a half-written line in the log: %q (%v)", line, derr)
				}
				pids = append(pids, ev.Head().PID)
			}
			if sig != syscall.SIGKILL {
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 128+int(sig) {
					t.Errorf("vtrace: %v, want exit %d", err, 128+int(sig))
				}
				checkLog(t, sig.String(), raw)
			}
			// Nothing left: every process the log names is gone (the
			// program, and sleep, which vtrace traced too) — give the
			// kernel a moment to tear down a SIGKILLed tracer's tracees.
			deadline := time.Now().Add(5 * time.Second)
			for _, pid := range pids {
				for pid > 0 && alive(pid) && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if pid > 0 && alive(pid) {
					t.Errorf("process %d outlived vtrace", pid)
				}
			}
		})
	}
}

// alive reports whether pid is a process that has not ended (a zombie
// has ended).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z" && f[2] != "X"
}

// A setuid program traced by an unprivileged user runs without its
// privilege: the kernel does not honour the set-user-ID bit of a program
// exec'd under ptrace by a tracer that could not trace the result (as
// under strace and gdb). vtrace traces it to its end; its output says
// whose it ran as.
func TestSetuidRunsUnprivileged(t *testing.T) {
	bin := vtraceBin(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and setpriv(1) to make a setuid-root program and run vtrace as nobody")
	}
	dir := dirForNobody(t, "vtrace-setuid-", 0o755) // nobody runs the program
	id := filepath.Join(dir, "id")
	data, err := os.ReadFile("/usr/bin/id")
	if err != nil {
		t.Skipf("no /usr/bin/id: %v", err)
	}
	if err := os.WriteFile(id, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(id, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	asNobody := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}
	native, err := exec.Command(setpriv, append(asNobody, id, "-u")...).Output()
	if err != nil || strings.TrimSpace(string(native)) != "0" {
		t.Skipf("the set-user-ID bit is not honoured here (nosuid mount?): %q %v", native, err)
	}
	cmd := exec.Command(setpriv, append(asNobody, bin, "run", "-q", "--", id, "-u")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("vtrace as nobody: %v\n%s", err, stderr.String())
	}
	if got := strings.TrimSpace(stdout.String()); got != "65534" {
		t.Errorf("the setuid program under vtrace ran as uid %s, want 65534 (without its privilege)", got)
	}
	if !strings.Contains(stderr.String(), "clean") {
		t.Errorf("no verdict on stderr: %q", stderr.String())
	}
}

// A program that sets PR_SET_DUMPABLE 0 and then vforks, traced by a user
// without CAP_SYS_PTRACE (nobody): the kernel refuses vtrace's reads of
// its memory, so the story is unchecked with the reason (a story_abandoned
// note), the run goes on to the program's own end with its own output and
// status, and no task is left behind — in both modes.
func TestNotDumpableAsNonRoot(t *testing.T) {
	bin := vtraceBin(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and setpriv(1) to run vtrace as nobody")
	}
	dir := dirForNobody(t, "vtrace-nodump-", 0o777) // nobody runs the program and writes the log
	prog := filepath.Join(dir, "nodump")
	data, err := os.ReadFile(buildC(t, "nodump.c"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prog, data, 0o755); err != nil {
		t.Fatal(err)
	}
	asNobody := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}
	want, err := exec.Command(setpriv, append(asNobody, prog)...).Output()
	if err != nil {
		t.Fatalf("natively as nobody: %v", err)
	}
	for _, mode := range [][]string{nil, {"--step"}} {
		log := filepath.Join(dir, "log.jsonl")
		_ = os.Remove(log)
		args := append(append(append(asNobody, bin, "run", "--json", "-o", log, "--timeout", "60s"), mode...), "--", prog)
		cmd := exec.Command(setpriv, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: vtrace as nobody: %v\n%s", mode, err, stderr.String())
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("%v: the run took %v", mode, d)
		}
		if stdout.String() != string(want) {
			t.Errorf("%v: output %q, natively %q", mode, stdout.String(), want)
		}
		raw, err := os.ReadFile(log)
		if err != nil {
			t.Fatalf("%v: no log: %v", mode, err)
		}
		checkLog(t, fmt.Sprint("nodump as nobody ", mode), raw)
		evs, err := event.ReadLog(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		r := &traced{events: evs}
		checkUncheckedStory(t, mode, r, "not permitted", "saying the read was refused")
		for _, e := range all[*event.Exit](r) {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", e.PID)); err == nil {
				t.Errorf("%v: task %d is still there after vtrace ended", mode, e.PID)
			}
		}
		if len(all[*event.Exit](r)) != 2 {
			t.Errorf("%v: %d exit events, want the child's and the program's", mode, len(all[*event.Exit](r)))
		}
	}
}

// dirForNobody makes a directory the user nobody can reach (with mode),
// removed at the end of the test. Not t.TempDir: its parent is private to
// root.
func dirForNobody(t *testing.T, prefix string, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// vtrace tracing vtrace: the inner one is a multi-threaded Go program
// that vforks with clone(CLONE_VM|CLONE_VFORK) on a goroutine's stack,
// once: the exec of its target, whose PTRACE_TRACEME is refused (the
// inner vtrace exits 126). (It vforked twice while it started the target
// with os.StartProcess, which first probes CLONE_PIDFD with a child of its
// own; syscall.StartProcess makes the one clone.) Three bugs
// showed here, 1 run in 6 or more each: the live region ran 1 MiB past
// the goroutine's stack (its top returns into runtime.goexit) over other
// goroutines' stacks, whose writes were blamed on the child, so the parent
// was followed for 400,000+ steps (a warning, 10-40 s); a pushf stepped
// in runtime.asyncPreempt stored vtrace's trap flag, which the matching
// popf made the program's own (SIGTRAP, exit 133; targets/pushfvfork.c
// holds that one deterministically); a thread created as the inner
// vtrace exited, its creator killed in its clone event stop, was never
// registered and sat in its exit stop for ever (a hang). Ten runs: each
// must end, clean, with the inner vtrace's own status, the region of
// every story ending at the goroutine's stack top.
func TestVtraceUnderVtrace(t *testing.T) {
	requirePtrace(t)
	bin := vtraceBin(t)
	for i := 0; i < 10; i++ {
		r := trace(t, "--timeout", "60s", "--", bin, "run", "-q", "--", "/bin/true")
		if r.exit != exitCannotRun || !strings.Contains(r.stderr, "ptrace not permitted") {
			t.Fatalf("run %d: exit %d, want %d (the inner vtrace refused ptrace)\n%s", i, r.exit, exitCannotRun, r.stderr)
		}
		vforks := 0
		for _, ev := range r.events {
			switch e := ev.(type) {
			case *event.Vfork:
				vforks++
				for _, f := range e.Frames {
					if f.RetSym != nil && strings.HasPrefix(f.RetSym.Sym, "runtime.goexit") && e.Live.Hi != f.CFA {
						t.Errorf("run %d, vfork %d: live region ends at %#x, want the goroutine's stack top %#x (frame %d returns into %s)",
							i, e.Vfork, uint64(e.Live.Hi), uint64(f.CFA), f.Index, f.RetSym.Sym)
					}
				}
			case *event.Note:
				if e.Code == event.NoteRegionTruncated {
					t.Errorf("run %d: %s", i, e.Msg)
				}
			case *event.Verdict:
				if e.Verdict != "clean" || e.Incomplete != "" {
					t.Errorf("run %d: verdict %s (incomplete %q): %s", i, e.Verdict, e.Incomplete, e.Explanation)
				}
			}
		}
		if vforks != 1 {
			t.Errorf("run %d: %d vforks, want the inner vtrace's 1 (the exec of its target)", i, vforks)
		}
	}
}

// checkUncheckedStory checks a run of one vfork vtrace could not follow:
// its one story unchecked, a story_abandoned note whose reason contains
// reason (what: how the failure message describes the note), and a run
// verdict of 1 unchecked story, complete.
func checkUncheckedStory(t *testing.T, mode []string, r *traced, reason, what string) {
	t.Helper()
	vv := all[*event.VforkVerdict](r)
	if len(vv) != 1 || vv[0].Verdict != event.Unchecked {
		t.Fatalf("%v: story verdicts %v, want one unchecked", mode, vv)
	}
	var why string
	for _, n := range all[*event.Note](r) {
		if n.Code == event.NoteStoryAbandoned {
			why = n.Msg
		}
	}
	if !strings.Contains(why, reason) {
		t.Errorf("%v: no story_abandoned note %s (%q)", mode, what, why)
	}
	if v := r.verdict(); v.Unchecked != 1 || v.Incomplete != "" {
		t.Errorf("%v: run verdict %+v, want 1 unchecked story and a complete run", mode, v)
	}
}

// Other code mapped where a vfork child ran before (a library dlclosed,
// another dlopened at its address): what vtrace decoded there the first
// time does not hold the second (testdata/dlswap.c). Kept, it planted a
// block exit's int3 inside an instruction of the new code and the child
// exited with 204, not 7: the program's behaviour changed under fast mode.
func TestCodeSwappedBetweenVforks(t *testing.T) {
	prog := buildC(t, "dlswap.c", "-ldl")
	dir := filepath.Dir(prog)
	for _, lib := range []string{"dlswapa", "dlswapb"} {
		if b, err := exec.Command("cc", "-shared", "-fPIC", "-o", filepath.Join(dir, lib+".so"), filepath.Join("testdata", lib+".c")).CombinedOutput(); err != nil {
			t.Fatalf("cc %s: %v\n%s", lib, err, b)
		}
	}
	want, err := exec.Command(prog, dir).Output()
	if err != nil {
		t.Fatalf("natively: %v", err)
	}
	if !strings.Contains(string(want), "same address: yes") {
		t.Skipf("the libraries were not mapped at one address natively: %s", want)
	}
	for _, mode := range [][]string{nil, {"--step"}} {
		r := trace(t, append(append([]string{"-q"}, mode...), prog, dir)...)
		if r.exit != 0 || r.stdout != string(want) {
			t.Errorf("%v: exit %d, output %q; natively 0, %q\n%s", mode, r.exit, r.stdout, want, r.stderr)
		}
	}
	// The same code rewritten in place (mprotect, write, mprotect back):
	// the page's mapping is split off, so the mappings change too.
	smc := buildC(t, "smcvfork.c")
	if want, err = exec.Command(smc).Output(); err != nil || string(want) != "child exit 3\nchild exit 7\n" {
		t.Fatalf("smcvfork natively: %v, %q", err, want)
	}
	for _, mode := range [][]string{nil, {"--step"}} {
		r := trace(t, append(append([]string{"-q"}, mode...), smc)...)
		if r.exit != 0 || r.stdout != string(want) {
			t.Errorf("smcvfork %v: exit %d, output %q; natively 0, %q\n%s", mode, r.exit, r.stdout, want, r.stderr)
		}
	}
}

// A story cut short (--max-story-steps) lets its child run on, traced but
// not followed, from where it stands: as it would have run. Two ways it
// did not, each found by this test:
//   - a cut when the child's run into its call of printf (a block and the
//     call in one continue) had stopped on the int3 at the return, before
//     the pc was moved back onto the instruction: the child ran on from
//     the middle of `mov -0x4(%rbp),%eax` and printed printf's 13 as its
//     pid (cuts after 6 steps; since the call runs were linked to blocks);
//   - a run of a call leaves the child's watchpoints on for its next
//     continue (off at its next single-step): a cut after the call left
//     them armed on the parent's return slots, which the child then
//     overwrites — a SIGTRAP, and an exit 0 or the output lost (cuts
//     after 6 to 13 and after 24 steps) had the story's end not turned
//     them off.
//
// Every cut gives the program's own output and its death by SIGSEGV.
// (vtrace's exit status is the program's: --error-exitcode 0.)
func TestStoryCutLeavesNoWatchpoints(t *testing.T) {
	requirePtrace(t)
	prog := targetPath(t, "gcc-O0", "badvfork")
	want := runNative(t, prog)
	if want.status != 128+int(syscall.SIGSEGV) {
		t.Fatalf("badvfork natively: status %d, want death by SIGSEGV", want.status)
	}
	for n := 1; n <= 30; n++ {
		got, raw := runTraced(t, []string{"--max-story-steps", strconv.Itoa(n)}, prog)
		if got != want {
			t.Errorf("--max-story-steps %d: output %q, status %d; natively %q, %d\n%s", n, got.out, got.status, want.out, want.status, raw)
		}
	}
}
