package main

import (
	"runtime"
	"sync"
)

// spareThreads is how many OS threads reserveThreads starts. A run uses
// about 7 (the ptrace thread, the watchdog's, the signal handler's, the
// log's writes and the symbol index's file work handed off while they
// block); the Go runtime dies when it needs one more and the kernel
// refuses it.
const spareThreads = 8

// reserveThreads makes the Go runtime start n more OS threads now, before
// the program runs. The runtime keeps an idle thread for reuse and never
// ends it, so the threads vtrace needs later (a system call that blocks
// hands its processor to another thread) come from these. Without them, a
// program that uses up the pids of its cgroup (a fork bomb under a CI
// container's pids limit) left vtrace unable to start a thread: "fatal
// error: newosproc", exit 2, no verdict, the log cut (the mutation test,
// pids.max 64: 4 of 3,000 runs). Each goroutine locks itself to a thread
// and waits: a locked, waiting goroutine keeps its thread, so the next one
// needs a new thread; all are then let go, and the threads stay, idle.
//
// guardSinks runs it on a goroutine of its own, beside the program's start
// (exec, the dynamic loader: about a millisecond before the program's own
// code can fork), not before it: waiting for it cost the seed's run 0.8 ms
// (8%, scripts/bench-ab.sh, 21 runs); beside it, nothing measurable.
func reserveThreads(n int) {
	var locked sync.WaitGroup
	release := make(chan struct{})
	locked.Add(n)
	for range n {
		go func() {
			runtime.LockOSThread()
			locked.Done()
			<-release
			runtime.UnlockOSThread()
		}()
	}
	locked.Wait()
	close(release)
}
