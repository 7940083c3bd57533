package disasm

import "strconv"

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
