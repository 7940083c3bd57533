package tracer

import (
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// Issue 13, bounded logs: a child that writes one word of its parent's
// stack over and over (here 1,000 times: the loop counter stored into a
// local of main) makes one stack_write, with the count, the value before
// the first write and after the last, and the first and last writer.
func TestStoryRepeatedWritesOneEvent(t *testing.T) {
	a := startMain()
	a.fn("main").pushRBP().movRSPtoRBP().raw(0x48, 0x83, 0xec, 0x10) // sub $16,%rsp
	a.call("vfork").jnzParent("parent")
	a.raw(0x48, 0xc7, 0xc1, 0xe8, 0x03, 0, 0)                    // mov $1000,%rcx
	a.label("spin").raw(0x48, 0x89, 0x4d, 0xf8)                  // mov %rcx,-8(%rbp)
	a.raw(0x48, 0x83, 0xe9, 0x01).raw(0x0f, 0x85).rel32n("spin") // sub $1,%rcx; jne spin
	a.exitWith(0)
	a.label("parent").exitWith(0)
	a.glibcVfork()
	for _, mode := range []Mode{Fast, Step} {
		t.Run(mode.String(), func(t *testing.T) {
			rec, _, _ := runFake(t, a.image(t), codeBase, mode)
			sw := all[*event.StackWrite](rec)
			if len(sw) != 1 {
				t.Fatalf("%d stack_write events, want 1", len(sw))
			}
			w := sw[0]
			if w.Count != 1000 || w.Old != 0 || w.New != 1 || w.By == nil || w.LastBy == nil || w.By.PC != w.LastBy.PC {
				t.Errorf("stack_write count %d old %v new %v by %v last_by %v; want 1000 changes, 0 -> 1, by and last_by the store",
					w.Count, w.Old, w.New, w.By, w.LastBy)
			}
			if w.By != nil && w.By.Sym.String() != "main+28" {
				t.Errorf("by %s, want main+28 (the store)", w.By.Sym)
			}
			ends := all[*event.ChildEnd](rec)
			if len(ends) != 1 || rec.evs[indexOf(rec, ends[0])-1] != event.Event(w) {
				t.Errorf("the stack_write is not reported right before the child_end")
			}
		})
	}
}

// A story logs at most maxWriteEvents write events; a note says when the
// cap is reached. Here the child writes 1,500 different words of main's
// frame.
func TestStoryWriteEventsCapped(t *testing.T) {
	a := startMain()
	a.fn("main").pushRBP().movRSPtoRBP().raw(0x48, 0x81, 0xec, 0x00, 0x30, 0, 0) // sub $0x3000,%rsp
	a.call("vfork").jnzParent("parent")
	a.raw(0x48, 0x8d, 0x45, 0xf8)                                // lea -8(%rbp),%rax
	a.raw(0x48, 0xc7, 0xc1, 0xdc, 0x05, 0, 0)                    // mov $1500,%rcx
	a.label("fill").raw(0x48, 0x89, 0x08)                        // mov %rcx,(%rax)
	a.raw(0x48, 0x83, 0xe8, 0x08)                                // sub $8,%rax
	a.raw(0x48, 0x83, 0xe9, 0x01).raw(0x0f, 0x85).rel32n("fill") // sub $1,%rcx; jne fill
	a.exitWith(0)
	a.label("parent").exitWith(0)
	a.glibcVfork()
	rec, _, _ := runFake(t, a.image(t), codeBase, Step)
	if n := len(all[*event.StackWrite](rec)) + len(all[*event.SlotWrite](rec)); n != maxWriteEvents {
		t.Errorf("%d write events, want the cap, %d", n, maxWriteEvents)
	}
	var notes int
	for _, n := range all[*event.Note](rec) {
		if n.Code == event.NoteWritesCapped {
			notes++
		}
	}
	if notes != 1 {
		t.Errorf("%d writes_capped notes, want 1", notes)
	}
	if d := all[*event.SlotDiff](rec); len(d) != 1 || len(d[0].Changed) < 1500 {
		t.Errorf("slot_diff does not list every changed word")
	}
}

func indexOf(r *recorder, ev event.Event) int {
	for i, e := range r.evs {
		if e == ev {
			return i
		}
	}
	return -1
}
