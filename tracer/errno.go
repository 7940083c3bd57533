package tracer

import (
	"slices"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
	"github.com/vtrace/vtrace/tracer/internal/unwind"
)

// errno the child changed (glibc posix/tst-vfork3; targets/vforkerrno.c).
//
// A vfork child has its parent's thread pointer, so its libc's errno is the
// parent thread's: a correct child whose execvp tries PATH entries that do
// not hold the program leaves ENOENT there. That is libc's bookkeeping and
// harmless (global_write libc "errno") — unless the parent reads errno
// afterwards expecting its own value. So errno's word is followed like a
// program global the child changed (memory.go: poisoned), with two
// differences that make it right and cheap:
//
//   - The parent's libc stores errno all the time: every failing call does,
//     often with the very value the child left (the parent's own open() of
//     a missing file stores ENOENT over the child's ENOENT). Comparing
//     values cannot see that store, so a call the parent makes while errno
//     is followed runs at full speed only with a write watchpoint on
//     errno's 4 bytes (a debug register, where they fire); otherwise it is
//     single-stepped, every store seen. A store by the parent, whatever its
//     value, makes errno the parent's own again.
//   - Reads of errno inside libc (vfprintf saves and restores it for %m)
//     are libc's, not the program's: only a read in the parent's own code
//     counts. While stack words are followed too (parent.go) or other
//     globals (watchGlobalReads), that is its own frames, as for them.
//     When errno is the only word left to follow after the landing
//     (followErrno), the parent is followed from the frame it is in up to
//     the return of the vfork-calling function's caller (a spawn helper's
//     caller is where errors are checked), or of the frame it landed in if
//     that is further up; a read counts in those frames' functions. In
//     fast mode it runs at full speed with a write and a read/write
//     watchpoint on errno (x86 does not say which access fired a
//     read/write one), a trap per access of errno; otherwise it is
//     stepped. A read that counts, while errno still holds the child's
//     bytes, is a global_read (child_wrote_global,
//     parent_read_child_global).
//
// Where watchpoints do not fire the calls are stepped, as --step does: the
// fallback never takes the parent's own store for the child's value; it
// only costs steps (at most maxGlobalWatch).

// errnoAddrs are the 4-byte halves of the followed errno words that still
// hold bytes of the child's value (errno is a 4-byte int), in order.
func (m *memWatch) errnoAddrs() []uint64 {
	if m == nil {
		return nil
	}
	var out []uint64
	for a, c := range m.poisoned {
		if !c.errno {
			continue
		}
		for h := 0; h < m.word; h += 4 {
			if c.bytes&(0xf<<h) != 0 {
				out = append(out, a+uint64(h))
			}
		}
	}
	slices.Sort(out)
	return out
}

// onlyErrno reports whether every word still followed is errno's.
func (m *memWatch) onlyErrno() bool {
	for _, c := range m.poisoned {
		if !c.errno {
			return false
		}
	}
	return len(m.poisoned) > 0
}

// dr7Entry enables debug register i to watch size bytes: writes only
// (dr7RWWrite) or reads and writes (dr7RW).
func dr7Entry(i int, rw uint64, size int) uint64 {
	return 1<<(2*i) | rw<<(16+4*i) | dr7Len(size)<<(18+4*i)
}

// armParentDRs sets the parent's debug registers for a full-speed run:
// r.hw's stack words (read/write, a word each) first, then r.ehw's errno
// halves (4 bytes each): a write watchpoint on each, and, while
// followErrno follows (r.errnoFns), a read/write one on the same bytes
// after it — x86 does not say which access fired a read/write watchpoint,
// so the write one tells a store from a read. It computes the DR7 that
// parentHWEnable writes. false when they do not fit or cannot be set: the
// run must then be stepped.
func (s *session) armParentDRs(r *parentRun) bool {
	per := r.errnoSlots()
	if len(r.hw)+per*len(r.ehw) > maxHWSlots {
		return false
	}
	pid := r.st.parent.pid
	r.dr7 = dr7ForRW(len(r.hw), r.st.word)
	for i, x := range r.hw {
		if s.setDR(pid, i, x) != nil {
			return false
		}
	}
	for j, x := range r.ehw {
		for k := 0; k < per; k++ {
			i := len(r.hw) + per*j + k
			if s.setDR(pid, i, x) != nil {
				return false
			}
			rw := uint64(dr7RWWrite)
			if k == 1 {
				rw = dr7RW
			}
			r.dr7 |= dr7Entry(i, rw, 4)
		}
	}
	return true
}

// errnoSlots is how many debug registers watch each errno half: its
// write watchpoint, and while followErrno follows (r.errnoFns) a
// read/write one after it (armParentDRs).
func (r *parentRun) errnoSlots() int {
	if len(r.errnoFns) > 0 {
		return 2
	}
	return 1
}

// errnoHits handles the traps of the errno watchpoints in DR6 (dr6).
func (s *session) errnoHits(r *parentRun, dr6 uint64, in *disasm.Insn) {
	per := r.errnoSlots()
	for j, x := range r.ehw {
		i := len(r.hw) + per*j
		wrote := dr6&(1<<i) != 0
		read := per == 2 && dr6&(1<<(i+1)) != 0
		if wrote || read {
			s.errnoHit(r, x, wrote, in)
		}
	}
}

// errnoHit handles a trap on the errno half x4: the parent's instruction
// that ends at the trap's pc (in, when it decodes) wrote it (wrote: the
// write watchpoint fired) or read it. A write, whatever the value, makes
// errno the parent's again; a read counts only in the functions
// followErrno follows (r.errnoFns), while the bytes are still the child's.
func (s *session) errnoHit(r *parentRun, x4 uint64, wrote bool, in *disasm.Insn) {
	st := r.st
	m := st.mem
	w := uint64(st.word)
	x := x4 &^ (w - 1)
	c, ok := m.poisoned[x]
	if !ok {
		return
	}
	half := uint8(0xf) << (x4 - x)
	cur, err := s.readWord(st.parent.pid, x, st.word)
	if err != nil {
		return
	}
	if wrote || c.bytes&half&changedBytes(cur, c.val, st.word) != 0 {
		s.dropErrno(r, x, half)
		return
	}
	if len(r.errnoFns) == 0 || in == nil || !inFuncs(s.sym(st.mm, in.PC), r.errnoFns) {
		return // libc's own read (or one vtrace cannot place): not the program's
	}
	c.bytes &= half
	s.emitGlobalRead(st, x, c, in)
	r.errnoDone = true
}

// dropErrno takes the bytes half of the errno word x off the followed
// words: the parent stored errno.
func (s *session) dropErrno(r *parentRun, x uint64, half uint8) {
	m := r.st.mem
	c := m.poisoned[x]
	if c.bytes &^= half; c.bytes == 0 {
		delete(m.poisoned, x)
	} else {
		m.poisoned[x] = c
	}
	if len(r.errnoFns) > 0 && len(m.errnoAddrs()) == 0 {
		r.errnoDone = true
	}
}

// inFuncs reports whether y names one of the functions fns.
func inFuncs(y *event.Sym, fns []*event.Sym) bool {
	for _, f := range fns {
		if y != nil && f != nil && y.Sym != "" && y.Sym == f.Sym && y.Module == f.Module {
			return true
		}
	}
	return false
}

// errnoFrames chooses what followErrno follows, the parent stopped with
// regs: the frames from the one it is in (at least the vfork-calling
// function, frame 1) up to the vfork-calling function's caller (frame 2;
// a spawn helper's caller checks for errors: targets/vforkerrno.c),
// their functions (a read of errno in their own code counts) and the
// outermost of them, whose return ends the follow. ok is false when that
// return is not known (no return slot, an outermost frame, a slot that no
// longer holds the return the vfork-time unwind read) or the functions
// have no names.
func (s *session) errnoFrames(st *story, regs *arch.Regs) (fns []*event.Sym, last unwind.Frame, ok bool) {
	if len(st.frames) < 2 {
		return nil, last, false
	}
	k := max(1, st.frameOf(regs.SP()))
	top := min(max(k, 2), len(st.frames)-1)
	last = st.frames[top]
	if last.RetSlot == 0 || last.Ret == 0 || regs.SP() >= last.CFA {
		return nil, last, false
	}
	if cur, err := s.readWord(st.parent.pid, last.RetSlot, st.word); err != nil || cur != last.Ret {
		return nil, last, false
	}
	for i := k; i <= top; i++ {
		if y := st.frameFns[i]; y != nil && y.Sym != "" {
			fns = append(fns, y)
		}
	}
	return fns, last, len(fns) > 0
}

// runErrnoCall runs a call the parent makes while errno is followed
// (watchGlobalReads, fast mode): at full speed with a write watchpoint on
// errno where watchpoints fire, else stepped into (the caller's loop then
// steps the callee, every store seen).
func (s *session) runErrnoCall(st *story, regs *arch.Regs, in *disasm.Insn) (outcome, error) {
	p, r := st.parent, st.par.run
	if s.hw == hwWorks && r != nil {
		r.hw, r.ehw, r.errnoFns = r.hw[:0], st.mem.errnoAddrs(), nil
		if s.armParentDRs(r) {
			// contToReturn leaves DR7 clear (and DR6: each hit clears
			// it): nothing to disarm.
			out, err := s.runCall(st, p, regs, in, 0, nil)
			r.ehw = nil
			return out, err
		}
		_ = s.disarmDR(p.pid)
		r.ehw = nil
	}
	return s.advance(p, true, 0, regs.PC())
}

// followErrno follows the parent after the parent phase when the only
// word the child left changed is errno (errnoFrames: which frames, and
// the return that ends it) until that return, a read of errno in those
// frames' functions (global_read), or a store of errno. Fast mode runs it
// at full speed with watchpoints on errno where they fire; otherwise (and
// in --step mode) every instruction is stepped, callees included, at most
// maxGlobalWatch. Frames whose return or names are unknown are not
// followed.
func (s *session) followErrno(st *story) error {
	m, r := st.mem, st.par.run
	p, mm := st.parent, st.mm
	var regs arch.Regs
	if err := s.p.Regs(p.pid, &regs); err != nil {
		return err
	}
	fns, f, ok := s.errnoFrames(st, &regs)
	if !ok || r == nil {
		return nil
	}
	st.par.following = true
	defer func() { st.par.following = false }()
	if s.cfg.Mode == Fast && s.hw == hwWorks {
		r.hw, r.ehw, r.errnoFns, r.errnoDone = r.hw[:0], m.errnoAddrs(), fns, false
		defer func() { r.ehw, r.errnoFns = nil, nil }()
		if s.armParentDRs(r) {
			out, err := s.contToReturn(st, p, f.Ret, f.CFA) // leaves DR7 clear
			if err != nil {
				return err
			}
			s.parentOutcome(st, out)
			return nil
		}
		_ = s.disarmDR(p.pid)
	}
	var acc []disasm.Access
	for n := 0; n < maxGlobalWatch && len(m.poisoned) > 0; n++ {
		if err := s.countStep(st); err != nil {
			return err
		}
		if err := s.p.Regs(p.pid, &regs); err != nil {
			return err
		}
		if regs.SP() >= f.CFA {
			return nil // the function returned (or was left)
		}
		pc := regs.PC()
		if in, err := s.insnAt(mm, p.pid, pc); err == nil {
			acc, _ = in.Effects(&regs, acc[:0])
			if s.parentGlobals(st, in, acc, inFuncs(s.sym(mm, pc), fns)) {
				return nil
			}
		}
		out, err := s.advance(p, true, 0, pc)
		if err != nil {
			return err
		}
		if out.kind != outTrap && out.kind != outNested {
			s.parentOutcome(st, out)
			return nil
		}
	}
	return nil
}

// parentOutcome records where a followed parent went when it stopped being
// followable (watchGlobalReads, followErrno): a new vfork (its story
// starts from that event stop), a signal (delivered when it resumes), an
// exec, its end.
func (s *session) parentOutcome(st *story, out outcome) {
	switch out.kind {
	case outVfork:
		st.par.vforked = true
	case outSignal:
		st.par.resumeSig = int(out.sig)
	case outExec:
		s.execStop(st.parent)
	case outGone:
		s.gone(st.parent, out.status)
	}
}
