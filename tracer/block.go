package tracer

import (
	"fmt"

	"golang.org/x/arch/x86/x86asm"

	"github.com/vtrace/vtrace/tracer/internal/disasm"
)

// Blocks (fast mode): a child on the parent's stack is single-stepped in
// the frames it shares with the parent, but a stretch of code that can
// store only below the parent's live region — pushes and stores at a
// stack-pointer offset, the stack pointer only going down, and forward
// direct jumps — can produce none of the events a step would: no
// stack_write or slot_write (every store is outside [lo, hi)), no
// global_write (outside every watched range), no child_return_past_frame
// (the stack pointer never goes up), no call. Such a stretch is decoded
// ahead from the registers of the child's current stop, an int3 is planted
// at each of its exits (the first instructions that do not qualify, on
// every path), and the child runs there at full speed: one stop instead of
// one per instruction (Python's _posixsubprocess child pushes 24 arguments
// for child_exec in a row; glibc's vfork wrapper, the child's test of its
// return value). Jumps only forward: every run through it ends at an exit.
// Every instruction executed counts as a step (on the shortest path to the
// exit when paths join).

// Block bounds: a block is run when it holds at least blockMin
// instructions (planting and removing the int3s and the continue cost
// about what three single-steps cost); decoding ahead stops at blockMax
// instructions and blockExits exits.
const (
	blockMin   = 4
	blockMax   = 512
	blockExits = 6
)

// block is a stretch of code run at full speed.
type block struct {
	// depth: pc of each instruction and exit -> the instructions executed
	// before it (on the shortest path).
	depth map[uint64]int
	sp    map[uint64]uint64
	prev  map[uint64]uint64 // pc -> the pc of an instruction executed right before it
	exits []uint64
	queue []uint64
}

func (b *block) reset() {
	if b.depth == nil {
		b.depth, b.sp, b.prev = map[uint64]int{}, map[uint64]uint64{}, map[uint64]uint64{}
	}
	clear(b.depth)
	clear(b.sp)
	clear(b.prev)
	b.exits, b.queue = b.exits[:0], b.queue[:0]
}

// isExit reports whether pc is one of the block's exits.
func (b *block) isExit(pc uint64) bool {
	for _, e := range b.exits {
		if e == pc {
			return true
		}
	}
	return false
}

// blockAt decodes ahead from the child's pc (r.regs, just read; in is the
// instruction there), breadth first, and returns the block that starts
// there, or nil when it is not worth running.
func (s *session) blockAt(r *childRun, in *disasm.Insn) *block {
	st := r.st
	if !st.shared || r.sig != 0 || r.escaped || s.cfg.Mode != Fast || s.cfg.TraceInsns {
		return nil
	}
	mm := st.mm
	start := in.PC
	if _, planted := mm.bps[start]; planted {
		return nil // stepped over as the predictor leaves it: with the pc certain
	}
	b := &r.block
	b.reset()
	b.depth[start], b.sp[start] = 0, r.regs.SP()
	b.queue = append(b.queue, start)
	// enter adds successor pc of from (the stack pointer sp there).
	enter := func(from, pc, sp uint64) bool {
		if b.isExit(pc) {
			return true
		}
		if _, seen := b.depth[pc]; seen {
			return b.sp[pc] == sp // two stack pointers at one pc: give up
		}
		b.depth[pc], b.sp[pc], b.prev[pc] = b.depth[from]+1, sp, from
		b.queue = append(b.queue, pc)
		return true
	}
	n := 0
	for len(b.queue) > 0 {
		pc := b.queue[0]
		b.queue = b.queue[1:]
		sp := b.sp[pc]
		var err error
		ok := n < blockMax
		if _, planted := mm.bps[pc]; planted && pc != start {
			ok = false // another story's int3: an exit
		}
		if ok {
			if in, err = s.insnAt(mm, st.child.pid, pc); err != nil {
				ok = false
			}
		}
		var succ [2]uint64
		ns, after := 0, sp
		if ok {
			switch in.Class {
			case disasm.CondJump, disasm.Jump:
				_, rel := in.Inst.Args[0].(x86asm.Rel)
				ok = rel && in.Target > pc
				if ok {
					succ[ns], ns = in.Target, ns+1
					if in.Class == disasm.CondJump {
						succ[ns], ns = pc+uint64(in.Len), ns+1
					}
				}
			default:
				var acc []disasm.Access
				acc, after, ok = in.StackOnly(sp, r.acc[:0])
				r.acc = acc[:0]
				ok = ok && after <= sp && s.blockStoresOK(st, acc)
				succ[ns], ns = pc+uint64(in.Len), ns+1
			}
		}
		if !ok {
			if pc == start {
				return nil
			}
			if len(b.exits) == blockExits {
				return nil
			}
			b.exits = append(b.exits, pc)
			continue
		}
		n++
		for _, next := range succ[:ns] {
			if !enter(pc, next, after) {
				return nil
			}
		}
	}
	if n < blockMin || len(b.exits) == 0 {
		return nil
	}
	// An int3 inside an instruction the child runs through would change
	// it (`je 1f; lock; 1: cmpxchg`: a jump into an instruction's prefix).
	for pc := range b.depth {
		if b.isExit(pc) {
			continue
		}
		in, _ := s.insnAt(mm, st.child.pid, pc)
		for _, e := range b.exits {
			if e > pc && e < pc+uint64(in.Len) {
				return nil
			}
		}
	}
	return b
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

// runBlock runs the child through block b at full speed to one of its
// exits. It counts a step per instruction executed and leaves r.regs
// current (r.fresh). A signal on the way (a fault, or a harmless one held
// back from the continue) is delivered with the next step, as --step
// delivers it; done is true when the child has ended.
func (s *session) runBlock(r *childRun, b *block) (done bool, err error) {
	st, c := r.st, r.st.child
	mm := c.proc.mm
	for _, e := range b.exits {
		if err := s.plant(mm, c.pid, e, st.id); err != nil {
			for _, e := range b.exits {
				_ = s.unclaim(mm, c.pid, e, st.id)
			}
			return false, fmt.Errorf("plant int3 at %#x: %w", e, err)
		}
	}
	defer func() {
		for _, e := range b.exits {
			_ = s.unclaim(mm, c.pid, e, st.id)
		}
	}()
	r.predict.reset()
	r.prev = nil
	out, err := s.resume(c, false, 0, true)
	if err != nil {
		return false, err
	}
	switch out.kind {
	case outTrap, outSignal, outNested:
	default:
		st.kid.steps++
		return true, s.childEnded(st, out)
	}
	if err := s.p.Regs(c.pid, &r.regs); err != nil {
		return false, fmt.Errorf("read child registers: %w", err)
	}
	pc := r.regs.PC()
	if out.kind == outTrap && b.isExit(pc-1) {
		pc--
		r.regs.SetPC(pc)
		if err := s.p.SetRegs(c.pid, &r.regs); err != nil {
			return false, err
		}
	}
	// The instructions executed: those on the way to pc.
	n, known := b.depth[pc]
	if !known {
		n = 1 // not a pc of the block: cannot be (a signal's handler?)
	} else if last, ok := b.prev[pc]; ok {
		if r.prev, err = s.insnAt(st.mm, c.pid, last); err != nil {
			r.prev = nil
		}
	}
	for range n - 1 { // stepChildOnce counted the first
		if err := s.countStep(st); err != nil {
			return false, err
		}
	}
	st.kid.steps += int64(n)
	r.fresh = true
	if out.kind == outSignal {
		r.sig = int(out.sig)
	}
	return false, nil
}
