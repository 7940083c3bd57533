package main

import (
	"bytes"
	"os"
	"strconv"
	"testing"
)

// threadCount is this process's number of threads (/proc/self/status).
func threadCount(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Threads:")); ok {
			n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads: line in /proc/self/status")
	return 0
}

// reserveThreads leaves the threads it made behind, idle: the process has
// at least n threads more than the goroutines that need one at once, and
// they are still there after the reserving goroutines ended.
func TestReserveThreads(t *testing.T) {
	before := threadCount(t)
	const n = 8
	reserveThreads(n)
	if got := threadCount(t); got < n+1 || got < before {
		t.Errorf("%d threads after reserveThreads(%d) (%d before): want at least %d", got, n, before, max(n+1, before))
	}
}
