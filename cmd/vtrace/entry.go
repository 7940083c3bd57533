package main

import (
	"os/signal"
	"syscall"
)

// What vtrace was started with: Go's runtime installs its own handler for
// most signals whatever the process inherited (only an ignored SIGHUP or
// SIGINT stays ignored), and the program's exec resets a handler to the
// default — so a program run under vtrace lost the SIG_IGN its caller gave
// it (`trap "" QUIT PIPE USR1`, a shell's `cmd &`: SigIgn 0x1204 natively
// and under strace -f, 0 under vtrace). vtraceEntry (entry_linux_amd64.s)
// reads every signal's handler before the runtime starts.
var (
	// initialSigs[n] is the handler signal n had at vtrace's start
	// (0 SIG_DFL, 1 SIG_IGN, else an address).
	initialSigs [65]uint64
	// initialSigsRead is 1 once vtraceEntry has run: the binary was
	// linked with it as its entry (`make build`); a plain `go build`
	// or `go install` is not, and nothing is known then.
	initialSigsRead uint64
	//lint:ignore U1000 vtraceEntry's struct sigaction (assembly uses it)
	sigactBuf [4]uint64
)

// vtraceEntry is the process's entry point, in assembly: referenced only
// by the linker's -E.
func vtraceEntry()

var _ = vtraceEntry

// sigIgn is SIG_IGN's handler value.
const sigIgn = 1

// keepIgnored ignores again, in vtrace, the signals vtrace was started
// with ignored: the program inherits them ignored through fork and exec,
// as it would without vtrace, and vtrace itself keeps them ignored (an
// ignored SIGTERM does not stop the run: tracer.StopSignals). Left out:
// SIGKILL and SIGSTOP (they cannot be); SIGCHLD (ignored, vtrace's own
// children would be reaped by the kernel, the traced program among them,
// and vtrace's waits would lose their exit statuses); SIGURG (Go's
// preemption; its default is to discard it anyway); and the signals of a
// fault, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS (Go's runtime
// turns its faults into panics through them; the kernel resets an ignored
// one when a fault forces it, as every ptrace trap does SIGTRAP's).
func keepIgnored() []syscall.Signal {
	if initialSigsRead == 0 {
		return nil
	}
	var kept []syscall.Signal
	for n := 1; n < len(initialSigs); n++ {
		sig := syscall.Signal(n)
		switch sig {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG,
			syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGSYS:
			continue
		}
		if initialSigs[n] == sigIgn {
			signal.Ignore(sig)
			kept = append(kept, sig)
		}
	}
	return kept
}
