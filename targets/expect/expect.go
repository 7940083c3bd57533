// Package expect holds, as data, what vtrace must say about every target in
// this directory in every build: the expected verdict and the key facts of
// the story (how many vforks, which slots the child overwrote, whether it
// returned past the vfork frame, how it ended, where the parent landed).
// `make matrix` (cmd/vtrace-matrix) prints the table and the matrix test
// (cmd/vtrace/matrix_test.go) asserts it. Where a build legitimately changes
// the story (-O2, -m32, musl), the expectation says how and why; the facts
// come from running the targets natively (targets/README.md) and FACTS.md.
package expect

import (
	"fmt"
	"slices"
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
// its arguments.
type Case struct {
	Target string
	Args   []string
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
	{Target: "spin", Args: []string{"1000"}},    // a short child: the default 1M steps is the benchmark's
	{Target: "spawnloop", Args: []string{"20"}}, // 20 posix_spawns instead of 10,000
}

// MaxVforks is the --max-vforks budget the matrix runs with: the -O2 seed
// builds that restart themselves forever end there.
const MaxVforks = 20

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
}

// Budget as Expect.Vforks: the run must end by the max_vforks budget.
const Budget = -1

func code(n int) *int { return &n }

// For returns what vtrace must report for c in build.
func For(c Case, build string) Expect {
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
		e := Expect{Verdict: "violation", Vforks: 1, ChildEnd: "exit", ReturnsPast: -1, Landing: "ret_clobbered",
			Reasons: []string{"parent_consumed_clobbered_slot"}, Slots: []string{"ret"}}
		if i386 {
			e.ReturnsPast = 1
			e.Why = "the syscall goes through [vdso] __kernel_vsyscall: the child's return from it into syscall() is a return past a live parent frame"
		}
		return e
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
	case "goodvfork_exit":
		e := clean("exit", 1)
		e.Exit = code(3)
		return e
	case "spin 1000", "clonevfork exit", "clone3vfork exit":
		return clean("exit", 1)
	case "spawnloop 20":
		return clean("exec", 20)
	}
	return clean("exec", 1) // goodvfork_exec, spawn, system, popen, clonevfork, clone3vfork, threadvfork
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
	return bad
}
