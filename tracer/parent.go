package tracer

import (
	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
)

// The parent phase: once the child has released it (exec or exit), the
// parent is single-stepped from its wake-up (the instruction after the
// vfork syscall) until it either executes a ret that pops a return-address
// slot the child changed — it lands wherever the child left — or returns
// above every word the child changed, so nothing it could still use is
// poisoned. Reads of changed words on the way (a saved register restored,
// a local read) are reported as parent_consume; words the parent
// overwrites itself stop counting as poisoned. In fast mode the calls it
// makes run at full speed (runCall).

// poisoned is a word of the parent's stack the child changed: the value it
// left, and which bytes of the word (bit i: byte i) still hold the child's
// data rather than something the parent stored since.
type poisoned struct {
	val   uint64
	bytes uint8
}

func (s *session) followParent(st *story) error {
	p, mm := st.parent, st.mm
	w := uint64(st.word)
	changed := st.changedWords()
	s.emit(&event.ParentResume{Header: s.hdr("parent_resume", p.pid), Vfork: st.id,
		PC: event.Addr(st.regs0.PC()), Sym: s.sym(mm, st.regs0.PC())})

	var regs, now arch.Regs
	var steps int64
	// nowPC is where the parent is stopped now (at a signal, its exit or
	// its exec), falling back to the pc of the last step.
	nowPC := func(pc uint64) uint64 {
		var r arch.Regs
		if s.p.Regs(p.pid, &r) == nil {
			return r.PC()
		}
		return pc
	}
	land := func(how event.LandingKind, pc uint64) {
		l := &event.ParentLanding{Header: s.hdr("parent_landing", p.pid), Vfork: st.id,
			PC: event.Addr(pc), Sym: s.sym(mm, pc), How: how, Steps: steps}
		if how == event.LandRetClobbered {
			slot := regs.SP()
			sa, exp := event.Addr(slot), event.Addr(st.wordAt(st.orig, slot))
			l.Slot, l.Expected, l.ExpectedSym = &sa, &exp, s.codeSym(mm, uint64(exp))
		}
		st.par.landing = l
		s.emit(l)
	}
	sig := 0
	// own is the stack pointer of the frames the parent woke in: an
	// instruction runs in them when the stack pointer is at or above it.
	// Counting calls and rets would not do: i386's lazy-binding resolver
	// enters the resolved function with a `ret $n` that matches no call.
	var own uint64
	var acc []disasm.Access
	for {
		if err := s.countStep(st); err != nil {
			land(event.LandBudget, regs.PC())
			return err
		}
		if err := s.p.Regs(p.pid, &regs); err != nil {
			return err
		}
		pc := regs.PC()
		if own == 0 {
			own = regs.SP()
		}
		atOwn := regs.SP() >= own
		in, derr := s.insnAt(mm, p.pid, pc)
		class := disasm.Other
		acc = acc[:0]
		if derr == nil {
			class = in.Class
			acc, _ = in.Effects(&regs, acc)
			if atOwn {
				// Reads by the parent's own frames; what callees read is
				// seen the same way in both modes only here.
				s.checkConsume(st, in, acc, changed)
			}
			s.parentGlobals(st, in, acc, atOwn) // memory.go
		}
		var out outcome
		var err error
		if class == disasm.Call && s.cfg.Mode == Fast {
			out, err = s.runCall(st, p, &regs, in, sig, nil)
		} else {
			out, err = s.advance(p, true, sig, pc)
		}
		sig = 0
		steps++
		if err != nil {
			return err
		}
		switch out.kind {
		case outTrap:
		case outNested:
			continue
		case outSignal:
			// The parent faulted (or got a signal) before landing: that is
			// where it went. The signal is delivered when it is resumed.
			land(event.LandSignal, nowPC(pc))
			st.par.resumeSig = int(out.sig)
			return nil
		case outExec:
			land(event.LandExec, nowPC(pc))
			s.execStop(p)
			return nil
		default:
			land(event.LandExit, nowPC(pc))
			if out.kind == outGone {
				s.gone(p, out.status)
			}
			return nil
		}
		if err := s.p.Regs(p.pid, &now); err != nil {
			return err
		}
		if now.PC() == pc && class != disasm.Other {
			continue // the trap at syscall exit: nothing executed yet
		}
		for _, a := range acc {
			if !a.Write || a.Seg {
				continue
			}
			words(a.Addr, a.Size, st.word, func(x uint64) {
				c, ok := changed[x]
				if !ok {
					return
				}
				// Only the bytes the parent stored stop being the child's:
				// a 4-byte store next to a child's 4-byte value leaves
				// that value poisoned.
				if c.bytes &^= overlap(x, w, a); c.bytes == 0 {
					delete(changed, x)
				} else {
					changed[x] = c
				}
			})
		}
		// Only rets out of the frames the parent woke up in count: in
		// --step mode the parent also steps through the functions it
		// calls, whose rets change nothing about its own frames.
		if !atOwn || class == disasm.Call && !out.ranCall {
			continue // in a callee, or entering one
		}
		own = now.SP()
		if class != disasm.Ret {
			continue
		}
		if _, clobbered := changed[regs.SP()]; clobbered {
			land(event.LandRetClobbered, now.PC())
			return nil
		}
		if allBelow(changed, now.SP()) {
			land(event.LandReturned, now.PC())
			return nil
		}
	}
}

// changedWords lists every word of the live region the child left changed,
// with the bytes that differ.
func (st *story) changedWords() map[uint64]poisoned {
	w := uint64(st.word)
	changed := map[uint64]poisoned{}
	for a := st.lo; a+w <= st.hi; a += w {
		v, o := st.wordAt(st.shadow, a), st.wordAt(st.orig, a)
		if v == o {
			continue
		}
		var m uint8
		for i := uint64(0); i < w; i++ {
			if byte(v>>(8*i)) != byte(o>>(8*i)) {
				m |= 1 << i
			}
		}
		changed[a] = poisoned{val: v, bytes: m}
	}
	return changed
}

// allBelow reports whether every changed word is below sp: dead stack the
// parent no longer uses.
func allBelow(changed map[uint64]poisoned, sp uint64) bool {
	for a := range changed {
		if a >= sp {
			return false
		}
	}
	return true
}

// overlap is the mask of the bytes of word [x, x+w) that access a touches.
func overlap(x, w uint64, a disasm.Access) uint8 {
	var m uint8
	for i := uint64(0); i < w; i++ {
		if b := x + i; b >= a.Addr && b < a.Addr+uint64(a.Size) {
			m |= 1 << i
		}
	}
	return m
}

// checkConsume reports the parent reading a word the child changed.
func (s *session) checkConsume(st *story, in *disasm.Insn, acc []disasm.Access, changed map[uint64]poisoned) {
	w := uint64(st.word)
	for _, a := range acc {
		if a.Write || a.Seg {
			continue
		}
		words(a.Addr, a.Size, st.word, func(x uint64) {
			c, ok := changed[x]
			if !ok || c.bytes&overlap(x, w, a) == 0 || st.par.consumed[x] != "" {
				return
			}
			kind, reg := event.SlotLocal, ""
			if info, ok := st.slots[x]; ok {
				kind, reg = info.kind, info.reg
			} else {
				kind, reg = st.slotByUse(in)
			}
			if kind == event.SlotRet && in.Class != disasm.Ret {
				kind = event.SlotLocal // a return slot read as data is not a return
			}
			st.par.consumed[x] = kind
			ev := &event.ParentConsume{Header: s.hdr("parent_consume", st.parent.pid), Vfork: st.id,
				Addr: event.Addr(x), Kind: kind, Reg: reg, Value: event.Addr(c.val),
				Was: event.Addr(st.wordAt(st.orig, x)), By: *s.insnEvent(st.mm, st.parent.pid, in)}
			st.par.consumes = append(st.par.consumes, ev)
			s.emit(ev)
		})
	}
}

// slotByUse names a changed word the unwinder did not know as a slot (a
// frame without CFI or frame pointer) by how the parent uses it: a ret pops
// a return address; a pop or leave into a callee-saved register restores a
// saved register.
func (st *story) slotByUse(in *disasm.Insn) (kind event.SlotKind, reg string) {
	if in.Class == disasm.Ret {
		return event.SlotRet, ""
	}
	if r, ok := in.PoppedReg(); ok && st.arch.IsCalleeSaved(r) {
		return event.SlotSavedReg, st.arch.RegName(r)
	}
	return event.SlotLocal, ""
}
