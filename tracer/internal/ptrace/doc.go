// Package ptrace is the only place in vtrace that issues ptrace(2), wait4(2)
// and the other raw process-control system calls.
//
// Linux ties a tracee to the *thread* that attached it: every ptrace request
// must come from that one OS thread. Run therefore starts a goroutine locked
// to a fresh OS thread and hands the caller a *Thread; every method of Thread
// must be called from inside that function (the engine runs entirely there,
// so the hot single-step loop pays no channel hand-off). Methods that only
// send signals (Kill) are safe from any goroutine.
//
// Tracees are started with PTRACE_TRACEME from the locked thread itself (Go's
// SysProcAttr.Ptrace), so the kernel makes that thread the tracer. Pinning
// that thread to one CPU before the fork makes the tracee inherit the
// affinity; tracer and tracee then ping-pong on one CPU, which measured
// 1.3–4× faster single-stepping under a hypervisor.
//
// The package builds only for linux/amd64 (unsupported.go says so at
// build time elsewhere); its raw calls that pass pointers to the kernel
// are in ptrace_unsafe.go and sigchld_unsafe.go.
package ptrace
