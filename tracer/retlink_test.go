package tracer

import (
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// The child of glibc 2.36's vfork wrapper (`push %rdi; cmp; jae; ret`
// and the error path's load and neg: a block) returns into python's test
// of the value and the pushes of child_exec's arguments (a block): the
// ret's target is %rdi as the child's first stop has it, so the two
// blocks run in one continue (linkRet) where they took two, one stop at
// the ret between them. The story and the steps are --step's.
func TestRetLinkedBlocks(t *testing.T) {
	a := startMain()
	a.fn("main").pushRBP().movRSPtoRBP().call("spawn").exitWith(0)
	a.fn("spawn").pushRBP().movRSPtoRBP().call("vfork").jnzParent("parent")
	a.pushRDI().pushRDI().pushRDI().pushRDI().pushRDI()
	a.movEAX(59).syscall() // execve
	a.label("parent").leave().ret()
	a.glibcVfork236().raw(nops...)
	step, fast := stepThenFast(t, a.image(t))
	if fast.res.Verdict != event.Clean {
		t.Errorf("verdict %v", fast.res.Verdict)
	}
	// push, cmp, jae, ret, test, jne, 5 pushes, mov and the execve.
	if fast.steps != step.steps || step.steps != 13 {
		t.Errorf("child steps: fast %d, step %d; want 13 both", fast.steps, step.steps)
	}
	// The child: one continue through both blocks to the syscall (before
	// linkRet: two), the syscall stepped, one continue after the exec.
	if fast.f.stepReqs != 1 || fast.childConts != 2 {
		t.Errorf("fast mode: %d single-steps, %d continues of the child; want 1 and 2", fast.f.stepReqs, fast.childConts)
	}
}

// retLinkRun builds main -> spawn -> vfork, with the vfork wrapper made
// by wrapper and the child's code after the wrapper's return made by
// child (the parent returns to spawn's "parent"), and runs it in both
// modes (stepThenFast: the stories must be the same).
func retLinkRun(t *testing.T, wrapper, child func(a *asm)) (step, fast modeRun) {
	t.Helper()
	a := startMain()
	a.fn("main").pushRBP().movRSPtoRBP().call("spawn").exitWith(0)
	a.fn("spawn").pushRBP().movRSPtoRBP().call("vfork")
	child(a)
	a.label("parent").leave().ret()
	wrapper(a)
	a.raw(nops...)
	return stepThenFast(t, a.image(t))
}

// pythonChild is python's child after vfork: the test of the value, five
// pushes, the execve.
func pythonChild(a *asm) {
	a.jnzParent("parent").pushRDI().pushRDI().pushRDI().pushRDI().pushRDI().movEAX(59).syscall()
}

// A register written before its push is not the one the block started
// with: the wrapper adds 4 to %rdi before pushing it, and returns past 4
// bytes of other code (four pushes) to the test of the value. The ret's
// target is not known from the first stop's registers (no link: the
// word is read at the ret, blockAfterRet), and the story is --step's;
// taken for %rdi's first value, the run would have gone into the four
// pushes (steps 4 more, int3s where the child never goes).
func TestRetLinkRegWrittenBeforePush(t *testing.T) {
	wrapper := func(a *asm) {
		a.fn("vfork").popRDI().movEAX(58).syscall()
		a.raw(0x48, 0x83, 0xc7, 0x04) // add $4,%rdi
		a.pushRDI()
		a.raw(0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff).raw(0x73, 0x01).ret() // cmp; jae 1f; ret
		a.raw(0x48, 0x8b, 0x0d, 0, 0, 0, 0).raw(0xf7, 0xd8).raw(0x64, 0x89, 0x01).ret()
	}
	step, fast := retLinkRun(t, wrapper, func(a *asm) {
		a.pushRDI().pushRDI().pushRDI().pushRDI() // skipped by the return
		pythonChild(a)
	})
	// add, push, cmp, jae, ret, test, jne, 5 pushes, mov, execve.
	if fast.steps != step.steps || step.steps != 14 {
		t.Errorf("child steps: fast %d, step %d; want 14 both", fast.steps, step.steps)
	}
	if fast.childConts != 3 {
		t.Errorf("fast mode: %d continues of the child, want 3 (the wrapper's block, the ret's, after the exec)", fast.childConts)
	}
}

// A pushed register changed between the push and the ret: the ret pops
// the word pushed, %rdi as the block started (the wrapper adds 4 to %rdi
// after its push). Linked; the story is --step's.
func TestRetLinkRegChangedAfterPush(t *testing.T) {
	wrapper := func(a *asm) { a.glibcVfork236(0x48, 0x83, 0xc7, 0x04) } // add $4,%rdi after the push
	step, fast := retLinkRun(t, wrapper, pythonChild)
	if fast.steps != step.steps || step.steps != 14 {
		t.Errorf("child steps: fast %d, step %d; want 14 both", fast.steps, step.steps)
	}
	if fast.childConts != 2 {
		t.Errorf("fast mode: %d continues of the child, want 2 (through both blocks, after the exec)", fast.childConts)
	}
}

// A store over the pushed word: the ret pops what was stored (%rax, 0 in
// the child: it returns to 0 and faults, the parent to its child's pid).
// Not linked; the story is --step's.
func TestRetLinkSlotOverwritten(t *testing.T) {
	wrapper := func(a *asm) { a.glibcVfork236(0x48, 0x89, 0x04, 0x24) } // mov %rax,(%rsp) after the push
	step, fast := retLinkRun(t, wrapper, pythonChild)
	if fast.steps != step.steps {
		t.Errorf("child steps: fast %d, step %d", fast.steps, step.steps)
	}
	ends := all[*event.ChildEnd](fast.rec)
	if len(ends) != 1 || ends[0].How != event.EndSignal || ends[0].Signal != "SIGSEGV" {
		t.Errorf("child ends %+v, want one by SIGSEGV (its ret to 0)", ends)
	}
}

// A ret into code that makes no block (a store into the live frame, as
// the seed's -O0 child stores vfork's value): the wrapper's block stops
// at its ret, which is stepped; the story is --step's.
func TestRetLinkTargetNotBlock(t *testing.T) {
	step, fast := retLinkRun(t, func(a *asm) { a.glibcVfork236() }, func(a *asm) {
		a.raw(0x89, 0x45, 0xf8) // mov %eax,-8(%rbp)
		pythonChild(a)
	})
	if fast.steps != step.steps || step.steps != 14 {
		t.Errorf("child steps: fast %d, step %d; want 14 both", fast.steps, step.steps)
	}
}

// A fault inside the block the ret goes on into (a store far below the
// stack, past its mapping): the stop shows that the ret ran; the fault is
// delivered with the next step, as --step delivers it, and the story is
// --step's. The steps are those of a fault in any block (without the
// link too): the 9 instructions before the store and the step that
// delivers the fault; --step counts the store's own step besides (11).
func TestRetLinkFaultInNextBlock(t *testing.T) {
	step, fast := retLinkRun(t, func(a *asm) { a.glibcVfork236() }, func(a *asm) {
		a.jnzParent("parent").pushRDI().pushRDI().pushRDI()
		a.raw(0x89, 0x84, 0x24, 0x00, 0x00, 0xf0, 0xff) // mov %eax,-0x100000(%rsp): unmapped
		a.movEAX(59).syscall()
	})
	if fast.steps != 10 || step.steps != 11 {
		t.Errorf("child steps: fast %d, step %d; want 10 and 11", fast.steps, step.steps)
	}
	ends := all[*event.ChildEnd](fast.rec)
	if len(ends) != 1 || ends[0].How != event.EndSignal || ends[0].Signal != "SIGSEGV" {
		t.Errorf("child ends %+v, want one by SIGSEGV", ends)
	}
	if fast.childConts != 1 {
		t.Errorf("fast mode: %d continues of the child, want 1 (through both blocks to the fault)", fast.childConts)
	}
}
