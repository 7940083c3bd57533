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

// A throw: fast mode steps __cxa_throw (it leaves the frame by moving the
// stack pointer) but runs the unwinder's own searches it calls at full
// speed (here _Unwind_Find_FDE, a 1,000-round loop): the same story as
// --step, in a few dozen steps.
func TestStoryThrowFastUnwinder(t *testing.T) {
	a := startMain()
	a.fn("main").pushRBP().movRSPtoRBP()
	a.raw(0x48, 0x89, 0xe3) // mov %rsp,%rbx
	a.call("spawn")
	a.label("after_spawn").exitWith(3)
	a.label("landing").call("finish")
	a.label("after_finish").exitWith(7)
	a.fn("spawn").pushRBP().movRSPtoRBP().call("vfork").jnzParent("parent")
	a.call("__cxa_throw")
	a.label("parent").leave().ret()
	a.fn("__cxa_throw").call("_Unwind_Find_FDE")
	a.raw(0x48, 0x89, 0xdc).rel32(0xe9, "landing")                   // mov %rbx,%rsp; jmp landing
	a.fn("_Unwind_Find_FDE").raw(0x48, 0xc7, 0xc1, 0xe8, 0x03, 0, 0) // mov $1000,%rcx
	a.label("search").raw(0x48, 0x83, 0xe9, 0x01).raw(0x0f, 0x85).rel32n("search")
	a.ret()
	a.fn("finish").exitWith(0)
	a.glibcVfork()
	steps := map[Mode]int64{}
	for _, mode := range []Mode{Fast, Step} {
		rec, _, _ := runFake(t, a.image(t), codeBase, mode)
		var left []string
		for _, l := range storyLines(rec) {
			if strings.Contains(l, "left frame") || strings.HasPrefix(l, "#1 violation") {
				left = append(left, l)
			}
		}
		want := []string{
			"#1 child left frame 1 spawn+8 to __cxa_throw+8 by sp __cxa_throw+5 during spawn+17",
			"#1 violation [child_returned_past_frame parent_consumed_clobbered_slot child_clobbered_slot]",
		}
		if !slices.Equal(left, want) {
			t.Errorf("%s: %q, want %q", mode, left, want)
		}
		steps[mode] = all[*event.ChildEnd](rec)[0].Steps
	}
	if steps[Fast] > 50 || steps[Step] < 2000 {
		t.Errorf("child steps: fast %d (want the search run at full speed), step %d", steps[Fast], steps[Step])
	}
}
