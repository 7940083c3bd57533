//go:build linux && amd64

package ptrace

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Every ptrace-stop of a tracee notifies its tracer twice: it wakes the
// tracer's wait4 and it sends the tracer process a SIGCHLD
// (do_notify_parent_cldstop in kernel/signal.c). A C tracer leaves SIGCHLD
// at SIG_DFL, so the kernel drops the signal unqueued. The Go runtime has a
// handler installed for every signal, SIGCHLD included, so each single-step
// also costs a signal delivery to the tracer thread (the thread that is
// waiting gets it): a signal frame, Go's handler, rt_sigreturn — measured
// as most of the gap between a Go and a C single-step loop (FACTS.md: 83 %
// of the C loop's rate with the handler, 95 % without).
//
// SA_NOCLDSTOP on the tracer's SIGCHLD action makes the kernel skip the
// signal for stops (ptrace-stops included) while still waking wait4; exits
// still send SIGCHLD. Go's handler stays installed and nothing in vtrace
// listens for SIGCHLD, so only the flag changes. The runtime does not
// rewrite the action of a signal it already handles, so the flag stays.

// kernelSigaction is the x86-64 kernel's struct sigaction (rt_sigaction).
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const saNoCldStop = 0x1 // SA_NOCLDSTOP

// QuietStops sets SA_NOCLDSTOP on this process's SIGCHLD action, keeping
// its handler, mask and other flags. Safe to call more than once.
func QuietStops() error {
	var act kernelSigaction
	if _, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD), 0,
		uintptr(unsafe.Pointer(&act)), unsafe.Sizeof(act.mask), 0, 0); errno != 0 {
		return fmt.Errorf("read SIGCHLD action: %w", errno)
	}
	if act.flags&saNoCldStop != 0 {
		return nil
	}
	act.flags |= saNoCldStop
	if _, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD),
		uintptr(unsafe.Pointer(&act)), 0, unsafe.Sizeof(act.mask), 0, 0); errno != 0 {
		return fmt.Errorf("set SA_NOCLDSTOP on SIGCHLD: %w", errno)
	}
	return nil
}
