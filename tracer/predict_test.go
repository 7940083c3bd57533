package tracer

import (
	"slices"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// A vfork child that runs a loop of silent instructions closed by a
// backward jne (spin's shape) and exits. With --step, the pc after each
// jump whose ways are both steppable is read alone (procs.PC), not the
// registers: after the forward jnz that tells the child from the parent,
// then after each jne, the last when the loop falls through — four times.
// (The fake's code is mapped in whole pages, as a program's is. With the
// image cut at its last byte, the vfork wrapper's ret there could not be
// decoded — read 16, 12, 8, then 4 bytes at a time, never 1 — and the
// registers were read from there on: three.) The story and the step count are the ones
// fast mode tells, and the same with the registers read at every jump
// (jumps not predicted: --trace-insns).
func TestStepLoopReadsPCOnly(t *testing.T) {
	a := startMain()
	a.fn("main").pushRBP().movRSPtoRBP().call("vfork")
	a.label("after_vfork").jnzParent("parent")
	a.raw(0xb9, 3, 0, 0, 0) // mov $3,%ecx
	a.label("loop")
	a.raw(0x83, 0xc0, 0x01) // add $1,%eax
	a.raw(0x83, 0xe9, 0x01) // sub $1,%ecx
	a.raw(0x75, 0xf8)       // jne loop
	a.exitWith(0)
	a.label("parent").exitWith(0)
	a.glibcVfork()

	type run struct {
		lines []string
		steps int64
		f     *fakeProcs
	}
	do := func(cfg Config) run {
		rec, res, f := runFakeWith(t, a.image(t), codeBase, cfg)
		if res.Verdict != event.Clean {
			t.Errorf("%+v: result %+v", cfg, res)
		}
		r := run{lines: storyLines(rec), f: f}
		for _, ev := range rec.evs {
			if e, ok := ev.(*event.ChildEnd); ok {
				r.steps = e.Steps
			}
		}
		return r
	}
	fast := do(Config{Mode: Fast})
	step := do(Config{Mode: Step})
	insns := do(Config{Mode: Step, TraceInsns: true})
	if step.f.pcReads != 4 {
		t.Errorf("--step read the pc alone %d times, want 4 (after the jnz and each jne)", step.f.pcReads)
	}
	if insns.f.pcReads != 0 {
		t.Errorf("--trace-insns read the pc alone %d times, want 0", insns.f.pcReads)
	}
	if got, want := step.f.regsReads, insns.f.regsReads-4; got > want {
		t.Errorf("--step read the registers %d times, want at most %d (--trace-insns: %d)", got, want, insns.f.regsReads)
	}
	for _, r := range []run{step, insns} {
		if !slices.Equal(r.lines, fast.lines) || r.steps != fast.steps {
			t.Errorf("story (%d steps):\n  %s\nfast mode's (%d steps):\n  %s", r.steps, strings.Join(r.lines, "\n  "), fast.steps, strings.Join(fast.lines, "\n  "))
		}
	}
}
