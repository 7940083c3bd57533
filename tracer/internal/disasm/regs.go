package disasm

import (
	"golang.org/x/arch/x86/x86asm"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// noReg marks an absent base or index register in a precomputed address.
const noReg = -1

// gpr describes a general-purpose register: the x86 encoding number of the
// full register containing it (0, rax's, for %ah, which ModRM encodes as
// 4), its width in bytes and, for ah/ch/dh/bh, that it is the second byte
// of its register.
func gpr(r x86asm.Reg) (enc int, size int, high bool, ok bool) {
	switch {
	case r >= x86asm.AL && r <= x86asm.BL:
		return int(r - x86asm.AL), 1, false, true
	case r >= x86asm.AH && r <= x86asm.BH:
		return int(r - x86asm.AH), 1, true, true
	case r >= x86asm.SPB && r <= x86asm.R15B:
		return int(r-x86asm.SPB) + 4, 1, false, true
	case r >= x86asm.AX && r <= x86asm.R15W:
		return int(r - x86asm.AX), 2, false, true
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return int(r - x86asm.EAX), 4, false, true
	case r >= x86asm.RAX && r <= x86asm.R15:
		return int(r - x86asm.RAX), 8, false, true
	}
	return 0, 0, false, false
}

// DWARFReg returns the DWARF number, on architecture a, of the full
// general-purpose register containing r, whatever its width (%al, %ah,
// %ax, %eax and %rax are all rax). ok is false for a register that is not
// general-purpose, or that a lacks (r8-r15 on i386). The numbering is
// a.GPRDWARF, the one x86-to-DWARF table.
func DWARFReg(r x86asm.Reg, a *arch.Arch) (int, bool) {
	enc, _, _, ok := gpr(r)
	if !ok {
		return noReg, false
	}
	return a.GPR(enc)
}

// reg is DWARFReg for the instruction's architecture, for registers every
// architecture has.
func (in *Insn) reg(r x86asm.Reg) int8 {
	n, _ := DWARFReg(r, in.arch)
	return int8(n)
}

func isGPR(r x86asm.Reg) bool { _, _, _, ok := gpr(r); return ok }

func isVecReg(r x86asm.Reg) bool {
	return r >= x86asm.X0 && r <= x86asm.Z31 || r >= x86asm.M0 && r <= x86asm.M7
}

func isSeg(r x86asm.Reg) bool { return r >= x86asm.ES && r <= x86asm.GS }

// PoppedReg is the DWARF number of the register a `pop %reg` or `leave`
// loads from the stack (leave: the frame pointer) — how an epilogue
// restores a callee-saved register.
func (in *Insn) PoppedReg() (int, bool) {
	switch in.Inst.Op {
	case x86asm.LEAVE:
		return int(in.bp), true
	case x86asm.POP:
		if r, ok := in.Inst.Args[0].(x86asm.Reg); ok {
			return DWARFReg(r, in.arch)
		}
	}
	return noReg, false
}

// RegWrites returns the general-purpose registers the instruction may
// write, as bits by DWARF number (the stack pointer's for a push); all
// bits when it cannot tell. It knows the instructions a block of the
// child runs (comparisons, tests, jumps, pushes, stores and the
// arithmetic that writes its first operand only); any other instruction
// may write any register.
func (in *Insn) RegWrites() uint64 {
	const all = ^uint64(0)
	switch in.kind {
	case kindEndbr64, kindEndbr32:
		return 0
	case kindNormal:
	default:
		return all
	}
	bit := func(r x86asm.Reg) uint64 {
		if !isGPR(r) {
			return 0
		}
		n, ok := DWARFReg(r, in.arch)
		if !ok {
			return all
		}
		return 1 << uint(n)
	}
	op := in.Inst.Op
	switch op {
	case x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE:
		return 1 << uint(in.cx)
	case x86asm.CMP, x86asm.TEST, x86asm.NOP, x86asm.BT,
		x86asm.JMP, x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JCXZ, x86asm.JE, x86asm.JECXZ,
		x86asm.JG, x86asm.JGE, x86asm.JL, x86asm.JLE, x86asm.JNE, x86asm.JNO, x86asm.JNP, x86asm.JNS,
		x86asm.JO, x86asm.JP, x86asm.JRCXZ, x86asm.JS:
		return 0
	case x86asm.PUSH:
		return 1 << uint(in.sp)
	case x86asm.MOV, x86asm.MOVZX, x86asm.MOVSX, x86asm.MOVSXD, x86asm.LEA, x86asm.MOVD, x86asm.MOVQ,
		x86asm.ADD, x86asm.SUB, x86asm.AND, x86asm.OR, x86asm.XOR, x86asm.NEG, x86asm.NOT,
		x86asm.INC, x86asm.DEC, x86asm.SHL, x86asm.SHR, x86asm.SAR, x86asm.ADC, x86asm.SBB,
		x86asm.CMOVA, x86asm.CMOVAE, x86asm.CMOVB, x86asm.CMOVBE, x86asm.CMOVE, x86asm.CMOVG,
		x86asm.CMOVGE, x86asm.CMOVL, x86asm.CMOVLE, x86asm.CMOVNE, x86asm.CMOVNO, x86asm.CMOVNP,
		x86asm.CMOVNS, x86asm.CMOVO, x86asm.CMOVP, x86asm.CMOVS,
		x86asm.SETA, x86asm.SETAE, x86asm.SETB, x86asm.SETBE, x86asm.SETE, x86asm.SETG,
		x86asm.SETGE, x86asm.SETL, x86asm.SETLE, x86asm.SETNE, x86asm.SETNO, x86asm.SETNP,
		x86asm.SETNS, x86asm.SETO, x86asm.SETP, x86asm.SETS:
		if r, ok := in.Inst.Args[0].(x86asm.Reg); ok {
			return bit(r)
		}
		return 0 // a store: the first operand is memory
	}
	return all
}
