package disasm

import (
	"strconv"

	"golang.org/x/arch/x86/x86asm"
)

// Class is the control-flow and stack category of an instruction, the part of
// its meaning the tracer's engine switches on.
type Class uint8

const (
	// Other is any instruction not covered by a more specific class.
	Other Class = iota
	// Call is a near or far call, direct or indirect.
	Call
	// Ret is a near or far return (ret, ret $imm, lret, iret).
	Ret
	// Jump is an unconditional jump, direct or indirect.
	Jump
	// CondJump is a conditional branch: jcc, jcxz/jecxz/jrcxz, loop*.
	CondJump
	// Syscall enters the kernel: syscall, sysenter, int $0x80.
	Syscall
	// Push is push, pushf and pusha.
	Push
	// Pop is pop, popf and popa.
	Pop
	// Leave is leave.
	Leave
	// Halt stops or traps the thread: hlt, ud0/ud1/ud2, int3, int1.
	Halt
)

var classNames = [...]string{
	Other:    "other",
	Call:     "call",
	Ret:      "ret",
	Jump:     "jump",
	CondJump: "condjump",
	Syscall:  "syscall",
	Push:     "push",
	Pop:      "pop",
	Leave:    "leave",
	Halt:     "halt",
}

// String returns the lower-case name of the class ("call", "condjump", ...).
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// Flag bits of rflags / eflags a conditional jump tests.
const (
	flagCF = 1 << 0
	flagPF = 1 << 2
	flagZF = 1 << 6
	flagSF = 1 << 7
	flagOF = 1 << 11
)

// CondTaken reports whether the conditional jump op is taken with the
// flags register flags; known is false for the jumps that test a register
// (jcxz, jecxz, jrcxz, loop) and for any other op.
func CondTaken(op x86asm.Op, flags uint64) (taken, known bool) {
	f := func(bit uint64) bool { return flags&bit != 0 }
	switch op {
	case x86asm.JO:
		return f(flagOF), true
	case x86asm.JNO:
		return !f(flagOF), true
	case x86asm.JB:
		return f(flagCF), true
	case x86asm.JAE:
		return !f(flagCF), true
	case x86asm.JE:
		return f(flagZF), true
	case x86asm.JNE:
		return !f(flagZF), true
	case x86asm.JBE:
		return f(flagCF) || f(flagZF), true
	case x86asm.JA:
		return !f(flagCF) && !f(flagZF), true
	case x86asm.JS:
		return f(flagSF), true
	case x86asm.JNS:
		return !f(flagSF), true
	case x86asm.JP:
		return f(flagPF), true
	case x86asm.JNP:
		return !f(flagPF), true
	case x86asm.JL:
		return f(flagSF) != f(flagOF), true
	case x86asm.JGE:
		return f(flagSF) == f(flagOF), true
	case x86asm.JLE:
		return f(flagZF) || f(flagSF) != f(flagOF), true
	case x86asm.JG:
		return !f(flagZF) && f(flagSF) == f(flagOF), true
	}
	return false, false
}
