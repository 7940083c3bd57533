package tracer

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"

	"golang.org/x/arch/x86/x86asm"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
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
// return value). Direct jumps go either way — compilers move the unlikely
// branch of a test far back (python3.11's child tests vfork's value with a
// `je` to a cold `call fork@plt`) — as long as the code has no loop: every
// run through it then ends at an exit within its instructions. A block
// with a loop is decoded again with forward jumps only. Every instruction
// executed counts as a step (on the shortest path to the exit when paths
// join).

// Block bounds: a block is run when it holds at least blockMin
// instructions (planting and removing the int3s and the continue cost
// about what three single-steps cost), or fewer (short) when the run goes
// on into a call at one of its exits (linkCall): the steps to the call
// and the stop at it are saved, and the child's watchpoints stay on from
// the block into the callee (a step is made with them off: two
// debug-register writes, each a call to the child's last CPU). dash's
// child returns from forkchild into `xor %edi,%edi; call sigsetmask`.
// Decoding ahead stops at blockMax instructions and blockExits exits.
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
	// edges are the jumps and fall-throughs from the block's
	// instructions (to its exits too); back is set when a jump goes back.
	edges [][2]uint64
	back  bool
	indeg map[uint64]int // cyclic's
	// rets are the exits at a ret whose target is known when the block
	// starts (pushedRets).
	rets []retExit
	// short: fewer than blockMin instructions; run only into a call
	// (stepChildOnce).
	short bool
}

func (b *block) reset() {
	if b.depth == nil {
		b.depth, b.sp, b.prev = map[uint64]int{}, map[uint64]uint64{}, map[uint64]uint64{}
	}
	clear(b.depth)
	clear(b.sp)
	clear(b.prev)
	b.exits, b.queue, b.edges, b.back, b.rets, b.short = b.exits[:0], b.queue[:0], b.edges[:0], false, b.rets[:0], false
}

// isExit reports whether pc is one of the block's exits.
func (b *block) isExit(pc uint64) bool { return slices.Contains(b.exits, pc) }

// exitInsideInsn reports whether one of exits (the pcs where int3s would
// go) lies inside, not at the start of, an instruction at a pc of depth
// (the instructions the task runs through): the int3 would change that
// instruction. The child's blocks and the parent's ask it.
func (s *session) exitInsideInsn(mm *addrSpace, pid int, depth map[uint64]int, exits []uint64) bool {
	for pc := range depth {
		if slices.Contains(exits, pc) {
			continue
		}
		in, _ := s.insnAt(mm, pid, pc)
		for _, e := range exits {
			if e > pc && e < pc+uint64(in.Len) {
				return true
			}
		}
	}
	return false
}

// blockAt decodes ahead from the child's pc (r.regs, just read; in is the
// instruction there), breadth first, and returns the block that starts
// there, or nil when there is none (a short one is worth running only into
// a call).
func (s *session) blockAt(r *childRun, in *disasm.Insn) *block {
	st := r.st
	if !st.shared || r.sig != 0 || r.escaped || s.cfg.Mode != Fast || s.cfg.TraceInsns {
		return nil
	}
	if _, planted := st.mm.bps[in.PC]; planted {
		return nil // stepped over as the predictor leaves it: with the pc certain
	}
	key := blockKey{start: in.PC, sp: r.regs.SP()}
	if m := st.mm.blocks[key]; m != nil && m.holds(st) {
		blockMemos.reused.Add(1)
		return m.b
	}
	blockMemos.decoded.Add(1)
	b := s.decodeBlock(r, in.PC, false)
	scratch := &r.blocks[r.cur]
	pcs := scratch.looked(r.blockPCs[:0], in.PC)
	if scratch.back && (b == nil || b.cyclic()) {
		// A loop, or backward paths that do not make a block (too many
		// exits, two stack pointers at one pc): as without them.
		b = s.decodeBlock(r, in.PC, true)
		pcs = scratch.looked(pcs, in.PC)
	}
	r.blockPCs = pcs[:0]
	st.mm.keepBlock(key, b, st, pcs)
	return b
}

// A block depends on its start, the stack pointer there, the code (what
// insnAt gives for a pc, kept until a refresh sees other executable
// mappings: then the memos go with it), the int3s planted at
// the instructions the decoding looked at (exits), the parent's live
// region and the watched ranges (blockStoresOK): a child that vforks from
// the same place in a loop (python's _posixsubprocess) decodes the same
// blocks at every story. blockAt keeps its answers per image, for blocks
// decoded where no int3 was planted, and gives one again while the live
// region and the watched ranges are the same and no int3 is planted there.
type blockKey struct{ start, sp uint64 }

// blockMemo is blockAt's answer for a blockKey: b (nil: no block there; a
// copy of what decodeBlock made, which no one changes) and what it was
// decoded with.
type blockMemo struct {
	b      *block
	lo, hi uint64
	ranges [][2]uint64 // the watched ranges (none: no watch)
	pcs    []uint64    // the pcs the decoding looked at, but the start
}

// blockMemos counts blockAt's answers decoded and reused, for KernelCalls.
var blockMemos struct{ decoded, reused atomic.Int64 }

// maxBlockMemos bounds an image's block memos (all dropped when full).
const maxBlockMemos = 256

// holds reports whether the memo's answer is blockAt's for st now.
func (m *blockMemo) holds(st *story) bool {
	if m.lo != st.lo || m.hi != st.hi {
		return false
	}
	var rs []memRange
	if st.mem != nil {
		rs = st.mem.ranges
	}
	if len(rs) != len(m.ranges) {
		return false
	}
	for i := range rs {
		if rs[i].lo != m.ranges[i][0] || rs[i].hi != m.ranges[i][1] {
			return false
		}
	}
	for _, pc := range m.pcs {
		if _, planted := st.mm.bps[pc]; planted {
			return false
		}
	}
	return true
}

// looked appends to pcs the pcs the last decoding looked at (every pc it
// entered; start excluded).
func (b *block) looked(pcs []uint64, start uint64) []uint64 {
	for pc := range b.depth {
		if pc != start {
			pcs = append(pcs, pc)
		}
	}
	return pcs
}

// keepBlock keeps blockAt's answer b for key, decoded for st after looking
// at pcs, unless an int3 was planted at one of them.
func (mm *addrSpace) keepBlock(key blockKey, b *block, st *story, pcs []uint64) {
	for _, pc := range pcs {
		if _, planted := mm.bps[pc]; planted {
			return
		}
	}
	if mm.blocks == nil || len(mm.blocks) >= maxBlockMemos {
		mm.blocks = map[blockKey]*blockMemo{}
	}
	m := &blockMemo{lo: st.lo, hi: st.hi, pcs: slices.Clone(pcs)}
	if st.mem != nil && len(st.mem.ranges) > 0 {
		m.ranges = make([][2]uint64, len(st.mem.ranges))
		for i, r := range st.mem.ranges {
			m.ranges[i] = [2]uint64{r.lo, r.hi}
		}
	}
	if b != nil {
		m.b = &block{depth: maps.Clone(b.depth), sp: maps.Clone(b.sp), prev: maps.Clone(b.prev), exits: slices.Clone(b.exits), rets: slices.Clone(b.rets), short: b.short}
	}
	mm.blocks[key] = m
}

// decodeBlock decodes the block that starts at start (blockAt), its jumps
// going either way, or only forward (forward).
func (s *session) decodeBlock(r *childRun, start uint64, forward bool) *block {
	st := r.st
	mm := st.mm
	var in *disasm.Insn
	b := &r.blocks[r.cur]
	b.reset()
	b.depth[start], b.sp[start] = 0, r.regs.SP()
	b.queue = append(b.queue, start)
	// enter adds successor pc of from (the stack pointer sp there).
	enter := func(from, pc, sp uint64) bool {
		b.edges = append(b.edges, [2]uint64{from, pc}) // (into exits too: pushedRets)
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
				ok = rel && (in.Target > pc || !forward)
				if ok {
					b.back = b.back || in.Target <= pc
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
	if n == 0 || len(b.exits) == 0 {
		return nil
	}
	b.short = n < blockMin
	// An int3 inside an instruction the child runs through would change
	// it (`je 1f; lock; 1: cmpxchg`: a jump into an instruction's prefix).
	if s.exitInsideInsn(mm, st.child.pid, b.depth, b.exits) {
		return nil
	}
	s.pushedRets(r, b, start)
	return b
}

// cyclic reports whether the block's instructions hold a loop (a run
// through it might never reach an exit): whether they have no
// topological order (Kahn's algorithm, on the edges sorted by source).
func (b *block) cyclic() bool {
	slices.SortFunc(b.edges, func(x, y [2]uint64) int { return cmp.Compare(x[0], y[0]) })
	if b.indeg == nil {
		b.indeg = map[uint64]int{}
	}
	clear(b.indeg)
	for _, e := range b.edges {
		b.indeg[e[1]]++
	}
	q := b.queue[:0]
	for pc := range b.depth {
		if b.indeg[pc] == 0 {
			q = append(q, pc)
		}
	}
	ordered := 0
	for len(q) > 0 {
		pc := q[len(q)-1]
		q = q[:len(q)-1]
		ordered++
		i, _ := slices.BinarySearchFunc(b.edges, pc, func(e [2]uint64, t uint64) int { return cmp.Compare(e[0], t) })
		for ; i < len(b.edges) && b.edges[i][0] == pc; i++ {
			to := b.edges[i][1]
			if b.indeg[to]--; b.indeg[to] == 0 {
				q = append(q, to)
			}
		}
	}
	b.queue = q[:0]
	return ordered < len(b.depth)
}

// retExit is an exit of a block at a ret that pops, on every path to it,
// the word a push of the block stored from register reg, which no
// instruction before that push may have written: the ret goes to reg's
// value at the block's start. glibc's vfork wrapper after the syscall,
// `push %rdi; cmp $-4095,%rax; jae error; ret`, returns to %rdi as the
// child's first stop has it.
type retExit struct {
	pc  uint64 // the ret
	reg int    // DWARF number of the pushed register
	sp  uint64 // the stack pointer at the ret
	pop uint64 // the bytes it pops (the word, and ret $n's)
}

// pushState is what pushedRets knows at one pc of a block: the registers
// a path to it may have written, and the stack word (slot, 0 for none)
// that holds register reg's value at the block's start on every path.
type pushState struct {
	written uint64
	slot    uint64
	reg     int
}

// pushedRets finds the block's retExits (b.rets): a forward pass over its
// instructions in a topological order (the block has no loop), merging
// at joins what every path makes certain.
func (s *session) pushedRets(r *childRun, b *block, start uint64) {
	st := r.st
	word := uint64(st.word)
	var rets []uint64
	for _, e := range b.exits {
		if in, err := s.insnAt(st.mm, st.child.pid, e); err == nil && in.Inst.Op == x86asm.RET {
			if _, planted := st.mm.bps[e]; !planted {
				rets = append(rets, e)
			}
		}
	}
	if len(rets) == 0 {
		return
	}
	slices.SortFunc(b.edges, func(x, y [2]uint64) int { return cmp.Compare(x[0], y[0]) })
	indeg := map[uint64]int{}
	for _, e := range b.edges {
		indeg[e[1]]++
	}
	if indeg[start] != 0 {
		return // (a jump back to the start: a loop)
	}
	states := make(map[uint64]pushState, len(b.depth))
	states[start] = pushState{}
	q := []uint64{start}
	var acc []disasm.Access
	for len(q) > 0 {
		pc := q[len(q)-1]
		q = q[:len(q)-1]
		if b.isExit(pc) {
			continue
		}
		in, err := s.insnAt(st.mm, st.child.pid, pc)
		if err != nil {
			return
		}
		ps := states[pc]
		if in.Class != disasm.Jump && in.Class != disasm.CondJump {
			var ok bool
			acc, _, ok = in.StackOnly(b.sp[pc], acc[:0])
			if !ok {
				return
			}
			for _, a := range acc {
				if ps.slot != 0 && a.Addr < ps.slot+word && a.Addr+uint64(a.Size) > ps.slot {
					ps.slot = 0
				}
			}
			if in.Inst.Op == x86asm.PUSH {
				if reg, isReg := in.Inst.Args[0].(x86asm.Reg); isReg && fullWidth(reg, word) {
					if n, ok := disasm.DWARFReg(reg, st.arch); ok && n != st.arch.SP && n < 64 && ps.written&(1<<uint(n)) == 0 {
						ps.slot, ps.reg = b.sp[pc]-word, n
					}
				}
			}
		}
		ps.written |= in.RegWrites()
		i, _ := slices.BinarySearchFunc(b.edges, pc, func(e [2]uint64, t uint64) int { return cmp.Compare(e[0], t) })
		for ; i < len(b.edges) && b.edges[i][0] == pc; i++ {
			to := b.edges[i][1]
			if old, seen := states[to]; seen {
				old.written |= ps.written
				if old.slot != ps.slot || old.reg != ps.reg {
					old.slot = 0
				}
				states[to] = old
			} else {
				states[to] = ps
			}
			if indeg[to]--; indeg[to] == 0 {
				q = append(q, to)
			}
		}
	}
	for _, pc := range rets {
		ps, seen := states[pc]
		if !seen || indeg[pc] != 0 || ps.slot == 0 || ps.slot != b.sp[pc] {
			continue
		}
		in, _ := s.insnAt(st.mm, st.child.pid, pc)
		pop := word
		if a := in.Inst.Args[0]; a != nil {
			imm, ok := a.(x86asm.Imm)
			if !ok {
				continue
			}
			pop += uint64(imm)
		}
		b.rets = append(b.rets, retExit{pc: pc, reg: ps.reg, sp: ps.slot, pop: pop})
	}
}

// fullWidth reports whether reg is a whole general-purpose register of a
// word's size (a push of it stores the word whole).
func fullWidth(reg x86asm.Reg, word uint64) bool {
	if word == 8 {
		return reg >= x86asm.RAX && reg <= x86asm.R15
	}
	return reg >= x86asm.EAX && reg <= x86asm.EDI
}

// retLink is a ret exit of a block (e, the instruction ret) that the run
// goes on through, into block next at to: the int3s are planted at the
// block's other exits and at next's.
type retLink struct {
	e    retExit
	ret  *disasm.Insn
	to   uint64
	next *block
}

// linkRet returns, for block b about to run from the child's registers
// (r.regs, read at its start), the link through one of its ret exits
// into the block at the ret's target, or nil: the ret's target is code,
// a block starts there (blockAt, with the registers the ret leaves: its
// pc there, its stack pointer above the word), and the two blocks share
// no instruction and put no int3 inside one of the other's. What a step
// of the ret would find (blockAfterRet makes those checks before it runs
// its block) is found when the run shows that the ret ran (runBlock): one
// stop fewer, the one at the ret.
func (s *session) linkRet(r *childRun, b *block) *retLink {
	st, mm := r.st, r.st.mm
	for _, e := range b.rets {
		to := r.regs.R[e.reg]
		if _, planted := mm.bps[e.pc]; planted || !mm.syms().IsCode(to) {
			continue
		}
		ret, err := s.insnAt(mm, st.child.pid, e.pc)
		if err != nil || ret.Inst.Op != x86asm.RET {
			continue
		}
		next, err := s.insnAt(mm, st.child.pid, to)
		if err != nil {
			continue
		}
		at := r.regs
		r.regs.SetPC(to)
		r.regs.Set(st.arch.SP, e.sp+e.pop)
		r.cur = 1
		nb := s.blockAt(r, next)
		r.cur = 0
		r.regs = at
		if nb == nil || nb.short || !s.apart(r, b, nb) {
			continue
		}
		r.link = retLink{e: e, ret: ret, to: to, next: nb}
		return &r.link
	}
	return nil
}

// apart reports whether blocks a and b share no pc and neither has an exit
// inside an instruction of the other.
func (s *session) apart(r *childRun, a, b *block) bool {
	for pc := range b.depth {
		if _, shared := a.depth[pc]; shared {
			return false
		}
	}
	inside := func(x, y *block) bool {
		for pc := range x.depth {
			in, err := s.insnAt(r.st.mm, r.st.child.pid, pc)
			if err != nil {
				continue // an exit that cannot be read: never run through
			}
			for _, e := range y.exits {
				if e > pc && e < pc+uint64(in.Len) {
					return true
				}
			}
		}
		return false
	}
	return !inside(a, b) && !inside(b, a)
}

// callLink is an exit of a block at a direct call, from a frame the child
// shares with the parent, that the run goes on into (linkCall): the
// callee runs at full speed to the int3 at its return address in the same
// continue, as callThrough runs such a call when the child stops at it.
// Whether the call ran is told by the word its push writes (mark, below
// the child's stack and every store of the blocks): vtrace writes a value
// there before the run that the push replaces; a stop with the value
// still there is one in a block (the word is then put back as it was).
// A stop in a block's code cannot tell it otherwise: the callee may come
// back to a block's exit (a longjmp to the vfork caller) before any stop.
type callLink struct {
	in      *disasm.Insn
	sp      uint64 // the stack pointer at the call
	retAddr uint64
	mark    uint64
	old     [8]byte // the word at mark before the run
	ev      *event.Insn
	entered bool // enterCall has told the call
	err     error
}

// callMark is the value written at callLink.mark: no return address (not
// a canonical user address) and no value a program has a reason to write.
const callMark = 0xfeedc0de_0ca11ed0

// linkCall returns, for a run of block b (with link: through its ret into
// link.next, whose exits are then the run's last; after before
// instructions from r.regs: blockAfterRet's ret) from the child's
// registers r.regs, the exit at a call the run may go on into, or nil:
// the call is one stepChildOnce would run with callThrough's run from
// the call itself (a direct call from a shared frame, not to a function
// that does not return, whose push lands below the parent's live region
// and outside the watched memory), amd64's, its return address is no pc
// of the blocks, and no instruction of the run before the call reads or
// writes the word its push writes.
func (s *session) linkCall(r *childRun, b *block, link *retLink, before int) *callLink {
	st, mm := r.st, r.st.mm
	if st.word != 8 || r.depth() != 0 || r.outer != nil || r.pendingCall != nil || b.sp == nil {
		return nil
	}
	last := b
	if link != nil {
		last = link.next
		if last.sp == nil {
			return nil
		}
	}
	for _, e := range last.exits {
		in, err := s.insnAt(mm, st.child.pid, e)
		if err != nil || in.Class != disasm.Call || in.Target == 0 {
			continue
		}
		if _, planted := mm.bps[e]; planted {
			continue
		}
		sp := last.sp[e]
		regs := r.regs
		regs.SetPC(e)
		regs.Set(st.arch.SP, sp)
		if noReturnFuncs[s.callTarget(st, st.child.pid, in, &regs)] {
			continue
		}
		acc, unknown := in.Effects(&regs, r.acc[:0])
		r.acc = acc[:0]
		if unknown || len(acc) == 0 || !s.blockStoresOK(st, acc) {
			continue
		}
		retAddr := e + uint64(in.Len)
		if _, in := b.depth[retAddr]; in {
			continue
		}
		if _, in := last.depth[retAddr]; in {
			continue
		}
		mark := sp - 8
		if s.touchesAt(r, b, mark) || link != nil && s.touchesAt(r, last, mark) {
			continue
		}
		// Nor the instructions run on the way to the blocks: the ret
		// blockAfterRet runs first (before), the ret of link.
		if before > 0 {
			at := r.atRet
			if in, err := s.insnAt(mm, st.child.pid, at.PC()); err != nil || s.insnTouches(r, in, &at, mark) {
				continue
			}
		}
		if link != nil {
			regs.SetPC(link.e.pc)
			regs.Set(st.arch.SP, link.e.sp)
			if s.insnTouches(r, link.ret, &regs, mark) {
				continue
			}
		}
		r.call = callLink{in: in, sp: sp, retAddr: retAddr, mark: mark}
		return &r.call
	}
	return nil
}

// touchesAt reports whether an instruction of block b may store in, or
// read, the word at addr through the stack pointer (a read of it through
// another register, below the stack pointer, is not seen: no compiler
// makes one).
func (s *session) touchesAt(r *childRun, b *block, addr uint64) bool {
	regs := r.regs
	for pc, sp := range b.sp {
		if b.isExit(pc) {
			continue
		}
		in, err := s.insnAt(r.st.mm, r.st.child.pid, pc)
		if err != nil {
			return true
		}
		regs.SetPC(pc)
		regs.Set(r.st.arch.SP, sp)
		if s.insnTouches(r, in, &regs, addr) {
			return true
		}
	}
	return false
}

// insnTouches reports whether instruction in, run with registers regs, may
// read or write the word at addr.
func (s *session) insnTouches(r *childRun, in *disasm.Insn, regs *arch.Regs, addr uint64) bool {
	acc, unknown := in.Effects(regs, r.acc[:0])
	r.acc = acc[:0]
	if unknown {
		return true
	}
	for _, a := range acc {
		if a.Addr < addr+8 && a.Addr+uint64(a.Size) > addr {
			return true
		}
	}
	return false
}

// enterCall tells the call of a run into it (runBlock), once, as
// stepChildOnce tells a call it stops at: the instructions of the blocks
// before it (before of them counted already; and a linked ret's checks)
// counted, then the call itself, and its child_call.
func (s *session) enterCall(r *childRun, b *block, link *retLink, cl *callLink, before int) error {
	if cl.entered {
		return cl.err
	}
	cl.entered = true
	st, c := r.st, r.st.child
	if link != nil {
		cl.err = s.ranRet(r, b, link, link.next.depth[cl.in.PC], cl.in.PC)
	} else {
		n := b.depth[cl.in.PC]
		for range n - 1 { // stepChildOnce counted the first
			if cl.err = s.countStep(st); cl.err != nil {
				break
			}
		}
		st.kid.steps += int64(n + before)
	}
	if cl.err == nil {
		cl.err = s.countStep(st) // the call's
	}
	if cl.err != nil {
		return cl.err
	}
	cl.ev = s.insnEvent(st.mm, c.pid, cl.in)
	s.emitChildCall(st, cl.ev, cl.in.Target)
	st.kid.hw.during = cl.ev
	return nil
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

// blockAfterRet returns, for a child stopped at a ret (in; r.regs just
// read), the block that starts at the return address, to be run with the
// ret in one continue; nil when there is none (the ret is then stepped).
// The word the ret pops is read first; the checks a step of the ret leads
// to — the calls and frames the child left, with the ret as the
// instruction that left them — are made with the registers it will leave
// (its pc at that word, its stack pointer above it), as at the stop after
// that step, before the block runs. glibc's vfork wrapper returns with
// `push %rdi; ...; ret` into the test of vfork's value: a stop fewer.
func (s *session) blockAfterRet(r *childRun, in *disasm.Insn) *block {
	st, c, mm := r.st, r.st.child, r.st.mm
	if in.Inst.Op != x86asm.RET || !st.shared || r.sig != 0 || r.escaped || s.cfg.Mode != Fast || s.cfg.TraceInsns {
		return nil // (blockAt's own conditions, before the read)
	}
	if _, planted := mm.bps[in.PC]; planted {
		return nil
	}
	pop := uint64(st.word)
	if a := in.Inst.Args[0]; a != nil { // ret $n
		imm, ok := a.(x86asm.Imm)
		if !ok {
			return nil
		}
		pop += uint64(imm)
	}
	sp := r.regs.SP()
	to, err := s.readWord(c.pid, sp, st.word)
	if err != nil || !mm.syms().IsCode(to) {
		return nil
	}
	next, err := s.insnAt(mm, c.pid, to)
	if err != nil {
		return nil
	}
	at := r.regs
	r.regs.SetPC(to)
	r.regs.Set(st.arch.SP, sp+pop)
	b := s.blockAt(r, next)
	if b == nil || b.short {
		r.regs = at
		return nil
	}
	r.atRet = at
	// As after a step of the ret (stepChildOnce).
	r.prev = in
	r.popCalls(r.regs.SP())
	s.checkLeftFrames(st, r)
	s.checkJumpedOut(st, r)
	if r.depth() == 0 && !r.escaped {
		r.outer = nil
	}
	return b
}

// runBlock runs the child through block b at full speed to one of its
// exits; before instructions run first on the way to its start (a ret:
// blockAfterRet). With link, the run goes on through the ret of b's exit
// link.e into block link.next: the int3s are at b's other exits and at
// next's, and a stop in next shows that the ret ran — then what a step
// of the ret would have found (the calls and frames it left) is found,
// with the registers it left, before next's instructions are counted.
// When the last block's exit is a call linkCall accepts, the run goes on
// into it too, to the int3 at its return address (or the child's exec or
// end): a stop after the call ran is told as callThrough tells it
// (enterCall, then contToReturn's loop from that stop); a stop before it
// (ranCall: the mark is still there) as a block's.
// It counts a step per instruction executed and leaves r.regs current
// (r.fresh). A signal on the way (a fault, or a harmless one held back
// from the continue) is delivered with the next step, as --step delivers
// it; done is true when the child has ended.
func (s *session) runBlock(r *childRun, b *block, before int, link *retLink) (done bool, err error) {
	st, c := r.st, r.st.child
	mm := c.proc.mm
	for range before { // stepChildOnce counted the first instruction
		if err := s.countStep(st); err != nil {
			return false, err
		}
	}
	cl := s.linkCall(r, b, link, before)
	exits := b.exits
	if link != nil || cl != nil {
		exits = r.exits[:0]
		for _, e := range b.exits {
			if link == nil || e != link.e.pc {
				exits = append(exits, e)
			}
		}
		if link != nil {
			exits = append(exits, link.next.exits...)
		}
		if cl != nil {
			exits = slices.DeleteFunc(exits, func(e uint64) bool { return e == cl.in.PC })
			exits = append(exits, cl.retAddr)
		}
		r.exits = exits
	}
	if cl != nil {
		old, ok, err := s.plantAllReading(mm, c.pid, exits, st.id, cl.mark)
		if err == nil && ok {
			cl.old = old
			var w [8]byte
			binary.LittleEndian.PutUint64(w[:], callMark)
			err = s.p.WriteMem(c.pid, cl.mark, w[:])
		} else if err == nil {
			err = fmt.Errorf("read the stack word at %#x", cl.mark)
		}
		if err != nil {
			s.unclaimMany(mm, c.pid, exits, st.id)
			return false, fmt.Errorf("plant int3s at %#x: %w", exits, err)
		}
	} else if err := s.plantAll(mm, c.pid, exits, st.id); err != nil {
		s.unclaimMany(mm, c.pid, exits, st.id)
		return false, fmt.Errorf("plant int3s at %#x: %w", exits, err)
	}
	planted := true
	defer func() {
		if planted {
			s.unclaimMany(mm, c.pid, exits, st.id)
		}
	}()
	r.predict.reset()
	r.prev = nil
	var rr *retRun
	if cl != nil {
		rr = s.newRetRun(st, c, cl.retAddr, cl.sp)
		defer rr.arm(false)
		rr.arm(true)
	}
	// (A story nested in this wait sets its own and puts this one back;
	// this one puts back the one of a story it is nested in.)
	hook, of := s.beforeVfork, s.vforkOf
	if cl != nil {
		s.beforeVfork, s.vforkOf = func() { _ = s.enterCall(r, b, link, cl, before) }, c
	}
	out, err := s.resume(c, false, 0, true)
	s.beforeVfork, s.vforkOf = hook, of
	if err != nil {
		// The run stops (an interrupt, a budget, a detach): a call that
		// ran is told, as when the child was stopped at it; a mark
		// still there is put back.
		if cl != nil && !cl.entered {
			if ran, rerr := s.ranCall(r, cl, outcome{kind: outTrap}); rerr == nil && ran {
				_ = s.enterCall(r, b, link, cl, before)
			}
		}
		return false, err
	}
	if cl != nil {
		ran, err := s.ranCall(r, cl, out)
		if err != nil {
			return false, err
		}
		if ran {
			if err := s.enterCall(r, b, link, cl, before); err != nil {
				// Cut short (a budget) at the run's stop, before the
				// loop below takes it: a stop on an int3 (the one at the
				// return) goes back onto the instruction, which the
				// child runs when it is let go.
				s.backOntoInt3(c, out)
				return false, err
			}
			out, err = rr.loop(&out)
			out.ranCall = true
			if err == nil && out.kind == outExec {
				// The exec'd child runs its program first: the int3s
				// are in the parent's memory only now (python3's
				// child_exec: five words read and written back).
				s.letExecGo(st)
			}
			// The int3s go before the callee's writes are diffed, as
			// when callThrough ran it; through the parent, which shares
			// the memory the child may have left by its exec.
			s.unclaimMany(mm, st.parent.pid, exits, st.id)
			planted = false
			out, err = s.calledThrough(st, cl.ev, out, err)
			r.predict.reset()
			r.sig, r.prev, r.fresh = 0, cl.in, false
			st.kid.steps++
			if err != nil {
				return false, err
			}
			switch out.kind {
			case outTrap, outNested:
				return false, nil
			case outSignal:
				r.sig = int(out.sig) // delivered with the next step
				return false, nil
			}
			return true, s.childEnded(st, out)
		}
		rr.arm(false)
	}
	switch out.kind {
	case outTrap, outSignal, outNested:
	default:
		// (Whether a linked ret ran is not known: the child's end is
		// told as if it had not.)
		st.kid.steps += int64(1 + before)
		return true, s.childEnded(st, out)
	}
	if err := s.p.Regs(c.pid, &r.regs); err != nil {
		return false, fmt.Errorf("read child registers: %w", err)
	}
	pc := r.regs.PC()
	if out.kind == outTrap && slices.Contains(exits, pc-1) {
		pc--
		r.regs.SetPC(pc)
		if err := s.p.SetRegs(c.pid, &r.regs); err != nil {
			return false, err
		}
	}
	if out.kind == outSignal {
		r.sig = int(out.sig)
	}
	r.fresh = true
	if link != nil {
		if n, in := link.next.depth[pc]; in {
			return false, s.ranRet(r, b, link, n, pc)
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
	st.kid.steps += int64(n + before)
	return false, nil
}

// backOntoInt3 moves task t, stopped by out on one of vtrace's int3s
// (its pc just past it: one of the run's exits, or an enclosing story's
// in a callee), back onto the instruction.
func (s *session) backOntoInt3(t *task, out outcome) {
	var regs arch.Regs
	if out.kind != outTrap || t.proc.mm == nil || s.p.Regs(t.pid, &regs) != nil {
		return
	}
	if pc := regs.PC() - 1; t.proc.mm.bps[pc] != nil {
		regs.SetPC(pc)
		_ = s.p.SetRegs(t.pid, &regs)
	}
}

// ranCall tells whether a run into call cl (runBlock) that ended in out
// ran the call: a system call (an exec, a vfork) is the callee's, for a
// block has none; any other stop or end is told by the word at cl.mark
// (read through the parent, which shares the memory and stays stopped).
// When the call did not run, the word is put back as it was.
func (s *session) ranCall(r *childRun, cl *callLink, out outcome) (bool, error) {
	switch out.kind {
	case outExec, outNested, outVfork:
		return true, nil
	}
	st := r.st
	var w [8]byte
	if err := s.p.ReadMem(st.parent.pid, cl.mark, w[:]); err != nil {
		return false, fmt.Errorf("read the stack word at %#x: %w", cl.mark, err)
	}
	if binary.LittleEndian.Uint64(w[:]) != callMark {
		return true, nil
	}
	if err := s.p.WriteMem(st.parent.pid, cl.mark, cl.old[:]); err != nil {
		return false, fmt.Errorf("restore the stack word at %#x: %w", cl.mark, err)
	}
	return false, nil
}

// ranRet counts and checks a linked run (runBlock) that stopped at pc, n
// instructions into block link.next: b's instructions to its ret, the
// ret, then what a step of the ret finds (as blockAfterRet checks it,
// with the registers the ret left), then next's n instructions.
func (s *session) ranRet(r *childRun, b *block, link *retLink, n int, pc uint64) error {
	st := r.st
	for range b.depth[link.e.pc] { // b's instructions and the ret, but the first (stepChildOnce's)
		if err := s.countStep(st); err != nil {
			return err
		}
	}
	now := r.regs
	r.regs.SetPC(link.to)
	r.regs.Set(st.arch.SP, link.e.sp+link.e.pop)
	r.prev = link.ret
	r.popCalls(r.regs.SP())
	s.checkLeftFrames(st, r)
	s.checkJumpedOut(st, r)
	if r.depth() == 0 && !r.escaped {
		r.outer = nil
	}
	r.regs = now
	for range n {
		if err := s.countStep(st); err != nil {
			return err
		}
	}
	st.kid.steps += int64(b.depth[link.e.pc] + 1 + n)
	if last, ok := link.next.prev[pc]; ok {
		in, err := s.insnAt(st.mm, st.child.pid, last)
		if err != nil {
			in = nil
		}
		r.prev = in
	}
	return nil
}
