//go:build linux && amd64

package ptrace

import "golang.org/x/sys/unix"

// Attaching to a running process (vtrace attach): PTRACE_SEIZE takes a
// thread without stopping it or sending it a signal; PTRACE_INTERRUPT then
// makes it report a PTRACE_EVENT_STOP; PTRACE_LISTEN leaves a thread in a
// group-stop stopped (job control keeps working) while vtrace still hears
// of the SIGCONT that ends it. Tasks that a seized task creates are seized
// too: their first stop is a PTRACE_EVENT_STOP, not a SIGSTOP.

// EventStop is PTRACE_EVENT_STOP: a seized task's interrupt stop, group-stop
// or first stop.
const EventStop = unix.PTRACE_EVENT_STOP

// Seized reports whether the stop is a PTRACE_EVENT_STOP of a seized task.
// Its StopSignal is SIGTRAP for an interrupt (or a new task's first stop,
// or the trap after a SIGCONT ended a group-stop), else the signal that
// stopped the process (a group-stop).
func (s Stop) Seized() bool {
	return s.Status.Stopped() && int(s.Status)>>16 == EventStop
}

// Seize attaches to a running thread with the options of every trace
// (Options), leaving it running. EPERM (policy, or already traced) is
// ErrNotPermitted.
func (t *Thread) Seize(pid int) error {
	t.dropRegs()
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(pid), 0, uintptr(Options), 0, 0)
	if errno != 0 {
		return wrap("PTRACE_SEIZE", pid, errno)
	}
	return nil
}

// Interrupt makes a seized thread report a PTRACE_EVENT_STOP (at once, or
// when it leaves the kernel; a listening thread re-traps).
func (t *Thread) Interrupt(pid int) error {
	t.dropRegs()
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_INTERRUPT, uintptr(pid), 0, 0, 0, 0)
	if errno != 0 {
		return wrap("PTRACE_INTERRUPT", pid, errno)
	}
	return nil
}

// Listen lets a seized thread in a group-stop stay stopped, reporting a
// PTRACE_EVENT_STOP (SIGTRAP) when a SIGCONT ends the stop.
func (t *Thread) Listen(pid int) error {
	t.dropRegs()
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_LISTEN, uintptr(pid), 0, 0, 0, 0)
	if errno != 0 {
		return wrap("PTRACE_LISTEN", pid, errno)
	}
	return nil
}
