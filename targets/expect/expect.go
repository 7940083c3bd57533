// Package expect holds, as data, what vtrace must say about every target in
// this directory in every build: the expected verdict and the key facts of
// the story (how many vforks, which slots the child overwrote, whether it
// returned past the vfork frame, how it ended, where the parent landed).
// `make matrix` (cmd/vtrace-matrix) prints the table and the matrix test
// (cmd/vtrace/matrix_test.go) asserts it. Where a build legitimately changes
// the story (-O2, -m32, musl), the expectation says how and why; the facts
// come from running the targets natively (targets/README.md), FACTS.md, and
// for the targets of issue 11 and the catalogue of real bugs
// (docs/catalogue.md) from each build's disassembly and a gdb run of it that
// compares the parent's return and saved-register slots before and after
// its child ran (targets/README.md, "Ground truth").
//
// An expectation is the truth, never vtrace's current output. Where today's
// engine does not tell it yet, Expect.Pending says which fix it waits for:
// the matrix reports such a row as pending instead of failing, and fails it
// as soon as it passes, so that the mark goes when the fix lands.
package expect

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Builds are the 14 builds of targets.mk, in its order.
var Builds = []string{
	"gcc-O0", "gcc-O2", "clang-O0", "clang-O2", "gcc-O0-nopie", "clang-O2-nopie",
	"gcc-O0-static", "gcc-O2-static", "musl-O0", "musl-O2",
	"gcc-O0-m32", "gcc-O2-m32", "gcc-O0-m32-static", "gcc-O2-m32-static",
}

// I386 reports whether build produces i386 (-m32) programs.
func I386(build string) bool { return strings.Contains(build, "-m32") }

// Case is one way to run a target: its name in build/targets/<build>/ and
// its arguments; Flags are extra vtrace flags for this case (a budget that
// bounds a run today's engine would make long).
type Case struct {
	Target string
	Args   []string
	Flags  []string
	// Workload marks a benchmark workload (spin, spawnloop): traced in
	// the matrix, but its story is not compared between fast mode and
	// --step (stepping 20 glibc spawn children proves nothing more).
	Workload bool
}

// Name is "target" or "target arg...".
func (c Case) Name() string { return strings.Join(append([]string{c.Target}, c.Args...), " ") }

// Cases are every vfork target and variant, in the order of the README's
// table. stepref is not among them: it is the benchmark's raw single-step
// loop, which traces its own child and so cannot run under a tracer.
var Cases = []Case{
	{Target: "badvfork"}, {Target: "fnptrvfork"}, {Target: "deepvfork"}, {Target: "rawvfork"},
	{Target: "writelocal"}, {Target: "exitvfork"},
	{Target: "sigchild"}, {Target: "sigchild", Args: []string{"raise"}},
	{Target: "nestedvfork"}, {Target: "goodvfork_exec"}, {Target: "goodvfork_exit"},
	{Target: "spawn"}, {Target: "system"}, {Target: "popen"},
	{Target: "clonevfork"}, {Target: "clonevfork", Args: []string{"exit"}},
	{Target: "clone3vfork"}, {Target: "clone3vfork", Args: []string{"exit"}},
	{Target: "threadvfork"},
	{Target: "spin", Args: []string{"1000"}, Workload: true},    // a short child: the default 1M steps is the benchmark's
	{Target: "spawnloop", Args: []string{"20"}, Workload: true}, // 20 posix_spawns instead of 10,000

	// Issue 11: wrong results on programs nobody wrote for vtrace.
	{Target: "spawnfail"}, {Target: "spawnfail", Args: []string{"addopen"}},
	{Target: "spawnfail", Args: []string{"spawn2"}},  // item 1
	{Target: "vforkwait"},                            // item 2
	{Target: "memsetread"},                           // item 3
	{Target: "vzeroret"},                             // item 4
	{Target: "longjmpvfork"}, {Target: "throwvfork"}, // item 5
	{Target: "printchild"},                      // item 6
	{Target: "vforkloop", Args: []string{"20"}}, // item 7: MaxVforks rounds
	// item 7: a correct engine single-steps a few dozen instructions here
	// (per child: main's code between vfork and the call to execl; per
	// parent: from its wake-up to its store of vfork's return into `pid`);
	// the budget stops today's, which steps the whole compute loop (48
	// million instructions at -O0) until the timeout, in about a second.
	{Target: "vforkcompute", Flags: []string{"--max-steps", "20000"}},
	{Target: "cloneflags"}, {Target: "cloneflags", Args: []string{"clone3"}}, // item 9
	{Target: "vforkattrs"}, {Target: "jitvfork"}, // item 10

	// Issue 13: the program's own SIGTRAPs delivered as natively; a log
	// bounded however often the child writes one word.
	{Target: "trapchild"}, {Target: "trapchild", Args: []string{"kill"}}, {Target: "trapchild", Args: []string{"timer"}}, {Target: "traphandler"}, {Target: "sigchldfollow"},
	// A workload: its child's 100,000-iteration loop is stepped in both
	// modes, which TestFastMatchesStep would pay for in every build.
	{Target: "spinwrite", Args: []string{"1000"}, Workload: true}, // 100,000 in TestBoundedLogSpinWrite: 12 s per build
	{Target: "hwcallwriter"}, // issue 11 item 8 (the writer named by a watchpoint)
	// Issue 13: a stepped pushf stores vtrace's trap flag; the program
	// must not trap for it later (Go's asyncPreempt, vtrace under vtrace).
	{Target: "pushfvfork"}, {Target: "pushfvfork", Args: []string{"parent"}},
	// Issue 13: a fork inside a call the child runs at full speed must not
	// inherit vtrace's int3s.
	{Target: "forkinchild"}, {Target: "forkinchild", Args: []string{"vfork"}},
	// Issue 11: the kernel's waitpid store of the bytes the child left.
	{Target: "waitstatus"},
	// Issue 11: the kernel's read of a buffer the child filled (write).
	{Target: "writebuf"},

	// Other projects' vfork/spawn tests, written anew (each file's header
	// names the test that inspired it).
	{Target: "vforkerrno"}, {Target: "vforkerrno", Args: []string{"read"}}, // glibc tst-vfork3's execvp through PATH
	{Target: "vforkerrno", Args: []string{"open"}},
	{Target: "vforksigmask"},                                                 // musl/glibc posix_spawn's signal dance, by hand
	{Target: "spawnattrs"}, {Target: "spawnattrs", Args: []string{"setsid"}}, // glibc tst-spawn3 + attributes
	{Target: "vforkexecvp"},    // glibc tst-vfork3
	{Target: "vforkpid"},       // glibc tst-vfork1
	{Target: "vforkpending"},   // LTP vfork02
	{Target: "globalreset"},    // nix#16119's guard: the parent resets the global in a call first
	{Target: "clonevforkcopy"}, // clone(2)'s CLONE_VFORK without CLONE_VM: a copy, as after fork

	// The catalogue of real vfork bugs (targets/catalogue/, docs/catalogue.md).
	{Target: "rr3270_popfw"}, {Target: "fastio1141_helper"}, {Target: "embox2050_slot"},
	{Target: "go20427_signal"}, {Target: "nix16119_global"}, {Target: "rr1595_stack"},
}

// Cxx reports whether a target is C++ (targets/*.cc): not built where the
// build has no C++ compiler (musl, targets.mk).
func Cxx(target string) bool { return target == "throwvfork" }

// Built reports whether targets.mk builds target in build.
func Built(target, build string) bool { return !(Cxx(target) && strings.HasPrefix(build, "musl")) }

// MaxVforks is the --max-vforks budget the matrix runs with: the -O2 seed
// builds that restart themselves forever end there.
const MaxVforks = 20

// RunFlags are the vtrace run flags a case is traced with wherever its
// expectation is checked (the matrix, its test, the VM): the budgets the
// expectations assume, then the case's own flags.
func RunFlags(c Case) []string {
	return append([]string{"--max-vforks", strconv.Itoa(MaxVforks), "--timeout", "60s"}, c.Flags...)
}

// Expect is what vtrace must report for one case in one build. Zero values
// are not checked.
type Expect struct {
	Verdict string   // run verdict
	Reasons []string // reasons the first worst story must include
	Vforks  int      // stories; Budget means "stopped by --max-vforks"
	// Slots the first worst story's slot_writes must include ("ret",
	// "saved_reg:ebx") and must not include.
	Slots, NoSlots []string
	ReturnsPast    int    // child_return_past_frame events in that story (-1: none)
	ChildEnd       string // how that story's child ended: exec, exit, signal
	Landing        string // that story's parent_landing "how" ("a|b": either)
	Exit           *int   // the program's own exit code (clean targets)
	Why            string // why this build's story differs from the others

	// Pending names the engine fix this expectation waits for ("issue 11
	// item 5: ..."). The expectation itself is the true one; today's
	// vtrace does not tell it yet. A pending row that fails is reported,
	// not failed; one that passes fails until the mark is removed.
	Pending string

	// The facts below were added for issue 11 and the catalogue; each is
	// checked only when set.

	// LibcChannel: the kind of libc_channel event the story must have
	// ("spawn_error": glibc's posix_spawn child stored its error in the
	// parent's argument block, by design), or "none": it must have none.
	LibcChannel string
	// Globals: mappings in which the story must report a global_write (a
	// child store into the parent's writable memory outside the stack):
	// "exe" for the traced program's own data, "[heap]", or a library's
	// base name.
	Globals []string
	// GlobalBy: what the first global_write's writer (`by`, else - in
	// fast mode, where the store ran inside a call at full speed -
	// `during`) must name ("a|b": either).
	GlobalBy string
	// PastBy: what the first child_return_past_frame's `by` (or, in fast
	// mode, its `during`) must name ("a|b": either), e.g. "longjmp" - the
	// instruction that moved the stack pointer above the frame, or the
	// call it happened in.
	PastBy string
	// SlotBy: what the first slot_write's writer (`by`, else `during`)
	// must name, e.g. "pushw".
	SlotBy string
	// MinStackWrites: at least this many stack_write events in the story
	// (words of live parent frames the child changed).
	MinStackWrites int
	// Frame0Ret: the function frame 0 of the vfork returns into. A story
	// that knows its frames must name it as frame 0's ret_sym; one that
	// does not (frame 0 method "none") must say so with frames_unknown in
	// its vfork_verdict.
	Frame0Ret string
	// FrameRets: the functions the parent's frames at the vfork return
	// into, innermost first, as far as listed (each frame's ret_sym).
	FrameRets []string
	// CloneFlags: the vfork event's flags, as strace -f decodes the same
	// call (compared as a set of names).
	CloneFlags string
	// Complete: no story of the run is incomplete and none began while
	// another of the same process was open.
	Complete bool
}

// Budget as Expect.Vforks: the run must end by the max_vforks budget.
const Budget = -1

func code(n int) *int { return &n }

// For returns what vtrace must report for c in build, marked Pending where
// today's engine does not report it yet (pending.go).
func For(c Case, build string) Expect {
	e := truth(c, build)
	e.Pending = pending(c, build)
	return e
}

// truth is what vtrace must report for c in build.
func truth(c Case, build string) Expect {
	i386 := I386(build)
	o2 := strings.Contains(build, "-O2")
	musl := strings.HasPrefix(build, "musl")
	clang := strings.HasPrefix(build, "clang")
	static := strings.HasSuffix(build, "-static")
	clean := func(end string, vforks int) Expect {
		return Expect{Verdict: "clean", Vforks: vforks, ChildEnd: end, ReturnsPast: -1, Exit: code(0)}
	}
	switch c.Name() {
	case "badvfork", "fnptrvfork":
		// The seed program: the child returns from createproc() and main's
		// calls overwrite createproc's return slot; the parent's ret lands
		// where the child's last call left its return address.
		e := Expect{Verdict: "violation", Vforks: 2, ChildEnd: "exit", ReturnsPast: 1, Landing: "ret_clobbered",
			Reasons: []string{"child_returned_past_frame", "parent_consumed_clobbered_slot", "child_called_exit"},
			Slots:   []string{"ret"}}
		switch {
		case i386:
			// FACTS.md: the return slot survives; the child's argument
			// pushes zero the saved %ebx slot and the parent dies later:
			// at -O0 in printf@plt before leaving main's frame, at -O2
			// after returning from createproc.
			e.Slots, e.NoSlots, e.Vforks, e.Landing = []string{"saved_reg:ebx"}, []string{"ret"}, 1, "signal"
			e.Why = "i386 passes arguments on the stack: the child's pushes clobber the saved %ebx, not the return slot; one vfork, then the parent faults"
			switch {
			case o2:
				e.Landing = "returned"
			case static:
				// main's printf takes its format at %ebx-0x34fec: with
				// %ebx = 0 that is 0xfffcb014, just below the highest
				// place the stack can start. When the stack starts above
				// it (always under --no-aslr, ≈1 run in 40 with ASLR) the
				// kernel grows the stack over it, printf reads an empty
				// format and the parent exits 0.
				e.Landing = "signal|exit"
				e.Why += " (static -O0: in printf, unless the stack starts above the bad format address 0xfffcb014 — then it prints nothing and exits 0)"
			}
		case o2 && !static && !clang:
			e.Vforks = Budget
			e.Why = "main's `call exit` is its last instruction: the parent lands in _start and runs the program again, forever"
		case o2 && static && !clang:
			e.Vforks = 1
			e.Why = "lands in _start like gcc-O2, but static glibc's start-up then faults writing RELRO: one vfork"
		case clang && o2:
			e.Vforks = 4
			e.Why = "clang places createproc right after main: the parent falls into it and vforks again, twice"
		}
		return e
	case "deepvfork":
		e := Expect{Verdict: "violation", Vforks: 1, ChildEnd: "exit", ReturnsPast: 2, Landing: "ret_clobbered",
			Reasons: []string{"child_returned_past_frame", "parent_consumed_clobbered_slot"}, Slots: []string{"ret"}}
		if musl && !o2 {
			e.Vforks = 2
			e.Why = "musl -O0: the parent comes back through outer() and vforks again"
		}
		return e
	case "rawvfork":
		// syscall() is an ordinary function: its return address is a slot
		// on the shared stack, and the vfork happens inside it. The child
		// returns from it into main (a return past a live parent frame,
		// frame 0 here, whatever frame number an implementation starts
		// counting at), and its `call _exit` rewrites that slot; the
		// parent's ret from syscall() consumes it. gdb (parent stopped at
		// syscall's ret) shows syscall()'s return slot rewritten to the
		// address after main's `call _exit` in all ten amd64 builds.
		e := Expect{Verdict: "violation", Vforks: 1, ChildEnd: "exit", ReturnsPast: 1, Landing: "ret_clobbered",
			Reasons: []string{"child_returned_past_frame", "parent_consumed_clobbered_slot"}, Slots: []string{"ret"}}
		if i386 {
			// The syscall goes through __kernel_vsyscall (vDSO), called
			// from syscall(): the child returns from both (gdb: the return
			// slots of both frames and their saved registers rewritten).
			e.ReturnsPast = 2
			e.Why = "i386: the syscall is made in [vdso] __kernel_vsyscall, called by syscall(): the child returns past both frames"
		}
		return e
	case "pushfvfork":
		// The child's pushf; popf leave its flags as they were; it writes
		// and calls _exit(0): clean, and the program exits 0 as natively.
		return clean("exit", 1) // exit 0
	case "forkinchild":
		// The child's fork_helper() forks; the grandchild returns from it
		// and exits 7, the child reaps it and exits 0. Natively 0: under
		// vtrace too, in every mode (the grandchild must not find an int3
		// of vtrace's at fork_helper's return address).
		return clean("exit", 1) // exit 0
	case "forkinchild vfork":
		// The same, and the grandchild vforks (its child _exits 5, it
		// exits 7) while the child's story runs: two stories, both
		// correct vforks, the program's exit 0.
		return clean("exit", 2) // exit 0
	case "waitstatus":
		// The child stores 0 into the parent's `status`; the parent's
		// waitpid stores the child's exit status, 0, there before the
		// parent reads it: the parent reads the kernel's bytes.
		return clean("exit", 1) // exit 0
	case "writebuf":
		if clang && o2 {
			// objdump: clang -O2 drops the child's memcpy (its stores are
			// dead before the noreturn _exit, and clang does not know
			// vfork shares the memory): the child writes nothing, the
			// program prints the dots natively too.
			return clean("exit", 1) // exit 0
		}
		// The child fills buf; the parent passes it to write(2): the
		// kernel reads the child's bytes for it.
		return Expect{Verdict: "warning", Vforks: 1, ChildEnd: "exit", ReturnsPast: -1, Landing: "returned",
			Reasons: []string{"parent_read_child_write"}, Exit: code(0)}
	case "pushfvfork parent":
		// As writelocal: the child stores 42 into the parent's local
		// `handoff`, which the parent reads after its own pushf; popf
		// (the word changed by the child is read back: a warning).
		return Expect{Verdict: "warning", Vforks: 1, ChildEnd: "exit", ReturnsPast: -1, Landing: "returned",
			Reasons: []string{"parent_read_child_write"}, Exit: code(0)}
	case "writelocal":
		return Expect{Verdict: "warning", Vforks: 1, ChildEnd: "exit", ReturnsPast: -1, Landing: "returned",
			Reasons: []string{"parent_read_child_write"}, Exit: code(0)}
	case "exitvfork":
		return Expect{Verdict: "warning", Vforks: 1, ChildEnd: "exit", ReturnsPast: -1,
			Reasons: []string{"child_called_exit"}, Exit: code(0)}
	case "sigchild", "sigchild raise":
		e := clean("signal", 1)
		if c.Name() == "sigchild raise" && musl {
			e.Exit, e.ChildEnd = nil, "exit"
			e.Why = "musl's raise() signals the thread id cached in the thread structure, which the vfork child shares with its parent: the SIGSEGV goes to the parent (exit 139, targets/README.md) and the child exits"
		}
		return e
	case "nestedvfork":
		return clean("exit", 2)
	case "hwcallwriter":
		if i386 {
			e := clean("exit", 1)
			e.Why = "i386: a correct vfork (the target's assembly is amd64's)"
			return e
		}
		// The child returns from spawn() (asm) into main; main's `call
		// inner`, inner's `call leaf` and `push %rax` rewrite spawn's
		// return slot, the child's `call _exit` last; the parent returns
		// through it.
		e := Expect{Verdict: "violation", Vforks: 1, ChildEnd: "exit", ReturnsPast: 1, Landing: "ret_clobbered",
			Reasons: []string{"child_returned_past_frame", "parent_consumed_clobbered_slot"}, Slots: []string{"ret"}}
		if build == "gcc-O2" || build == "musl-O2" {
			// objdump: main's `call _exit` is its last instruction, and
			// _start follows it.
			e.Vforks = Budget
			e.Why = "main's `call _exit` is its last instruction: the parent lands on _start and runs the program again, forever"
		}
		return e
	case "trapchild", "trapchild kill", "trapchild timer":
		// The child's int3 / kill(getpid(), SIGTRAP) / timer's SIGTRAP kills it natively
		// (no handler): so under vtrace, in every mode.
		return clean("signal", 1)
	case "sigchldfollow":
		// The SIGCHLD handler runs while the parent is followed; the
		// parent goes on to return from spawn() (or rewrites the word
		// first): never a "signal" landing, never the program's SIGTRAP.
		e := clean("exit", 1)
		e.Landing = "returned|overwritten"
		return e
	case "traphandler":
		// The handler runs 4 times natively; the program exits 0 then.
		return clean("exec", 1)
	case "spinwrite 1000":
		// 1,000 writes to one local of spawn(): one stack_write.
		e := clean("exec", 1)
		e.MinStackWrites = 1
		return e
	case "goodvfork_exit":
		e := clean("exit", 1)
		e.Exit = code(3)
		return e
	case "spin 1000", "clonevfork exit", "clone3vfork exit":
		return clean("exit", 1)
	case "spawnloop 20":
		return clean("exec", 20)
	}
	if e, ok := forIssue11(c, build); ok {
		return e
	}
	if e, ok := forOtherTests(c, build); ok {
		return e
	}
	if e, ok := forCatalogue(c, build); ok {
		return e
	}
	return clean("exec", 1) // goodvfork_exec, spawn, system, popen, clonevfork, clone3vfork, threadvfork
}

// forIssue11 is the expectation for the targets of issue 11 ("right on real
// programs"), items 1-10; each target's comment says why in more words.
func forIssue11(c Case, build string) (Expect, bool) {
	i386 := I386(build)
	o2 := strings.Contains(build, "-O2")
	musl := strings.HasPrefix(build, "musl")
	clang := strings.HasPrefix(build, "clang")
	clean := func(end string, vforks int) Expect {
		return Expect{Verdict: "clean", Vforks: vforks, ChildEnd: end, ReturnsPast: -1, Exit: code(0)}
	}
	switch c.Name() {
	case "spawnfail", "spawnfail addopen", "spawnfail spawn2":
		// glibc's spawn child stores its error in the parent's
		// posix_spawn_args.err (on __spawnix's stack) and _exit(127)s;
		// the parent reads it: the libc's error channel, clean. musl
		// sends the error through a pipe: nothing to report.
		n := 1
		if c.Name() == "spawnfail spawn2" {
			n = 2 // posix_spawn, then posix_spawnp
		}
		e := clean("exit", n)
		e.LibcChannel = "spawn_error"
		if musl {
			e.LibcChannel = "none"
			e.Why = "musl's posix_spawn reports the child's error through a CLOEXEC pipe, not through the parent's memory"
		}
		return e, true
	case "vforkwait":
		// clang -O2 gives argv[] and status one slot: the child's argv[0]
		// store is rewritten by the kernel's wait4 before the parent
		// reads the 4 bytes of status. Clean everywhere.
		e := clean("exec", 1)
		if clang && o2 {
			e.Why = "clang -O2 keeps argv[] (child) and status (parent) in one stack slot; wait4 rewrites it before the parent reads it"
		}
		return e, true
	case "memsetread":
		e := clean("exec", 1)
		return e, true
	case "vzeroret":
		// vz_vfork (asm) makes the syscall and ends `vzeroupper; ret`:
		// the child returns past it. gdb: its return slot is rewritten
		// by main's `call _exit` in every amd64 build and in the i386 -O2
		// builds; in the i386 -O0 builds the child's `sub $0xc,%esp;
		// push $0x0; call _exit` writes below the slot and the parent
		// returns normally.
		e := Expect{Verdict: "violation", Vforks: 1, ChildEnd: "exit", ReturnsPast: 1, Landing: "ret_clobbered",
			Reasons: []string{"child_returned_past_frame", "parent_consumed_clobbered_slot"}, Slots: []string{"ret"}}
		switch {
		case i386 && !o2:
			// The parent is not harmed: following it ends when it returns
			// above the words the child changed, or once it has rewritten
			// them all itself (its own pushes over the same words).
			e.Reasons, e.Slots, e.NoSlots, e.Landing = []string{"child_returned_past_frame"}, nil, []string{"ret"}, "returned|overwritten"
			e.Why = "i386 -O0: the child's pushes for _exit(0) go below vz_vfork's return slot; the parent returns normally"
		case build == "clang-O2-nopie":
			e.Vforks = 2
			e.Why = "clang -O2 -no-pie: the parent lands past main's `call _exit`, runs through _fini's ret back into main and vforks once more, then dies"
		}
		return e, true
	case "longjmpvfork", "throwvfork":
		// The child leaves spawn() by longjmp / by the unwinder, not by a
		// ret. gdb: spawn()'s return slot is rewritten by the child's
		// calls in main in every amd64 build (and every i386 build of the
		// C++ target); the parent returns through it.
		e := Expect{Verdict: "violation", Vforks: 1, ChildEnd: "exit", ReturnsPast: 1, Landing: "ret_clobbered",
			Reasons: []string{"child_returned_past_frame", "parent_consumed_clobbered_slot"}, Slots: []string{"ret"},
			PastBy: "longjmp"}
		if c.Target == "throwvfork" {
			e.PastBy = "_Unwind_|__cxa_throw"
			return e, true
		}
		switch {
		case i386:
			// i386 passes _exit's argument on the stack: the child's
			// pushes go below spawn's return slot (gdb: unchanged).
			e.Reasons, e.Slots, e.NoSlots, e.Landing = []string{"child_returned_past_frame"}, nil, []string{"ret"}, "returned"
			e.Why = "i386: the child's _exit(0) pushes go below spawn()'s return slot: the parent returns normally"
		case clang && o2:
			e.Vforks = 2
			e.Why = "clang -O2: the parent lands after main's `call _exit`, in spawn(), vforks again, then dies"
		default:
			e.Vforks = Budget
			e.Why = "the parent lands after main's `call _exit`, which falls into `call spawn`: it vforks again, forever"
		}
		return e, true
	case "printchild":
		return Expect{Verdict: "warning", Vforks: 1, ChildEnd: "exit", ReturnsPast: -1, Landing: "returned",
			Reasons: []string{"parent_read_child_write"}, Exit: code(0)}, true
	case "vforkloop 20", "vforkcompute":
		n := 20
		if c.Target == "vforkcompute" {
			n = 2
		}
		e := clean("exec", n)
		e.Complete = true
		return e, true
	case "cloneflags", "cloneflags clone3":
		// Flags as `strace -f -e trace=clone,clone3` decodes the same
		// calls (Debian 12's strace 6.1, every build).
		e := clean("exec", 1)
		e.CloneFlags = "CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_VFORK|CLONE_SYSVSEM|CLONE_SETTLS|" +
			"CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|CLONE_IO|SIGCHLD"
		if c.Name() == "cloneflags clone3" {
			e.CloneFlags = "CLONE_VM|CLONE_VFORK|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|CLONE_CLEAR_SIGHAND"
		}
		return e, true
	case "vforkattrs":
		// The child fills a struct of the vfork caller's frame: two struct
		// stat alone have more than 10 nonzero words each for a directory.
		e := clean("exec", 1)
		e.MinStackWrites = 16
		return e, true
	case "jitvfork":
		// The vfork is made by code in an anonymous mapping: a leaf whose
		// return address is at the stack pointer, called from main.
		e := clean("exit", 1)
		e.Frame0Ret = "main"
		return e, true
	}
	return Expect{}, false
}

// forOtherTests is the expectation for the targets written after other
// projects' vfork and posix_spawn tests (glibc posix/tst-vfork1, tst-vfork3,
// tst-spawn3; musl's posix_spawn); each file's header says why in more words.
func forOtherTests(c Case, build string) (Expect, bool) {
	musl := strings.HasPrefix(build, "musl")
	clean := func(end string, vforks int) Expect {
		return Expect{Verdict: "clean", Vforks: vforks, ChildEnd: end, ReturnsPast: -1, Exit: code(0)}
	}
	switch c.Name() {
	case "vforkerrno", "vforksigmask":
		// vforkerrno: the child's execvp sets the parent's errno (shared
		// TLS) to ENOENT; the parent saved errno before the vfork and
		// never reads it after: libc bookkeeping, nothing the parent uses.
		// vforksigmask: the child's sigaction/sigprocmask change only its
		// own handler table and mask (vfork has no CLONE_SIGHAND); the
		// parent's handler runs once afterwards, natively and traced.
		return clean("exec", 1), true
	case "vforkerrno open":
		// The parent's own open() fails with ENOENT after the vfork and it
		// reads errno: its own value, equal to the child's (2). A call run
		// at full speed leaves the word's bytes as the child left them, so
		// "still holds the child's bytes" cannot tell; the read is the
		// parent's own.
		return clean("exec", 1), true
	case "vforkerrno read":
		// The parent reads errno after the vfork: it holds the child's
		// ENOENT (2; it was EBADF, 9), and the program prints the wrong
		// error and exits 1 natively in every build. A word the child
		// wrote, read by the parent in its own code (main's load through
		// __errno_location's pointer, or %fs:/%gs:-relative in the static
		// builds): the read of a child's global.
		return Expect{Verdict: "warning", Vforks: 1, ChildEnd: "exec", ReturnsPast: -1,
			Reasons: []string{"child_wrote_global", "parent_read_child_global"}, Exit: code(1)}, true
	case "spawnattrs", "spawnattrs setsid":
		// A posix_spawn that succeeds: no error channel is used (glibc
		// writes args.err only when a file action or the exec fails).
		e := clean("exec", 1)
		e.LibcChannel = "none"
		return e, true
	case "vforkexecvp":
		// Four correct vfork children (execvp/execlp through PATH); the
		// first story execs the #! script in every libc. The shebang-less
		// script: glibc execs /bin/sh for it, musl's child _exit(ENOEXEC)s
		// - both by their libc's design, both correct vfork children.
		e := clean("exec", 4)
		e.Complete = true
		if musl {
			e.Why = "musl's execvp does not run a shell for ENOEXEC: the children of the shebang-less script _exit(8) instead of exec'ing /bin/sh"
		}
		return e, true
	case "vforkpid":
		// Two children getpid(), write(2) their own local and _exit.
		// objdump (gcc and clang -O2): the child's `p` and the parent's
		// `seen` have slots of their own; the parent never reads `p`.
		return clean("exit", 2), true
	case "clonevforkcopy":
		// No CLONE_VM: the child returns past spawn() and syscall(),
		// writes main's local and a global and calls exit(3), all on its
		// own copy of the memory; the parent's frames and data are as
		// they were (the program checks them: exit 0 natively). Nothing
		// of vfork's rules applies; the child ends by exit.
		return clean("exit", 1), true
	case "globalreset":
		// The child stores 0 into the global `ready` (a global_write by
		// main's store); the parent's call restore_state() stores 1 there
		// before main reads it: the parent reads its own value (the
		// program prints 1). Fast mode runs that call at full speed: the
		// word no longer holds the child's bytes when main reads it.
		e := clean("exec", 1)
		e.Globals, e.GlobalBy = []string{"exe"}, "main"
		return e, true
	case "vforkpending":
		// The kernel's rt_sigpending in the child stores the child's empty
		// set over `pend` (SIGUSR1's bit was set): a word of the live
		// frame changed. The parent's own sigpending rewrites it before
		// the parent reads it, so following the parent ends with the word
		// overwritten (by the syscall, or the call it is made in).
		e := clean("exit", 1)
		e.MinStackWrites = 1
		e.Landing = "overwritten"
		return e, true
	}
	return Expect{}, false
}

// forCatalogue is the expectation for the reproductions of real vfork bugs
// (targets/catalogue/, docs/catalogue.md).
func forCatalogue(c Case, build string) (Expect, bool) {
	i386 := I386(build)
	o2 := strings.Contains(build, "-O2")
	switch c.Name() {
	case "rr3270_popfw":
		// gdb, parent stopped at hook_vfork's ret: i386 0x5655xxxx →
		// 0x0000xxxx (the child's pushw of saved_flags = 0 over the upper
		// half); amd64 unchanged (those two bytes were already 0).
		// gdb unwinds the parent at the vfork as hook_vfork (return slot
		// on the stack) → tramp_vfork (return address in %rdi / %ecx,
		// CFI DW_CFA_register) → main.
		e := Expect{Verdict: "violation", Vforks: 1, ChildEnd: "exit", ReturnsPast: 1, Landing: "ret_clobbered",
			Reasons: []string{"child_returned_past_frame", "parent_consumed_clobbered_slot"}, Slots: []string{"ret"},
			SlotBy: "pushw", FrameRets: []string{"tramp_vfork", "main"}}
		if !i386 {
			e.Reasons, e.Slots, e.NoSlots, e.SlotBy, e.Landing, e.Exit = []string{"child_returned_past_frame"}, nil, []string{"ret"}, "", "returned", code(0)
			e.Why = "amd64: the 2-byte push lands on the top two bytes of a 64-bit user address, which are zero already: the slot does not change"
		}
		return e, true
	case "fastio1141_helper":
		if o2 {
			e := Expect{Verdict: "clean", Vforks: 1, ChildEnd: "exec", ReturnsPast: -1, Exit: code(0)}
			e.Why = "-O2 inlines both helpers into spawn(): the vfork happens in the function whose child execs (fast_io's \"optimizations off\")"
			return e, true
		}
		// gdb: raw_vfork's return slot (0 on amd64, the GOT address on
		// i386) and helper_vfork's rewritten by the child's calls.
		return Expect{Verdict: "violation", Vforks: 1, ChildEnd: "exec", ReturnsPast: 2, Landing: "ret_clobbered",
			Reasons: []string{"child_returned_past_frame", "parent_consumed_clobbered_slot"}, Slots: []string{"ret"}}, true
	case "embox2050_slot":
		if !o2 {
			e := Expect{Verdict: "clean", Vforks: 1, ChildEnd: "exec", ReturnsPast: -1, Exit: code(0)}
			e.Why = "-O0 gives every local its own slot: the child writes none the parent reads"
			return e, true
		}
		return Expect{Verdict: "warning", Vforks: 1, ChildEnd: "exec", ReturnsPast: -1, Landing: "returned",
			Reasons: []string{"parent_read_child_write"}, Exit: code(1)}, true
	case "go20427_signal", "nix16119_global":
		// The store: nix's in restore_mount_namespace() (a call from
		// run_program's child branch); go's in the handler on_usr1(),
		// which the kernel runs in the child on return from its kill()
		// (a call from main's child branch).
		e := Expect{Verdict: "warning", Vforks: 1, ChildEnd: "exec", ReturnsPast: -1, Exit: code(1),
			Reasons: []string{"child_wrote_global", "parent_read_child_global"}, Globals: []string{"exe"},
			GlobalBy: "restore_mount_namespace"}
		if c.Target == "go20427_signal" {
			e.GlobalBy = "on_usr1|kill"
		}
		return e, true
	case "rr1595_stack":
		// gdb: clone()'s return slot (frame 0) is rewritten by the child
		// - by its `call *fn` (the slot then holds an address inside
		// clone, and the parent returns into the child's exit path) or
		// by child_fn's and execl's frames - and the parent returns
		// through it.
		e := Expect{Verdict: "violation", Vforks: 1, ChildEnd: "exec", ReturnsPast: -1, Landing: "ret_clobbered",
			Reasons: []string{"parent_consumed_clobbered_slot"}, Slots: []string{"ret"}}
		if i386 {
			// strace: the child dies of SIGSEGV (SEGV_ACCERR) calling
			// the "/bin/true" string - clone's stores onto the new stack
			// and its pushes overlap - after its `call *%ebx` pushed
			// clone+102 into clone's return slot.
			e.ChildEnd = "signal"
			e.Why = "i386: clone's own stores onto the child's stack overlap its pushes; the child calls the \"/bin/true\" string and dies of SIGSEGV"
		}
		return e, true
	}
	return Expect{}, false
}

// Check compares a run's summary with the expectation and returns every
// difference, in words.
func (e Expect) Check(s Summary) []string {
	var bad []string
	miss := func(format string, a ...any) { bad = append(bad, fmt.Sprintf(format, a...)) }
	if s.Verdict != e.Verdict {
		miss("verdict %s, want %s", s.Verdict, e.Verdict)
	}
	switch {
	case e.Vforks == Budget:
		if s.Incomplete != "max_vforks" || s.Vforks != MaxVforks {
			miss("%d vforks (incomplete: %q), want the max_vforks budget (%d) to end the run", s.Vforks, s.Incomplete, MaxVforks)
		}
	case e.Vforks != 0:
		if s.Vforks != e.Vforks {
			miss("%d vforks, want %d", s.Vforks, e.Vforks)
		}
		if s.Incomplete != "" {
			miss("run stopped by %s", s.Incomplete)
		}
	}
	for _, r := range e.Reasons {
		if !slices.Contains(s.Reasons, r) {
			miss("reasons %v lack %s", s.Reasons, r)
		}
	}
	for _, k := range e.Slots {
		if !slices.Contains(s.Slots, k) {
			miss("slot writes %v lack %s", s.Slots, k)
		}
	}
	for _, k := range e.NoSlots {
		if slices.Contains(s.Slots, k) {
			miss("slot writes %v include %s", s.Slots, k)
		}
	}
	switch {
	case e.ReturnsPast < 0 && s.ReturnsPast != 0:
		miss("child returned past %d frames, want none", s.ReturnsPast)
	case e.ReturnsPast > 0 && s.ReturnsPast != e.ReturnsPast:
		miss("child returned past %d frames, want %d", s.ReturnsPast, e.ReturnsPast)
	}
	if e.ChildEnd != "" && s.ChildEnd != e.ChildEnd {
		miss("child ended by %q, want %s", s.ChildEnd, e.ChildEnd)
	}
	if e.Landing != "" && !slices.Contains(strings.Split(e.Landing, "|"), s.LandingHow) {
		miss("parent landing %q, want %s", s.LandingHow, e.Landing)
	}
	if e.Exit != nil && (s.ExitCode == nil || *s.ExitCode != *e.Exit) {
		miss("program ended %s, want exit status %d", s.Fate, *e.Exit)
	}
	switch e.LibcChannel {
	case "":
	case "none":
		if len(s.Channels) > 0 {
			miss("libc_channel %v, want none", s.Channels)
		}
	default:
		if !slices.Contains(s.Channels, e.LibcChannel) {
			miss("libc_channel events %v lack %s", s.Channels, e.LibcChannel)
		}
	}
	for _, m := range e.Globals {
		want := m
		if m == "exe" {
			want = s.Program
		}
		if !slices.Contains(s.Globals, want) {
			miss("global_write events in %v, want one in %s (%s)", s.Globals, m, want)
		}
	}
	if e.GlobalBy != "" && !names(s.GlobalBy, e.GlobalBy) {
		miss("the first global write was by %q, want %s", s.GlobalBy, e.GlobalBy)
	}
	if e.PastBy != "" && !names(s.PastBy, e.PastBy) {
		miss("the return past the frame was by %q, want %s", s.PastBy, e.PastBy)
	}
	if e.SlotBy != "" && !names(s.Writer, e.SlotBy) {
		miss("the first slot write was by %q, want %s", s.Writer, e.SlotBy)
	}
	if e.MinStackWrites > 0 && s.StackWrites < e.MinStackWrites {
		miss("%d stack_write events, want at least %d", s.StackWrites, e.MinStackWrites)
	}
	if e.Frame0Ret != "" {
		switch {
		case s.Frame0Method == "none" && !s.FramesUnknown:
			miss("frame 0 did not unwind (method none), but the story does not say frames_unknown")
		case s.Frame0Method != "none" && s.Frame0Ret != e.Frame0Ret:
			miss("frame 0 returns into %q (method %s), want %s (or frames unknown)", s.Frame0Ret, s.Frame0Method, e.Frame0Ret)
		}
	}
	for i, fn := range e.FrameRets {
		if i >= len(s.FrameRets) || s.FrameRets[i] != fn {
			miss("the parent's frames return into %q, want %q first", s.FrameRets, e.FrameRets)
			break
		}
	}
	if e.CloneFlags != "" && !sameFlags(s.Flags, e.CloneFlags) {
		miss("clone flags %q, want %q (strace -f)", s.Flags, e.CloneFlags)
	}
	if e.Complete && (s.IncompleteStories > 0 || s.Nested > 0 || s.Incomplete != "") {
		miss("%d incomplete and %d nested stor(ies), run incomplete %q: want every story complete, none nested",
			s.IncompleteStories, s.Nested, s.Incomplete)
	}
	bad = append(bad, untrueClaims(s)...)
	return bad
}

// untrueClaims lists what the story's explanation says that its own facts
// contradict (issue 11 item 10: every sentence must follow from what was
// seen). Checked on every row: a claim is checked against the facts, not
// against a wording.
func untrueClaims(s Summary) []string {
	var bad []string
	if strings.Contains(s.Explanation, "without touching any live parent frame") && s.StackWrites+len(s.Slots) > 0 {
		bad = append(bad, fmt.Sprintf("the story says the child ran without touching any live parent frame, yet reports %d stack_write(s) and slot writes %v",
			s.StackWrites, s.Slots))
	}
	if strings.Contains(s.Explanation, "frames intact") && s.Frame0Method == "none" {
		bad = append(bad, "the story says the parent's frames stayed intact, yet they were never known (frame 0 method none)")
	}
	return bad
}

// names reports whether got mentions one of want's "|"-separated names.
func names(got, want string) bool {
	for _, w := range strings.Split(want, "|") {
		if strings.Contains(got, w) {
			return true
		}
	}
	return false
}

// sameFlags compares two "A|B|C" flag lists as sets.
func sameFlags(a, b string) bool {
	set := func(s string) []string {
		f := strings.Split(s, "|")
		slices.Sort(f)
		return f
	}
	return slices.Equal(set(a), set(b))
}

// StepTooLong says why --step cannot follow c's story in build to its end
// within the default --max-story-steps (2,000,000), or "": the fast/--step
// comparison (cmd/vtrace TestFastMatchesStep) leaves such a case out.
func StepTooLong(c Case, build string) string {
	if c.Target == "throwvfork" && strings.HasSuffix(build, "-static") {
		// Measured: gcc-O0-static, cut at 2,000,000 steps after 30 s.
		// Fast mode runs those searches at full speed (763 steps).
		return "static libgcc's first FDE search (init_object sorts every FDE of the program) takes more than 2,000,000 single-steps in the child's throw"
	}
	return ""
}
