//go:build vtraceprof

package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"

	"github.com/vtrace/vtrace/tracer"
)

// With -tags vtraceprof, VTRACE_CPUPROFILE=FILE writes a CPU profile of the
// whole run (go tool pprof FILE), sampled VTRACE_CPUPROFILE_HZ times a
// second (default 100, pprof's own). Go's profiler samples each thread
// with a CPU-time timer, which the kernel checks at its scheduler tick
// only (CONFIG_HZ, 250 on the VMs measured) and only while the thread
// runs: at most one sample per tick, and vtrace's ptrace thread runs in
// bursts of tens of microseconds between its wait4 calls. Measured on
// spawnloop 1000 (vtrace 0.36-0.41 s of CPU): 1000 Hz kept 77 ms of
// samples, 250 Hz 212 ms, 100 Hz 320 ms. A rate above 100 makes the
// runtime print "cannot set cpu profile rate until previous profile has
// finished" (StartCPUProfile sets 100 after this file has set the rate;
// the rate set first is kept). Short runs: add the profiles of several
// (go tool pprof -top vtrace FILE1 FILE2 ...), or use perf record -F 5000
// -g on the binary, which samples on a timer of its own. Not in normal
// builds: package runtime/pprof would be linked and initialised in every
// run.
//
// VTRACE_MEMPROFILE=FILE writes the allocation profile at the end (go tool
// pprof -sample_index=alloc_space FILE).
//
// VTRACE_CALLS=1 prints, at the end, how many kernel calls of each kind the
// ptrace thread made (ptrace.Calls) on stderr.
func init() {
	if os.Getenv("VTRACE_CALLS") != "" {
		stopProfile = printCalls
	}
	if path := os.Getenv("VTRACE_MEMPROFILE"); path != "" {
		runtime.MemProfileRate = 4096
		prev := stopProfile
		stopProfile = func() {
			prev()
			if f, err := os.Create(path); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}
	}
	path := os.Getenv("VTRACE_CPUPROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vtrace: VTRACE_CPUPROFILE: %v\n", err)
		return
	}
	if hz, err := strconv.Atoi(os.Getenv("VTRACE_CPUPROFILE_HZ")); err == nil && hz > 0 && hz != 100 {
		runtime.SetCPUProfileRate(hz) // before StartCPUProfile, which then warns it cannot set it again
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "vtrace: VTRACE_CPUPROFILE: %v\n", err)
		return
	}
	prev := stopProfile
	stopProfile = func() {
		pprof.StopCPUProfile()
		f.Close()
		prev()
	}
}

func printCalls() {
	fmt.Fprintf(os.Stderr, "vtrace: kernel calls: %s\n", tracer.KernelCalls())
	var self, kids syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &self) == nil && syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids) == nil {
		us := func(t syscall.Timeval) int64 { return t.Sec*1e6 + t.Usec }
		fmt.Fprintf(os.Stderr, "vtrace: CPU: vtrace user %d µs, system %d µs; its reaped children user %d µs, system %d µs\n",
			us(self.Utime), us(self.Stime), us(kids.Utime), us(kids.Stime))
	}
}
