package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer"
	"github.com/vtrace/vtrace/tracer/event"
)

// The watchdog (tracer/watchdog.go, cmd/vtrace/watchdog.go): a tracer
// thread that never comes back — made to hang at the first vfork, where
// the parent's symbols are loaded, by the test-only hook
// VTRACE_TEST_HANG — does not keep vtrace from ending. StuckGrace after
// --timeout (or a SIGTERM), vtrace writes the log's error event
// (internal) and verdict, says so on stderr in one line, exits 126, and
// the kernel kills every tracee as vtrace exits (PTRACE_O_EXITKILL): the
// vfork parent held in its event stop, the child in its first stop, and
// the shell's fork for a sleep (running it, or still in its first stop if
// the tracer hung before letting it go). Without the watchdog each of
// these runs waits for ever.
func TestWatchdogStuckTracer(t *testing.T) {
	bin := vtraceBin(t)
	// Time enough for the program to reach its vfork on a loaded machine
	// (the sleep it starts must have exec'd first).
	const timeout = 2 * time.Second
	for _, tc := range []struct {
		name, hang string
		args       []string
		sigterm    bool
	}{
		{"timeout, blocked", "vfork", []string{"--timeout", timeout.String()}, false},
		{"timeout, spinning", "vfork:spin", []string{"--timeout", timeout.String()}, false},
		{"SIGTERM, blocked", "vfork", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			prog, sleeper := filepath.Join(dir, "prog"), filepath.Join(dir, "sleeper")
			copyFile(t, targetPath(t, "gcc-O0", "goodvfork_exec"), prog)
			sleepPath, err := exec.LookPath("sleep")
			if err != nil {
				t.Fatal(err)
			}
			copyFile(t, sleepPath, sleeper)
			log := filepath.Join(dir, "log.jsonl")
			args := append(append([]string{"run", "-q", "-o", log}, tc.args...),
				"--", "/bin/sh", "-c", `"$0" 100 & exec "$1"`, sleeper, prog)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Env = append(os.Environ(), "VTRACE_TEST_HANG="+tc.hang)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			// The program's processes, once it is held at its vfork: the
			// parent and the child (both prog), and the sleep.
			// The program's processes once it is held at its vfork: the
			// parent and the child (both prog), and the shell's fork for
			// the sleep (running it, or still in its first stop if the
			// tracer hung before it let it go) — every descendant of
			// vtrace but its wake commands.
			for deadline := time.Now().Add(30 * time.Second); len(procsUnder(dir)) < 2 || !hasExe(procsUnder(dir), prog, 2); {
				select {
				case <-done:
					t.Fatalf("vtrace ended (%v) before the program made its vfork\n%s", cmd.ProcessState, stderr.String())
				case <-time.After(20 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					_ = cmd.Process.Kill()
					t.Fatalf("the program never reached its vfork: %v", procsUnder(dir))
				}
			}
			var pids []int
			for _, pid := range descendants(cmd.Process.Pid) {
				if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe != bin {
					pids = append(pids, pid)
				}
			}
			if len(pids) < 3 {
				t.Fatalf("the program's processes: %v, want its vfork parent and child and the shell's fork", pids)
			}
			// The stop: the SIGTERM; or the timeout, whose timer vtrace
			// started before the program was held here, and after the
			// test started vtrace (its start-up takes a while on a loaded
			// machine): its end is bounded from the hold, and told from
			// both.
			held := time.Now()
			if tc.sigterm {
				_ = cmd.Process.Signal(unix.SIGTERM)
			}
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("vtrace still running 30 s after its stop\n%s", stderr.String())
			}
			ended := time.Now()
			bound := tracer.DefaultStuckGrace + 3*time.Second // the grace, and a loaded machine
			if tc.sigterm {
				took := ended.Sub(held)
				t.Logf("%s: vtrace ended %v after the SIGTERM; processes of the program %v", tc.name, took.Round(time.Millisecond), pids)
				if took > bound || took < tracer.DefaultStuckGrace-100*time.Millisecond {
					t.Errorf("vtrace ended %v after the SIGTERM, want between the grace %v and %v", took, tracer.DefaultStuckGrace, bound)
				}
			} else {
				t.Logf("%s: vtrace ended %v after it started (--timeout %v), %v after the program was held; processes of the program %v",
					tc.name, ended.Sub(start).Round(time.Millisecond), timeout, ended.Sub(held).Round(time.Millisecond), pids)
				if took := ended.Sub(held); took > timeout+bound {
					t.Errorf("vtrace ended %v after the program was held at its vfork, want under the timeout and %v", took, bound)
				}
				if took := ended.Sub(start); took < timeout+tracer.DefaultStuckGrace-100*time.Millisecond {
					t.Errorf("vtrace ended %v after it started: before the timeout and the grace (did the hook hang?)", took)
				}
			}
			if code := cmd.ProcessState.ExitCode(); code != exitCannotRun {
				t.Errorf("exit %d, want %d (an internal error)\n%s", code, exitCannotRun, stderr.String())
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "vtrace: internal error: the tracer thread did not finish within 2s") {
				t.Errorf("stderr %q: want one line, the internal error", msg)
			}
			raw, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			checkLog(t, "the watchdog's log", raw)
			evs, err := event.ReadLog(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) < 3 {
				t.Fatalf("log: %d events\n%s", len(evs), raw)
			}
			e, ok := evs[len(evs)-2].(*event.Error)
			v := evs[len(evs)-1].(*event.Verdict)
			if !ok || e.Kind != "internal" || !strings.Contains(e.Msg, "did not finish within 2s") || v.Incomplete != "error" {
				t.Errorf("the log ends with %+v, %+v: want the internal error and a verdict incomplete \"error\"", evs[len(evs)-2], v)
			}
			assertGone(t, pids)
			if left := procsUnder(dir); len(left) > 0 {
				t.Errorf("processes of the program still alive: %v", left)
			}
		})
	}
}

// hasExe reports whether n of pids run the program exe.
func hasExe(pids []int, exe string, n int) bool {
	for _, pid := range pids {
		if e, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); e == exe {
			n--
		}
	}
	return n <= 0
}

// descendants is every process below root (from /proc/PID/stat's ppid).
func descendants(root int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				children[ppid] = append(children[ppid], pid)
			}
		}
	}
	var out []int
	for queue := []int{root}; len(queue) > 0; queue = queue[1:] {
		for _, c := range children[queue[0]] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// procsUnder is the live processes (not zombies: their exe link is gone)
// whose program is a file in dir.
func procsUnder(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && filepath.Dir(exe) == dir {
			pids = append(pids, pid)
		}
	}
	return pids
}

// assertGone waits (up to 5 s) until each pid is gone or a zombie — dead,
// waiting for whoever adopted it to reap it — and untraced; a task left
// stopped (t, T) or running fails.
func assertGone(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		var state, tracer string
		for deadline := time.Now().Add(5 * time.Second); ; {
			state, tracer = procState(pid)
			if state == "" || state == "Z" || state == "X" {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("process %d left behind: state %s, TracerPid %s", pid, state, tracer)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// procState is a process's state letter and TracerPid ("" if it is gone).
func procState(pid int) (state, tracer string) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "State:"); ok {
			state = strings.Fields(v)[0]
		}
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			tracer = strings.TrimSpace(v)
		}
	}
	return state, tracer
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// The watchdog on `vtrace attach`: a tracer thread stuck at the process's
// vfork cannot take out its breakpoints or let its threads go; vtrace
// still ends (exit 126, the log's error event and verdict), and the
// kernel kills the process as vtrace exits (PTRACE_O_EXITKILL), as when
// vtrace is killed: it is not left held in a ptrace-stop.
func TestWatchdogStuckAttach(t *testing.T) {
	bin := vtraceBin(t)
	a := startAttachTarget(t, filepath.Join(t.TempDir(), "go"), 1)
	log := filepath.Join(t.TempDir(), "attach.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "attach", "-q", "-o", log, "--timeout", "2s", strconv.Itoa(a.pid()))
	cmd.Env = append(os.Environ(), "VTRACE_TEST_HANG=vfork")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(log); bytes.Contains(b, []byte(`"event":"attach"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no attach event after 20 s\n%s", stderr.String())
		}
	}
	a.proceed(t) // its vfork: the tracer thread hangs there
	err := cmd.Wait()
	took := time.Since(start)
	t.Logf("vtrace attach ended %v after it started (--timeout 2s)", took.Round(time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("vtrace attach did not end: %v", err)
	}
	if code := cmd.ProcessState.ExitCode(); code != exitCannotRun || !strings.Contains(stderr.String(), "the kernel kills the attached process") {
		t.Errorf("exit %d, stderr %q: want 126 and the internal error", code, stderr.String())
	}
	raw, rerr := os.ReadFile(log)
	if rerr != nil {
		t.Fatal(rerr)
	}
	checkLog(t, "the watchdog's attach log", raw)
	if got := a.status(t); got != 128+int(unix.SIGKILL) {
		t.Errorf("the attached process: status %d, want 137 (killed as vtrace exited)", got)
	}
}
