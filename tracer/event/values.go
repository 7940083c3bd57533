package event

// The values of the log's enumerated fields, as typed constants: the engine
// states facts with them, renderers and tools branch on them. Their string
// forms are part of the log's contract.

// Judgement is a story's or a run's verdict.
type Judgement string

// Verdicts, from worst to best.
const (
	Violation Judgement = "violation"
	Warning   Judgement = "warning"
	Clean     Judgement = "clean"
	// Unchecked: vtrace could not follow the story at all (the parent's
	// registers or stack were unreadable); a note says why. It makes a
	// run no worse than clean, and is counted apart.
	Unchecked Judgement = "unchecked"
)

// Rank orders verdicts: 2 violation, 1 warning, 0 clean.
func (j Judgement) Rank() int {
	switch j {
	case Violation:
		return 2
	case Warning:
		return 1
	}
	return 0
}

// Reason is why a story got its verdict (vfork_verdict "reasons").
type Reason string

// Reasons, with the verdict each one raises a story to.
const (
	ReasonReturnedPast   Reason = "child_returned_past_frame"      // violation
	ReasonConsumedSlot   Reason = "parent_consumed_clobbered_slot" // violation
	ReasonClobberedSlot  Reason = "child_clobbered_slot"           // warning: the parent did not use it
	ReasonReadChildWrite Reason = "parent_read_child_write"        // warning: a local the child changed
	ReasonCalledExit     Reason = "child_called_exit"              // warning: exit() not _exit()
	// Writes to memory other than the stack (globals, heap, TLS), libc's
	// own bookkeeping left out (global_write "libc").
	ReasonWroteGlobal Reason = "child_wrote_global"       // warning: the child wrote a global the parent shares
	ReasonReadGlobal  Reason = "parent_read_child_global" // warning: the parent read a global the child wrote
)

// Severity is the verdict a reason raises a story to.
func (r Reason) Severity() Judgement {
	switch r {
	case ReasonReturnedPast, ReasonConsumedSlot:
		return Violation
	}
	return Warning
}

// SlotKind says what a stack word is to the parent.
type SlotKind string

// Slot kinds.
const (
	SlotRet      SlotKind = "ret"       // a frame's return address
	SlotSavedReg SlotKind = "saved_reg" // a callee-saved register's save slot
	SlotLocal    SlotKind = "local"     // any other word (parent_consume only)
)

// EndKind is how a vfork child released its parent (child_end "how").
type EndKind string

// How a child ends.
const (
	EndExec   EndKind = "exec"
	EndExit   EndKind = "exit"
	EndSignal EndKind = "signal"
	EndKilled EndKind = "killed" // by vtrace, when a budget stopped the run
)

// LandingKind is where following the parent ended (parent_landing "how").
type LandingKind string

// Parent landings.
const (
	LandRetClobbered LandingKind = "ret_clobbered" // a ret popped a slot the child changed
	LandReturned     LandingKind = "returned"      // it returned above every changed word
	LandSignal       LandingKind = "signal"        // a signal stopped it first
	LandExit         LandingKind = "exit"
	LandExec         LandingKind = "exec"
	LandBudget       LandingKind = "budget"
	// LandOverwritten: nothing the child changed can be read any more -
	// every changed word was rewritten (by the parent, the kernel, a
	// callee) or left behind: following stopped there, wherever the
	// parent was (a loop in main() never returns).
	LandOverwritten LandingKind = "overwritten"
	// LandUntouched: the child changed no word of the parent's live stack:
	// there was nothing to follow the parent for.
	LandUntouched LandingKind = "untouched"
	// LandUnchecked: following stopped with words still holding the
	// child's values that vtrace could not keep watching (words says
	// which): whether the parent reads them is not known.
	LandUnchecked LandingKind = "unchecked"
	// LandVfork: the parent vforked again while it was followed: this
	// story ends there (words says what was still live) and the next one
	// begins; stories never nest because of following.
	LandVfork LandingKind = "vfork"
)

// FateKind is what became of a word the child changed (parent_landing
// words[].fate).
type FateKind string

// Word fates.
const (
	FateStore     FateKind = "store"     // the parent's own store rewrote it
	FateSyscall   FateKind = "syscall"   // the kernel rewrote it in a syscall of the parent (wait4's status, read's buffer)
	FateCallee    FateKind = "callee"    // rewritten inside a function the parent called (memset)
	FateRead      FateKind = "read"      // the parent read it while it held the child's value
	FateChannel   FateKind = "channel"   // read by the libc as its own channel (libc_channel)
	FatePopped    FateKind = "popped"    // the parent returned above it: dead stack
	FateLive      FateKind = "live"      // it still held the child's value when following ended
	FateUnchecked FateKind = "unchecked" // vtrace could not check it
)

// ChannelKind is the kind of a libc's own child-to-parent channel
// (libc_channel "kind").
type ChannelKind string

// Channel kinds.
const (
	// ChannelSpawnError: glibc's posix_spawn child stored its error in the
	// parent's argument block (posix_spawn_args.err) and the parent read
	// it.
	ChannelSpawnError ChannelKind = "spawn_error"
)

// FoundBy says how a write was found.
type FoundBy string

// How writes are found.
const (
	FoundStep FoundBy = "step" // the stepped instruction itself
	FoundHW   FoundBy = "hw"   // a debug-register watchpoint inside a callee
	FoundDiff FoundBy = "diff" // a diff of the snapshot after a call or at the child's end
	// FoundKernel: the kernel read the word for the parent (its write(2)
	// of a buffer the child filled), known from the call's meaning.
	FoundKernel FoundBy = "kernel"
)

// LeaveKind says how the vfork child left a live parent frame
// (child_return_past_frame "how").
type LeaveKind string

// Ways of leaving a frame.
const (
	LeaveRet LeaveKind = "ret" // a ret popped the frame's return slot
	// LeaveSP: another instruction moved the stack pointer above the
	// frame's return slot (longjmp's load of %rsp, the C++ unwinder
	// installing a handler's context).
	LeaveSP LeaveKind = "sp"
	// LeaveJump: a non-local jump (longjmp, the unwinder) took the child
	// out of the calls it was in into the function of an outer live
	// frame, with its stack pointer still below the left frame's return
	// slot (i386's longjmp lands with setjmp's arguments still pushed).
	LeaveJump LeaveKind = "jump"
)

// Mechanism is how a story finds the child's writes (vfork "mechanism").
type Mechanism string

// Mechanisms.
const (
	MechStep    Mechanism = "step"     // every child instruction single-stepped
	MechDepth   Mechanism = "depth"    // depth-guided stepping, callees diffed
	MechDepthHW Mechanism = "depth+hw" // and debug registers inside callees
	MechDiff    Mechanism = "diff"     // the child has its own stack: run free, diffed
	// The child has a copy of the parent's memory (clone with CLONE_VFORK
	// but not CLONE_VM): run free; nothing it does reaches the parent.
	MechCopy Mechanism = "copy"
)

// UnwindMethod is how a frame was unwound (frame "method").
type UnwindMethod string

// Unwind methods.
const (
	MethodCFI  UnwindMethod = "cfi"
	MethodCode UnwindMethod = "code"
	MethodFP   UnwindMethod = "fp"
	MethodNone UnwindMethod = "none"
)

// NoteCode says what a note is about (a note reports on the trace itself,
// not on the target); its msg carries the details.
type NoteCode string

// Note codes.
const (
	NoteStoryAbandoned    NoteCode = "story_abandoned"    // a story could not go on (msg: why)
	NoteStoryGaveWay      NoteCode = "story_gave_way"     // a story was cut short so that tasks vtrace held could run (msg: who slept, what was held)
	NoteUnwindFailed      NoteCode = "unwind_failed"      // not even the vfork frame unwound: callers unknown
	NoteUnwindTruncated   NoteCode = "unwind_truncated"   // the parent has more frames than vtrace unwinds
	NoteRegionTruncated   NoteCode = "region_truncated"   // the live stack is larger than vtrace snapshots
	NoteStackUnreadable   NoteCode = "stack_unreadable"   // the parent's stack could not be read back
	NoteBreakpointRestore NoteCode = "breakpoint_restore" // removing an int3 failed
	NoteInt3Left          NoteCode = "int3_left"          // a read-back found an int3 byte still in the code
	NoteWatchpointsArmed  NoteCode = "watchpoints_armed"  // the child's DR0–DR3 (msg: which slots)
	NoteWatchpointsFailed NoteCode = "watchpoints_failed" // arming them failed: diffing only
	NoteExecUnreadable    NoteCode = "exec_unreadable"    // an exec'd program's image could not be read
	NoteCFIUnreadable     NoteCode = "cfi_unreadable"     // a frame's CFI was malformed: it was unwound another way
	NoteSymbolsUnread     NoteCode = "symbols_unreadable" // a file mapped with code could not be read: no symbols, no CFI (msg: which, why)
	NoteWritesCapped      NoteCode = "writes_capped"      // a story reached its cap of write events: later writes only counted
	NoteGlobalsCapped     NoteCode = "globals_capped"     // the writable memory outside the stack is larger than the snapshot (msg: what was left out)
	NoteGlobalsUnread     NoteCode = "globals_unreadable" // part of it could not be read (msg: which)
	// The clone or clone3 flags of a vfork event could not be read: the
	// child is taken to share the parent's memory (msg: which call).
	NoteCloneFlagsUnknown NoteCode = "clone_flags_unknown"
	// The program ended with LeakSanitizer on (AddressSanitizer's
	// default): its leak check at exit stops the threads with ptrace,
	// which a traced process refuses, so it failed (msg: the module, and
	// ASAN_OPTIONS=detect_leaks=0).
	NoteLeakSanitizer NoteCode = "leak_sanitizer"
)

// MemMethod is how the parent's memory outside the stack is watched
// (vfork memory "method").
type MemMethod string

// Memory watch methods.
const (
	MemSnapshotDiff MemMethod = "snapshot_diff" // a snapshot, diffed after each call the child makes from a shared frame and at its end; stores it steps are checked at once
	MemSnapshotStep MemMethod = "snapshot_step" // --step: every store checked against the snapshot, which is also diffed after syscalls and at the end
	MemStores       MemMethod = "stores"        // other threads share the memory and run on: only the stores vtrace steps in the child are checked, nothing is diffed
	MemLibcSpawn    MemMethod = "libc_spawn"    // fast mode, glibc's own posix_spawn child of a dynamic program (no code of the program runs in it): only the TLS block (errno) is snapshotted and diffed, as snapshot_diff; run --full-watch watches all
	MemNone         MemMethod = "none"          // nothing could be read
)

// MemArea is the kind of memory a global word is in.
type MemArea string

// Memory areas.
const (
	AreaData MemArea = "data" // data and bss of the program or a library
	AreaHeap MemArea = "heap" // the brk heap
	AreaTLS  MemArea = "tls"  // the thread's static TLS block and control block
)

// LibcUse names libc's own bookkeeping in the parent's memory, which a
// correct vfork child may change (global_write "libc").
type LibcUse string

// libc bookkeeping.
const (
	LibcErrno          LibcUse = "errno"           // errno, set by a failing call (a failed exec before the next PATH entry)
	LibcStdioLock      LibcUse = "stdio_lock"      // a stdio FILE lock taken and released
	LibcSingleThreaded LibcUse = "single_threaded" // __libc_single_threaded and similar thread-state flags
	LibcMalloc         LibcUse = "malloc_state"    // malloc's arena and thread cache state
	// LibcBinding: lazy binding by the dynamic linker — the first call
	// through a PLT stub fills its GOT slot with the function's address
	// (the value the parent's own first call would write) and counts it.
	LibcBinding LibcUse = "plt_binding"
)
