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
