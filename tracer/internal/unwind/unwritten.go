package unwind

import (
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
	"golang.org/x/arch/x86/x86asm"
)

// keepUnwritten carries into the caller's register state the caller-saved
// registers a frame's function provably never writes.
//
// DWARF leaves a register the CFI gives no rule for to the ABI, and the
// psABI lets a callee clobber the caller-saved ones (%rax, %rcx, %rdx,
// %rsi, %rdi, %r8-%r11; %eax, %ecx, %edx), so the unwinder forgets them in
// the caller. gdb instead takes every unspecified register as having the
// same value in the caller. Neither is right in general; both agree with
// the machine where the callee never writes the register. That matters
// where a caller keeps its own return address in a caller-saved register
// (DW_CFA_register, like glibc's vfork wrapper) and calls a function that
// makes the syscall (rr's syscall hook, rr#3270): without the register the
// caller's return address is unknown.
//
// A register is kept when all of this holds:
//   - the frame's CFI (if any) has no rule for it at pc: a rule says
//     otherwise, and wins;
//   - its value in the frame is known (cur);
//   - the frame was entered at its function's first instruction by a
//     direct call: the instruction ending at the return address, in the
//     caller's function decoded from its start, is `call <function>`
//     (a tail call from another function, which might have written the
//     register, or an indirect call, cannot be told apart, and keeps
//     nothing);
//   - the whole function (from its symbol's bounds) decodes, contains no
//     call (other than `call 1f; 1:`, which only pushes), no jump out of
//     its bounds and no indirect jump, and no instruction of it may write
//     the register, explicitly or implicitly (string instructions, mul,
//     cpuid, a syscall's %rax/%rcx/%r11, ...). Every path from the entry
//     to pc runs inside the function, so none of them writes it.
//
// A function with a call keeps nothing (the callee may clobber any
// caller-saved register), so in practice the rule applies to the
// innermost frame of a leaf function.
func keepUnwritten(a *arch.Arch, cur regState, next *regState, c Code, look, ret uint64, ruled func(n int) bool) {
	if ret == 0 {
		return
	}
	var want uint32 // candidate registers
	for n := 0; n < a.NumRegs; n++ {
		if n == a.PC || n == a.SP || isCalleeSaved(a, n) || ruled(n) {
			continue
		}
		if cur.has(n) && !next.has(n) {
			want |= 1 << n
		}
	}
	if want == 0 {
		return
	}
	start, code, ok := c.FuncCode(look)
	if !ok || !calledDirectly(a, c, start, ret) {
		return
	}
	written, ok := funcWrites(a, start, code)
	if !ok {
		return
	}
	for n := 0; n < a.NumRegs; n++ {
		if want&(1<<n) != 0 && written&(1<<n) == 0 {
			v, src, _ := cur.peek(n)
			next.setFrom(n, v, src)
		}
	}
}

// calledDirectly reports whether the instruction that ends at ret, in the
// caller's function decoded from its start, is a direct call of target.
func calledDirectly(a *arch.Arch, c Code, target, ret uint64) bool {
	start, code, ok := c.FuncCode(ret - 1)
	if !ok || ret <= start || ret-start > uint64(len(code)) {
		return false
	}
	for at := start; at < ret; {
		in, err := decodeAt(code[at-start:], at, a)
		if err != nil || in.Len == 0 || in.Inst.Op == 0 && !isEndbr(code[at-start:]) {
			return false
		}
		next := at + uint64(in.Len)
		if next == ret {
			return in.Class == disasm.Call && in.Inst.Op == x86asm.CALL && in.Target == target
		}
		at = next
	}
	return false // ret falls inside an instruction
}

// funcWrites decodes a whole function and returns the set (bit n: DWARF
// register n) of general-purpose registers it may write; ok is false when
// that cannot be known: an undecodable byte, a call, control leaving the
// function, an instruction that may write anything, or code that does not
// end in a return or a jump (it would run on past the bytes given: a
// function whose extent was not known from a symbol's size, FuncCode's
// cfiGapFunc).
func funcWrites(a *arch.Arch, start uint64, code []byte) (written uint32, ok bool) {
	end := start + uint64(len(code))
	last := disasm.Other
	for at := start; at < end; {
		in, err := decodeAt(code[at-start:], at, a)
		if err != nil || in.Len == 0 {
			return 0, false
		}
		if in.Inst.Op == 0 {
			if !isEndbr(code[at-start:]) {
				return 0, false
			}
			at += uint64(in.Len)
			continue
		}
		next := at + uint64(in.Len)
		switch in.Class {
		case disasm.Call:
			if in.Inst.Op != x86asm.CALL || in.Target != next {
				return 0, false
			}
		case disasm.Jump, disasm.CondJump:
			if in.Target < start || in.Target >= end { // indirect: Target 0
				return 0, false
			}
		}
		w, ok := insnWrites(in, a)
		if !ok {
			return 0, false
		}
		written |= w
		last = in.Class
		at = next
	}
	if last != disasm.Ret && last != disasm.Jump {
		return 0, false
	}
	return written, true
}

// insnWrites is the set of general-purpose registers an instruction may
// write (over-approximated: a destination that is only compared counts),
// or ok false for one that may write any.
func insnWrites(in *disasm.Insn, a *arch.Arch) (w uint32, ok bool) {
	inst := &in.Inst
	add := func(regs ...x86asm.Reg) {
		for _, r := range regs {
			if n, ok := disasm.DWARFReg(r, a); ok && n < 32 {
				w |= 1 << n
			}
		}
	}
	arg := func(i int) {
		if r, ok := inst.Args[i].(x86asm.Reg); ok {
			add(r)
		}
	}
	switch inst.Op {
	case x86asm.PUSH, x86asm.PUSHF, x86asm.PUSHFD, x86asm.PUSHFQ, x86asm.PUSHA, x86asm.PUSHAD,
		x86asm.RET, x86asm.JMP, x86asm.CALL, x86asm.NOP:
		return 0, true // they move only the stack pointer, never a candidate
	case x86asm.POPA, x86asm.POPAD, x86asm.SYSENTER, x86asm.SYSEXIT, x86asm.SYSRET,
		x86asm.IRET, x86asm.IRETD, x86asm.IRETQ, x86asm.LCALL, x86asm.LJMP, x86asm.LRET, x86asm.RSM,
		x86asm.INTO:
		return 0, false
	case x86asm.SYSCALL: // the kernel returns %rax and clobbers %rcx, %r11
		if a.PtrSize == 4 { // AMD's 32-bit syscall (disasm: syscall32Insn)
			add(x86asm.EAX, x86asm.ECX)
			return w, true
		}
		add(x86asm.RAX, x86asm.RCX, x86asm.R11)
		return w, true
	case x86asm.INT:
		if imm, ok := inst.Args[0].(x86asm.Imm); !ok || imm != 0x80 {
			return 0, false
		}
		add(x86asm.EAX)
		if a.PtrSize == 8 { // the compat entry returns %r8-%r11 zeroed
			add(x86asm.R8, x86asm.R9, x86asm.R10, x86asm.R11)
		}
		return w, true
	case x86asm.XCHG, x86asm.XADD, x86asm.MULX: // two destinations
		arg(0)
		arg(1)
		return w, true
	case x86asm.CMPXCHG:
		arg(0)
		add(x86asm.EAX)
		return w, true
	case x86asm.CMPXCHG8B, x86asm.CMPXCHG16B, x86asm.RDTSC, x86asm.RDMSR, x86asm.RDPMC, x86asm.XGETBV,
		x86asm.MUL, x86asm.IMUL, x86asm.DIV, x86asm.IDIV:
		arg(0)
		add(x86asm.EAX, x86asm.EDX)
		return w, true
	case x86asm.RDTSCP:
		add(x86asm.EAX, x86asm.EDX, x86asm.ECX)
		return w, true
	case x86asm.CPUID:
		add(x86asm.EAX, x86asm.EBX, x86asm.ECX, x86asm.EDX)
		return w, true
	case x86asm.CBW, x86asm.CWDE, x86asm.CDQE, x86asm.LAHF, x86asm.AAA, x86asm.AAD, x86asm.AAM,
		x86asm.AAS, x86asm.DAA, x86asm.DAS, x86asm.XLATB, x86asm.IN:
		arg(0)
		add(x86asm.EAX)
		return w, true
	case x86asm.CWD, x86asm.CDQ, x86asm.CQO:
		add(x86asm.EDX)
		return w, true
	case x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE:
		add(x86asm.ECX)
		return w, true
	case x86asm.ENTER, x86asm.LEAVE:
		add(x86asm.EBP, x86asm.ESP)
		return w, true
	case x86asm.MOVSB, x86asm.MOVSW, x86asm.MOVSD, x86asm.MOVSQ,
		x86asm.STOSB, x86asm.STOSW, x86asm.STOSD, x86asm.STOSQ,
		x86asm.LODSB, x86asm.LODSW, x86asm.LODSD, x86asm.LODSQ,
		x86asm.SCASB, x86asm.SCASW, x86asm.SCASD, x86asm.SCASQ,
		x86asm.CMPSB, x86asm.CMPSW, x86asm.CMPSD, x86asm.CMPSQ,
		x86asm.INSB, x86asm.INSW, x86asm.INSD, x86asm.OUTSB, x86asm.OUTSW, x86asm.OUTSD:
		add(x86asm.EAX, x86asm.ECX, x86asm.ESI, x86asm.EDI)
		return w, true
	}
	// Anything else writes at most its first operand.
	arg(0)
	return w, true
}
