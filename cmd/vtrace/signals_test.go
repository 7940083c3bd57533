package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/tracer/event"
)

// progRun is what the program did, as a shell sees it: its output and its
// exit status (128+N for a death by signal N).
type progRun struct {
	out    string
	status int
}

// runNative runs a program without vtrace.
func runNative(t *testing.T, prog string, args ...string) progRun {
	t.Helper()
	return runNativeIn(t, nil, prog, args...)
}

// runNativeIn is runNative with stdin read from in (nil: none).
func runNativeIn(t *testing.T, in io.Reader, prog string, args ...string) progRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	var out bytes.Buffer
	cmd.Stdin, cmd.Stdout = in, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", prog, err)
	}
	return progRun{out.String(), progStatus(cmd.ProcessState)}
}

func progStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// runTraced runs a program under vtrace with --error-exitcode 0 (vtrace
// exits with the program's status): the program's stdout is vtrace's.
func runTraced(t *testing.T, flags []string, prog string, args ...string) (progRun, []byte) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "log.jsonl")
	full := append(append([]string{"run", "-q", "--error-exitcode", "0", "-o", log}, flags...), "--", prog)
	full = append(full, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, vtraceBin(t), full...)
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("vtrace %v: %v", full, err)
	}
	raw, rerr := os.ReadFile(log)
	if rerr != nil {
		t.Fatalf("vtrace %v wrote no log: %v", full, rerr)
	}
	checkLog(t, prog, raw)
	return progRun{out.String(), progStatus(cmd.ProcessState)}, raw
}

// Issue 13, "signals exactly as natively": a SIGTRAP vtrace did not cause
// is the program's. trapchild's vfork child executes an int3 / sends
// itself SIGTRAP with kill() / gets it from its own POSIX timer while
// --step steps instructions that raise no SIGTRAP of their own, and dies
// of it; traphandler's handler counts
// its SIGTRAPs (int3 and raise, before the vfork and in the parent right
// after it); sigchldfollow's SIGCHLD handler runs while vtrace steps the
// parent (the step into a handler traps with si_code 5: vtrace's trap, not
// the program's); pushfvfork saves and restores its flags while vtrace
// steps it (the pushed word must not keep vtrace's trap flag, or the
// program traps once it runs free); forkinchild's child forks inside a
// call vtrace runs at full speed (the fork copies vtrace's int3 at the
// call's return address: the grandchild must not trap on it; nor with
// `clonevfork`, a clone(CLONE_VFORK) without CLONE_VM, which the kernel
// reports as a vfork but which copies the memory too). The program's output and exit status under vtrace, in fast
// mode, --step and --watchpoints off, are what they are natively.
func TestSignalsAsNative(t *testing.T) {
	requirePtrace(t)
	cases := []struct {
		target string
		args   []string
	}{{"trapchild", nil}, {"trapchild", []string{"kill"}}, {"trapchild", []string{"timer"}}, {"traphandler", nil}, {"sigchldfollow", nil},
		{"pushfvfork", nil}, {"pushfvfork", []string{"parent"}}, {"forkinchild", nil}, {"forkinchild", []string{"vfork"}},
		{"forkinchild", []string{"clonevfork"}}}
	for _, build := range []string{"gcc-O0", "gcc-O2", "clang-O2", "musl-O0", "gcc-O0-static", "gcc-O0-m32"} {
		for _, c := range cases {
			name := build + "/" + c.target
			if len(c.args) > 0 {
				name += "_" + c.args[0]
			}
			t.Run(name, func(t *testing.T) {
				if build == "gcc-O0-m32" {
					requireI386(t)
				}
				prog := targetPath(t, build, c.target)
				native := runNative(t, prog, c.args...)
				if native.status != 0 {
					t.Fatalf("natively %s exits %d (%q): the target does not do what it is for", c.target, native.status, native.out)
				}
				for _, mode := range [][]string{nil, {"--step"}, {"--watchpoints", "off"}} {
					got, raw := runTraced(t, mode, prog, c.args...)
					if got != native {
						t.Errorf("vtrace %v: output %q, status %d; natively %q, status %d", mode, got.out, got.status, native.out, native.status)
					}
					if slices.Equal(c.args, []string{"clonevfork"}) &&
						(!bytes.Contains(raw, []byte(`"mechanism":"copy"`)) || !bytes.Contains(raw, []byte(`"event":"verdict","t"`)) ||
							bytes.Contains(raw, []byte(`"verdict":"violation"`)) || bytes.Contains(raw, []byte(`"verdict":"warning"`))) {
						// The grandchild ran free (a copy): it would have
						// trapped on the int3 had it not been undone.
						t.Errorf("vtrace %v: want a clean run whose grandchild's story is a copy (mechanism copy)", mode)
					}
				}
			})
		}
	}
}

// Issue 13, "bounded logs": spinwrite's child writes one local of its
// parent 100,000 times. The log stays under 1 MB: one stack_write for that
// word, with the count of changes vtrace saw.
func TestBoundedLogSpinWrite(t *testing.T) {
	requirePtrace(t)
	prog := targetPath(t, "gcc-O0", "spinwrite")
	got, raw := runTraced(t, nil, prog)
	if got.status != 0 {
		t.Fatalf("spinwrite under vtrace exits %d", got.status)
	}
	if len(raw) >= 1<<20 {
		t.Errorf("log of %d bytes, want under 1 MB", len(raw))
	}
	evs, err := event.ReadLog(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	// The loop stores i for i = 0..99,999 into `spins`, which held 0: the
	// first store changes nothing, each of the others changes it. (At -O0
	// the loop counter i lives in the frame too: a second word, one event.)
	var spins []*event.StackWrite
	for _, ev := range evs {
		if w, ok := ev.(*event.StackWrite); ok && w.New == 99999 {
			spins = append(spins, w)
		}
	}
	if len(spins) != 1 || spins[0].Count != 99999 || spins[0].Old != 0 {
		t.Errorf("stack_write events of the spun-on word (last value 99,999): %+v; want one, 0 -> 99,999 in 99,999 changes\n%s", spins, raw)
	}
	t.Logf("log: %d bytes", len(raw))
}
