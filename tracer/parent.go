package tracer

import (
	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
)

// followParent single-steps the parent from its wake-up (the instruction
// after the vfork syscall) until it either executes a ret that pops a
// return-address slot the child changed — it lands wherever the child left
// — or returns above every word the child changed, so nothing it could
// still use is poisoned. Reads of changed words on the way (a saved
// register restored, a local read) are reported as parent_consume; words
// the parent overwrites itself stop counting as poisoned.
func (s *session) followParent(st *story) error {
	p, mm := st.parent, st.mm
	w := uint64(st.word)
	changed := map[uint64]poisoned{} // word address → what the child left there
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
	s.emit(&event.ParentResume{Header: s.hdr("parent_resume", p.pid), Vfork: st.id,
		PC: event.Addr(st.regs0.PC()), Sym: s.sym(mm, st.regs0.PC())})

	var regs, now arch.Regs
	var steps int64
	// nowPC is where the parent is stopped now (at a signal, its exit or
	// its exec), falling back to the pc of the last step.
	nowPC := func(pc uint64) uint64 {
		var r arch.Regs
		if s.t.Regs(p.pid, &r) == nil {
			return r.PC()
		}
		return pc
	}
	land := func(how event.LandingKind, pc uint64) {
		st.landing = &event.ParentLanding{Header: s.hdr("parent_landing", p.pid), Vfork: st.id,
			PC: event.Addr(pc), Sym: s.sym(mm, pc), How: how, Steps: steps}
		if how == "ret_clobbered" {
			slot := regs.SP()
			sa, exp := event.Addr(slot), event.Addr(st.wordAt(st.orig, slot))
			st.landing.Slot, st.landing.Expected, st.landing.ExpectedSym = &sa, &exp, s.codeSym(mm, uint64(exp))
		}
		s.emit(st.landing)
	}
	sig := 0
	// own is the stack pointer of the frames the parent woke in: an
	// instruction runs in them when the stack pointer is at or above it.
	// Counting calls and rets would not do: i386's lazy-binding resolver
	// enters the resolved function with a `ret $n` that matches no call.
	var own uint64
	for {
		if err := s.countStep(); err != nil {
			land("budget", regs.PC())
			return err
		}
		if err := s.t.Regs(p.pid, &regs); err != nil {
			return err
		}
		pc := regs.PC()
		if own == 0 {
			own = regs.SP()
		}
		atOwn := regs.SP() >= own
		in, derr := s.insnAt(mm, p.pid, pc)
		class := disasm.Other
		var acc []disasm.Access
		if derr == nil {
			class = in.Class
			acc, _ = in.Effects(&regs, st.acc[:0])
			st.acc = acc
			if atOwn {
				// Reads by the parent's own frames; what callees read is
				// seen the same way in both modes only here.
				s.checkConsume(st, in, acc, changed)
			}
		}
		var out outcome
		var err error
		if class == disasm.Call && s.cfg.Mode == Fast {
			out, err = s.runToReturn(st, p, &regs, in, sig)
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
		case outSignal:
			// The parent faulted (or got a signal) before landing: that is
			// where it went. The signal is delivered when it is resumed.
			land("signal", nowPC(pc))
			st.resumeSig = int(out.sig)
			return nil
		case outExec:
			land("exec", nowPC(pc))
			return nil
		default:
			land("exit", nowPC(pc))
			if out.kind == outGone {
				s.gone(p, out.status)
			}
			return nil
		}
		if out.nested {
			continue
		}
		if err := s.t.Regs(p.pid, &now); err != nil {
			return err
		}
		if now.PC() == pc && class != disasm.Other {
			continue // the trap at syscall exit: nothing executed yet
		}
		for _, a := range acc {
			if a.Write && !a.Seg {
				for x := a.Addr &^ (w - 1); x < a.Addr+uint64(a.Size); x += w {
					if c, ok := changed[x]; ok {
						// Only the bytes the parent stored stop being the
						// child's: a 4-byte store next to a child's 4-byte
						// value leaves that value poisoned.
						if c.bytes &^= overlap(x, w, a); c.bytes == 0 {
							delete(changed, x)
						} else {
							changed[x] = c
						}
					}
				}
			}
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
		slot := regs.SP()
		if _, clobbered := changed[slot]; clobbered {
			land("ret_clobbered", now.PC())
			return nil
		}
		if allBelow(changed, now.SP()) {
			land("returned", now.PC())
			return nil
		}
	}
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

// poisoned is a word of the parent's stack the child changed: the value it
// left, and which bytes of the word (bit i: byte i) still hold the child's
// data rather than something the parent stored since.
type poisoned struct {
	val   uint64
	bytes uint8
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
		for x := a.Addr &^ (w - 1); x < a.Addr+uint64(a.Size); x += w {
			c, ok := changed[x]
			if !ok || c.bytes&overlap(x, w, a) == 0 || st.consumed[x] != "" {
				continue
			}
			v := c.val
			kind, reg := event.SlotLocal, ""
			if info, ok := st.slots[x]; ok {
				kind, reg = info.kind, info.reg
			} else {
				kind, reg = st.slotByUse(in)
			}
			if kind == "ret" && in.Class != disasm.Ret {
				kind = "local" // a return slot read as data is not a return
			}
			st.consumed[x] = kind
			ev := &event.ParentConsume{Header: s.hdr("parent_consume", st.parent.pid), Vfork: st.id,
				Addr: event.Addr(x), Kind: kind, Reg: reg, Value: event.Addr(v),
				Was: event.Addr(st.wordAt(st.orig, x)), By: *s.insnEvent(st.mm, st.parent.pid, in)}
			st.consumes = append(st.consumes, ev)
			s.emit(ev)
		}
	}
}

// slotByUse names a changed word the unwinder did not know as a slot (a
// frame without CFI or frame pointer) by how the parent uses it: a ret pops
// a return address; a pop or leave into a callee-saved register restores a
// saved register.
func (st *story) slotByUse(in *disasm.Insn) (kind event.SlotKind, reg string) {
	if in.Class == disasm.Ret {
		return "ret", ""
	}
	if r, ok := in.PoppedReg(); ok && st.arch.IsCalleeSaved(r) {
		return "saved_reg", st.arch.RegName(r)
	}
	return "local", ""
}

// runToReturn runs a call made by a followed task at full speed: it steps
// the call, plants an int3 at the return address, and continues until the
// callee comes back to it (fast mode's treatment of the parent's calls).
func (s *session) runToReturn(st *story, t *task, regs *arch.Regs, in *disasm.Insn, sig int) (outcome, error) {
	pc := regs.PC()
	out, err := s.advance(t, true, sig, pc)
	if err != nil || out.kind != outTrap || out.nested {
		return out, err
	}
	out, err = s.contToReturn(st, t, pc+uint64(in.Len), regs.SP())
	out.ranCall = true
	return out, err
}

// contToReturn plants an int3 at retAddr and continues t until it gets back
// there with its stack pointer at sp0 (the callee returned), stepping over
// the int3 when a deeper recursion passes it and over other stories' int3s.
func (s *session) contToReturn(st *story, t *task, retAddr, sp0 uint64) (outcome, error) {
	mm := t.proc.mm
	if err := s.plant(mm, t.pid, retAddr, st.id); err != nil {
		return outcome{}, err
	}
	defer func() { _ = s.release(mm, t.pid, retAddr, st.id) }()
	var now arch.Regs
	sig := 0
	watched := t == st.child && len(st.hwSlots) > 0
	if watched {
		defer s.hwEnable(st, false)
	}
	for {
		if watched {
			s.hwEnable(st, true) // DR6 cleared: it then tells this run's traps apart
		}
		out, err := s.advance(t, false, sig, 0)
		if watched {
			s.hwEnable(st, false) // advance may step (over an int3) next time
		}
		sig = 0
		if err != nil {
			return out, err
		}
		switch out.kind {
		case outTrap:
		case outSignal:
			if t != st.child {
				// The followed parent got a signal inside the callee:
				// followParent reports it as where the parent went, as
				// --step does when it steps into the same fault.
				return out, nil
			}
			sig = int(out.sig)
			continue
		default:
			return out, nil
		}
		if err := s.t.Regs(t.pid, &now); err != nil {
			return outcome{}, err
		}
		hit := !out.nested && now.PC()-1 == retAddr
		if hit || (out.nested && now.PC() == retAddr) {
			if hit {
				now.SetPC(retAddr)
				if err := s.t.SetRegs(t.pid, &now); err != nil {
					return outcome{}, err
				}
				st.bpHits++
			}
			if now.SP() >= sp0 {
				return outcome{kind: outTrap}, nil
			}
			if out, err := s.advance(t, true, 0, retAddr); err != nil || out.kind != outTrap {
				return out, err
			}
			continue
		}
		if out.nested {
			continue
		}
		if _, planted := mm.bps[now.PC()-1]; planted {
			now.SetPC(now.PC() - 1)
			if err := s.t.SetRegs(t.pid, &now); err != nil {
				return outcome{}, err
			}
			if out, err := s.advance(t, true, 0, now.PC()); err != nil || out.kind != outTrap {
				return out, err
			}
			continue
		}
		if watched && s.hwHit(st, &now) {
			continue
		}
		sig = int(unix.SIGTRAP) // the program's own SIGTRAP: deliver it
	}
}
