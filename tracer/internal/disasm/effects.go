package disasm

import (
	"golang.org/x/arch/x86/x86asm"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// Access is one memory access an instruction will make.
type Access struct {
	Addr  uint64 // first byte; for Seg accesses, the offset from the segment base
	Size  int    // bytes
	Write bool   // a store (a read-modify-write operand is listed twice: read, then write)
	// Seg marks an %fs- or %gs-relative access: Addr is the offset only,
	// not an address. Thread-local storage in the thread pointer's segment
	// (amd64 %fs, i386 %gs); amd64's %gs has a base of its own, 0 unless
	// the program set one, and may point anywhere.
	Seg bool
	// GS: the segment is %gs, else %fs.
	GS bool
	// SegBase is the segment's base where the registers gave it (SegBaseOK:
	// amd64's fs.base and gs.base, read at the instruction).
	SegBase   uint64
	SegBaseOK bool
}

// segAccess fills a segment-relative access's base in where the registers
// give it (amd64: fs.base and gs.base by their DWARF numbers).
func segAccess(regs RegReader, a Access) Access {
	if a.Seg {
		n := arch.DwarfFSBase
		if a.GS {
			n = arch.DwarfGSBase
		}
		a.SegBase, a.SegBaseOK = regs.Get(n)
	}
	return a
}

// RegReader gives register values by DWARF number; *arch.Regs satisfies it.
type RegReader interface {
	Get(dwarfReg int) (uint64, bool)
}

// maxStringBytes bounds the extent reported for a rep-prefixed string
// instruction; a larger count is reported as unknown instead.
const maxStringBytes = 1 << 32

// Effects appends to dst the memory accesses the instruction will perform if
// it is executed now with register values regs, and returns the extended
// slice. Call it before single-stepping the instruction: addresses are
// computed from the registers as they are before it executes.
//
// Accesses are listed in execution order: a read-modify-write operand
// appears twice (read, then write); push reads its memory operand before
// writing the stack; pop reads the stack before writing its memory operand,
// whose address is computed with the stack pointer already incremented, as
// the CPU does. String instructions assume the direction flag is clear
// (DF=0, as the ABI guarantees at calls and returns, so addresses ascend);
// with a rep prefix the extent covers the full count in rcx/ecx, which for
// repz/repnz cmps and scas is an upper bound.
//
// unknown is true when the instruction may touch memory that the returned
// accesses do not describe: system calls (the kernel writes), state saves
// whose size depends on the CPU (xsave*, fxsave, fnsave, fnstenv, listed
// with their minimal extent), enter with a nesting level, far transfers,
// gather/scatter, undecodable bytes, or a register regs cannot supply.
//
// Effects does not allocate when dst has enough capacity (4 suffices for
// every instruction).
func (in *Insn) Effects(regs RegReader, dst []Access) (acc []Access, unknown bool) {
	acc, unknown = dst, in.unknown
	if in.kind != kindNormal {
		return acc, unknown
	}
	if in.str.elem != 0 {
		return in.stringEffects(regs, acc, unknown)
	}
	var sp uint64
	if in.stkW != 0 || in.stkR != 0 {
		v, ok := regs.Get(int(in.sp))
		if !ok {
			return acc, true
		}
		sp = v
	}
	// Operand reads come first (push mem, call *mem), then the stack.
	for i := 0; i < int(in.nmem); i++ {
		m := &in.mem[i]
		if !m.read {
			continue
		}
		a, ok := in.addr(m, regs)
		if !ok {
			unknown = true
			continue
		}
		acc = append(acc, segAccess(regs, Access{Addr: a, Size: int(m.size), Seg: m.seg, GS: m.gs}))
	}
	if in.stkR != 0 {
		acc = append(acc, Access{Addr: sp & in.smask, Size: int(in.stkR)})
	}
	if in.bpR != 0 {
		if bp, ok := regs.Get(int(in.bp)); ok {
			acc = append(acc, Access{Addr: bp & in.smask, Size: int(in.bpR)})
		} else {
			unknown = true
		}
	}
	if in.stkW != 0 {
		acc = append(acc, Access{Addr: (sp - uint64(in.stkW)) & in.smask, Size: int(in.stkW), Write: true})
	}
	for i := 0; i < int(in.nmem); i++ {
		m := &in.mem[i]
		if !m.write {
			continue
		}
		a, ok := in.addr(m, regs)
		if !ok {
			unknown = true
			continue
		}
		acc = append(acc, segAccess(regs, Access{Addr: a, Size: int(m.size), Write: true, Seg: m.seg, GS: m.gs}))
	}
	return acc, unknown
}

// addr evaluates a memory operand's address.
func (in *Insn) addr(m *memRef, regs RegReader) (uint64, bool) {
	a := m.disp
	if m.base != noReg {
		v, ok := regs.Get(int(m.base))
		if !ok {
			return 0, false
		}
		if m.base == in.sp {
			v += uint64(int64(m.spAdj))
		}
		a += v
	}
	if m.index != noReg {
		v, ok := regs.Get(int(m.index))
		if !ok {
			return 0, false
		}
		if m.index == in.sp {
			v += uint64(int64(m.spAdj))
		}
		a += (v & m.idxMask) * uint64(m.scale)
	}
	if m.bitReg != noReg {
		// bt* with a register bit offset address the bit string beyond
		// the operand: the signed offset selects an operand-sized word.
		v, ok := regs.Get(int(m.bitReg))
		if !ok {
			return 0, false
		}
		var off int64
		switch m.bitRegSize {
		case 2:
			off = int64(int16(v))
		case 4:
			off = int64(int32(v))
		default:
			off = int64(v)
		}
		n := int64(m.size)
		a += uint64((off >> 3) &^ (n - 1))
	}
	return a & m.mask, true
}

func (in *Insn) stringEffects(regs RegReader, acc []Access, unknown bool) ([]Access, bool) {
	s := &in.str
	count := uint64(1)
	if s.rep {
		c, ok := regs.Get(int(in.cx))
		if !ok {
			return acc, true
		}
		count = c & in.amask
		if count == 0 {
			return acc, unknown
		}
	}
	if count > maxStringBytes/uint64(s.elem) {
		return acc, true
	}
	n := int(count) * int(s.elem)
	if s.srcRead {
		if si, ok := regs.Get(int(in.si)); ok {
			acc = append(acc, segAccess(regs, Access{Addr: si & in.amask, Size: n, Seg: s.srcSeg, GS: s.srcGS}))
		} else {
			unknown = true
		}
	}
	if s.dstRead || s.dstW {
		di, ok := regs.Get(int(in.di))
		if !ok {
			return acc, true
		}
		if s.dstRead {
			acc = append(acc, Access{Addr: di & in.amask, Size: n})
		}
		if s.dstW {
			acc = append(acc, Access{Addr: di & in.amask, Size: n, Write: true})
		}
	}
	return acc, unknown
}

// memRole returns whether the memory operand Args[i] is read and/or written.
func memRole(inst *x86asm.Inst, i int) (read, write bool) {
	switch inst.Op {
	// No data access: address computation, hints and cache control.
	case x86asm.LEA, x86asm.NOP, x86asm.PREFETCHNTA, x86asm.PREFETCHT0,
		x86asm.PREFETCHT1, x86asm.PREFETCHT2, x86asm.PREFETCHW,
		x86asm.CLFLUSH, x86asm.INVLPG:
		return false, false

	// Read-modify-write.
	case x86asm.ADD, x86asm.OR, x86asm.ADC, x86asm.SBB, x86asm.AND, x86asm.SUB,
		x86asm.XOR, x86asm.INC, x86asm.DEC, x86asm.NEG, x86asm.NOT,
		x86asm.SHL, x86asm.SHR, x86asm.SAR, x86asm.ROL, x86asm.ROR, x86asm.RCL,
		x86asm.RCR, x86asm.SHLD, x86asm.SHRD, x86asm.XCHG, x86asm.XADD,
		x86asm.CMPXCHG, x86asm.CMPXCHG8B, x86asm.CMPXCHG16B,
		x86asm.BTS, x86asm.BTR, x86asm.BTC, x86asm.ARPL:
		if i == 0 || inst.Op == x86asm.XCHG {
			return true, true
		}
		return true, false

	// Stores: the destination is written, never read.
	case x86asm.MOV, x86asm.MOVBE, x86asm.MOVNTI, x86asm.POP,
		x86asm.SETA, x86asm.SETAE, x86asm.SETB, x86asm.SETBE, x86asm.SETE,
		x86asm.SETG, x86asm.SETGE, x86asm.SETL, x86asm.SETLE, x86asm.SETNE,
		x86asm.SETNO, x86asm.SETNP, x86asm.SETNS, x86asm.SETO, x86asm.SETP, x86asm.SETS,
		x86asm.FST, x86asm.FSTP, x86asm.FIST, x86asm.FISTP, x86asm.FISTTP, x86asm.FBSTP,
		x86asm.FNSTCW, x86asm.FNSTSW, x86asm.FNSTENV, x86asm.FNSAVE,
		x86asm.FXSAVE, x86asm.FXSAVE64, x86asm.XSAVE, x86asm.XSAVE64,
		x86asm.XSAVEOPT, x86asm.XSAVEOPT64, x86asm.XSAVEC, x86asm.XSAVEC64,
		x86asm.XSAVES, x86asm.XSAVES64, x86asm.STMXCSR, x86asm.VSTMXCSR,
		x86asm.SGDT, x86asm.SIDT, x86asm.SLDT, x86asm.STR, x86asm.SMSW:
		if i == 0 {
			return false, true
		}
		return true, false
	}
	if i != 0 {
		return true, false
	}
	// Args[0] is the destination in x86asm's (Intel) operand order. Single
	// operand instructions not listed above (push, call, jmp, mul, div,
	// fld, fadd, ...) only read it, and so do compare-like instructions.
	switch inst.Op {
	case x86asm.CMP, x86asm.TEST, x86asm.BT, x86asm.PUSH, x86asm.CALL, x86asm.JMP,
		x86asm.LCALL, x86asm.LJMP, x86asm.VERR, x86asm.VERW,
		x86asm.LLDT, x86asm.LTR, x86asm.LMSW, x86asm.LGDT, x86asm.LIDT:
		return true, false
	}
	if inst.Args[1] == nil {
		return true, false
	}
	// A memory destination of an SSE/AVX instruction is always a plain
	// store (movaps, movq, pextrw, vextracti128, vmovdqu, vmaskmov...).
	for _, a := range inst.Args[1:] {
		if r, ok := a.(x86asm.Reg); ok && isVecReg(r) {
			return false, true
		}
	}
	for _, p := range inst.Prefix {
		if p == 0 {
			break
		}
		if p.IsVEX() || p.IsEVEX() {
			return false, true
		}
	}
	// Any other two-operand instruction with a memory destination: assume
	// it reads and writes it (a superset is safe for the tracer).
	return true, true
}

// Silent reports whether executing the instruction changes only registers
// and flags and always goes on at PC+Len: no memory write, no stack access,
// no branch, no system call, nothing Effects cannot describe. A tracer that
// follows writes and control flow can single-step it without reading the
// registers before it, and knows the next pc without reading them after.
// (If it faults instead, the task stops with a signal, which the tracer
// sees.)
func (in *Insn) Silent() bool {
	if in.facts&factsSet != 0 {
		return in.facts&factSilent != 0
	}
	return in.silent()
}

func (in *Insn) silent() bool {
	switch in.kind {
	case kindEndbr64, kindEndbr32, kindRdpkru, kindWrpkru:
		// Register-only: endbr is a no-op outside the indirect-branch
		// check, rdpkru/wrpkru move between PKRU and %eax/%edx.
		return true
	case kindNormal:
	default:
		return false
	}
	if in.Class != Other || in.unknown || in.str.elem != 0 || in.stkW != 0 || in.stkR != 0 || in.bpR != 0 {
		return false
	}
	switch in.Inst.Op {
	case x86asm.XBEGIN, x86asm.XABORT, x86asm.XEND: // transactions jump to the abort handler
		return false
	case x86asm.MOV:
		if in.Inst.Args[0] == x86asm.SS {
			return false // the single-step trap waits for the next instruction
		}
	}
	for i := 0; i < int(in.nmem); i++ {
		if in.mem[i].write {
			return false
		}
	}
	return true
}

// OwnTrapFree reports whether executing the instruction can never raise a
// SIGTRAP of its own: a silent instruction, or a jump, conditional or not,
// that reads no memory (it changes the pc, and loop's counter, only). The instructions that do raise one —
// int3, int1, int n, system calls (raise, kill of itself), popf and iret
// (the trap flag) — are none of these. A tracer single-stepping it knows
// a SIGTRAP after the step is the step's, unless a signal was delivered
// with the step or one was sent from outside meanwhile.
func (in *Insn) OwnTrapFree() bool {
	if in.facts&factsSet != 0 {
		return in.facts&factOwnTrapFree != 0
	}
	return in.ownTrapFree()
}

func (in *Insn) ownTrapFree() bool {
	if in.silent() {
		return true
	}
	return (in.Class == Jump || in.Class == CondJump) && !in.unknown && in.kind == kindNormal &&
		in.nmem == 0 && in.stkR == 0 && in.stkW == 0
}

// StackOnly tells whether a tracer that knows only the stack pointer sp
// before the instruction may let it run without a stop after it and still
// know every store it makes: it always goes on at PC+Len (unless it
// faults), stores only at addresses that depend on the stack pointer
// alone, and leaves the stack pointer at a value that depends on sp alone
// and is not above it (push, sub $n,%rsp; any other instruction naming the
// stack pointer as a register operand is refused). It appends the stores to
// dst and returns the stack pointer after the instruction. Silent
// instructions qualify unless they move the stack pointer upwards or by a
// register.
func (in *Insn) StackOnly(sp uint64, dst []Access) (acc []Access, spAfter uint64, ok bool) {
	spArg, other := in.spOperand()
	if other {
		return dst, sp, false
	}
	if in.Silent() {
		if !spArg {
			return dst, sp, true
		}
		// sub $n,%rsp (n > 0): the only move of the stack pointer by a
		// register operand that a block keeps.
		if in.Inst.Op == x86asm.SUB {
			if n, isImm := in.Inst.Args[1].(x86asm.Imm); isImm && n > 0 && n < 1<<20 {
				return dst, (sp - uint64(n)) & in.smask, true
			}
		}
		return dst, sp, false
	}
	if spArg || in.kind != kindNormal || in.unknown || in.str.elem != 0 || in.stkR != 0 || in.bpR != 0 {
		return dst, sp, false
	}
	switch in.Class {
	case Other:
		if in.stkW != 0 {
			return dst, sp, false // enter
		}
	case Push:
		if in.Inst.Op != x86asm.PUSH {
			return dst, sp, false // pushf (the trap flag), pusha
		}
	default:
		return dst, sp, false
	}
	switch in.Inst.Op {
	case x86asm.XBEGIN, x86asm.XABORT, x86asm.XEND:
		return dst, sp, false
	}
	for i := 0; i < int(in.nmem); i++ {
		m := &in.mem[i]
		if m.write && (m.base != in.sp || m.index != noReg || m.bitReg != noReg || m.seg) {
			return dst, sp, false
		}
	}
	all, unknown := in.Effects(spOnly{sp: in.sp, v: sp}, dst)
	if unknown {
		return dst, sp, false
	}
	acc = dst
	for _, a := range all[len(dst):] {
		if a.Write {
			acc = append(acc, a)
		}
	}
	return acc, (sp - uint64(in.stkW)) & in.smask, true
}

// spOperand reports whether the stack pointer is a register operand of the
// instruction: as the destination of a sub (spArg), or anywhere else
// (other).
func (in *Insn) spOperand() (spArg, other bool) {
	for i, a := range in.Inst.Args {
		r, isSP := in.spReg(a)
		if !isSP {
			continue
		}
		if i == 0 && in.Inst.Op == x86asm.SUB && in.wholeSP(r) {
			spArg = true
			continue
		}
		other = true
	}
	return spArg, other
}

// spReg reports whether operand a is the stack pointer register (any
// width of it), and which register it names.
func (in *Insn) spReg(a x86asm.Arg) (x86asm.Reg, bool) {
	r, isReg := a.(x86asm.Reg)
	if !isReg {
		return 0, false
	}
	n, ok := DWARFReg(r, in.arch)
	return r, ok && n == int(in.sp)
}

// wholeSP reports whether r, a name of the stack pointer, is the whole
// register in the instruction's mode (%rsp in 64-bit code, %esp in 32).
func (in *Insn) wholeSP(r x86asm.Reg) bool {
	return r == x86asm.RSP && in.Bits == 64 || r == x86asm.ESP && in.Bits == 32
}

// spOnly reads the stack pointer as v and every other register as 0: the
// addresses StackOnly keeps depend on the stack pointer alone.
type spOnly struct {
	sp int8
	v  uint64
}

func (r spOnly) Get(n int) (uint64, bool) {
	switch n {
	case int(r.sp):
		return r.v, true
	case arch.DwarfFSBase, arch.DwarfGSBase:
		return 0, false // not known: no segment base is made up
	}
	return 0, true
}

// NamesSP reports whether the instruction has the stack pointer as a
// register operand (it may move it: mov, lea, add, and, xchg...).
func (in *Insn) NamesSP() bool {
	if in.facts&factsSet != 0 {
		return in.facts&factNamesSP != 0
	}
	return in.namesSP()
}

func (in *Insn) namesSP() bool {
	for _, a := range in.Inst.Args {
		switch a {
		case x86asm.RSP, x86asm.ESP, x86asm.SP:
			return true
		}
	}
	return false
}

// SPAccesses tells whether a tracer that knows only the stack pointer sp
// before the instruction knows every memory access the instruction makes
// — reads and writes — and the stack pointer after it, the instruction
// going on at PC+Len (unless it faults): its memory operands are
// absolute, %rip-relative, %fs- or %gs-relative with no register (Seg:
// the offset), or at the stack pointer plus a constant; it moves the stack
// pointer only as push and pop do (not pushf, popf, pusha, popa, enter,
// leave) or by an add or sub of an immediate, and names the stack pointer
// as no other register operand. It appends every access to dst (as
// Effects orders them) and returns the stack pointer after the
// instruction. The parent's follow after its landing runs such
// instructions at full speed when none touches a word it watches.
func (in *Insn) SPAccesses(sp uint64, dst []Access) (acc []Access, spAfter uint64, ok bool) {
	return in.knownAccesses(nil, sp, dst)
}

// RegAccesses is SPAccesses for an instruction about to run with the
// registers r (the task stopped at it; sp is r's stack pointer): its
// memory operands may use any register.
func (in *Insn) RegAccesses(r RegReader, sp uint64, dst []Access) (acc []Access, spAfter uint64, ok bool) {
	return in.knownAccesses(r, sp, dst)
}

// knownAccesses is SPAccesses (r nil) and RegAccesses.
func (in *Insn) knownAccesses(r RegReader, sp uint64, dst []Access) (acc []Access, spAfter uint64, ok bool) {
	if in.kind != kindNormal || in.unknown || in.str.elem != 0 || in.bpR != 0 {
		return dst, sp, false
	}
	switch in.Inst.Op {
	case x86asm.XBEGIN, x86asm.XABORT, x86asm.XEND:
		return dst, sp, false
	}
	spAfter = sp
	switch in.Class {
	case Other:
		if in.stkW != 0 || in.stkR != 0 {
			return dst, sp, false // enter, and the like
		}
	case Push:
		if in.Inst.Op != x86asm.PUSH {
			return dst, sp, false
		}
		spAfter = sp - uint64(in.stkW)
	case Pop:
		if in.Inst.Op != x86asm.POP {
			return dst, sp, false
		}
		spAfter = sp + uint64(in.stkR)
	default:
		return dst, sp, false
	}
	for i, a := range in.Inst.Args {
		r, isSP := in.spReg(a)
		if !isSP {
			continue
		}
		// The stack pointer as a register operand: add or sub of an
		// immediate to the whole register only.
		imm, isImm := in.Inst.Args[1].(x86asm.Imm)
		if i != 0 || in.Class != Other || !isImm || imm < 0 || imm >= 1<<20 || !in.wholeSP(r) {
			return dst, sp, false
		}
		switch in.Inst.Op {
		case x86asm.ADD:
			spAfter = sp + uint64(imm)
		case x86asm.SUB:
			spAfter = sp - uint64(imm)
		default:
			return dst, sp, false
		}
	}
	if r == nil {
		for i := 0; i < int(in.nmem); i++ {
			m := &in.mem[i]
			if m.index != noReg || m.bitReg != noReg || m.base != noReg && m.base != in.sp || m.seg && m.base != noReg {
				return dst, sp, false
			}
		}
		r = spOnly{sp: in.sp, v: sp}
	}
	acc, unknown := in.Effects(r, dst)
	if unknown {
		return dst, sp, false
	}
	return acc, spAfter & in.smask, true
}
