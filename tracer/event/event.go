// Package event defines the typed events a vtrace run produces. They are the
// contract between the tracing engine and everything that reads its output:
// the text renderer, the JSON Lines log, `vtrace report` and `vtrace diff`.
//
// Every event embeds Header, so each JSON line carries "v" (schema version),
// "event" (its kind), "t" (monotonic nanoseconds since the run started) and
// "pid". Addresses are hex strings ("0x7ffd5a1c2e48"); symbols are
// {"sym":"main","off":18,...}. A field tagged omitempty is optional (present
// when it applies or is known); every other field is always present, and a
// list is [] when empty, never null (see codec.go). docs/log.schema.json is
// the machine-readable schema and docs/log-format.md the prose; tests check
// both against these types. Add fields freely, but never rename or retype
// one without bumping Version.
package event

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Version is the log schema version written in every line's "v".
const Version = 1

// Event is one record of a run.
type Event interface {
	Head() *Header
}

// Header is common to every event.
type Header struct {
	V     int    `json:"v"`
	Event string `json:"event"`
	T     int64  `json:"t"`
	PID   int    `json:"pid"`
}

// Head returns the header; it makes every event type satisfy Event.
func (h *Header) Head() *Header { return h }

// Addr is an address or machine word, written as a hex string in JSON.
type Addr uint64

// MarshalJSON writes a as "0x…".
func (a Addr) MarshalJSON() ([]byte, error) {
	return []byte(`"0x` + strconv.FormatUint(uint64(a), 16) + `"`), nil
}

// UnmarshalJSON reads "0x…".
func (a *Addr) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("address: %w", err)
	}
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		return fmt.Errorf("address %q: %w", s, err)
	}
	*a = Addr(v)
	return nil
}

// String returns a as 0x-prefixed hex.
func (a Addr) String() string { return "0x" + strconv.FormatUint(uint64(a), 16) }

// Sym names a code address: function (or PLT stub) and byte offset, with the
// module and source position when known.
type Sym struct {
	Sym    string `json:"sym,omitempty"`
	Off    uint64 `json:"off"`
	Module string `json:"module,omitempty"`
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	// PastEnd: the address lies beyond the end of the symbol's code (in
	// the padding after a function), i.e. outside any function.
	PastEnd bool `json:"past_end,omitempty"`
}

// String renders "main+18", "createproc", "libc.so.6+0x1234" or "?".
func (s *Sym) String() string {
	if s == nil {
		return "?"
	}
	if s.Sym == "" {
		if s.Module != "" {
			return fmt.Sprintf("%s+%#x", s.Module, s.Off)
		}
		return "?"
	}
	if s.Off == 0 {
		return s.Sym
	}
	if s.PastEnd {
		return fmt.Sprintf("%s+%d (past the end of %s)", s.Sym, s.Off, s.Sym)
	}
	return fmt.Sprintf("%s+%d", s.Sym, s.Off)
}

// Insn is an executed instruction: where it is and what it is.
type Insn struct {
	PID  int    `json:"pid"`
	PC   Addr   `json:"pc"`
	Sym  *Sym   `json:"sym,omitempty"`
	Insn string `json:"insn,omitempty"` // AT&T text, objdump style
}

// SavedSlot is a callee-saved register's save slot in a frame.
type SavedSlot struct {
	Reg   string `json:"reg"`
	Slot  Addr   `json:"slot"`
	Value Addr   `json:"value"`
}

// Frame is one frame of the parent's stack at the vfork.
type Frame struct {
	Index int  `json:"index"`
	PC    Addr `json:"pc"`
	Sym   *Sym `json:"sym,omitempty"`
	CFA   Addr `json:"cfa"`
	// RetSlot is the stack address holding the return address; absent when
	// the return address lives in a register (RetReg), as in libc's vfork
	// wrapper which pops it into %rdi before the syscall.
	RetSlot *Addr        `json:"ret_slot,omitempty"`
	RetReg  string       `json:"ret_reg,omitempty"`
	Ret     Addr         `json:"ret"`
	RetSym  *Sym         `json:"ret_sym,omitempty"`
	Saved   []SavedSlot  `json:"saved"` // [] when the frame saved no register
	Method  UnwindMethod `json:"method"`
	// RetStoredBy is the frame's own store that overwrote its return slot
	// before the vfork (glibc's clone storing its argument at the top of
	// a child stack placed just above the slot, rr#1595): Ret is the
	// stored word, not a return address, and the callers are unknown.
	RetStoredBy *Insn `json:"ret_stored_by,omitempty"`
}

// CorruptFrame is a frame whose return address is not code.
type CorruptFrame struct {
	Frame int  `json:"frame"`
	Fn    *Sym `json:"fn,omitempty"` // the frame's function
	Ret   Addr `json:"ret"`
}

// Region is a half-open address range [Lo, Hi).
type Region struct {
	Lo Addr `json:"lo"`
	Hi Addr `json:"hi"`
}

// Start opens a run.
type Start struct {
	Header
	Argv    []string `json:"argv"`
	Mode    string   `json:"mode"` // "fast" or "step"
	Version string   `json:"vtrace"`
	NoASLR  bool     `json:"no_aslr,omitempty"`
	// FullWatch: run --full-watch (glibc's posix_spawn children are
	// watched whole in fast mode too).
	FullWatch   bool   `json:"full_watch,omitempty"`
	CPU         int    `json:"cpu"`         // -1: not pinned
	Watchpoints string `json:"watchpoints"` // "hw" (debug registers fire), "none", "off", "auto" (not probed)
	// WatchpointProbe says what the probe saw ("DR0 on 0x… fired on `call …`").
	WatchpointProbe string `json:"watchpoint_probe,omitempty"`
}

// Exec reports a successful execve of a traced process.
type Exec struct {
	Header
	Path string `json:"path"` // the program the process runs now (/proc/PID/exe)
	Arch string `json:"arch"`
	// Script is the #! script vtrace was asked to run, when Path is its
	// interpreter.
	Script string `json:"script,omitempty"`
}

// Vfork opens the story of one vfork: who called it, how, and the parent's
// frames with their slots at that moment.
type Vfork struct {
	Header
	Vfork       int     `json:"vfork"` // 1-based story number
	Child       int     `json:"child"`
	Syscall     string  `json:"syscall"` // "vfork", "clone" or "clone3"
	Flags       string  `json:"flags,omitempty"`
	SharedStack bool    `json:"shared_stack"`
	ChildStack  *Addr   `json:"child_stack,omitempty"`
	Site        Insn    `json:"site"`             // the syscall instruction
	Call        *Insn   `json:"call,omitempty"`   // the call into the wrapper in the vfork-calling function
	Caller      *Sym    `json:"caller,omitempty"` // the vfork-calling function
	SP          Addr    `json:"sp"`
	Frames      []Frame `json:"frames"`
	Live        Region  `json:"live"` // the parent's live stack region watched
	// CorruptBefore is set when the parent's stack was already broken
	// before this vfork: a trustworthy unwind found a frame returning to
	// an address that is not code (the aftermath of an earlier vfork).
	CorruptBefore *CorruptFrame `json:"corrupt_before,omitempty"`
	Mechanism     Mechanism     `json:"mechanism"` // how child writes are found
	// Memory is what vtrace watches of the parent's memory outside the
	// stack (globals, heap, TLS) and how (memory.go).
	Memory *MemoryWatch `json:"memory,omitempty"`
}

// MemoryWatch says how the parent's writable memory outside the stack is
// watched in one story: a snapshot of at most Bytes bytes in Ranges ranges
// (data and bss of the program and its libraries, the TLS block, the
// heap), diffed after the child's calls and at its end, and in --step mode
// checked at every store.
type MemoryWatch struct {
	Method MemMethod `json:"method"`
	Bytes  int       `json:"bytes"`  // bytes snapshotted
	Ranges int       `json:"ranges"` // address ranges they make
	// Capped: the writable memory was larger than the snapshot's bound;
	// a globals_capped note says what was left out.
	Capped bool `json:"capped,omitempty"`
}

// GlobalWrite is a write by the child that changed a word of the parent's
// memory outside the stack (a global, the heap, TLS). Area, Mapping, Sym
// and Libc name the word (as in GlobalChange and GlobalRead): Libc is set
// for libc's own bookkeeping that a correct vfork child does (errno set by
// a failing exec, a stdio lock taken and released, malloc's state), which
// is reported but raises no warning.
type GlobalWrite struct {
	Header
	Vfork   int     `json:"vfork"`
	Addr    Addr    `json:"addr"`
	Size    int     `json:"size"`
	Old     Addr    `json:"old"`
	New     Addr    `json:"new"`
	Area    MemArea `json:"area"`           // data, heap or tls
	Mapping string  `json:"mapping"`        // the file whose data it is, "[heap]", or "[tls]"
	Sym     *Sym    `json:"sym,omitempty"`  // the variable (a data or TLS symbol) and the offset in it
	Libc    LibcUse `json:"libc,omitempty"` // libc's own bookkeeping (no warning), if it is that
	By      *Insn   `json:"by,omitempty"`
	During  *Insn   `json:"during,omitempty"`
	FoundBy FoundBy `json:"found_by"`
}

// GlobalChange is one word of the parent's memory outside the stack before
// and after the child ran.
type GlobalChange struct {
	Addr    Addr    `json:"addr"`
	Before  Addr    `json:"before"`
	After   Addr    `json:"after"`
	Area    MemArea `json:"area"`           // data, heap or tls
	Mapping string  `json:"mapping"`        // the file whose data it is, "[heap]", or "[tls]"
	Sym     *Sym    `json:"sym,omitempty"`  // the variable (a data or TLS symbol) and the offset in it
	Libc    LibcUse `json:"libc,omitempty"` // libc's own bookkeeping (no warning), if it is that
}

// GlobalDiff is, at the child's end, every word of the watched memory
// outside the stack that the child left changed (at most MaxGlobalChanges
// listed; More counts the rest).
type GlobalDiff struct {
	Header
	Vfork   int            `json:"vfork"`
	Watched int            `json:"watched"` // bytes compared
	Changed []GlobalChange `json:"changed"`
	More    int            `json:"more,omitempty"`
}

// MaxGlobalChanges bounds global_diff's list.
const MaxGlobalChanges = 64

// GlobalRead is the parent reading a word outside the stack that the child
// changed (and the parent had not overwritten since).
type GlobalRead struct {
	Header
	Vfork   int     `json:"vfork"`
	Addr    Addr    `json:"addr"`
	Value   Addr    `json:"value"`
	Was     Addr    `json:"was"`
	Area    MemArea `json:"area"`           // data, heap or tls
	Mapping string  `json:"mapping"`        // the file whose data it is, "[heap]", or "[tls]"
	Sym     *Sym    `json:"sym,omitempty"`  // the variable (a data or TLS symbol) and the offset in it
	Libc    LibcUse `json:"libc,omitempty"` // libc's own bookkeeping (no warning), if it is that
	By      Insn    `json:"by"`
}

// ChildStep is one instruction executed by the child (--trace-insns).
type ChildStep struct {
	Header
	Vfork int    `json:"vfork"`
	N     int64  `json:"n"`
	PC    Addr   `json:"pc"`
	SP    Addr   `json:"sp"`
	Sym   *Sym   `json:"sym,omitempty"`
	Insn  string `json:"insn"`
}

// ChildCall is a call the child makes from the vfork-calling frame or a frame
// it returned into (the calls that can clobber the parent's slots).
type ChildCall struct {
	Header
	Vfork     int  `json:"vfork"`
	By        Insn `json:"by"`
	Target    Addr `json:"target"`
	TargetSym *Sym `json:"target_sym,omitempty"`
	Depth     int  `json:"depth"` // frames the child has returned past
}

// SlotWrite is a write that changed a return-address or saved-register slot
// of a live parent frame.
type SlotWrite struct {
	Header
	Vfork   int      `json:"vfork"`
	Slot    Addr     `json:"slot"`
	Kind    SlotKind `json:"kind"` // SlotRet or SlotSavedReg
	Reg     string   `json:"reg,omitempty"`
	Frame   int      `json:"frame"`
	FrameFn *Sym     `json:"frame_fn,omitempty"`
	Old     Addr     `json:"old"`
	New     Addr     `json:"new"`
	OldSym  *Sym     `json:"old_sym,omitempty"`
	NewSym  *Sym     `json:"new_sym,omitempty"`
	// By is the writing instruction when known exactly. When the write
	// happened inside a callee run at full speed (fast mode) it is found by
	// diffing and attributed to the call it happened during (During).
	By        *Insn   `json:"by,omitempty"`
	During    *Insn   `json:"during,omitempty"`
	FoundBy   FoundBy `json:"found_by"`
	Backtrace []*Sym  `json:"backtrace,omitempty"`
}

// StackWrite is any other write that changed a word of the parent's live
// stack region.
type StackWrite struct {
	Header
	Vfork   int     `json:"vfork"`
	Addr    Addr    `json:"addr"`
	Size    int     `json:"size"`
	Frame   int     `json:"frame"`
	FrameFn *Sym    `json:"frame_fn,omitempty"`
	Old     Addr    `json:"old"`
	New     Addr    `json:"new"`
	By      *Insn   `json:"by,omitempty"`
	During  *Insn   `json:"during,omitempty"`
	FoundBy FoundBy `json:"found_by"`
	// Count is the number of changes of this word seen in the story when
	// more than one: one event stands for them all, with old the value
	// before the first, new the value after the last, by/during the first
	// writer and last_by/last_during the last one.
	Count      int   `json:"count,omitempty"`
	LastBy     *Insn `json:"last_by,omitempty"`
	LastDuring *Insn `json:"last_during,omitempty"`
}

// ChildReturnPastFrame marks the child returning from a live parent frame:
// from then on its calls reuse the parent's frames.
type ChildReturnPastFrame struct {
	Header
	Vfork   int  `json:"vfork"`
	Frame   int  `json:"frame"`
	FrameFn *Sym `json:"frame_fn,omitempty"`
	// How: a ret popped the frame's return slot, or another instruction
	// moved the stack pointer above it (longjmp, the C++ unwinder).
	How LeaveKind `json:"how"`
	By  Insn      `json:"by"` // the instruction after which the stack pointer was above the frame's return slot
	// During is the call, made from a frame the child shares with the
	// parent, that By ran inside (fast mode steps such a call when it
	// cannot return: longjmp, a throw).
	During *Insn `json:"during,omitempty"`
	To     Addr  `json:"to"`
	ToSym  *Sym  `json:"to_sym,omitempty"`
}

// ChildEnd is how the vfork child released the parent.
type ChildEnd struct {
	Header
	Vfork  int     `json:"vfork"`
	How    EndKind `json:"how"`
	Code   *int    `json:"code,omitempty"`
	Signal string  `json:"signal,omitempty"`
	Path   string  `json:"path,omitempty"` // exec
	Via    string  `json:"via,omitempty"`  // "exit()" when the child called exit() rather than _exit()
	SiCode string  `json:"si_code,omitempty"`
	Addr   *Addr   `json:"addr,omitempty"` // fault address
	PC     *Addr   `json:"pc,omitempty"`   // where the fatal signal hit
	Sym    *Sym    `json:"sym,omitempty"`
	Steps  int64   `json:"steps"`
	Hits   int     `json:"bp_hits"`
	HWHits int     `json:"hw_hits,omitempty"` // watchpoint traps that named a writer
}

// ParentResume is the parent leaving its vfork event stop.
type ParentResume struct {
	Header
	Vfork int  `json:"vfork"`
	PC    Addr `json:"pc"`
	Sym   *Sym `json:"sym,omitempty"`
}

// SlotState is one slot's value before and after the child ran.
type SlotState struct {
	Slot      Addr     `json:"slot"`
	Kind      SlotKind `json:"kind"`
	Reg       string   `json:"reg,omitempty"`
	Frame     int      `json:"frame"`
	Before    Addr     `json:"before"`
	After     Addr     `json:"after"`
	BeforeSym *Sym     `json:"before_sym,omitempty"`
	AfterSym  *Sym     `json:"after_sym,omitempty"`
	Changed   bool     `json:"changed"`
}

// WordChange is a changed word of the live stack region.
type WordChange struct {
	Addr   Addr `json:"addr"`
	Frame  int  `json:"frame"`
	Before Addr `json:"before"`
	After  Addr `json:"after"`
}

// SlotDiff is the before/after picture of the parent's slots and live stack.
type SlotDiff struct {
	Header
	Vfork   int          `json:"vfork"`
	Slots   []SlotState  `json:"slots"`
	Changed []WordChange `json:"changed"`
}

// ParentConsume is the parent reading a word the child changed (and it had
// not overwritten since): a poisoned return address, saved register or local.
type ParentConsume struct {
	Header
	Vfork int      `json:"vfork"`
	Addr  Addr     `json:"addr"`
	Kind  SlotKind `json:"kind"`
	Reg   string   `json:"reg,omitempty"`
	Value Addr     `json:"value"`
	Was   Addr     `json:"was"`
	By    Insn     `json:"by"`
	// During is the call the parent made from its own frames when the
	// read happened inside the callee (through a pointer: strlen, printf);
	// FoundBy then says how it was seen: "step" (the callee single-
	// stepped) or "hw" (a read/write watchpoint on the word).
	During  *Insn   `json:"during,omitempty"`
	FoundBy FoundBy `json:"found_by,omitempty"`
}

// LibcChannel is a word the child changed that the libc itself uses as a
// channel from the child to the parent, by design: glibc's posix_spawn
// child stores its error (errno of the failed exec or file action) in the
// argument block on the spawning function's stack, and the parent reads it
// there when it resumes. Recognised by who wrote it (the child, in libc's
// spawn child function) and what the parent did with it (read it in libc's
// spawn function); it is not a finding, and the parent's read is not a
// parent_consume.
type LibcChannel struct {
	Header
	Vfork int         `json:"vfork"`
	Kind  ChannelKind `json:"kind"`
	Addr  Addr        `json:"addr"`
	Value Addr        `json:"value"` // the word as the child left it
	Was   Addr        `json:"was"`
	// Writer is the child's store when it is known exactly (the child was
	// stepped); WriterFn the libc function the child ran when it wrote
	// (always known: the writer's function, or the function of the
	// child's frames that the write happened in, from its backtrace at
	// its end).
	Writer   *Insn `json:"writer,omitempty"`
	WriterFn Sym   `json:"writer_fn"`
	Reader   Insn  `json:"reader"`  // the parent's read
	Fn       Sym   `json:"libc_fn"` // the libc function that read it (the spawning function)
}

// ParentLanding is where the parent went after waking: the target of the
// ret that consumed a clobbered return slot, or the normal return.
type ParentLanding struct {
	Header
	Vfork       int         `json:"vfork"`
	PC          Addr        `json:"pc"`
	Sym         *Sym        `json:"sym,omitempty"`
	How         LandingKind `json:"how"`
	Slot        *Addr       `json:"slot,omitempty"`
	Expected    *Addr       `json:"expected,omitempty"`
	ExpectedSym *Sym        `json:"expected_sym,omitempty"`
	Steps       int64       `json:"steps"`
	// Words says what became of each word the child changed, as far as
	// the parent was followed (absent when the child changed none).
	Words []WordFate `json:"words,omitempty"`
}

// WordFate is what became of one word the child changed, once the parent
// was followed: rewritten (by the parent's own store, by the kernel in one
// of its syscalls, inside a function it called), read (a parent_consume or
// a libc_channel), left behind when the parent returned above it, still
// live when following ended, or unchecked.
type WordFate struct {
	Addr Addr     `json:"addr"`
	Fate FateKind `json:"fate"`
	// By is the instruction that decided it: the store, the syscall, the
	// call, the read, the ret.
	By *Insn `json:"by,omitempty"`
}

// VforkVerdict closes one vfork story.
type VforkVerdict struct {
	Header
	Vfork       int       `json:"vfork"`
	Verdict     Judgement `json:"verdict"`
	Reasons     []Reason  `json:"reasons"`
	Explanation string    `json:"explanation"`
	Incomplete  string    `json:"incomplete,omitempty"`
	// FramesUnknown: not even the vfork's own frame unwound (no CFI, no
	// function bounds, no frame pointer that may be trusted: code no
	// module covers, as a JIT makes), so the parent's return and
	// saved-register slots were unknown and could not be checked.
	FramesUnknown bool `json:"frames_unknown,omitempty"`
}

// Exit is the end of a traced process (the target or another process it
// forked; vfork children end with ChildEnd).
type Exit struct {
	Header
	Status string `json:"status"` // "exited" or "signaled"
	Code   *int   `json:"code,omitempty"`
	Signal string `json:"signal,omitempty"`
	SiCode string `json:"si_code,omitempty"`
	Addr   *Addr  `json:"addr,omitempty"` // fault address
	PC     *Addr  `json:"pc,omitempty"`
	Sym    *Sym   `json:"sym,omitempty"`
	Main   bool   `json:"main"` // the program vtrace started
}

// Attach reports that vtrace seized a running process (vtrace attach)
// instead of starting one: every thread it had, each brought to a stop
// (PTRACE_INTERRUPT) and let go on. It follows the start event.
type Attach struct {
	Header        // pid: the process (its thread group id)
	Threads []int `json:"threads"` // the threads seized, ascending
	// Exe is the program the process runs (/proc/PID/exe).
	Exe string `json:"exe"`
	// Stopped: the process was stopped (job control) when seized; it was
	// left stopped.
	Stopped bool `json:"stopped,omitempty"`
}

// Detach reports that vtrace let traced processes go on untraced, every
// breakpoint and watchpoint removed: an attached process whose trace was
// stopped (a story in progress cut short; it comes before the budget event
// and the verdict; a process that ended while attached has its exit event
// instead), or, with Why "program_exit", the processes the program left
// running when it ended, let go once no story was in progress (it comes
// before the verdict; there is no budget event: the run went to the
// program's end).
type Detach struct {
	Header
	Threads []int  `json:"threads"` // the threads let go, ascending
	Why     string `json:"why"`     // what ended the trace: a budget name ("interrupt", "timeout", "max_violations"...) or "program_exit"
	// Signal is the signal that interrupted vtrace (why "interrupt"):
	// "SIGINT", "SIGTERM" or "SIGHUP"; empty otherwise.
	Signal string `json:"signal,omitempty"`
}

// Budget reports that a budget stopped the run (every task is then killed).
type Budget struct {
	Header
	Budget string `json:"budget"` // "max_steps", "timeout", "max_vforks", "interrupt"
	Limit  string `json:"limit"`
}

// Note is a diagnostic about the trace itself (not about the target).
type Note struct {
	Header
	Vfork int      `json:"vfork,omitempty"`
	Code  NoteCode `json:"code"`
	Msg   string   `json:"msg"`
}

// Error says why vtrace could not trace the program (not found, not
// executable, ptrace refused) or had to give up on it. The CLI writes it,
// not the engine, so that a log that was asked for always exists and
// ends with a verdict: the verdict follows with incomplete "error".
type Error struct {
	Header
	Kind string `json:"kind"` // "not_found", "cannot_trace", "interrupted" or "internal"
	Msg  string `json:"msg"`
}

// Verdict is the last line of every complete log.
type Verdict struct {
	Header
	Verdict     Judgement `json:"verdict"`
	Vforks      int       `json:"vforks"`
	Violations  int       `json:"violations"`
	Warnings    int       `json:"warnings"`
	Unchecked   int       `json:"unchecked,omitempty"` // stories vtrace could not follow (notes say why)
	Explanation string    `json:"explanation"`
	Incomplete  string    `json:"incomplete,omitempty"` // why the run did not end on its own
}
