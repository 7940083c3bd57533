package tracer

import (
	"fmt"

	"github.com/vtrace/vtrace/tracer/internal/disasm"
)

// Blocks (fast mode): a child on the parent's stack is single-stepped in
// the frames it shares with the parent, but a straight run of instructions
// that can store only below the parent's live region — pushes and stores
// at a stack-pointer offset, the stack pointer only going down — can
// produce none of the events a step would: no stack_write or slot_write
// (every store is outside [lo, hi)), no global_write (outside every
// watched range), no child_return_past_frame (the stack pointer never goes
// up), no call. Such a run is decoded ahead from the registers of the
// child's current stop and run at full speed to an int3 at its end: one
// stop instead of one per instruction (Python's _posixsubprocess child
// pushes 24 arguments for child_exec in a row). Every instruction still
// counts as a step.

// Block bounds: a block is run when it holds at least blockMin
// instructions (planting and removing the int3 and the continue cost about
// what three single-steps cost); decoding ahead stops at blockMax.
const (
	blockMin = 4
	blockMax = 512
)

// blockAt decodes ahead from the child's pc (r.regs, just read; in is the
// instruction there) and returns the pcs of the instructions of the block
// that starts there, and its end (the pc of the first instruction not in
// it); none when it is shorter than blockMin.
func (s *session) blockAt(r *childRun, in *disasm.Insn) (pcs []uint64, end uint64) {
	st := r.st
	if !st.shared || r.sig != 0 || r.escaped || s.cfg.Mode != Fast || s.cfg.TraceInsns {
		return nil, 0
	}
	mm := st.mm
	pc := in.PC
	if _, planted := mm.bps[pc]; planted {
		return nil, 0 // stepped over as the predictor leaves it: with the pc certain
	}
	pcs = r.blockPCs[:0]
	sp := r.regs.SP()
	for len(pcs) < blockMax {
		if len(pcs) > 0 {
			if _, planted := mm.bps[pc]; planted {
				break // another story's int3: the block ends on it
			}
			var err error
			if in, err = s.insnAt(mm, st.child.pid, pc); err != nil {
				break
			}
		}
		acc, after, ok := in.StackOnly(sp, r.acc[:0])
		r.acc = acc[:0]
		if !ok || after > sp || !s.blockStoresOK(st, acc) {
			break
		}
		pcs = append(pcs, pc)
		sp = after
		pc += uint64(in.Len)
	}
	r.blockPCs = pcs
	if len(pcs) < blockMin {
		return nil, 0
	}
	return pcs, pc
}

// blockStoresOK reports whether no store lands in the parent's live stack
// or in the memory outside it that the story watches.
func (s *session) blockStoresOK(st *story, acc []disasm.Access) bool {
	for _, a := range acc {
		lo, hi := a.Addr, a.Addr+uint64(a.Size)
		if hi < lo || hi > st.lo && lo < st.hi {
			return false
		}
		if m := st.mem; m != nil {
			for i := range m.ranges {
				if hi > m.ranges[i].lo && lo < m.ranges[i].hi {
					return false
				}
			}
		}
	}
	return true
}

// runBlock runs the child through the block pcs (ending at end) at full
// speed. It counts a step per instruction executed and leaves r.regs
// current (r.fresh). A signal on the way (a fault, or a harmless one held
// back from the continue) is delivered with the next step, as --step
// delivers it; done is true when the child has ended.
func (s *session) runBlock(r *childRun, pcs []uint64, end uint64) (done bool, err error) {
	st, c := r.st, r.st.child
	for range len(pcs) - 1 { // stepChildOnce counted the first
		if err := s.countStep(st); err != nil {
			return false, err
		}
	}
	mm := c.proc.mm
	if err := s.plant(mm, c.pid, end, st.id); err != nil {
		return false, fmt.Errorf("plant int3 at %#x: %w", end, err)
	}
	defer func() { _ = s.unclaim(mm, c.pid, end, st.id) }()
	r.predict.next, r.prev = 0, nil
	out, err := s.resume(c, false, 0, true)
	if err != nil {
		return false, err
	}
	switch out.kind {
	case outTrap, outSignal, outNested:
	default:
		st.kid.steps += int64(len(pcs))
		return true, s.childEnded(st, out)
	}
	if err := s.p.Regs(c.pid, &r.regs); err != nil {
		return false, fmt.Errorf("read child registers: %w", err)
	}
	pc := r.regs.PC()
	if out.kind == outTrap && pc-1 == end {
		r.regs.SetPC(end)
		if err := s.p.SetRegs(c.pid, &r.regs); err != nil {
			return false, err
		}
		pc = end
	}
	// The instructions executed are those before pc.
	n := 0
	for n < len(pcs) && pcs[n] != pc {
		n++
	}
	if n > 0 {
		if r.prev, err = s.insnAt(st.mm, c.pid, pcs[n-1]); err != nil {
			r.prev = nil
		}
	}
	st.kid.steps += int64(n)
	r.fresh = true
	if out.kind == outSignal {
		r.sig = int(out.sig)
	}
	return false, nil
}
