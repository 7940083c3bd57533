package tracer

import (
	"slices"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// Issue 11 item 5: a child that leaves the vfork-calling function without a
// ret. main keeps its stack pointer in %rbx (as setjmp keeps it in a
// jmp_buf) and calls spawn, which vforks; the child calls longjmp, which
// loads main's stack pointer (`mov %rbx,%rsp`, between two silent nops)
// and jumps back into main. spawn's frame is left: main's `call finish`
// then pushes over spawn's return slot, and the parent, returning from
// spawn, lands after that call and exits 7 there.
func longjmpProgram(t *testing.T) (*fakeImage, uint64) {
	a := startMain()
	a.fn("main").pushRBP().movRSPtoRBP()
	a.raw(0x48, 0x89, 0xe3) // mov %rsp,%rbx
	a.call("spawn")
	a.label("after_spawn").exitWith(3)
	a.label("landing").call("finish")
	a.label("after_finish").exitWith(7)
	a.fn("spawn").pushRBP().movRSPtoRBP().call("vfork").jnzParent("parent")
	a.call("longjmp")
	a.label("parent").leave().ret()
	a.fn("longjmp").raw(0x90)          // nop
	a.raw(0x48, 0x89, 0xdc)            // mov %rbx,%rsp: leaves spawn's frame
	a.raw(0x90).rel32(0xe9, "landing") // nop; jmp landing
	a.fn("finish").exitWith(0)
	a.glibcVfork()
	return a.image(t), codeBase
}

func TestStoryLongjmp(t *testing.T) {
	for _, mode := range []Mode{Fast, Step} {
		t.Run(mode.String(), func(t *testing.T) {
			img, entry := longjmpProgram(t)
			rec, res, _ := runFake(t, img, entry, mode)
			lines := storyLines(rec)
			want := []string{
				"vfork #1 caller spawn+8 frames 3",
				// By the mov, not by the nop after it: the silent-instruction
				// predictor does not step past a move of the stack pointer.
				"#1 child left frame 1 spawn+8 to longjmp+4 by sp longjmp+1 during spawn+17",
				"#1 slot ret of spawn+8: main+12 -> main+29 by main+24 (step)",
				"#1 child exit",
				"#1 parent reads ret by spawn+23",
				"#1 parent ret_clobbered at main+29",
				"#1 violation [child_returned_past_frame parent_consumed_clobbered_slot child_clobbered_slot]",
				"exit main=true exited code=7",
				"verdict violation vforks=1",
			}
			if !slices.Equal(lines, want) {
				t.Errorf("story:\n  %s\nwant:\n  %s", strings.Join(lines, "\n  "), strings.Join(want, "\n  "))
			}
			if res.Verdict != event.Violation {
				t.Errorf("result %+v", res)
			}
		})
	}
}

// Issue 11 item 11: the vfork syscall made by an ordinary function
// (syscall(), fast_io's helper): frame 0's return address is on the shared
// stack. The child's ret from it is a return past a live parent frame, and
// main's `call finish` in the child rewrites that slot.
func TestStoryFrame0Return(t *testing.T) {
	a := startMain()
	a.fn("main").pushRBP().movRSPtoRBP().call("sys")
	a.label("after_sys").jnzParent("parent").call("finish")
	a.label("after_finish").exitWith(7)
	a.label("parent").exitWith(0)
	a.fn("sys").movEAX(58).syscall().ret()
	a.fn("finish").exitWith(0)
	for _, mode := range []Mode{Fast, Step} {
		t.Run(mode.String(), func(t *testing.T) {
			rec, _, _ := runFake(t, a.image(t), codeBase, mode)
			lines := storyLines(rec)
			want := []string{
				"vfork #1 caller main+8 frames 2",
				"#1 child left frame 0 sys+7 to main+9 by ret sys+7",
				"#1 slot ret of sys+7: main+9 -> main+22 by main+17 (step)",
				"#1 child exit",
				"#1 parent reads ret by sys+7",
				"#1 parent ret_clobbered at main+22",
				"#1 violation [child_returned_past_frame parent_consumed_clobbered_slot child_clobbered_slot]",
				"exit main=true exited code=7",
				"verdict violation vforks=1",
			}
			if !slices.Equal(lines, want) {
				t.Errorf("story:\n  %s\nwant:\n  %s", strings.Join(lines, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}
