package symbols

import (
	"path/filepath"
	"sync"
	"testing"
)

// PrefetchProgram finds a program's interpreter and libraries where the
// dynamic loader would, by the real paths /proc/PID/maps shows, and reads
// their symbols into the Binary cache.
func TestPrefetchProgram(t *testing.T) {
	const prog = "/bin/true" // dynamic, needs libc.so.6
	libc, err := filepath.EvalSymlinks("/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		t.Fatalf("no x86-64 glibc here: %v", err)
	}
	PrefetchProgram(prog)
	b, err := OpenBinary(libc)
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	sorted, debug := b.symCount(), b.debugLoaded
	b.mu.Unlock()
	if sorted == 0 {
		t.Errorf("%s: symbols not read by the prefetch", libc)
	}
	if isRegularFile(b.debugPath()) && !debug {
		t.Errorf("%s: debug file %s is installed but was not read", libc, b.debugPath())
	}
}

// A prefetch on another goroutine and symbolisation on this one give the
// same names as a plain sequential read (run with -race to check the
// locking).
func TestPrefetchConcurrent(t *testing.T) {
	const path = "/lib/x86_64-linux-gnu/libc.so.6"
	ref, err := readBinary(path)
	if err != nil {
		t.Fatalf("no x86-64 glibc here: %v", err)
	}
	ref.Prefetch()
	var addrs []uint64
	for i := range ref.symCount() {
		addrs = append(addrs, ref.symAt(i).addr+1)
	}
	for round := 0; round < 3; round++ {
		b, err := readBinary(path)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); b.Prefetch() }()
		for _, a := range addrs[:min(len(addrs), 2000)] {
			got, off, _, _ := b.symbolAt(a)
			want, woff, _, _ := ref.symbolAt(a)
			if got != want || off != woff {
				t.Fatalf("%#x: %s+%d while prefetching, %s+%d after", a, got, off, want, woff)
			}
		}
		wg.Wait()
	}
}

// Prefetching reads the debug file's symbols before any address has missed
// in the file's own: the names must not depend on that order, or a run's
// story would depend on the prefetch's timing.
func TestPrefetchSameNames(t *testing.T) {
	const path = "/lib/x86_64-linux-gnu/libc.so.6"
	eager, err := readBinary(path)
	if err != nil {
		t.Fatalf("no x86-64 glibc here: %v", err)
	}
	eager.Prefetch()
	lo, hi := eager.symAt(0).addr, eager.symAt(eager.symCount()-1).addr
	const n = 200
	for k := 0; k < n; k++ {
		a := lo + (hi-lo)*uint64(k)/n + 3
		lazy, err := readBinary(path) // a fresh one: a is its first question
		if err != nil {
			t.Fatal(err)
		}
		n1, o1, p1, ok1 := lazy.symbolAt(a)
		n2, o2, p2, ok2 := eager.symbolAt(a)
		if n1 != n2 || o1 != o2 || p1 != p2 || ok1 != ok2 {
			t.Errorf("%#x: %s+%d (past end %v, %v) read lazily, %s+%d (%v, %v) prefetched", a, n1, o1, p1, ok1, n2, o2, p2, ok2)
		}
	}
}
