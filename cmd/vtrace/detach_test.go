package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vtrace/vtrace/tracer/event"
)

// --on-budget detach lets the program go on untraced, wherever the budget
// finds its tasks — in the middle of a story (the vfork child in a
// single-step stop or running a step, the parent held in its vfork event
// stop), or in a nested story whose vfork the budget refused: the program
// then runs to its end exactly as natively (its output, which it prints
// last), and none of its processes is left stopped. vtrace sends SIGSTOP
// only to tasks that run, and a task that has one pending when it is let
// go is first run on to it (was: a task vtrace held in a stop got a
// SIGSTOP that stopped it for good once untraced — the vfork child in T,
// its parent in D — and the nested vfork's parent was resumed into its
// vfork and waited for).
func TestOnBudgetDetachLetsGo(t *testing.T) {
	bin := vtraceBin(t)
	for _, tc := range []struct {
		name, target string
		progArgs     []string
		flags        []string
		budget       string
	}{
		{"max-steps, the child stepped", "spin", []string{"1000000"}, []string{"--step", "--max-steps", "100"}, "max_steps"},
		{"max-steps, fast mode", "spin", []string{"1000000"}, []string{"--max-steps", "5"}, "max_steps"},
		{"max-vforks in a nested story", "nestedvfork", nil, []string{"--max-vforks", "1"}, "max_vforks"},
		{"timeout while stepping", "spin", []string{"400000000"}, []string{"--step", "--timeout", "500ms"}, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			prog := filepath.Join(dir, tc.target)
			copyFile(t, targetPath(t, "gcc-O0", tc.target), prog)
			native, err := exec.Command(prog, tc.progArgs...).Output()
			if err != nil || len(native) == 0 {
				t.Fatalf("natively: %v, output %q", err, native)
			}
			log := filepath.Join(dir, "log.jsonl")
			args := append(append(append([]string{"run", "-q", "-o", log, "--on-budget", "detach"}, tc.flags...), "--", prog), tc.progArgs...)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			cmd := exec.CommandContext(ctx, bin, args...)
			ef, stderr := outputFile(t, dir)
			cmd.Stdout, cmd.Stderr = w, ef
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			out := make(chan string, 1)
			go func() {
				b, _ := io.ReadAll(r) // EOF: the program (detached) has ended too
				out <- string(b)
			}()
			_ = cmd.Wait()
			t.Logf("vtrace ended after %v", time.Since(start).Round(time.Millisecond))
			if ctx.Err() != nil {
				t.Fatalf("vtrace did not end\n%s", stderr.String())
			}
			if code := cmd.ProcessState.ExitCode(); code != exitBudget {
				t.Errorf("exit %d, want %d\n%s", code, exitBudget, stderr.String())
			}
			raw, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			checkLog(t, "detach log", raw)
			evs := readLogFile(t, log)
			if b := firstOf[*event.Budget](evs); b == nil || b.Budget != tc.budget {
				t.Errorf("budget %+v, want %s", b, tc.budget)
			}
			select {
			case got := <-out:
				if got != string(native) {
					t.Errorf("the program let go printed %q, natively %q", got, native)
				}
			case <-time.After(20 * time.Second):
				left := procsUnder(dir)
				for _, pid := range left {
					state, tracer := procState(pid)
					t.Logf("process %d: state %s, TracerPid %s", pid, state, tracer)
				}
				t.Fatalf("the program let go did not end within 20 s (processes %v)", left)
			}
			assertGone(t, procsUnder(dir))
		})
	}
}

// stringer is a String method from a func.
type stringer func() string

func (f stringer) String() string { return f() }
