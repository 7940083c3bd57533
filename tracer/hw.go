package tracer

import (
	"fmt"
	"strings"

	"github.com/vtrace/vtrace/tracer/arch"
	"github.com/vtrace/vtrace/tracer/disasm"
)

// Hardware watchpoints (x86 debug registers DR0–DR3, enabled by DR7).
//
// Fast mode lets the vfork child's callees run at full speed and finds their
// writes into the parent's stack by diffing when each call returns: it knows
// that a slot changed during `call exit@plt`, not which instruction inside
// exit() changed it. Where debug-register watchpoints fire, vtrace also arms
// up to four of them in the child on the slots most at risk (the return and
// saved-register slots of the frames above the vfork, nearest first) and
// names the exact writer when one triggers.
//
// Some hypervisors accept DR writes but never deliver the trap, so vtrace
// probes first and never depends on them: at the program's first stop it
// watches the first byte the program is about to store to, single-steps
// that store and reads DR6. If the bit is not set, the watchpoints are
// reported as "none" and stepping plus diffing finds every write as before.
// DR7 is written last and never read back (a read-back proves nothing about
// whether the trap will be delivered).

// hwState is what vtrace knows about debug-register watchpoints.
type hwState int

const (
	hwAuto   hwState = iota // not probed (yet)
	hwOff                   // --watchpoints off, or --step (every write is stepped)
	hwWorks                 // the probe's watchpoint fired
	hwBroken                // the probe's watchpoint did not fire (or could not be set)
)

func (h hwState) String() string {
	switch h {
	case hwOff:
		return "off"
	case hwWorks:
		return "hw"
	case hwBroken:
		return "none"
	}
	return "auto"
}

// DR7 encodings.
const (
	dr7RWWrite = 0b01
	maxHWSlots = 4
	probeSteps = 64 // instructions to look for a store at the program's start
)

// dr7Len encodes a watch length of 1, 2, 4 or 8 bytes.
func dr7Len(n int) uint64 {
	switch n {
	case 2:
		return 0b01
	case 4:
		return 0b11
	case 8:
		return 0b10
	}
	return 0b00
}

// dr7For enables write watchpoints of length size on the first n of DR0–DR3.
func dr7For(n, size int) uint64 {
	var v uint64
	for i := 0; i < n; i++ {
		v |= 1<<(2*i) | dr7RWWrite<<(16+4*i) | dr7Len(size)<<(18+4*i)
	}
	return v
}

// probeHW decides whether watchpoints fire, on the main program at its exec
// stop (before it has run an instruction): it single-steps until the first
// instruction that stores to memory, with DR0 watching that store's first
// byte, then reads DR6. The steps are ordinary single-steps of the
// program's first instructions (the dynamic loader's `call _dl_start`, or
// a push in a static _start): nothing is skipped or changed.
func (s *session) probeHW(t *task) {
	var regs arch.Regs
	mm := t.proc.mm
	s.hwProbe = "no store in the program's first instructions"
	for i := 0; i < probeSteps; i++ {
		if s.t.Regs(t.pid, &regs) != nil {
			break
		}
		in, err := s.insnAt(mm, t.pid, regs.PC())
		if err != nil {
			break
		}
		acc, unknown := in.Effects(&regs, nil)
		var target uint64
		for _, a := range acc {
			if a.Write && !a.Seg {
				target = a.Addr
				break
			}
		}
		armed := false
		if target != 0 && !unknown {
			if err := s.armDR(t.pid, []uint64{target}, 1); err != nil {
				s.hw, s.hwProbe = hwBroken, err.Error()
				return
			}
			armed = true
		}
		out, err := s.resumeAndWait(t, true, 0)
		if err != nil || out.kind != outTrap || out.nested {
			// The program ended or got a signal in its first
			// instructions: leave the question open.
			s.hwProbe = "the program did not get that far"
			if armed && out.kind == outTrap {
				_ = s.disarmDR(t.pid)
			}
			return
		}
		if !armed {
			continue
		}
		dr6, err := s.t.DebugReg(t.pid, 6)
		_ = s.disarmDR(t.pid)
		insn := s.insnText(mm, in)
		if err == nil && dr6&1 != 0 {
			s.hw = hwWorks
			s.hwProbe = fmt.Sprintf("DR0 on %#x fired on `%s`", target, squeeze(insn))
		} else {
			s.hw = hwBroken
			s.hwProbe = fmt.Sprintf("DR0 on %#x did not fire on `%s` (DR6 %#x)", target, squeeze(insn), dr6)
		}
		s.steps += int64(i + 1)
		return
	}
}

// armDR watches writes of size bytes at each address (at most four) in one
// task: addresses first, DR6 cleared, DR7 last.
func (s *session) armDR(pid int, addrs []uint64, size int) error {
	for i, a := range addrs {
		if err := s.t.SetDebugReg(pid, i, a); err != nil {
			return err
		}
	}
	if err := s.t.SetDebugReg(pid, 6, 0); err != nil {
		return err
	}
	return s.t.SetDebugReg(pid, 7, dr7For(len(addrs), size))
}

func (s *session) disarmDR(pid int) error {
	if err := s.t.SetDebugReg(pid, 7, 0); err != nil {
		return err
	}
	return s.t.SetDebugReg(pid, 6, 0)
}

// armSlots arms the child's watchpoints on the slots most at risk: return
// and saved-register slots of the frames above the vfork wrapper, nearest
// first, inside the live region.
func (s *session) armSlots(st *story) {
	var slots []uint64
	for i := 1; i < len(st.frames) && len(slots) < maxHWSlots; i++ {
		f := st.frames[i]
		cands := []uint64{f.RetSlot}
		for _, sv := range f.Saved {
			cands = append(cands, sv.Addr)
		}
		for _, a := range cands {
			if a != 0 && a >= st.lo && a+uint64(st.word) <= st.hi && a%uint64(st.word) == 0 && len(slots) < maxHWSlots {
				slots = append(slots, a)
			}
		}
	}
	if len(slots) == 0 {
		return
	}
	if err := s.armDR(st.child.pid, slots, st.word); err != nil {
		s.note(st.id, fmt.Sprintf("arming watchpoints: %v; writes inside callees are found by diffing", err))
		return
	}
	st.hwSlots = slots
	var names []string
	for i, a := range slots {
		info := st.slots[a]
		what := "ret"
		if info.kind == "saved_reg" {
			what = "%" + info.reg
		}
		names = append(names, fmt.Sprintf("DR%d %s of %s at %#x", i, what, fn(st.frameFns[info.frame]), a))
	}
	s.note(st.id, "watchpoints armed in the child: "+strings.Join(names, ", "))
}

// hwHit handles a SIGTRAP the child got while running a callee at full
// speed: if a watchpoint fired, the slot write is reported with the exact
// instruction that made it (the one that ends at the trap's pc, found by
// decoding the function from its start) and true is returned.
func (s *session) hwHit(st *story, now *arch.Regs) bool {
	if len(st.hwSlots) == 0 {
		return false
	}
	c := st.child
	dr6, err := s.t.DebugReg(c.pid, 6)
	if err != nil || dr6&0xf == 0 {
		return false
	}
	_ = s.t.SetDebugReg(c.pid, 6, 0)
	writer := s.insnEndingAt(st.mm, c.pid, now.PC())
	for i, a := range st.hwSlots {
		if dr6&(1<<i) == 0 {
			continue
		}
		st.hwHits++
		s.diffRange(st, a, a+uint64(st.word), now, writer, st.during)
	}
	return true
}

// insnEndingAt finds the instruction that ends at pc by decoding the
// enclosing function from its start; nil when the function is unknown or
// the decoding does not land on pc.
func (s *session) insnEndingAt(mm *addrSpace, pid int, pc uint64) *disasm.Insn {
	y := s.sym(mm, pc-1)
	if y == nil || y.Sym == "" || y.PastEnd || y.Off > 1<<16 {
		return nil
	}
	start := pc - 1 - uint64(y.Off)
	for a := start; a < pc; {
		in, err := s.insnAt(mm, pid, a)
		if err != nil || in.Len == 0 {
			return nil
		}
		if a+uint64(in.Len) == pc {
			return in
		}
		a += uint64(in.Len)
	}
	return nil
}
