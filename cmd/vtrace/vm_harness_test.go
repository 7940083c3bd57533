package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vtrace/vtrace/cmd/internal/vmharness"
)

// The VM harness (package vmharness, scripts/vm/): vtrace runs inside
// qemu-system-x86_64 (TCG, a stock Debian 6.1 kernel, a busybox
// initramfs), where i386 code runs and debug-register watchpoints fire
// whatever the host allows. A test binary run collects every job of the
// suite and boots once; each test then reads its jobs' results (exit code,
// stderr, the JSONL log) as a `traced`, like the host tests do.
//
// Environment: VTRACE_BIN (must be a static binary; `make build` makes one
// with CGO_ENABLED=0), VTRACE_TARGETS, VTRACE_VM_DIR (where the kernel is
// cached, default build/vm) and VTRACE_VM_KEEP=DIR (keep every job's files
// and the console there).

type vmJob = vmharness.Job

// vmRun is one job's outcome, with its log as the host tests read one.
type vmRun struct {
	*vmharness.Run
	*traced
}

// vmBoot is one boot's outcome.
type vmBoot struct {
	*vmharness.Boot
	runs map[string]*vmRun // by job key
}

const vmBootTimeout = vmharness.BootTimeout

// bootVM boots once for jobs, with extra kernel parameters appended. It
// never calls t.Fatal itself: the outcome (skip, fatal) is in the result,
// for every test that shares the boot.
func bootVM(t *testing.T, appendArgs string, jobs []*vmJob) *vmBoot {
	b := &vmBoot{Boot: &vmharness.Boot{}, runs: map[string]*vmRun{}}
	bin, err := builtVtrace()
	if err != nil {
		b.Fatal = err.Error()
		return b
	}
	b.Boot = vmharness.Start(vmharness.Config{
		Root: repoRoot(), Vtrace: bin, KernelDir: os.Getenv("VTRACE_VM_DIR"),
		Target: func(build, name string) (string, error) {
			if t == nil { // the early boot (TestMain): no test to build targets for
				p := filepath.Join(os.Getenv("VTRACE_TARGETS"), build, name)
				_, err := os.Stat(p)
				return p, err
			}
			return targetPath(t, build, name), nil
		},
		Append: appendArgs, Keep: os.Getenv("VTRACE_VM_KEEP"),
	}, jobs)
	for k, r := range b.Boot.Runs {
		b.runs[k] = &vmRun{Run: r, traced: &traced{events: r.Events, exit: r.Exit, stderr: r.Stderr, stdout: r.Stdout}}
	}
	return b
}

// checkVMLog validates a VM job's log as trace() does the host's.
func checkVMLog(t *testing.T, j *vmJob, r *vmRun) {
	t.Helper()
	if raw, ok := r.Files["log.jsonl"]; ok {
		checkLog(t, "VM job "+j.Key(), raw)
	}
}

// get returns a job's run, failing the test when the VM did not bring a
// usable log back, and checks that nothing was left behind.
func (b *vmBoot) get(t *testing.T, j *vmJob) *vmRun {
	t.Helper()
	b.check(t)
	r := b.runs[j.Key()]
	if r == nil {
		t.Fatalf("job %q is not part of this boot", j.Key())
	}
	t.Logf("VM: vtrace run %s: exit %d, %.2f s of guest time", j.Key(), r.Exit, r.Seconds)
	if r.Err != "" {
		t.Fatalf("VM job %q: %s\nstderr: %s\nconsole tail:\n%s", j.Key(), r.Err, r.Stderr, tail(b.Console, 2000))
	}
	for _, l := range r.Leftovers {
		t.Errorf("left behind in the VM after vtrace exited: %s", l)
	}
	checkVMLog(t, j, r)
	return r
}

// check skips or fails the test when the boot could not happen at all.
func (b *vmBoot) check(t *testing.T) {
	t.Helper()
	if b.Skip != "" {
		t.Skip(b.Skip)
	}
	if b.Fatal != "" {
		t.Fatal(b.Fatal)
	}
}

func tail(s string, n int) string { return vmharness.Tail(s, n) }
