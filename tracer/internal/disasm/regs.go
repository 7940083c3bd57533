package disasm

import "golang.org/x/arch/x86/x86asm"

// noReg marks an absent base or index register in a precomputed address.
const noReg = -1

// amd64DWARF maps a hardware register number (0-15: rax rcx rdx rbx rsp rbp
// rsi rdi r8-r15) to its amd64 DWARF number.
var amd64DWARF = [16]int8{0, 2, 1, 3, 7, 6, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15}

// DWARF numbers of the registers Effects reads implicitly.
const (
	amd64RCX = 2
	amd64RBX = 3
	amd64RSI = 4
	amd64RDI = 5
	amd64RBP = 6
	amd64RSP = 7
	amd64RAX = 0
	i386EAX  = 0
	i386ECX  = 1
	i386EBX  = 3
	i386ESP  = 4
	i386EBP  = 5
	i386ESI  = 6
	i386EDI  = 7
)

// gpr describes a general-purpose register: its hardware number, width in
// bytes and, for ah/ch/dh/bh, that it is the second byte of its register.
func gpr(r x86asm.Reg) (hw int, size int, high bool, ok bool) {
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

// dwarfOf returns the DWARF number of the full register containing the
// general-purpose register r, in a process of the given bitness.
func dwarfOf(r x86asm.Reg, bits int) (int, bool) {
	hw, _, _, ok := gpr(r)
	if !ok {
		return noReg, false
	}
	if bits == 64 {
		return int(amd64DWARF[hw]), true
	}
	if hw > 7 {
		return noReg, false
	}
	return hw, true // i386 DWARF numbers follow the hardware order
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
			return dwarfOf(r, in.Bits)
		}
	}
	return noReg, false
}
