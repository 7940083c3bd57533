package tracer

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// callLinkImage is main -> spawn -> vfork (glibc 2.36's wrapper), the
// child's code after it python's: the test of the value, two pushes of
// arguments and a call of runexec, made by runexec; the parent returns
// to main from spawn's "parent".
func callLinkImage(t *testing.T, runexec func(a *asm)) *fakeImage {
	t.Helper()
	a := startMain()
	a.fn("main").pushRBP().movRSPtoRBP().call("spawn").exitWith(0)
	a.fn("spawn").pushRBP().movRSPtoRBP().call("vfork").jnzParent("parent")
	a.pushRDI().pushRDI().call("runexec")
	a.label("after_runexec").movEAX(59).syscall() // execve
	a.label("parent").leave().ret()
	a.fn("runexec")
	runexec(a)
	a.glibcVfork236().raw(nops...)
	return a.image(t)
}

// A run of the child's blocks goes on into the call of runexec, which
// execs: the wrapper's block, its ret, the test and the pushes, and the
// call run to the exec in one continue (before: one to the ret, one to
// the call, one through the call). The story, with its child_call, and
// the steps are those of fast mode without it, which steps nothing of
// runexec (--step steps its two instructions besides).
func TestCallLinkExec(t *testing.T) {
	step, fast := stepThenFast(t, callLinkImage(t, func(a *asm) { a.movEAX(59).syscall() }))
	if fast.res.Verdict != event.Clean {
		t.Errorf("verdict %v", fast.res.Verdict)
	}
	// push, cmp, jae, ret, test, jne, push, push, call.
	if fast.steps != 9 || step.steps != 11 {
		t.Errorf("child steps: fast %d, step %d; want 9 and 11", fast.steps, step.steps)
	}
	calls := all[*event.ChildCall](fast.rec)
	if len(calls) != 1 || calls[0].TargetSym == nil || calls[0].TargetSym.Sym != "runexec" || calls[0].By.Sym.Sym != "spawn" {
		t.Errorf("child_calls %+v, want spawn's call of runexec", calls)
	}
	if fast.f.stepReqs != 0 || fast.childConts != 2 {
		t.Errorf("fast mode: %d single-steps, %d continues of the child; want 0 and 2 (to the exec, after it)", fast.f.stepReqs, fast.childConts)
	}
	// The exec'd child runs its program before the int3s of the run are
	// taken out of the parent's memory, which it no longer shares.
	v := all[*event.Vfork](fast.rec)
	if len(v) != 1 {
		t.Fatalf("vfork events %+v", v)
	}
	last := func(e string) int {
		n := -1
		for i, x := range fast.f.trail {
			if x == e {
				n = i
			}
		}
		return n
	}
	let, write := last(fmt.Sprintf("cont %d", v[0].Child)), last(fmt.Sprintf("write %d", v[0].PID))
	if let < 0 || write < let {
		t.Errorf("continues and writes %q: want the child's last continue before the parent's last write", fast.f.trail)
	}
}

// storyAndCalls is storyLines with the child_call events besides, in
// the order of the log.
func storyAndCalls(r *recorder) []string {
	var out []string
	for _, ev := range r.evs {
		if c, ok := ev.(*event.ChildCall); ok {
			out = append(out, fmt.Sprintf("#%d call %s -> %s", c.Vfork, c.By.Sym, c.TargetSym))
			continue
		}
		out = append(out, storyLines(&recorder{evs: []event.Event{ev}})...)
	}
	return out
}

// A callee that returns: the run into the call ends at the int3 at its
// return address; the child then runs on (stepped: the execve). The
// story and its child_call are --step's; the steps fast mode's without
// the run into the call (runexec's nop and ret not counted).
func TestCallLinkReturns(t *testing.T) {
	step, fast := stepThenFast(t, callLinkImage(t, func(a *asm) { a.raw(0x90).ret() }))
	if ls, lf := storyAndCalls(step.rec), storyAndCalls(fast.rec); !slices.Equal(ls, lf) {
		t.Errorf("fast:\n  %s\nstep:\n  %s", strings.Join(lf, "\n  "), strings.Join(ls, "\n  "))
	}
	// 9 to the call, then mov and the execve (stepped: 2).
	if fast.steps != 11 || step.steps != 13 || fast.f.stepReqs != 2 {
		t.Errorf("child steps: fast %d, step %d, fast's single-steps %d; want 11, 13 and 2", fast.steps, step.steps, fast.f.stepReqs)
	}
	if fast.childConts != 2 {
		t.Errorf("fast mode: %d continues of the child; want 2 (to the return, after the exec)", fast.childConts)
	}
}

// A callee that vforks (its child execs, then it execs): the nested
// story is told after the child_call of the call it is made in, as when
// the child stopped at the call, and as --step tells it.
func TestCallLinkNestedVfork(t *testing.T) {
	step, fast := stepThenFast(t, callLinkImage(t, func(a *asm) { a.movEAX(58).syscall().movEAX(59).syscall() }))
	ls, lf := storyAndCalls(step.rec), storyAndCalls(fast.rec)
	if !slices.Equal(ls, lf) {
		t.Errorf("fast:\n  %s\nstep:\n  %s", strings.Join(lf, "\n  "), strings.Join(ls, "\n  "))
	}
	call := slices.Index(lf, "#1 call spawn+19 -> runexec")
	nested := slices.IndexFunc(lf, func(l string) bool { return strings.HasPrefix(l, "vfork #2") })
	if call < 0 || nested < call {
		t.Errorf("the child_call at %d, the nested vfork at %d: want the call first\n  %s", call, nested, strings.Join(lf, "\n  "))
	}
}

// A callee that leaves by moving the stack pointer back up to spawn's
// (its push and the two arguments dropped) and jumping to spawn's
// "parent" — an exit of the block the run came from, at the very stack
// pointer the block had there — as a longjmp to a setjmp before the
// vfork would. The stop at that int3 is not the block's: the mark shows
// the call ran; the int3 is stepped over and the callee run on, as fast
// mode runs it without the run into the call: the child_call told, the
// 9 steps to the call counted and no more. (What fast mode does not see,
// before and after this change, is the child leaving spawn's frame by
// the ret it then runs inside the callee: --step tells it.)
func TestCallLinkEscapeToExit(t *testing.T) {
	img := callLinkImage(t, func(a *asm) {
		a.raw(0x48, 0x8d, 0x64, 0x24, 0x18) // lea 0x18(%rsp),%rsp
		a.rel32(0xe9, "parent")             // jmp parent
	})
	rec, res, f := runFake(t, img, codeBase, Fast)
	lines := storyAndCalls(rec)
	want := []string{"vfork #1 caller spawn+8 frames 3", "#1 call spawn+19 -> runexec", "#1 child exit"}
	if !slices.Equal(lines[:min(3, len(lines))], want) {
		t.Errorf("story\n  %s\nwant it to start\n  %s", strings.Join(lines, "\n  "), strings.Join(want, "\n  "))
	}
	ends := all[*event.ChildEnd](rec)
	if len(ends) != 1 || ends[0].Steps != 9 || res.Vforks != 1 {
		t.Fatalf("child ends %+v", ends)
	}
	// One single-step: over the int3 at "parent", the block's exit.
	if f.stepReqs != 1 || f.conts[ends[0].PID] != 3 {
		t.Errorf("fast mode: %d single-steps, %d continues of the child; want 1 and 3 (to the int3, on to the exit, from the exit stop)", f.stepReqs, f.conts[ends[0].PID])
	}
}

// The word a call's push writes is the one the ret before the block
// popped (Go's rawVforkSyscall returns into forkAndExecInChild1's code,
// which calls at the same stack pointer): it is not marked, for the ret
// would pop the mark — the call is then stopped at, as before. Both ways
// to the block: the ret stepped into it (blockAfterRet; the simple
// wrapper is no block) and the ret linked (glibc 2.36's wrapper).
func TestCallLinkMarkPoppedByRet(t *testing.T) {
	for name, wrapper := range map[string]func(a *asm){
		"blockAfterRet": func(a *asm) { a.glibcVfork() },
		"linked":        func(a *asm) { a.glibcVfork236() },
	} {
		t.Run(name, func(t *testing.T) {
			a := startMain()
			a.fn("main").pushRBP().movRSPtoRBP().call("spawn").exitWith(0)
			a.fn("spawn").pushRBP().movRSPtoRBP().call("vfork").jnzParent("parent")
			a.raw(0x90, 0x90).call("runexec") // nop; nop; call: at the ret's stack pointer
			a.movEAX(59).syscall()
			a.label("parent").leave().ret()
			a.fn("runexec").movEAX(59).syscall()
			wrapper(a)
			a.raw(nops...)
			step, fast := stepThenFast(t, a.image(t))
			ends := all[*event.ChildEnd](fast.rec)
			if len(ends) != 1 || ends[0].How != event.EndExec {
				t.Fatalf("child ends %+v, want its exec", ends)
			}
			if calls := all[*event.ChildCall](fast.rec); len(calls) != 1 || calls[0].TargetSym.Sym != "runexec" {
				t.Errorf("child_calls %+v", calls)
			}
			if step.steps-fast.steps != 2 { // runexec's mov and syscall, stepped by --step
				t.Errorf("child steps: fast %d, step %d", fast.steps, step.steps)
			}
		})
	}
}

// dash's child: a call from the shared frame returns (forkchild), then
// `xor %edi,%edi` and the next call (sigsetmask), then one instruction
// and the call that execs (shellexec). The stretch between two calls is
// a short block (fewer than blockMin instructions) run on into the call:
// the instruction is not single-stepped and the child's watchpoints need
// no turning off for a step; the story, the child_calls and the steps
// are --step's (which steps the callees too).
func TestShortBlockIntoCall(t *testing.T) {
	a := startMain()
	a.fn("main").pushRBP().movRSPtoRBP().call("spawn").exitWith(0)
	a.fn("spawn").pushRBP().movRSPtoRBP().call("vfork").jnzParent("parent")
	a.pushRDI().pushRDI().call("first")
	a.raw(0x31, 0xff).call("second") // xor %edi,%edi
	a.raw(0x31, 0xff).call("runexec")
	a.label("parent").leave().ret()
	a.fn("first").ret()
	a.fn("second").ret()
	a.fn("runexec").movEAX(59).syscall() // execve
	a.glibcVfork236().raw(nops...)
	step, fast := stepThenFast(t, a.image(t))
	for _, r := range []modeRun{step, fast} {
		if r.res.Verdict != event.Clean {
			t.Errorf("%v: verdict %v", r.mode, r.res.Verdict)
		}
	}
	if got, want := storyAndCalls(fast.rec), storyAndCalls(step.rec); !slices.Equal(got, want) {
		t.Errorf("fast:\n  %s\nstep:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	// push, cmp, jae, ret, test, jne, push, push, call, xor, call, xor,
	// call; --step steps first's and second's ret and runexec's two
	// instructions besides.
	if fast.steps != 13 || step.steps != 17 {
		t.Errorf("child steps: fast %d, step %d; want 13 and 17", fast.steps, step.steps)
	}
	// One continue into first, one from its return into second, one from
	// there into runexec to the exec, one after it.
	if fast.f.stepReqs != 0 || fast.childConts != 4 {
		t.Errorf("fast mode: %d single-steps, %d continues of the child; want 0 and 4", fast.f.stepReqs, fast.childConts)
	}
}
