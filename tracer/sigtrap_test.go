package tracer

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/ptrace"
)

// Issue 13: a SIGTRAP vtrace did not cause is the program's, delivered as
// without vtrace. A vfork child that executes an int3 of its own, or
// raises SIGTRAP (tkill), dies of it in every mode — it is neither taken
// for a finished single-step nor swallowed — and the parent runs on.
func TestStoryChildOwnSIGTRAP(t *testing.T) {
	for _, how := range []string{"int3", "tkill"} {
		a := startMain()
		a.fn("main").pushRBP().movRSPtoRBP().call("vfork").jnzParent("parent")
		if how == "int3" {
			a.raw(0xcc)
		} else {
			a.movEAX(200).raw(0xbe, byte(unix.SIGTRAP), 0, 0, 0).syscall() // mov $SIGTRAP,%esi; tkill
		}
		a.exitWith(0)
		a.label("parent").exitWith(3)
		a.glibcVfork()
		for _, mode := range []Mode{Fast, Step} {
			t.Run(how+"/"+mode.String(), func(t *testing.T) {
				rec, _, _ := runFake(t, a.image(t), codeBase, mode)
				lines := storyLines(rec)
				want := []string{
					"vfork #1 caller main+8 frames 2",
					"#1 child signal",
					"#1 parent untouched at vfork+8", // the child changed nothing: the parent is not followed
					"#1 clean []",
					"exit main=true exited code=3",
					"verdict clean vforks=1",
				}
				if !slices.Equal(lines, want) {
					t.Errorf("story:\n  %s\nwant:\n  %s", strings.Join(lines, "\n  "), strings.Join(want, "\n  "))
				}
				ends := all[*event.ChildEnd](rec)
				if len(ends) != 1 || ends[0].Signal != "SIGTRAP" {
					t.Fatalf("child_end %+v, want death by SIGTRAP", ends)
				}
				code := map[string]string{"int3": "SI_KERNEL", "tkill": "SI_TKILL"}[how]
				if ends[0].SiCode != code {
					t.Errorf("si_code %q, want %s", ends[0].SiCode, code)
				}
			})
		}
	}
}

// classifyTrap tells vtrace's traps from the program's by si_code and by
// its int3 addresses; a task that ran into an int3 vtrace removed since is
// rewound onto the restored instruction.
func TestClassifyTrap(t *testing.T) {
	a := newAsm(codeBase)
	a.fn("main").raw(0x90, 0x90, 0xcc, 0x90).exitWith(0)
	img := a.image(t)
	f, s, tk := spawnedTask(t, img)
	pid, mm := tk.pid, tk.proc.mm
	mm.bps[codeBase] = &breakpoint{addr: codeBase, orig: 0x90, owners: map[int]bool{1: true}}
	mm.removed[codeBase+1] = true // restored: the byte there is a nop again
	mm.removed[codeBase+2] = true // the program's own int3 at an address vtrace once used
	cases := []struct {
		name   string
		code   int32
		pc     uint64 // the pc at the stop
		step   bool
		want   trapKind
		wantPC uint64
	}{
		{"single-step", trapTrace, codeBase + 1, true, trapOurs, codeBase + 1},
		{"step over a syscall", trapBrkpt, codeBase + 1, true, trapOurs, codeBase + 1},
		{"the program's own trap flag", trapTrace, codeBase + 1, false, trapProgram, codeBase + 1},
		{"watchpoint", trapHWBkpt, codeBase + 1, false, trapOurs, codeBase + 1},
		{"vtrace's int3", siKernel, codeBase + 1, false, trapOurs, codeBase + 1},
		{"a removed int3", siKernel, codeBase + 2, false, trapRemoved, codeBase + 1},
		{"the program's int3", siKernel, codeBase + 3, false, trapProgram, codeBase + 3},
		{"a step into a signal handler", 5, codeBase + 1, true, trapOurs, codeBase + 1},
		{"TRAP_UNK with no step", 5, codeBase + 1, false, trapProgram, codeBase + 1},
		{"raise", -6, codeBase + 1, true, trapProgram, codeBase + 1},
		{"kill", 0, codeBase + 1, true, trapProgram, codeBase + 1},
	}
	for _, c := range cases {
		ft := f.tasks[pid]
		ft.regs.SetPC(c.pc)
		f.info[pid] = ptrace.SigInfo{Signo: int32(unix.SIGTRAP), Code: c.code}
		if got := s.classifyTrap(tk, c.step); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
		var r arch.Regs
		_ = f.Regs(pid, &r)
		if r.PC() != c.wantPC {
			t.Errorf("%s: pc %#x, want %#x", c.name, r.PC(), c.wantPC)
		}
	}
}

// A benign signal (default action: ignore) is passed on without its
// siginfo being read — the SIGCHLD that ends every spawn: only a stop
// signal's stop can be a group-stop, and no process dies of a benign
// signal, whose details would be told only then — outside a story and in
// one (the vfork child raises it while it is stepped). It is delivered,
// and the program runs on as without vtrace.
func TestBenignSignalNoSiginfo(t *testing.T) {
	tkill := func(a *asm, sig unix.Signal) *asm {
		return a.movEAX(200).raw(0xbe, byte(sig), 0, 0, 0).syscall() // mov $SIG,%esi; tkill
	}
	outside := startMain()
	tkill(outside.fn("main"), unix.SIGCHLD).exitWith(5)
	inStory := startMain()
	inStory.fn("main").pushRBP().movRSPtoRBP().call("vfork").jnzParent("parent")
	tkill(inStory, unix.SIGCHLD).exitWith(0)
	inStory.label("parent").exitWith(5)
	inStory.glibcVfork()
	for _, tc := range []struct {
		name string
		a    *asm
	}{{"outside a story", outside}, {"in a story", inStory}} {
		for _, mode := range []Mode{Fast, Step} {
			t.Run(tc.name+"/"+mode.String(), func(t *testing.T) {
				rec, _, f := runFake(t, tc.a.image(t), codeBase, mode)
				if slices.Contains(f.infoRead, unix.SIGCHLD) {
					t.Errorf("siginfo read at the SIGCHLD stop (siginfo read of %v)", f.infoRead)
				}
				if n := countSig(f.delivered, unix.SIGCHLD); n != 1 {
					t.Errorf("signals delivered %v: want SIGCHLD once", f.delivered)
				}
				lines := storyLines(rec)
				if !slices.Contains(lines, "exit main=true exited code=5") {
					t.Errorf("events:\n  %s\nwant the program's exit with status 5", strings.Join(lines, "\n  "))
				}
			})
		}
	}
}

func countSig(sigs []unix.Signal, sig unix.Signal) int {
	n := 0
	for _, s := range sigs {
		if s == sig {
			n++
		}
	}
	return n
}
