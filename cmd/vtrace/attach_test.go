package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
)

// vtrace attach on a live process: targets/attachvfork waits for a file,
// then makes the seed's bad vfork (it dies of SIGSEGV, traced or not).

// attachTarget is a running attachvfork, started by the test (its parent).
type attachTarget struct {
	cmd  *exec.Cmd
	file string       // its go-ahead
	out  bytes.Buffer // its stdout after "ready" (complete once done is closed)
	errs bytes.Buffer // its stderr
	done chan struct{}
}

// startAttachTarget starts attachvfork with n extra threads and waits until
// it says it is ready (its threads exist).
func startAttachTarget(t *testing.T, file string, threads int) *attachTarget {
	t.Helper()
	return startAttachTargetCmd(t, file, exec.Command(targetPath(t, "gcc-O0", "attachvfork"), file, strconv.Itoa(threads)))
}

// startAttachTargetCmd starts cmd, an attachvfork (or a command that
// execs one), and waits until it is ready.
func startAttachTargetCmd(t *testing.T, file string, cmd *exec.Cmd) *attachTarget {
	t.Helper()
	a := &attachTarget{file: file, done: make(chan struct{}), cmd: cmd}
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	a.cmd.Stderr = &a.errs
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.cmd.Process.Kill()
		<-a.done
	})
	r := bufio.NewReader(stdout)
	line, err := r.ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("attachvfork: %q, %v", line, err)
	}
	go func() {
		_, _ = io.Copy(&a.out, r)
		_ = a.cmd.Wait()
		close(a.done)
	}()
	return a
}

func (a *attachTarget) pid() int { return a.cmd.Process.Pid }

// proceed lets it make its vfork.
func (a *attachTarget) proceed(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(a.file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// status waits for its end and returns its status as a shell reports it.
func (a *attachTarget) status(t *testing.T) int {
	t.Helper()
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("attachvfork %d did not end", a.pid())
	}
	ws := a.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// attachRun is a `vtrace attach` in progress.
type attachRun struct {
	cmd    *exec.Cmd
	log    string
	stderr bytes.Buffer
	done   chan error
}

// startAttach starts `vtrace attach -o LOG ARGS... PID` and waits until
// its log has the attach event.
func startAttach(t *testing.T, pid int, args ...string) *attachRun {
	t.Helper()
	r := &attachRun{log: filepath.Join(t.TempDir(), "attach.jsonl"), done: make(chan error, 1)}
	full := append(append([]string{"attach", "-o", r.log}, args...), strconv.Itoa(pid))
	r.cmd = exec.Command(vtraceBin(t), full...)
	r.cmd.Stderr = &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() { _ = r.cmd.Process.Kill() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(r.log)
		if bytes.Contains(b, []byte(`"event":"attach"`)) {
			return r
		}
		select {
		case err := <-r.done:
			t.Fatalf("vtrace %v ended before attaching: %v\n%s", full, err, r.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vtrace %v: no attach event after 20s\n%s", full, r.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// assertReportSame checks that `vtrace report LOG` tells what the live
// attach told on stderr, and exits as it did.
func (r *attachRun) assertReportSame(t *testing.T, code int) {
	t.Helper()
	out, stderr, rcode := vtraceCmd(t, "report", "--color", "never", r.log)
	if rcode != code || out != r.stderr.String() || stderr != "" {
		t.Errorf("vtrace report: exit %d (live %d), stderr %q; text equal to the live one: %v\n%s", rcode, code, stderr, out == r.stderr.String(), out)
	}
}

// finish waits for vtrace's end: its exit code and its log (validated).
func (r *attachRun) finish(t *testing.T) (int, []event.Event) {
	t.Helper()
	var err error
	select {
	case err = <-r.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("vtrace attach did not end\n%s", r.stderr.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	raw, rerr := os.ReadFile(r.log)
	if rerr != nil {
		t.Fatal(rerr)
	}
	checkLog(t, "vtrace attach", raw)
	return code, readLogFile(t, r.log)
}

func firstOf[T event.Event](evs []event.Event) T {
	var zero T
	for _, ev := range evs {
		if e, ok := ev.(T); ok {
			return e
		}
	}
	return zero
}

// procTasks lists /proc/PID/task.
func procTasks(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var tids []int
	for _, e := range ents {
		n, _ := strconv.Atoi(e.Name())
		tids = append(tids, n)
	}
	sort.Ints(tids)
	return tids
}

// assertRunningUntraced checks that every thread of pid is neither stopped
// nor traced, and that its code is the files' code: every executable
// file mapping holds the bytes of its file (no int3 left behind).
func assertRunningUntraced(t *testing.T, pid int) {
	t.Helper()
	for _, tid := range procTasks(t, pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
		if err != nil {
			t.Fatal(err)
		}
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if st := fields[0]; st == "T" || st == "t" {
			t.Errorf("thread %d of %d is stopped (state %s) after the detach", tid, pid, st)
		}
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
		if !bytes.Contains(status, []byte("\nTracerPid:\t0\n")) {
			t.Errorf("thread %d of %d is still traced after the detach", tid, pid)
		}
	}
	for _, d := range codeDiffs(t, pid) {
		t.Errorf("%s: vtrace left the code changed", d)
	}
}

// codeDiffs compares every executable file mapping of pid with its file
// and returns each byte that differs (an int3 vtrace planted, say).
func codeDiffs(t *testing.T, pid int) []string {
	t.Helper()
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	var diffs []string
	checked := 0
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.Contains(f[1], "x") || !strings.HasPrefix(f[5], "/") {
			continue
		}
		var lo, hi uint64
		if _, err := fmt.Sscanf(f[0], "%x-%x", &lo, &hi); err != nil {
			t.Fatal(err)
		}
		off, _ := strconv.ParseUint(f[2], 16, 64)
		file, err := os.Open(f[5])
		if err != nil {
			continue // a deleted or unreadable file: nothing to compare with
		}
		want := make([]byte, hi-lo)
		n, _ := file.ReadAt(want, int64(off))
		file.Close()
		got := make([]byte, n)
		if _, err := mem.ReadAt(got, int64(lo)); err != nil {
			t.Fatalf("read %s of %d: %v", f[0], pid, err)
		}
		for i := range got {
			if got[i] != want[i] {
				diffs = append(diffs, fmt.Sprintf("%s at %#x (+%#x): %#02x in memory, %#02x in the file", f[5], lo+uint64(i), i, got[i], want[i]))
			}
		}
		checked++
	}
	if checked == 0 {
		t.Errorf("no executable file mapping of %d to compare", pid)
	}
	return diffs
}

// nativeStatus is attachvfork's status untraced, its file already there:
// the seed's fate (-O0 glibc: SIGSEGV, 139).
func nativeStatus(t *testing.T) int {
	t.Helper()
	file := filepath.Join(t.TempDir(), "go")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAttachTarget(t, file, 2)
	return a.status(t)
}

// A process that waits, attached, then vforks badly: the violation is
// reported with the same story as `vtrace run` tells of the same program
// (vtrace diff: equal in meaning), vtrace exits 1, the process dies as it
// does untraced. The process has 3 extra threads: every one is seized.
func TestAttachViolation(t *testing.T) {
	vtraceBin(t)
	want := nativeStatus(t)
	if want != 128+int(unix.SIGSEGV) {
		t.Fatalf("attachvfork untraced: status %d, want 139 (the seed's SIGSEGV at -O0)", want)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "go")
	// Without address randomisation (setarch -R, run --no-aslr): where
	// the parent's second ret lands is an address in the stack.
	prog := targetPath(t, "gcc-O0", "attachvfork")
	a := startAttachTargetCmd(t, file, exec.Command("setarch", "-R", prog, file, "3"))
	tids := procTasks(t, a.pid())
	r := startAttach(t, a.pid())
	a.proceed(t)
	code, evs := r.finish(t)
	if got := a.status(t); got != want {
		t.Errorf("attached process: status %d, want %d as untraced", got, want)
	}
	if code != exitViolation {
		t.Errorf("vtrace attach: exit %d, want 1 (violation)\n%s", code, r.stderr.String())
	}
	at := firstOf[*event.Attach](evs)
	if at == nil || !reflect.DeepEqual(at.Threads, tids) || at.PID != a.pid() {
		t.Errorf("attach event %+v, want pid %d, threads %v", at, a.pid(), tids)
	}
	if d := firstOf[*event.Detach](evs); d != nil {
		t.Errorf("a detach event although the process ended while attached: %+v", d)
	}
	if e := firstOf[*event.Exit](evs); e == nil || !e.Main || e.Signal != "SIGSEGV" {
		t.Errorf("main exit %+v, want the process's SIGSEGV", e)
	}
	v := evs[len(evs)-1].(*event.Verdict)
	if v.Verdict != event.Violation || v.Incomplete != "" {
		t.Errorf("verdict %+v, want a complete violation", v)
	}
	if !strings.Contains(r.stderr.String(), "createproc+58 `ret`") || !strings.Contains(r.stderr.String(), "attached to pid") {
		t.Errorf("the story is not told:\n%s", r.stderr.String())
	}
	r.assertReportSame(t, code)

	// The same program run from the start, its file already there.
	runLog := filepath.Join(dir, "run.jsonl")
	runOut, runErr, runCode := vtraceCmd(t, "run", "-q", "--no-aslr", "-o", runLog, "--", prog, file, "3")
	if runCode != exitViolation {
		t.Fatalf("vtrace run: exit %d\n%s%s", runCode, runOut, runErr)
	}
	out, dcode := diffOf(t, runLog, r.log)
	if dcode != 0 {
		t.Errorf("vtrace diff run attach: exit %d, want 0 (the same stories)\n%s", dcode, out)
	}
	runEvs := readLogFile(t, runLog)
	rv, av := firstOf[*event.VforkVerdict](runEvs), firstOf[*event.VforkVerdict](evs)
	if rv == nil || av == nil || !reflect.DeepEqual(rv.Reasons, av.Reasons) || av.Verdict != event.Violation {
		t.Errorf("story 1: run %+v, attach %+v", rv, av)
	}
	rl, al := firstOf[*event.ParentLanding](runEvs), firstOf[*event.ParentLanding](evs)
	if rl == nil || al == nil || rl.How != al.How || symStr(rl.Sym) != symStr(al.Sym) || symStr(al.Sym) != "createproc" {
		t.Errorf("landing: run %+v, attach %+v; want both at createproc", rl, al)
	}
}

// Ctrl-C (SIGINT to vtrace) and --timeout let the process go: vtrace
// exits 0 (no violation; the process was not stopped), the log ends with
// detach (every thread), budget and verdict, the process is left running,
// untraced, with its code as in its files, and it then does what it does
// untraced: its bad vfork, and SIGSEGV.
func TestAttachDetach(t *testing.T) {
	vtraceBin(t)
	want := nativeStatus(t)
	for _, tc := range []struct {
		name string
		args []string
		why  string
		sig  string
	}{
		{"sigint", nil, "interrupt", "SIGINT"},
		{"sigterm", nil, "interrupt", "SIGTERM"},
		{"timeout", []string{"--timeout", "700ms"}, "timeout", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := startAttachTarget(t, filepath.Join(t.TempDir(), "go"), 2)
			r := startAttach(t, a.pid(), tc.args...)
			switch tc.sig {
			case "SIGINT":
				time.Sleep(300 * time.Millisecond)
				_ = r.cmd.Process.Signal(unix.SIGINT)
			case "SIGTERM":
				time.Sleep(300 * time.Millisecond)
				_ = r.cmd.Process.Signal(unix.SIGTERM)
			}
			code, evs := r.finish(t)
			if code != 0 {
				t.Errorf("vtrace attach: exit %d, want 0 (let go, no violation)\n%s", code, r.stderr.String())
			}
			at, d := firstOf[*event.Attach](evs), firstOf[*event.Detach](evs)
			if at == nil || len(at.Threads) != 3 {
				t.Fatalf("attach event %+v: want 3 threads", at)
			}
			if d == nil || !reflect.DeepEqual(d.Threads, at.Threads) || d.Why != tc.why || d.Signal != tc.sig {
				t.Errorf("detach event %+v, want threads %v, why %s, signal %q", d, at.Threads, tc.why, tc.sig)
			}
			if v := evs[len(evs)-1].(*event.Verdict); v.Incomplete != tc.why || v.Vforks != 0 {
				t.Errorf("verdict %+v", v)
			}
			if !strings.Contains(r.stderr.String(), "detached from pid") {
				t.Errorf("no detach line:\n%s", r.stderr.String())
			}
			r.assertReportSame(t, code)
			assertRunningUntraced(t, a.pid())
			a.proceed(t)
			if got := a.status(t); got != want {
				t.Errorf("after the detach: status %d, want %d as untraced\n%s", got, want, a.out.String())
			}
			if !strings.Contains(a.out.String(), "child proc:0") {
				t.Errorf("after the detach the process did not make its vfork: stdout %q, stderr %q", a.out.String(), a.errs.String())
			}
		})
	}
}

// A process stopped by job control (SIGSTOP) is left stopped (the attach
// event says so), and after the detach still is; SIGCONT lets it go on.
func TestAttachStoppedProcess(t *testing.T) {
	vtraceBin(t)
	a := startAttachTarget(t, filepath.Join(t.TempDir(), "go"), 1)
	_ = unix.Kill(a.pid(), unix.SIGSTOP)
	waitState(t, a.pid(), "T")
	r := startAttach(t, a.pid(), "--timeout", "500ms")
	code, evs := r.finish(t)
	if at := firstOf[*event.Attach](evs); code != 0 || at == nil || !at.Stopped {
		t.Errorf("exit %d, attach %+v: want 0 and stopped\n%s", code, at, r.stderr.String())
	}
	waitState(t, a.pid(), "T")
	_ = unix.Kill(a.pid(), unix.SIGCONT)
	a.proceed(t)
	if got := a.status(t); got != 128+int(unix.SIGSEGV) {
		t.Errorf("after SIGCONT: status %d, want 139", got)
	}
}

func waitState(t *testing.T, pid int, want string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(f) > 0 && f[0] == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d never in state %s", pid, want)
}

// No such process: 127, a log with the error, nothing else.
func TestAttachNoSuchProcess(t *testing.T) {
	vtraceBin(t)
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b)) // pids are below pid_max
	log := filepath.Join(t.TempDir(), "log.jsonl")
	_, stderr, code := vtraceCmd(t, "attach", "-o", log, pid)
	if code != exitNotFound || !strings.Contains(stderr, "attach "+pid+": no such process") {
		t.Errorf("attach %s: exit %d, %q; want 127, no such process", pid, code, stderr)
	}
	if e := firstOf[*event.Error](readLogFile(t, log)); e == nil || e.Kind != "not_found" {
		t.Errorf("error event %+v", e)
	}
	if _, stderr, code := vtraceCmd(t, "attach", "12x"); code != exitUsage {
		t.Errorf("attach 12x: exit %d, %q; want 125", code, stderr)
	}
}

// A process already traced (by another vtrace attach) is refused, in one
// line naming its tracer: 126. The first attach goes on undisturbed.
func TestAttachAlreadyTraced(t *testing.T) {
	vtraceBin(t)
	a := startAttachTarget(t, filepath.Join(t.TempDir(), "go"), 0)
	first := startAttach(t, a.pid())
	_, stderr, code := vtraceCmd(t, "attach", "-q", strconv.Itoa(a.pid()))
	want := fmt.Sprintf("already traced by pid %d (vtrace)", first.cmd.Process.Pid)
	if code != exitCannotRun || !strings.Contains(stderr, want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("second attach: exit %d, %q; want 126 and one line with %q", code, stderr, want)
	}
	a.proceed(t)
	if code, _ := first.finish(t); code != exitViolation {
		t.Errorf("first attach: exit %d, want 1\n%s", code, first.stderr.String())
	}
}

// ptrace refused by policy: a kernel thread (kthreadd, pid 2) cannot be
// traced; an unprivileged vtrace may not trace another user's process,
// and says why in one line: kernel.yama.ptrace_scope (its value, read
// from /proc) and CAP_SYS_PTRACE.
func TestAttachRefused(t *testing.T) {
	bin := vtraceBin(t)
	if _, stderr, code := vtraceCmd(t, "attach", "-q", "2"); code != exitCannotRun || !strings.Contains(stderr, "kernel thread") {
		t.Errorf("attach 2: exit %d, %q; want 126, a kernel thread", code, stderr)
	}
	if os.Geteuid() != 0 {
		t.Skip("the unprivileged case needs root to run vtrace as nobody against a root process")
	}
	scope := "not set (no Yama in this kernel)"
	if b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil {
		scope = strings.TrimSpace(string(b))
	}
	a := startAttachTarget(t, filepath.Join(t.TempDir(), "go"), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "attach", "-q", strconv.Itoa(a.pid()))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("vtrace as nobody: %v %s", err, stderr.String())
	}
	msg := strings.TrimSpace(stderr.String())
	if ee.ExitCode() != exitCannotRun || strings.Contains(msg, "\n") ||
		!strings.Contains(msg, "kernel.yama.ptrace_scope = "+scope) || !strings.Contains(msg, "lacks CAP_SYS_PTRACE") {
		t.Errorf("vtrace attach as nobody: exit %d, %q; want 126 and one line with ptrace_scope = %s and CAP_SYS_PTRACE", ee.ExitCode(), msg, scope)
	}
	a.proceed(t)
	if got := a.status(t); got != 128+int(unix.SIGSEGV) {
		t.Errorf("the process after a refused attach: status %d, want 139", got)
	}
}

// Ctrl-C in the middle of a story: the vfork child runs a call at full
// speed (an int3 planted at its return address, watchpoints armed in it),
// its parent held in its vfork stop. vtrace cuts the story short (verdict
// incomplete), removes the int3, clears the debug registers, and lets go
// the parent, its thread and the child: none is stopped or traced, the
// code is the files', and when the child is let on it ends, and the
// process exits 0, as untraced.
func TestAttachDetachMidStory(t *testing.T) {
	vtraceBin(t)
	dir := t.TempDir()
	file, childFile := filepath.Join(dir, "go"), filepath.Join(dir, "child")
	prog := targetPath(t, "gcc-O0", "attachvfork")
	a := startAttachTargetCmd(t, file, exec.Command(prog, file, "1", childFile))
	r := startAttach(t, a.pid())
	a.proceed(t)
	// Wait until the child is inside its call: its story begun (the vfork
	// event), it sleeps in waitfor's usleep (clock_nanosleep, 230). The
	// child_call is logged when a stop shows the call ran: the run of
	// the block before the call goes on into it (block.go: linkCall).
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(r.log)
		if i := bytes.Index(b, []byte(`"event":"vfork"`)); i >= 0 {
			var child struct{ Child int }
			line, _, _ := bytes.Cut(b[bytes.LastIndexByte(b[:i], '\n')+1:], []byte("\n"))
			if json.Unmarshal(line, &child) == nil && child.Child != 0 {
				if sc, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", child.Child)); err == nil && bytes.HasPrefix(sc, []byte("230 ")) {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child not asleep in its call after 20s\n%s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The check below can fail: during the story the int3s are there —
	// at the call's return, and at the other exits of the block the run
	// into it came through.
	if d := codeDiffs(t, a.pid()); len(d) == 0 || slices.ContainsFunc(d, func(x string) bool { return !strings.Contains(x, "0xcc in memory") }) {
		t.Errorf("during the story: code differences %q, want the int3s of the run into the call", d)
	}
	sigint := time.Now()
	_ = r.cmd.Process.Signal(unix.SIGINT)
	code, evs := r.finish(t)
	t.Logf("vtrace let the process go and ended %v after SIGINT", time.Since(sigint).Round(time.Millisecond))
	if code != 0 {
		t.Errorf("vtrace attach: exit %d, want 0\n%s", code, r.stderr.String())
	}
	vf, vv := firstOf[*event.Vfork](evs), firstOf[*event.VforkVerdict](evs)
	if vf == nil || vv == nil || vv.Incomplete != "interrupt" || vv.Verdict != event.Clean {
		t.Fatalf("story: vfork %+v, verdict %+v; want a clean story cut short by the interrupt", vf, vv)
	}
	if c := firstOf[*event.ChildCall](evs); c == nil || c.TargetSym == nil || c.TargetSym.Sym != "waitfor" {
		t.Errorf("child_call %+v: want the child's call of waitfor, told when the run stopped", c)
	}
	d := firstOf[*event.Detach](evs)
	at := firstOf[*event.Attach](evs)
	want := append(append([]int(nil), at.Threads...), vf.Child)
	sort.Ints(want)
	if d == nil || !reflect.DeepEqual(d.Threads, want) {
		t.Errorf("detach %+v: want threads %v (the process's and the vfork child)", d, want)
	}
	assertRunningUntraced(t, a.pid())
	assertRunningUntraced(t, vf.Child)
	if err := os.WriteFile(childFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := a.status(t); got != 0 || a.out.String() != "1\n" {
		t.Errorf("after the detach: status %d, stdout %q; want 0 and \"1\" as untraced", got, a.out.String())
	}
}

// A signal pending when vtrace attaches (blocked by the process until its
// file exists) is delivered, not swallowed: its handler runs, while
// attached, before the bad vfork that vtrace then reports.
func TestAttachPendingSignal(t *testing.T) {
	vtraceBin(t)
	file := filepath.Join(t.TempDir(), "go")
	cmd := exec.Command(targetPath(t, "gcc-O0", "attachvfork"), file, "1")
	cmd.Env = append(os.Environ(), "ATTACHVFORK_USR1=1")
	a := startAttachTargetCmd(t, file, cmd)
	if err := unix.Kill(a.pid(), unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitSigPnd(t, a.pid(), unix.SIGUSR1)
	r := startAttach(t, a.pid())
	a.proceed(t)
	code, evs := r.finish(t)
	if got := a.status(t); got != 128+int(unix.SIGSEGV) || !strings.HasPrefix(a.out.String(), "usr1\n") {
		t.Errorf("status %d, stdout %q: want the handler's usr1 first, then the seed's end (139)", got, a.out.String())
	}
	if v := evs[len(evs)-1].(*event.Verdict); code != exitViolation || v.Verdict != event.Violation {
		t.Errorf("exit %d, verdict %+v: want the violation", code, v)
	}
}

// waitSigPnd waits until sig is pending for process pid (ShdPnd).
func waitSigPnd(t *testing.T, pid int, sig unix.Signal) {
	t.Helper()
	for i := 0; i < 200; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "ShdPnd:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && m&(1<<(uint(sig)-1)) != 0 {
					return
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%v never pending for %d", sig, pid)
}
