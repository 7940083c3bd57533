package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/tracer/event"
)

var soakRuns = flag.Int("soak", 500, "TestSoak: consecutive traces (go test ./cmd/vtrace -run TestSoak -soak N)")

// processState is what a long-lived process that traces again and again
// must not accumulate.
type processState struct {
	fds, goroutines, tmp int
	heap                 uint64 // live heap after a GC
	rssKB                int
}

func sample(t *testing.T) processState {
	t.Helper()
	runtime.GC()
	time.Sleep(50 * time.Millisecond) // goroutines that are ending end
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := os.ReadDir(os.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := processState{fds: len(fds), goroutines: runtime.NumGoroutine(), tmp: len(tmp), heap: ms.HeapAlloc}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				fmt.Sscan(v, &st.rssKB)
			}
		}
	}
	return st
}

// TestSoak traces a mix of targets again and again in one process — the
// in-process entry, run(ctx, args, stdout, stderr), as a long-lived user
// of the CLI would — and checks that nothing accumulates: open fds,
// goroutines, live heap, /tmp entries. 500 runs by default (about 8 s);
// -soak N runs N.
func TestSoak(t *testing.T) {
	vtraceBin(t)
	dir := t.TempDir()
	// A /tmp of its own: the machine's is shared with whatever else runs.
	t.Setenv("TMPDIR", t.TempDir())
	runs := []struct {
		args []string
		want int // exit code
	}{
		{[]string{"-q", targetPath(t, "gcc-O0", "goodvfork_exec")}, 0},
		{[]string{"-q", "-o", filepath.Join(dir, "log.jsonl"), targetPath(t, "gcc-O0", "badvfork")}, 1},
		{[]string{"-q", "--json", targetPath(t, "gcc-O2", "spawn")}, 0},
		{[]string{"-q", targetPath(t, "gcc-O0", "threadvfork")}, 0},
		{[]string{"-q", "--step", targetPath(t, "musl-O0", "goodvfork_exit")}, 3}, // its own status (targets/README.md)
		{[]string{"-q", "--sarif", filepath.Join(dir, "r.sarif"), targetPath(t, "gcc-O0", "writelocal")}, -1},
		{[]string{"-q", "--", "sh", "-c", "exit 3"}, 3},
		{[]string{"-q", "-o", "/dev/full", "true"}, exitLogWrite},
	}
	trace := func(i int) {
		r := runs[i%len(runs)]
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"run"}, r.args...), &stdout, &stderr)
		if got := exitCode(err); r.want >= 0 && got != r.want {
			t.Fatalf("run %d (%v): exit %d (%v), want %d\n%s", i, r.args, got, err, r.want, stderr.String())
		}
		if strings.Contains(r.args[1], "json") {
			if _, err := event.ReadLog(&stdout); err != nil {
				t.Fatalf("run %d: the log on stdout: %v", i, err)
			}
		}
	}
	// Warm up: the first runs fill the caches meant to last (the symbols
	// of each file traced, the runtime's pools).
	for i := 0; i < 2*len(runs); i++ {
		trace(i)
	}
	before := sample(t)
	start := time.Now()
	for i := 0; i < *soakRuns; i++ {
		trace(i)
	}
	after := sample(t)
	t.Logf("%d traces in %v: fds %d -> %d, goroutines %d -> %d, live heap %.1f -> %.1f MB, RSS %.1f -> %.1f MB, %s entries %d -> %d",
		*soakRuns, time.Since(start).Round(time.Millisecond), before.fds, after.fds, before.goroutines, after.goroutines,
		float64(before.heap)/(1<<20), float64(after.heap)/(1<<20), float64(before.rssKB)/1024, float64(after.rssKB)/1024,
		os.TempDir(), before.tmp, after.tmp)
	if after.fds > before.fds {
		t.Errorf("open fds grew from %d to %d", before.fds, after.fds)
	}
	if after.goroutines > before.goroutines+2 {
		t.Errorf("goroutines grew from %d to %d", before.goroutines, after.goroutines)
	}
	if after.heap > before.heap+8<<20 {
		t.Errorf("live heap grew from %.1f to %.1f MB", float64(before.heap)/(1<<20), float64(after.heap)/(1<<20))
	}
	if after.tmp > before.tmp {
		t.Errorf("%s entries grew from %d to %d", os.TempDir(), before.tmp, after.tmp)
	}
}
