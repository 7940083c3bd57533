package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/tracer/event"
)

// What the program leaves running when it ends — a background job of a
// CI script, a daemon a test suite starts — no longer holds vtrace: by
// default (--after-exit release) it is let go, untraced, and vtrace ends
// with the program and its status, as the program's caller sees it end
// natively (was: vtrace waited for the last traced process, as strace -f
// does, and a CI step hung until its timeout). --after-exit follow keeps
// that. The background here is a copy of sh that waits on a FIFO only the
// test writes, then runs spawnloop (vforks), so the test decides when it
// goes on: under release vtrace must end before it does, and what was let
// go must then run to its end, vforks and all, never left stopped.
func TestAfterExit(t *testing.T) {
	bin := vtraceBin(t)
	for _, mode := range []string{"release", "follow"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			sh := filepath.Join(dir, "sh")
			copyFile(t, "/bin/sh", sh)
			loop := filepath.Join(dir, "spawnloop")
			copyFile(t, targetPath(t, "gcc-O0", "spawnloop"), loop)
			fifo, out, mark := filepath.Join(dir, "go"), filepath.Join(dir, "out"), filepath.Join(dir, "mark")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			script := "(read x < " + fifo + "; exec " + loop + " 50 > " + out + ") & echo started > " + mark + "; exit 3"
			log := filepath.Join(dir, "log.jsonl")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "run", "-q", "-o", log, "--after-exit", mode, "--", sh, "-c", script)
			ef, stderr := outputFile(t, dir)
			cmd.Stdout, cmd.Stderr = ef, ef
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			feed := func() {
				f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = f.WriteString("go\n")
				f.Close()
			}

			if mode == "release" {
				select {
				case <-done:
				case <-ctx.Done():
					feed() // let the background end, and vtrace with it
					t.Fatalf("vtrace waited for what the program left running\n%s", stderr)
				}
				left := procsUnder(dir)
				if len(left) == 0 {
					t.Fatalf("the background sh is gone before it was fed\n%s", stderr)
				}
				for _, pid := range left {
					if state, tracer := procState(pid); state == "T" || state == "t" || tracer != "0" {
						t.Errorf("process %d let go: state %s, TracerPid %s", pid, state, tracer)
					}
				}
				feed()
			} else {
				waitFile(t, mark)
				feed()
				select {
				case <-done:
				case <-ctx.Done():
					t.Fatalf("vtrace did not end\n%s", stderr)
				}
			}
			if code := cmd.ProcessState.ExitCode(); code != 3 {
				t.Errorf("exit %d, want the program's 3\n%s", code, stderr)
			}
			// What was let go ran to its end, untraced: all its spawns.
			if got := waitOutput(out, "50 spawns", 20*time.Second); !strings.Contains(got, "50 spawns") {
				t.Errorf("the background printed %q, want its 50 spawns", got)
			}
			assertGone(t, procsUnder(dir))

			raw, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			checkLog(t, mode+" log", raw)
			evs := readLogFile(t, log)
			if b := firstOf[*event.Budget](evs); b != nil {
				t.Errorf("budget event %+v: nothing was stopped", b)
			}
			v := evs[len(evs)-1].(*event.Verdict)
			if v.Incomplete != "" || v.Verdict != event.Clean {
				t.Errorf("verdict %s, incomplete %q: want clean and complete", v.Verdict, v.Incomplete)
			}
			d := firstOf[*event.Detach](evs)
			switch mode {
			case "release":
				if d == nil || d.Why != "program_exit" || len(d.Threads) == 0 {
					t.Errorf("detach %+v, want why program_exit with the background's thread", d)
				}
				if v.Vforks != 0 {
					t.Errorf("%d vforks seen: the background vforked only after it was let go", v.Vforks)
				}
			case "follow":
				if d != nil {
					t.Errorf("detach %+v under follow", d)
				}
				if v.Vforks != 50 {
					t.Errorf("%d vforks seen, want the background's 50", v.Vforks)
				}
			}
		})
	}
}

// outputFile is a file in dir for vtrace's output, closed at the test's
// end, and what it holds so far. A file, not a pipe that exec.Cmd's Wait
// would copy: a process let go keeps it open, and a stopped one would hold
// Wait for ever.
func outputFile(t *testing.T, dir string) (*os.File, stringer) {
	t.Helper()
	path := filepath.Join(dir, "stderr")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, stringer(func() string { b, _ := os.ReadFile(path); return string(b) })
}

// waitOutput reads path until it holds want, for at most d, and returns
// what it last read: what was let go writes it when it ends.
func waitOutput(path, want string, d time.Duration) string {
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		got, _ := os.ReadFile(path)
		if strings.Contains(string(got), want) || time.Now().After(deadline) {
			return string(got)
		}
	}
}

// waitFile waits (at most 20 s) until path exists.
func waitFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	t.Fatalf("%s never appeared", path)
}

// The program ends while what it left running vforks as fast as it can:
// released wherever it stands (in a story, between stories, its vfork
// child in its first stop), it runs on to its end untraced, all its spawns
// done, nothing left stopped, and vtrace exits with the program's status.
func TestAfterExitMidSpawn(t *testing.T) {
	bin := vtraceBin(t)
	for round := 0; round < 3; round++ {
		dir := t.TempDir()
		loop := filepath.Join(dir, "spawnloop")
		copyFile(t, targetPath(t, "gcc-O0", "spawnloop"), loop)
		out := filepath.Join(dir, "out")
		log := filepath.Join(dir, "log.jsonl")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		delay := []string{"0", "0.05", "0.2"}[round]
		cmd := exec.CommandContext(ctx, bin, "run", "-q", "-o", log, "--", "/bin/sh", "-c",
			loop+" 800 > "+out+" & sleep "+delay+"; exit 3")
		ef, stderr := outputFile(t, dir)
		cmd.Stdout, cmd.Stderr = ef, ef
		_ = cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("vtrace did not end")
		}
		if code := cmd.ProcessState.ExitCode(); code != 3 {
			t.Errorf("after %ss: exit %d, want the program's 3\n%s", delay, code, stderr)
		}
		if got := waitOutput(out, "800 spawns", 30*time.Second); !strings.Contains(got, "800 spawns") {
			for _, pid := range procsUnder(dir) {
				state, tracer := procState(pid)
				t.Logf("process %d: state %s, TracerPid %s", pid, state, tracer)
			}
			t.Errorf("after %ss: spawnloop printed %q, want its 800 spawns", delay, got)
		}
		assertGone(t, procsUnder(dir))
		raw, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		checkLog(t, "mid-spawn log", raw)
		evs := readLogFile(t, log)
		if v := evs[len(evs)-1].(*event.Verdict); v.Verdict != event.Clean || v.Incomplete != "" {
			t.Errorf("after %ss: verdict %s, incomplete %q", delay, v.Verdict, v.Incomplete)
		}
		t.Logf("after %ss: %d stories before the release", delay, evs[len(evs)-1].(*event.Verdict).Vforks)
	}
}
