package tracer

import (
	"fmt"
	"slices"

	"golang.org/x/arch/x86/x86asm"
	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
)

// Parent blocks (fast mode): after its landing, a parent whose child left
// words outside the stack changed is followed instruction by instruction
// in its own frames (watchGlobalReads), its calls run at full speed, until
// it reads one of them. dash's vfork child changes some forty words of
// the shell's heap and data, which the parent never reads: it is followed
// up to its next vfork, through the epilogues and loops of its outer
// frames, a hundred single-steps and more per command (docs/bench.md,
// git-hooks: 8,148 steps, 80 % of the run's stops). Most of those
// instructions touch no memory, or only the stack or a global at a fixed
// address: a tracer that knows the stack pointer knows every address they
// touch (disasm.Insn.SPAccesses). A stretch of such instructions and forward
// direct jumps none of which touches a watched word (m.poisoned) — read or
// written — would make watchGlobalReads do nothing at any of them: no
// global_read, no word taken back, its own frames' stack pointer only
// following the stack pointer. Such a stretch is decoded ahead, an int3 is
// planted at each of its exits (the first instructions that do not
// qualify, on every path, and those that touch a watched word) and the
// parent runs there at full speed: one stop instead of one per
// instruction. Every instruction executed counts as a step (on the
// shortest path to the exit). Only forward jumps: the stretch has no loop,
// every run through it ends at an exit.
//
// A stretch goes on through the calls the follow would run at full speed
// anyway (callThroughOK: the callee's reads are not the parent's own, in
// either mode; a call counts one step, as runCall's) and through the rets
// of the frames the story unwound at the vfork (retThroughOK: on at the
// return address their slot holds). Where the parent stands, its
// registers are known: the first instruction may load through any of
// them, a conditional jump there goes the one way its flags say (a loop's
// backward jump too: the block is refused if it comes back there), a ret
// where its slot points. With those, dash's follow from one command to
// the next is 9 runs and a step where it was 47 runs and steps (the exits
// left are loads through registers the block changed, and loops).
//
// What a block must not do, found by an independent review that built a
// program for each (cmd/vtrace/testdata/blockedges.c): take an exit's
// int3 that a callee reaches for the block's own — every exit is kept at
// or above the stack pointer of every call the block runs through, and
// an exit met below its own is stepped over (conflicts); go on through a
// ret a callee could have rewritten the slot of (conflicts); make a
// callee its own frame when a signal comes at a call (runParentBlock);
// keep its int3s in the parent's own code while a thread the parent made
// in a callee could run into them and the parent wait for it
// (handOverCalls); run `call 1f; 1: pop` as a call (pushesPC).

// Parent block bounds: run when the shortest path to every exit is at
// least parentBlockMin instructions (a continue to an int3 costs about
// what two single-steps cost); decoding stops at parentBlockMax
// instructions and blockExits exits.
const (
	parentBlockMin = 2
	parentBlockMax = 256
)

// parentBlock is a stretch of the parent's code run at full speed.
type parentBlock struct {
	depth map[uint64]int    // pc of each instruction and exit -> instructions executed before it (shortest path)
	sp    map[uint64]uint64 // pc -> the stack pointer there
	exits []uint64
	queue []uint64
	acc   []disasm.Access

	rets    []uint64    // the return slots of the rets it goes through
	writes  [][2]uint64 // [lo, hi) of each of its own stores
	calls   []uint64    // the calls it runs through
	retPCs  []uint64    // the rets it goes through (not at its start)
	edges   [][2]uint64 // from, to: each instruction's successors
	refused []uint64    // calls and rets a pass found it must stop at (conflicts)
	// slotWords are the return slots retThroughOK read, for the passes
	// of one parentBlockAt (the parent stands still meanwhile).
	slotWords map[uint64]uint64
}

func (b *parentBlock) isExit(pc uint64) bool { return slices.Contains(b.exits, pc) }

// parentBlockPasses bounds the decodings of one block (conflicts).
const parentBlockPasses = 4

// parentBlockAt decodes ahead from the parent's pc (regs just read), and
// returns the block that starts there, or nil when it is not worth
// running. left is how many more instructions the follow may run
// (maxGlobalWatch). A decoding whose calls and rets conflict with its
// exits (conflicts) is made again with those calls and rets as exits.
func (s *session) parentBlockAt(st *story, regs *arch.Regs, left int) *parentBlock {
	m, mm := st.mem, st.mm
	if s.cfg.Mode != Fast || s.cfg.TraceInsns || m == nil || mm == nil {
		return nil
	}
	if _, planted := mm.bps[regs.PC()]; planted {
		return nil
	}
	if st.par.block == nil {
		st.par.block = &parentBlock{depth: map[uint64]int{}, sp: map[uint64]uint64{}, slotWords: map[uint64]uint64{}}
	}
	b := st.par.block
	b.refused = b.refused[:0]
	clear(b.slotWords)
	// Calls run through only while no other task shares the memory: a
	// thread made meanwhile could stop on the block's int3s while the
	// parent waits for it (runParentBlock hands a call in progress over
	// to one int3 at its return when the parent makes one).
	calls := st.word == 8 && !s.sharedWithOthers(st)
	for range parentBlockPasses {
		if !s.decodeParentBlock(st, b, regs, left, calls) {
			return nil
		}
		if !b.conflicts() {
			return s.finishParentBlock(st, b)
		}
	}
	return nil
}

// decodeParentBlock is one decoding of parentBlockAt's, into b; false when
// there is no block to run from there.
func (s *session) decodeParentBlock(st *story, b *parentBlock, regs *arch.Regs, left int, calls bool) bool {
	m, mm := st.mem, st.mm
	clear(b.depth)
	clear(b.sp)
	b.exits, b.queue, b.rets, b.writes = b.exits[:0], b.queue[:0], b.rets[:0], b.writes[:0]
	b.calls, b.retPCs, b.edges = b.calls[:0], b.retPCs[:0], b.edges[:0]
	start := regs.PC()
	b.depth[start], b.sp[start] = 0, regs.SP()
	b.queue = append(b.queue, start)
	// Breadth first: a pc's depth is its shortest path from start.
	n := 0
	for len(b.queue) > 0 {
		pc := b.queue[0]
		b.queue = b.queue[1:]
		sp := b.sp[pc]
		var succ [2]uint64
		ns, after := 0, sp
		ok := n < parentBlockMax && b.depth[pc] < left && !slices.Contains(b.refused, pc)
		if _, planted := mm.bps[pc]; planted && pc != start {
			ok = false // another int3 (another story's): an exit
		}
		var in *disasm.Insn
		if ok {
			var err error
			in, err = s.insnAt(mm, st.parent.pid, pc)
			ok = err == nil
		}
		if ok {
			switch in.Class {
			case disasm.Call:
				// Run through (callThroughOK): the stack pointer is the
				// same after it, at the return address.
				ok = calls && s.callThroughOK(st, in, pc, sp)
				if ok {
					b.calls = append(b.calls, pc)
				}
				succ[ns], ns = pc+uint64(in.Len), ns+1
			case disasm.Ret:
				var to uint64
				to, after, ok = s.retThroughOK(st, b, in, sp, pc == start)
				if ok {
					b.rets = append(b.rets, sp)
					if pc != start {
						b.retPCs = append(b.retPCs, pc)
					}
					succ[ns], ns = to, ns+1
				}
			case disasm.CondJump, disasm.Jump:
				_, rel := in.Inst.Args[0].(x86asm.Rel)
				if rel && pc == start {
					// The flags are known here: the one way it goes,
					// backward too (a loop's next round; the block is
					// refused if it comes back here).
					to, taken := in.Target, true
					if in.Class == disasm.CondJump {
						taken, ok = disasm.CondTaken(in.Inst.Op, regs.Flags)
					}
					if !taken {
						to = pc + uint64(in.Len)
					}
					succ[ns], ns = to, ns+1
					break
				}
				ok = rel && in.Target > pc
				if ok {
					succ[ns], ns = in.Target, ns+1
					if in.Class == disasm.CondJump {
						succ[ns], ns = pc+uint64(in.Len), ns+1
					}
				}
			default:
				if pc == start {
					// The registers are known here: an access through any
					// of them (a load through a pointer) is too.
					b.acc, after, ok = in.RegAccesses(regs, sp, b.acc[:0])
				} else {
					b.acc, after, ok = in.SPAccesses(sp, b.acc[:0])
				}
				ok = ok && !s.touchesPoisoned(m, b.acc)
				for _, a := range b.acc {
					if ok && a.Write && !a.Seg {
						b.writes = append(b.writes, [2]uint64{a.Addr, a.Addr + uint64(a.Size)})
					}
				}
				succ[ns], ns = pc+uint64(in.Len), ns+1
			}
		}
		if !ok {
			if pc == start || len(b.exits) == blockExits {
				return false
			}
			b.exits = append(b.exits, pc)
			continue
		}
		n++
		for _, next := range succ[:ns] {
			b.edges = append(b.edges, [2]uint64{pc, next})
			if next == start {
				return false // a loop back to where the parent stands
			}
			if _, seen := b.depth[next]; seen {
				if b.sp[next] != after {
					return false // two stack pointers at one pc (an exit's too)
				}
				continue
			}
			b.depth[next], b.sp[next] = b.depth[pc]+1, after
			b.queue = append(b.queue, next)
		}
	}
	return len(b.exits) > 0
}

// conflicts finds the calls and rets of a decoding the block must stop at
// instead of running through, adds them to b.refused and reports whether
// it found any:
//
//   - A call whose stack pointer is above an exit's: its callee runs below
//     that stack pointer, and could reach the exit's pc at the exit's very
//     stack pointer (main calling again the function it returned from, at
//     the same depth) — the int3 there would be taken for the block's.
//     With every exit at or above every call's stack pointer, an exit met
//     below its own is a callee's.
//   - A ret a call of the block can come before: the callee could have
//     changed the return slot the ret was decoded to pop (its caller's
//     frame is not its to write, but vtrace is there to see such bugs);
//     stopped at the ret, the next block goes where the slot points then.
func (b *parentBlock) conflicts() bool {
	added := false
	low := ^uint64(0)
	for _, e := range b.exits {
		low = min(low, b.sp[e])
	}
	for _, c := range b.calls {
		if b.sp[c] > low && !slices.Contains(b.refused, c) {
			b.refused = append(b.refused, c)
			added = true
		}
	}
	if len(b.calls) == 0 || len(b.retPCs) == 0 {
		return added
	}
	// The rets reachable from a call.
	seen := map[uint64]bool{}
	queue := slices.Clone(b.calls)
	for len(queue) > 0 {
		pc := queue[0]
		queue = queue[1:]
		for _, e := range b.edges {
			if nx := e[1]; e[0] == pc && !seen[nx] {
				seen[nx] = true
				if slices.Contains(b.retPCs, nx) && !slices.Contains(b.refused, nx) {
					b.refused = append(b.refused, nx)
					added = true
				}
				queue = append(queue, nx)
			}
		}
	}
	return added
}

// finishParentBlock makes the last checks of a decoding without conflicts:
// the block is returned, or nil.
func (s *session) finishParentBlock(st *story, b *parentBlock) *parentBlock {
	// A ret goes on at the return address its slot holds now: no store
	// of the block may change it on the way (nor a callee's: conflicts).
	for _, slot := range b.rets {
		for _, w := range b.writes {
			if w[0] < slot+uint64(st.word) && slot < w[1] {
				return nil
			}
		}
	}
	for _, e := range b.exits {
		if b.depth[e] < parentBlockMin {
			return nil // an exit a step or two away: stepping costs no more
		}
	}
	// An int3 inside an instruction the parent runs through would change
	// it (a jump into an instruction's prefix).
	if s.exitInsideInsn(st.mm, st.parent.pid, b.depth, b.exits) {
		return nil
	}
	return b
}

// touchesPoisoned reports whether an access touches a word the parent is
// watched for (or one whose address is not known: a %fs access with no
// thread pointer).
func (s *session) touchesPoisoned(m *memWatch, acc []disasm.Access) bool {
	hit := false
	for _, a := range acc {
		addr, ok := m.accessAddr(a)
		if !ok || addr+uint64(a.Size) < addr {
			return true
		}
		words(addr, a.Size, m.word, func(x uint64) {
			if _, ok := m.poisoned[x]; ok {
				hit = true
			}
		})
		if hit {
			return true
		}
	}
	return false
}

// callThroughOK reports whether the call in at pc (stack pointer sp) can
// be part of a parent block: its callee runs at full speed, as
// watchGlobalReads runs a call (runCall; the parent's reads are checked
// in its own frames only, in both modes), and the block goes on at its
// return address with the same stack pointer. It must read no memory to
// find its target (direct, or through a register), its push must touch
// no watched word, and its return address must lie in the function that
// calls (the FDE around pc): a call that ends its function does not return
// (exit, abort, __stack_chk_fail), and what follows it is another
// function's code, where an int3 could land inside an instruction. Not
// while errno is watched by the parent's debug registers (runErrnoCall
// runs each call then).
func (s *session) callThroughOK(st *story, in *disasm.Insn, pc, sp uint64) bool {
	m := st.mem
	if len(in.Inst.Args) == 0 || len(m.errnoAddrs()) > 0 {
		return false
	}
	switch in.Inst.Args[0].(type) {
	case x86asm.Rel:
		if pushesPC(in) {
			return false
		}
	case x86asm.Reg:
	default:
		return false
	}
	w := uint64(st.word)
	if s.touchesPoisoned(m, []disasm.Access{{Addr: sp - w, Size: st.word, Write: true}}) {
		return false
	}
	ret := pc + uint64(in.Len)
	fde, err := st.mm.syms().FDEForPC(pc)
	return err == nil && fde != nil && fde.Cover(pc) && fde.Cover(ret)
}

// retThroughOK reports where the ret in at stack pointer sp returns, for
// a parent block to go on there, and the stack pointer after it. Where
// the parent stands at it (atStart), to the code its slot holds now;
// further on, to a caller the story unwound at the vfork capture, whose
// return slot it is and which still holds that return address (read now;
// the block's own stores to it are checked by parentBlockAt).
func (s *session) retThroughOK(st *story, b *parentBlock, in *disasm.Insn, sp uint64, atStart bool) (to, after uint64, ok bool) {
	if in.Inst.Op != x86asm.RET {
		return 0, 0, false
	}
	var pop uint64
	if imm, isImm := in.Inst.Args[0].(x86asm.Imm); isImm {
		pop = uint64(imm)
	} else if in.Inst.Args[0] != nil {
		return 0, 0, false
	}
	after = sp + uint64(st.word) + pop
	slot := func() (uint64, error) {
		if v, ok := b.slotWords[sp]; ok {
			return v, nil
		}
		v, err := s.readWord(st.parent.pid, sp, st.word)
		if err == nil {
			b.slotWords[sp] = v
		}
		return v, err
	}
	if atStart {
		to, err := slot()
		return to, after, err == nil && st.mm.syms().IsCode(to)
	}
	for _, f := range st.frames {
		if f.RetSlot != sp || f.RetStored != 0 {
			continue
		}
		to, err := slot()
		return to, after, err == nil && to == f.Ret
	}
	return 0, 0, false
}

// pushesPC reports whether in is a call to the next instruction (`call
// 1f; 1: pop`, position-independent i386 code and hand-written assembly):
// a push of the pc, not a call that returns. Run as a call, it would never
// come back to the int3 at its return address; it is stepped.
func pushesPC(in *disasm.Insn) bool {
	_, rel := in.Inst.Args[0].(x86asm.Rel)
	return in.Class == disasm.Call && rel && in.Target == in.PC+uint64(in.Len)
}

// runParentBlock runs the parent through block b at full speed to one of
// its exits, counting a step per instruction executed on the shortest
// path there (a call run through counts one); regs is left current. The
// callees of the calls it runs through run as runCall runs them
// (contToReturn): an exit's int3 reached deeper than the block (a callee
// passing through the same code) or another story's int3 is stepped over;
// a harmless signal there is delivered on the way; any other signal (the
// program's own SIGTRAP too) ends the follow, as runCall's does. A
// harmless signal in the block's own code is held back from the continue
// and delivered with a single-step, as the follow's steps deliver it (its
// handler is then followed as before) — at a call, on the way. out is the
// stop that ended it when it is not the trap at an exit: a fault, an
// exit, a kill, a vfork in a callee.
func (s *session) runParentBlock(st *story, b *parentBlock, regs *arch.Regs) (n int, out outcome, err error) {
	p, mm := st.parent, st.mm
	if err := s.plantAll(mm, p.pid, b.exits, st.id); err != nil {
		s.unclaimMany(mm, p.pid, b.exits, st.id)
		return 0, outcome{}, fmt.Errorf("plant int3s at %#x: %w", b.exits, err)
	}
	defer func() { s.unclaimMany(mm, p.pid, b.exits, st.id) }()
	if len(b.calls) > 0 {
		// (A story nested in this wait sets its own and puts this one
		// back.)
		hook, of := s.onThread, s.threadOf
		s.onThread, s.threadOf = func() { s.handOverCalls(st, b) }, p
		defer func() { s.onThread, s.threadOf = hook, of }()
	}
	sig := 0
	for {
		out, err = s.resume(p, false, sig, true)
		sig = 0
		if err != nil {
			return 0, out, err
		}
		switch out.kind {
		case outTrap, outSignal:
		default:
			return 1, out, nil // gone, exit, a vfork in a callee: the follow ends there
		}
		if err := s.p.Regs(p.pid, regs); err != nil {
			return 0, out, err
		}
		pc := regs.PC()
		if out.kind == outTrap {
			bp := pc - 1
			_, planted := mm.bps[bp]
			if !planted {
				if b.owns(pc, regs.SP()) {
					return max(b.depth[pc], 1), out, nil // the follow goes on from there
				}
				sig = int(unix.SIGTRAP) // the program's own, in a callee
				continue
			}
			regs.SetPC(bp)
			if err := s.p.SetRegs(p.pid, regs); err != nil {
				return 0, out, err
			}
			if b.isExit(bp) && regs.SP() >= b.sp[bp] {
				return b.depth[bp], outcome{kind: outTrap}, nil
			}
			// Deeper than the block (a callee running the same code), or
			// another story's int3: stepped over.
			if out, err = s.advance(p, true, 0, bp); err != nil || !stepped(out) {
				return 1, out, err
			}
			continue
		}
		if !b.owns(pc, regs.SP()) {
			if benign(out.sig) {
				sig = int(out.sig) // in a callee: delivered, as runCall delivers it
				continue
			}
			return 1, out, nil
		}
		if benign(out.sig) {
			if in, err := s.insnAt(mm, p.pid, pc); err == nil && in.Class == disasm.Call {
				// At a call: delivered on the way, its handler run at
				// full speed, as --step's step of a call enters a
				// handler it does not take for the parent's own frames.
				sig = int(out.sig)
				continue
			}
		}
		n := b.depth[pc]
		if benign(out.sig) {
			// Delivered now, with a step: the parent stops at its handler's
			// first instruction, which the follow takes from there.
			out, err = s.advance(p, true, int(out.sig), pc)
			if err != nil {
				return n, out, err
			}
			n++
			if out.kind == outTrap {
				err = s.p.Regs(p.pid, regs)
			}
		}
		return n, out, err
	}
}

// handOverCalls is called when the parent makes a thread while it runs
// block b (in a callee of one of its calls): the thread could stop on the
// block's int3s, in the parent's own functions, while the parent waits
// for it. The exits are taken out, and an int3 is planted at the return
// of each call of the block that can be in progress (its stack pointer
// above the parent's, its return address in the word below it), which
// become the block's exits: the int3 runCall would have planted.
func (s *session) handOverCalls(st *story, b *parentBlock) {
	p, mm := st.parent, st.mm
	var now arch.Regs
	if s.p.Regs(p.pid, &now) != nil {
		return
	}
	var rets []uint64
	for _, c := range b.calls {
		in, err := s.insnAt(mm, p.pid, c)
		if err != nil {
			continue
		}
		ret, sp := c+uint64(in.Len), b.sp[c]
		if w, err := s.readWord(p.pid, sp-uint64(st.word), st.word); err == nil && now.SP() < sp && w == ret {
			rets = append(rets, ret)
		}
	}
	if len(rets) == 0 {
		return
	}
	s.unclaimMany(mm, p.pid, b.exits, st.id)
	b.exits = b.exits[:0]
	for _, r := range rets {
		if s.plant(mm, p.pid, r, st.id) == nil {
			b.exits = append(b.exits, r)
		}
	}
	b.calls = b.calls[:0] // once
}

// owns reports whether the parent at pc with stack pointer sp is in the
// block's own code, not in a callee of one of its calls.
func (b *parentBlock) owns(pc, sp uint64) bool {
	want, ok := b.sp[pc]
	return ok && want == sp
}

// parentBlockOK returns the block the parent, stopped at in in its own
// frames (atOwn; regs just read), runs next, or nil: it is stepped. left
// is what the follow may still run; the step budgets bound it too, so
// that a budget stops the run where the steps would have.
func (s *session) parentBlockOK(st *story, in *disasm.Insn, atOwn bool, regs *arch.Regs, left int) *parentBlock {
	if !atOwn {
		return nil
	}
	if c := s.cfg.MaxStorySteps; c > 0 {
		left = min(left, int(min(c-st.steps, 1<<30)))
	}
	if c := s.cfg.MaxSteps; c > 0 {
		left = min(left, int(min(c-s.steps, 1<<30)))
	}
	if left < parentBlockMin {
		return nil
	}
	return s.parentBlockAt(st, regs, left)
}
