package tracer

import (
	"fmt"
	"strings"

	"github.com/vtrace/vtrace/tracer/event"
)

// release ends the child phase: every int3 the story planted is removed
// (the memory is shared: the parent would run into them), and, when the
// child ended normally, the slots and the live stack are reported before
// and after the child ran (slot_diff).
func (s *session) release(st *story, childEnded bool) {
	if err := s.unclaimAll(st.mm, st.parent.pid, st.id); err != nil {
		s.note(st.id, event.NoteBreakpointRestore, fmt.Sprintf("removing breakpoints: %v", err))
	}
	if childEnded {
		s.emitSlotDiff(st)
		s.emitGlobalDiff(st)
	}
}

// emitSlotDiff reports every slot before and after the child ran, and every
// changed word of the live region.
func (s *session) emitSlotDiff(st *story) {
	ev := &event.SlotDiff{Header: s.hdr("slot_diff", st.parent.pid), Vfork: st.id}
	if n := len(st.slots); n > 0 {
		ev.Slots = make([]event.SlotState, 0, n)
	}
	for _, f := range st.frames {
		if f.RetSlot != 0 {
			ev.Slots = append(ev.Slots, s.slotState(st, f.RetSlot))
		}
		for _, sv := range f.Saved {
			ev.Slots = append(ev.Slots, s.slotState(st, sv.Addr))
		}
	}
	st.eachChanged(func(a, before, after uint64) {
		ev.Changed = append(ev.Changed, event.WordChange{Addr: event.Addr(a), Frame: st.frameOf(a),
			Before: event.Addr(before), After: event.Addr(after)})
	})
	s.emit(ev)
}

func (s *session) slotState(st *story, addr uint64) event.SlotState {
	info := st.slots[addr]
	ss := event.SlotState{Slot: event.Addr(addr), Kind: info.kind, Reg: info.reg, Frame: info.frame}
	if !st.inRegion(addr) {
		return ss
	}
	before, after := st.wordAt(st.orig, addr), st.wordAt(st.shadow, addr)
	ss.Before, ss.After, ss.Changed = event.Addr(before), event.Addr(after), before != after
	if info.kind == event.SlotRet {
		ss.BeforeSym, ss.AfterSym = s.codeSym(st.mm, before), s.codeSym(st.mm, after)
	}
	return ss
}

// codeSym symbolises a value only if it points into mapped code.
func (s *session) codeSym(mm *addrSpace, v uint64) *event.Sym {
	m, ok := mm.syms().MappingAt(v)
	if !ok || !strings.Contains(m.Perms, "x") {
		return nil
	}
	return s.sym(mm, v)
}
