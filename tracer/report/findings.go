package report

import (
	"fmt"

	"github.com/vtrace/vtrace/tracer/event"
)

// Finding says in one sentence what one reason of a story's verdict is,
// with the facts that show it: a SARIF result's message, a line of a diff.
// Headline says a story's worst finding; Finding says any of them.
func Finding(st *Story, r event.Reason) string {
	switch r {
	case event.ReasonReturnedPast:
		if len(st.Returns) > 0 {
			ret := st.Returns[0]
			return fmt.Sprintf("the vfork child returned from %s into %s (%s) while the parent was suspended in vfork()",
				Fn(ret.FrameFn), Val(ret.To, ret.ToSym), At(ret.By))
		}
		return "the vfork child returned past the function that called vfork()"
	case event.ReasonConsumedSlot:
		// The return through a clobbered slot first: it is where the
		// parent's control flow left the program.
		if l := st.Landing; l != nil && l.How == event.LandRetClobbered {
			exp := "where it was called from"
			if l.Expected != nil {
				exp = Val(*l.Expected, l.ExpectedSym)
			}
			for _, c := range st.Consumes {
				if c.Kind == event.SlotRet {
					return fmt.Sprintf("the parent returned through a return slot the vfork child overwrote (%s) and landed at %s instead of %s",
						At(c.By), Val(l.PC, l.Sym), exp)
				}
			}
		}
		for _, c := range st.Consumes {
			switch c.Kind {
			case event.SlotRet:
				return fmt.Sprintf("the parent used a return slot the vfork child overwrote (%s, was %s) at %s", c.Value, c.Was, At(c.By))
			case event.SlotSavedReg:
				return fmt.Sprintf("the parent restored %%%s from a slot the vfork child overwrote (%s, was %s) at %s", c.Reg, c.Value, c.Was, At(c.By))
			}
		}
		return "the parent used a return-address or saved-register slot the vfork child overwrote"
	case event.ReasonClobberedSlot:
		if len(st.SlotWrites) > 0 {
			w := st.SlotWrites[0]
			s := fmt.Sprintf("the vfork child overwrote %s (%s → %s), %s", slotName(w), Val(w.Old, w.OldSym), Val(w.New, w.NewSym), writtenBy(w))
			if n := len(st.SlotWrites) - 1; n > 0 {
				s += fmt.Sprintf(", and %d more slot write(s)", n)
			}
			return s
		}
		return "the vfork child overwrote a return-address or saved-register slot of a live parent frame"
	case event.ReasonReadChildWrite:
		for _, c := range st.Consumes {
			if c.Kind == event.SlotLocal {
				return fmt.Sprintf("the parent read a stack word the vfork child changed (%s, was %s) at %s", c.Value, c.Was, At(c.By))
			}
		}
		return "the parent read a stack word the vfork child changed"
	case event.ReasonCalledExit:
		return "the vfork child called exit() instead of _exit(): atexit handlers and stdio flushing ran in memory shared with the parent"
	case event.ReasonWroteGlobal:
		if ws := programGlobals(st); len(ws) > 0 {
			w := ws[0]
			return fmt.Sprintf("the vfork child wrote the parent's %s (%s → %s), %s",
				GlobalName(w.Area, w.Mapping, w.Sym, w.Addr), w.Old, w.New, globalWriter(w))
		}
		return "the vfork child wrote a global variable it shares with the parent"
	case event.ReasonReadGlobal:
		if len(st.GlobalReads) > 0 {
			r := st.GlobalReads[0]
			return fmt.Sprintf("the parent read %s, which the vfork child changed (%s, was %s), at %s",
				GlobalName(r.Area, r.Mapping, r.Sym, r.Addr), r.Value, r.Was, At(r.By))
		}
		return "the parent read a global variable the vfork child wrote"
	}
	return string(r)
}

// slotName: "the return address of createproc()", "the saved %rbp of main()".
func slotName(w *event.SlotWrite) string {
	if w.Kind == event.SlotSavedReg {
		return fmt.Sprintf("the saved %%%s of %s", w.Reg, Fn(w.FrameFn))
	}
	return "the return address of " + Fn(w.FrameFn)
}

// writtenBy: "by main+41 `call …`", "during the call at …", or "found when
// the child ended".
func writtenBy(w *event.SlotWrite) string {
	switch {
	case w.By != nil:
		return "by " + At(*w.By)
	case w.During != nil:
		return "during the call at " + At(*w.During)
	}
	return "found when the child ended"
}
