package tracer

import (
	"errors"

	"golang.org/x/arch/x86/x86asm"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
)

// The parent phase: once the child has released it (exec or exit), the
// parent is followed from its wake-up (the instruction after the vfork
// syscall) for as long as a word the child changed can still be read with
// the child's value in it. A word stops counting as soon as it no longer
// holds what the child wrote:
//
//   - the parent's own store rewrites it (every stepped instruction's
//     writes are known);
//   - the kernel rewrites it in one of the parent's syscalls (wait4's
//     status, read's buffer): after each syscall the words are read back;
//   - a function the parent called rewrites it (memset): after each call
//     run at full speed the words are read back;
//   - the parent returns above it: it is dead stack.
//
// A read of a word while it still holds the child's bytes is a
// parent_consume — by the parent's own instructions, or inside a function
// it called, through a pointer (strlen, printf): in --step mode every
// callee instruction is stepped; in fast mode a call runs at full speed
// with read/write watchpoints on the live words where they fire and there
// are at most four of them, and is stepped otherwise. A ret that pops a
// return slot still holding the child's value lands the parent wherever
// the child left (parent_landing "ret_clobbered").
//
// Following ends when no live word is left ("returned" when the last went
// by the parent returning above it, "overwritten" otherwise), right away
// when the child changed nothing ("untouched"), and when the parent
// vforks again ("vfork": that story ends here and the next begins, so that
// stories never nest because of following), exits, execs or gets a
// signal. The end is decided only while the parent runs in the frames it
// woke in, so fast mode and --step mode stop at the same place.

// poisoned is a word of the parent's stack the child changed: the value it
// left, and which bytes of the word (bit i: byte i) still hold the child's
// data rather than something written since.
type poisoned struct {
	val   uint64
	bytes uint8
}

// parentRun is the state of following one parent.
type parentRun struct {
	st      *story
	changed map[uint64]poisoned // the live words: still (partly) the child's
	order   []uint64            // every word the child changed, in address order
	fates   map[uint64]event.WordFate
	// last is the fate of the word that went last (returned vs
	// overwritten).
	last event.FateKind
	// own is the stack pointer of the frames the parent woke in: an
	// instruction runs in them when the stack pointer is at or above it.
	own uint64
	// during is the call from the parent's own frames it is inside (reads
	// found in callees name it).
	during *event.Insn
	// hw are the words watched (read/write) during a call run at full
	// speed, DR0-DR3 in order; dr7 enables them.
	hw  []uint64
	dr7 uint64
	// ehw are errno's 4-byte halves watched after hw's (errno.go): for
	// writes only, or, while followErrno follows the functions errnoFns,
	// reads too (a read in their code is the program's); errnoDone:
	// followErrno has its answer (errno read, or stored by the parent).
	ehw       []uint64
	errnoFns  []*event.Sym
	errnoDone bool
}

func (s *session) followParent(st *story) error {
	p, mm := st.parent, st.mm
	r := &parentRun{st: st, fates: map[uint64]event.WordFate{}}
	r.changed, r.order = st.changedWords()
	st.par.run = r
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
			PC: event.Addr(pc), Sym: s.sym(mm, pc), How: how, Steps: steps, Words: r.wordFates()}
		if how == event.LandRetClobbered {
			slot := regs.SP()
			sa, exp := event.Addr(slot), event.Addr(st.wordAt(st.orig, slot))
			l.Slot, l.Expected, l.ExpectedSym = &sa, &exp, s.codeSym(mm, uint64(exp))
		}
		st.par.landing = l
		s.emit(l)
	}
	if len(r.changed) == 0 {
		land(event.LandUntouched, st.regs0.PC())
		return nil
	}
	st.par.following = true
	defer func() { st.par.following = false }()
	sig := 0
	pc := st.regs0.PC()
	var acc []disasm.Access
	for {
		if err := s.countStep(st); err != nil {
			land(event.LandBudget, pc)
			return err
		}
		if err := s.p.Regs(p.pid, &regs); err != nil {
			return err
		}
		pc = regs.PC()
		if r.own == 0 {
			r.own = regs.SP()
		}
		atOwn := regs.SP() >= r.own
		if atOwn {
			r.during = nil
			if len(r.changed) == 0 && !r.hold() {
				// A callee rewrote the last live word: back in the
				// parent's own frames, nothing is left to follow.
				land(event.LandOverwritten, pc)
				return nil
			}
		}
		in, derr := s.insnAt(mm, p.pid, pc)
		class := disasm.Other
		unknown := derr != nil
		acc = acc[:0]
		if derr == nil {
			class = in.Class
			acc, unknown = in.Effects(&regs, acc)
			found := event.FoundStep
			if atOwn {
				found = ""
			}
			s.checkConsume(r, in, acc, found)
			s.parentGlobals(st, in, acc, atOwn) // memory.go
		}
		var out outcome
		var err error
		var callInsn *event.Insn
		switch {
		case class == disasm.Call && atOwn:
			callInsn = s.insnEvent(mm, p.pid, in)
			if s.cfg.Mode == Fast && s.watchable(r) {
				out, err = s.runWatchedCall(r, &regs, in, callInsn, sig)
			} else {
				r.during = callInsn // the callee is stepped
				out, err = s.advance(p, true, sig, pc)
			}
		default:
			out, err = s.advance(p, true, sig, pc)
		}
		sig = 0
		steps++
		if err != nil {
			if errors.Is(err, errBlocked) {
				// The story gives way while the parent sleeps
				// (giveway.go): the words still live are not checked.
				for _, x := range r.order {
					if _, live := r.changed[x]; live {
						r.drop(x, event.FateUnchecked, nil)
					}
				}
				land(event.LandUnchecked, pc)
			}
			return err
		}
		switch out.kind {
		case outTrap:
		case outNested:
			continue
		case outVfork:
			// The parent vforked again: this story ends here; the next
			// one starts from this event stop (story.go).
			land(event.LandVfork, nowPC(pc))
			st.par.vforked = true
			return nil
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
		var by *event.Insn
		for _, a := range acc {
			if !a.Write || a.Seg {
				continue
			}
			words(a.Addr, a.Size, st.word, func(x uint64) {
				c, ok := r.changed[x]
				if !ok || c.bytes&overlap(x, uint64(st.word), a) == 0 {
					return
				}
				if by == nil {
					by = s.insnEvent(mm, p.pid, in)
				}
				// Only the bytes the parent stored stop being the child's:
				// a 4-byte store next to a child's 4-byte value leaves
				// that value live.
				r.clear(x, c.bytes&overlap(x, uint64(st.word), a), event.FateStore, by)
			})
		}
		// Memory the instruction changed in ways its effects do not list:
		// read the words back.
		switch {
		case out.ranCall:
			// kernelwrites.go: a libc function that fills in the
			// caller's memory (waitpid's status) wrote those bytes,
			// whatever their value.
			read := func(a uint64) (uint64, bool) {
				v, err := s.readWord(p.pid, a, st.word)
				return v, err == nil
			}
			fn := s.callTarget(st, p.pid, in, &regs)
			s.kernelConsumes(r, libcReads(fn, &regs, &now, read), callInsn)
			r.clearWritten(libcWrites(fn, &regs, &now, read), event.FateCallee, callInsn)
			s.recheck(r, event.FateCallee, callInsn)
		case class == disasm.Syscall:
			by := s.insnEvent(mm, p.pid, in)
			s.kernelConsumes(r, syscallReads(&regs, &now), by)
			r.clearWritten(syscallWrites(&regs, &now), event.FateSyscall, by)
			s.recheck(r, event.FateSyscall, by)
		case unknown || out.delivered:
			var insn *event.Insn
			if derr == nil {
				insn = s.insnEvent(mm, p.pid, in)
			}
			s.recheck(r, event.FateStore, insn)
		}
		// Only the parent's own frames move own: in --step mode (or when
		// a call is stepped) the parent also runs through the functions
		// it calls, whose rets change nothing about its own frames.
		if !atOwn || class == disasm.Call && !out.ranCall {
			continue // in a callee, or entering one
		}
		r.own = now.SP()
		if class == disasm.Ret {
			if _, clobbered := r.changed[regs.SP()]; clobbered {
				land(event.LandRetClobbered, now.PC())
				return nil
			}
		}
		// Words below the stack pointer of the parent's own frames are
		// dead: it returned above them (a new call reuses them as fresh
		// stack, written before it is read).
		var ret *event.Insn
		for x := range r.changed {
			if x < r.own {
				if ret == nil {
					ret = s.insnEvent(mm, p.pid, in)
				}
				r.drop(x, event.FatePopped, ret)
			}
		}
		if r.hold() {
			// The parent restored a saved register from a slot the child
			// changed: the child's value lives on in that register, where
			// words cannot follow it. It is followed, as before any word
			// went, until it returns above every word the child changed
			// (or faults, exits, ...).
			if class == disasm.Ret && r.order[len(r.order)-1] < r.own {
				land(event.LandReturned, now.PC())
				return nil
			}
			continue
		}
		if len(r.changed) == 0 {
			how := event.LandOverwritten
			if r.last == event.FatePopped {
				how = event.LandReturned
			}
			land(how, now.PC())
			return nil
		}
	}
}

// hold reports whether the parent consumed a saved-register slot the child
// changed.
func (r *parentRun) hold() bool {
	for _, c := range r.st.par.consumes {
		if c.Kind == event.SlotSavedReg {
			return true
		}
	}
	return false
}

// clear marks bytes of a live word as no longer the child's; when none is
// left the word goes, with its fate.
func (r *parentRun) clear(x uint64, bytes uint8, fate event.FateKind, by *event.Insn) {
	c := r.changed[x]
	if c.bytes &^= bytes; c.bytes != 0 {
		r.changed[x] = c
		return
	}
	r.drop(x, fate, by)
}

// drop removes a live word with its fate (a word read before keeps
// "read": what the parent did with the child's value is what counts).
func (r *parentRun) drop(x uint64, fate event.FateKind, by *event.Insn) {
	delete(r.changed, x)
	r.last = fate
	r.setFate(x, fate, by)
}

func (r *parentRun) setFate(x uint64, fate event.FateKind, by *event.Insn) {
	if f, ok := r.fates[x]; ok && (f.Fate == event.FateRead || f.Fate == event.FateChannel) {
		return
	}
	r.fates[x] = event.WordFate{Addr: event.Addr(x), Fate: fate, By: by}
}

// wordFates lists every changed word's fate, in address order; a word
// still live when following ended is "live".
func (r *parentRun) wordFates() []event.WordFate {
	out := make([]event.WordFate, 0, len(r.order))
	for _, x := range r.order {
		f, ok := r.fates[x]
		switch {
		case !ok:
			f = event.WordFate{Addr: event.Addr(x), Fate: event.FateLive}
		case f.Fate == event.FateRead || f.Fate == event.FateChannel:
		case r.changed[x].bytes != 0:
			f = event.WordFate{Addr: event.Addr(x), Fate: event.FateLive}
		}
		out = append(out, f)
	}
	return out
}

// recheck reads the live words back and drops the bytes that no longer
// hold the child's value: something other than a modelled store rewrote
// them (the kernel in a syscall, a callee run at full speed).
func (s *session) recheck(r *parentRun, fate event.FateKind, by *event.Insn) {
	st := r.st
	if len(r.changed) == 0 {
		return
	}
	lo, hi := st.hi, st.lo
	for x := range r.changed {
		lo, hi = min(lo, x), max(hi, x+uint64(st.word))
	}
	buf := st.scratch[lo-st.lo : hi-st.lo]
	if err := s.p.ReadMem(st.parent.pid, lo, buf); err != nil {
		return // unreadable now: the words keep counting
	}
	for x, c := range r.changed {
		cur := st.wordAt(st.scratch, x)
		var gone uint8
		for i := 0; i < st.word; i++ {
			if c.bytes&(1<<i) != 0 && byte(cur>>(8*i)) != byte(c.val>>(8*i)) {
				gone |= 1 << i
			}
		}
		if gone != 0 {
			r.clear(x, gone, fate, by)
		}
	}
}

// changedWords lists every word of the live region the child left changed,
// with the bytes that differ, and their addresses in order.
func (st *story) changedWords() (map[uint64]poisoned, []uint64) {
	w := uint64(st.word)
	changed := map[uint64]poisoned{}
	var order []uint64
	st.eachChanged(func(a, o, v uint64) {
		var m uint8
		for i := uint64(0); i < w; i++ {
			if byte(v>>(8*i)) != byte(o>>(8*i)) {
				m |= 1 << i
			}
		}
		changed[a] = poisoned{val: v, bytes: m}
		order = append(order, a)
	})
	return changed, order
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

// checkConsume reports the parent reading a word while it still holds
// the child's bytes: a parent_consume, or the libc's own channel
// (libc.go). found is "" for the parent's own frames, else how a read in
// a callee was seen.
func (s *session) checkConsume(r *parentRun, in *disasm.Insn, acc []disasm.Access, found event.FoundBy) {
	st := r.st
	w := uint64(st.word)
	if s.deadPop(st, in) {
		return
	}
	for _, a := range acc {
		if a.Write || a.Seg {
			continue
		}
		words(a.Addr, a.Size, st.word, func(x uint64) {
			c, ok := r.changed[x]
			if !ok || c.bytes&overlap(x, w, a) == 0 {
				return
			}
			s.consume(r, x, in, nil, in.PC, found)
		})
	}
}

// deadPop reports whether in pops a word into a register nothing reads
// again: a scratch register (neither callee-saved nor one a value is
// returned in) right before a ret. clang adjusts the stack so — `push
// %rax` at entry, `pop %rcx; ret` at the end —, and the word popped is
// then released like the rest of the frame (fate "popped"), not read.
func (s *session) deadPop(st *story, in *disasm.Insn) bool {
	if in.Inst.Op != x86asm.POP || len(in.Inst.Args) == 0 {
		return false
	}
	reg, ok := in.Inst.Args[0].(x86asm.Reg)
	if !ok {
		return false
	}
	n, ok := disasm.DWARFReg(reg, st.arch)
	// A value is returned in %rax/%eax and %rdx/%edx (x86 encodings 0, 2).
	if !ok || st.arch.IsCalleeSaved(n) || n == st.arch.GPRDWARF[0] || n == st.arch.GPRDWARF[2] || n == st.arch.SP {
		return false
	}
	next, err := s.insnAt(st.mm, st.parent.pid, in.PC+uint64(in.Len))
	return err == nil && next.Class == disasm.Ret
}

// consume reports one read of a live word (once per word) by in; by is
// its event (made from in when nil); in is nil when the reading
// instruction is not known (a watchpoint fired after an instruction vtrace
// could not decode): the read is then placed at pc, where it trapped.
func (s *session) consume(r *parentRun, x uint64, in *disasm.Insn, by *event.Insn, pc uint64, found event.FoundBy) {
	st := r.st
	if st.par.consumed[x] != "" {
		return
	}
	c := r.changed[x]
	switch {
	case by != nil:
	case in != nil:
		by = s.insnEvent(st.mm, st.parent.pid, in)
	default:
		by = &event.Insn{PID: st.parent.pid, PC: event.Addr(pc), Sym: s.sym(st.mm, pc)}
	}
	if ch := s.libcChannel(st, x, c.val, by); ch != nil {
		st.par.consumed[x] = event.SlotLocal
		r.setFate(x, event.FateChannel, by)
		st.par.channels = append(st.par.channels, ch)
		s.emit(ch)
		return
	}
	kind, reg := event.SlotLocal, ""
	if info, ok := st.slots[x]; ok {
		kind, reg = info.kind, info.reg
	} else if in != nil {
		kind, reg = st.slotByUse(in)
	}
	if kind == event.SlotRet && (in == nil || in.Class != disasm.Ret) {
		kind = event.SlotLocal // a return slot read as data is not a return
	}
	st.par.consumed[x] = kind
	r.setFate(x, event.FateRead, by)
	ev := &event.ParentConsume{Header: s.hdr("parent_consume", st.parent.pid), Vfork: st.id,
		Addr: event.Addr(x), Kind: kind, Reg: reg, Value: event.Addr(c.val),
		Was: event.Addr(st.wordAt(st.orig, x)), By: *by}
	if found != "" {
		ev.During, ev.FoundBy = r.during, found
	}
	st.par.consumes = append(st.par.consumes, ev)
	s.emit(ev)
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
