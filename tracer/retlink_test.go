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
