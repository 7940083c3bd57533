// Package tracer is vtrace's engine: it runs a program under ptrace, follows
// every vfork, and emits a stream of typed events (package event) telling
// how the child treated the parent's stack. The engine states facts; the
// words are the renderers' (package report).
//
// Start here, then read the files in the order a vfork goes through them.
//
// A run (session.go). Run starts the program on the locked ptrace thread
// (internal/ptrace) and loops over wait4: dispatch handles every stop no
// story is waiting for. Every ptrace call and every question to /proc goes
// through one interface, procs (procs.go), which the tests replace with
// scripted processes. Each traced thread has one state (task.go: new,
// new-held, held, running, followed, parked, ended), changed only through
// task.set, which knows the legal moves. Before any vfork, at the
// program's exec stop, vtrace reads its ELF header (the arch), probes
// whether debug-register watchpoints fire (watchpoints.go) and lets it
// run; symbols are read ahead on another CPU meanwhile.
//
// A vfork (session.go: vforkEvent, the one entry of a vfork event, wherever
// it is seen). The parent stops in PTRACE_EVENT_VFORK right after the
// syscall instruction of libc's wrapper; its child stops at its first
// instruction with SIGSTOP — sometimes before the parent's event, so stops
// of unknown pids are kept (task.go: tasks.unknown). If no story is in
// progress, or a story was waiting for exactly this task (a vfork child
// vforking in turn), the story runs now, on the stack of stories. It runs
// now, nested, too when the story on top could be waiting for this task
// through its own: its parent is followed after its child is gone (a
// shell's waitpid for the command that vforks), or the task is of another
// memory than every story in progress (a fork of the child). Only a thread
// of a story's memory is held in its event stop, until the stack is empty:
// two stories would share its int3s and its stack. Either choice can
// deadlock a program (a task a story waits for needs one vtrace holds):
// giveway.go watches, while vtrace holds tasks, whether the task waited
// for sleeps in the kernel without anything running; then the held vforks
// whose memory has no child running run nested, or, failing that, the
// story is cut short ("blocked") so that the held tasks run.
//
// A story (story.go) runs in phases, each in its own file:
//
//  1. capture.go: with the parent held in its event stop, its mappings are
//     brought up to date (addrspace.go: refresh; libraries loaded since,
//     the heap grown: its /proc/PID/maps is kept open; where the kernel
//     has PROCMAP_QUERY, each writable and each executable mapping is
//     compared with the last text's — bounds, permissions, offset, device
//     and inode — and the text read again only when one differs:
//     internal/symbols, LoadSpaceMaps), its
//     registers are read and its frames unwound (internal/unwind: CFI, else the
//     function's machine code, else frame pointers); glibc's wrapper keeps
//     its return address in %rdi, so frame 0 has no return slot. Every
//     frame's return-address and callee-saved slots are recorded, the live
//     stack [sp, outermost frame) is snapshotted, and the vfork event opens
//     the story. memory.go snapshots the memory outside the stack too
//     (data, bss, TLS, heap; 1 MiB at most; fast mode, glibc's own
//     posix_spawn child: TLS alone), checked at stepped stores and
//     diffed after calls and at the child's end (global_write,
//     global_diff); the parent's reads of what the child changed there are
//     global_read, and the parent is followed on until it makes one
//     (fast mode runs the stretches of its own code that touch none of
//     those words at full speed, through its calls and the returns of its
//     unwound frames: parentblock.go; errno.go: errno, which
//     a correct child's libc sets, too — its
//     stores inside the parent's calls watched, its reads counted in the
//     vfork caller and its caller). A clone(CLONE_VFORK) without
//     CLONE_VM — the kernel reports it as a vfork — gives the child a
//     copy of the memory (capture.go: cloneCall.memory): its story says
//     so (mechanism "copy"), and the child runs free in every mode.
//  2. child.go: the parent stays in its event stop while the child runs.
//     The child is single-stepped where it shares frames with the parent
//     (a silent instruction, one that only changes registers, is stepped
//     without reading them; with --step, after a direct jump only the pc
//     is read, and the step of an instruction that cannot block is waited
//     for by giving the shared CPU to the child, not by sleeping in wait4:
//     ptrace.Thread.WaitStepped); in fast mode each call made from there runs
//     at full speed to an int3 at its return address (calls.go,
//     breakpoints.go), a stretch of code that can only store below the
//     parent's live region (pushes, stores at a stack-pointer offset,
//     direct jumps that make no loop) runs at full speed to int3s at its
//     exits (block.go) — on through a ret that pops a word a push of the
//     block stored (glibc's vfork wrapper) into the block at its target,
//     and on into a direct call at its exit that callThrough would run
//     without a step, a mark in the word the call's push writes telling
//     whether it ran —,
//     and, where they fire, DR0–DR3 watch the slots most at risk
//     (watchpoints.go; a debug-register write that would not change the
//     register is skipped: setDR). Each instruction's memory effects
//     (internal/disasm) say which words to compare with the snapshot:
//     slot_write, stack_write (one per word, with a count, reported at
//     the child's end; at most 1,000 write events a story). Whenever its
//     registers are read, a stack pointer above a live frame's return
//     slot means the child left that frame — by a ret, or by longjmp or
//     the unwinder moving the stack pointer (child_return_past_frame);
//     fast mode steps a call to such a function instead of running it,
//     and the silent-instruction predictor never steps past a move of the
//     stack pointer. The child ends by exec, exit or a signal (faults.go
//     names it): child_end. An exec'd child is let go at once (letExecGo),
//     before the parent's memory is diffed and the int3s of a run into a
//     call are taken out of it: it shares nothing with the parent any
//     more. Only a child on a stack of its own is given its exit stop
//     (story.go: awaitFirstStop; libc.go reads its end there); one on the
//     parent's stack is told from its reaped status.
//  3. release.go: every int3 is removed (the memory is shared) and the slots
//     are reported before and after the child ran (slot_diff).
//  4. parent.go: the parent is followed from its wake-up for as long as a
//     word the child changed still holds the child's value and can be read:
//     a word rewritten by the parent's store, by the kernel in one of its
//     syscalls, or by a callee (read back after each syscall and call), or
//     left below the stack as the parent returns, no longer counts. Its
//     reads of live words are parent_consume — in callees too, through
//     pointers (stepped, or read/write watchpoints in fast mode) — unless
//     they are a libc's own channel (libc.go: glibc's posix_spawn error,
//     libc_channel). It ends at a ret that consumes a changed return slot
//     (parent_landing "ret_clobbered"), when nothing live is left
//     ("overwritten", "returned"), right away when the child changed
//     nothing ("untouched"), and at a new vfork of the parent ("vfork":
//     that story then starts, never nested in this one).
//  5. verdict.go: the story's verdict and reasons (vfork_verdict); the
//     run's is the worst.
//
// Waiting (wait.go): a story resumes a task with advance (one step, or a
// continue) and gets an outcome: a trap, a signal, an exec, an exit, or
// "nested" — the task vforked and that story ran meanwhile. A trap is
// vtrace's only when its siginfo says so (breakpoints.go: classifyTrap —
// a step it asked for, an int3 it planted, a watchpoint); the program's
// own SIGTRAPs (its int3, raise, kill, its trap flag) are signals,
// delivered as without vtrace. A benign signal (SIGCHLD, ...) is passed on
// without its siginfo: it is never a group-stop, and never fatal. Stops of other
// tasks on the way are dispatched; those of tasks an enclosing story owns
// are postponed for it (their deaths are handled at once and kept for it:
// tasks.deaths). A story that blocks tasks vtrace holds gives way
// (giveway.go: errBlocked).
//
// Stopping (stop.go): budgets, the timeout and interrupts kill every
// tracee; stories unwind, the loop reaps everything, and the run ends with
// a budget event and the verdict of what was seen. A run that lets its
// tasks go (attach, --on-budget detach) detaches each from wherever it
// stands: the tracer thread makes those that run report a stop
// (haltForDetach: PTRACE_INTERRUPT, or SIGSTOP to a task not seized — never
// to one it holds in a stop), and no wait is for a stop that cannot come.
// The watchdog (watchdog.go) ends the run without the tracer thread when
// that thread has not finished 2 s after a stop from outside it.
//
// Preconditions: everything runs on one OS thread locked by ptrace.Run,
// which is the tracer of every task. One trace per process: the engine
// reaps with wait4(-1). Linux on x86-64 only (amd64 and i386 tracees).
package tracer
