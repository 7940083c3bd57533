// Package tracer is vtrace's engine: it runs a program under ptrace, follows
// every vfork, and emits a stream of typed events (package event) telling how
// the child treated the parent's stack. Renderers (package report) turn the
// events into text or JSON Lines; the engine never formats for humans.
//
// Before any vfork: at the program's exec stop vtrace reads only its ELF
// header (the arch), probes whether debug-register watchpoints fire, and
// lets the program run; while it starts, another goroutine, kept off the
// tracer's CPU, reads the symbols of the program and of the libraries it
// names (symbols.PrefetchProgram). /proc/PID/maps is read at the first
// symbol lookup, and again at each vfork.
//
// The story of one vfork, as the engine sees it:
//
//  1. The parent stops in PTRACE_EVENT_VFORK, right after the syscall
//     instruction of libc's wrapper. Its child (pid from GETEVENTMSG) stops
//     at its first instruction with SIGSTOP — sometimes before the parent's
//     event arrives, so early stops of unknown pids are buffered (session).
//  2. capture: the parent's registers are read and its frames unwound with
//     CFI (unwind, symbols); glibc's wrapper keeps its return address in %rdi,
//     so frame 0 has no return slot. Every frame's return-address slot and
//     callee-saved register slots are recorded, and the parent's live stack
//     [sp, outermost frame) is snapshotted (story.go).
//  3. followChild: the parent stays in its event stop (registers readable,
//     never runnable) while the child runs. The child is single-stepped
//     where it shares frames with the parent (without a register read
//     before an instruction that changes only registers); in fast mode each
//     call from there runs at full speed to an int3 at its return address
//     (child.go).
//     Each instruction's memory effects (disasm) say which words to compare
//     with the snapshot: slot_write, stack_write, child_return_past_frame.
//  4. The child execs or exits; every int3 is removed (the memory is shared),
//     the live stack is diffed a last time (slot_diff).
//  5. followParent: the parent is single-stepped from its wake-up until a ret
//     consumes a slot the child changed (parent_landing "ret_clobbered") or
//     it returns above every changed word (parent.go); then it runs freely
//     and its fate is reported when it ends (exit).
//  6. Each story gets a verdict (verdict.go); the run's is the worst.
//
// Preconditions: everything runs on one OS thread locked by ptrace.Run, which
// is the tracer of every task; all ptrace and wait calls go through package
// ptrace. One trace per process: the engine reaps with wait4(-1).
package tracer
