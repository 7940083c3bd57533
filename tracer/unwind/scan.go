package unwind

import (
	"fmt"

	"golang.org/x/arch/x86/x86asm"

	"github.com/vtrace/vtrace/tracer/arch"
	"github.com/vtrace/vtrace/tracer/disasm"
)

// Code is optionally implemented by the CFI argument of Unwind: with it, a
// frame without CFI is unwound by reading its function's instructions from
// the start up to the pc (the "scan" method) before falling back to frame
// pointers. Hand-written libc entry points have neither CFI nor a frame
// pointer: musl's vfork pops its return address into %rdx before the
// syscall; musl's syscall() only subtracts from %rsp.
type Code interface {
	FuncStart(pc uint64) (uint64, bool)
	InsnAt(pc uint64) (*disasm.Insn, error)
}

// maxScan bounds the bytes decoded from a function's start.
const maxScan = 512

// stepScan unwinds one frame by simulating the stack pointer from the
// function's entry (where it points at the return address) to pc. It
// refuses any path it cannot follow exactly: a branch between the start
// and pc, or a change of the stack pointer other than push, pop, call, and
// add/sub of a constant.
func stepScan(a *arch.Arch, cur regState, look, pc uint64, mem Memory, code Code) (Frame, regState, error) {
	f := Frame{RetReg: -1, Method: "scan"}
	start, ok := code.FuncStart(look)
	if !ok || start > look || pc-start > maxScan {
		return f, cur, fmt.Errorf("no function start for %#x", look)
	}
	w := int64(a.PtrSize)
	var below int64 // bytes pushed below the entry stack pointer
	retIn := -1     // register the return address was popped into
	saved := map[int]int64{}
	for at := start; at < pc; {
		in, err := code.InsnAt(at)
		if err != nil || in.Len == 0 {
			return f, cur, fmt.Errorf("decode at %#x: %v", at, err)
		}
		switch in.Class {
		case disasm.Call, disasm.Syscall, disasm.Other:
			if in.Class == disasm.Other && writesSP(in) {
				d, ok := spAdjust(in)
				if !ok {
					return f, cur, fmt.Errorf("%#x changes the stack pointer", at)
				}
				below += d
			}
		case disasm.Push:
			if in.Inst.Op != x86asm.PUSH || in.Inst.DataSize != 8*int(w) {
				return f, cur, fmt.Errorf("%#x: %v", at, in.Inst.Op)
			}
			below += w
			if r, ok := in.Inst.Args[0].(x86asm.Reg); ok {
				if n, ok := regNum(r, a); ok && isCalleeSaved(a, n) && n != a.SP {
					if _, seen := saved[n]; !seen {
						saved[n] = below
					}
				}
			}
		case disasm.Pop:
			r, isReg := in.Inst.Args[0].(x86asm.Reg)
			n, ok := regNum(r, a)
			if in.Inst.Op != x86asm.POP || !isReg || !ok {
				return f, cur, fmt.Errorf("%#x: %v", at, in.Inst.Op)
			}
			if below == 0 && retIn < 0 {
				retIn = n // the return address leaves the stack for a register
				below = -w
			} else {
				below -= w
			}
			delete(saved, n)
		default: // branches, ret, leave, halt: the path is not a straight line
			return f, cur, fmt.Errorf("%#x: %v before pc", at, in.Class)
		}
		at += uint64(in.Len)
	}
	sp, _ := cur.get(a.SP)
	entry := uint64(int64(sp) + below) // where the return address was at entry
	f.CFA = entry + uint64(w)
	next := cur
	if retIn >= 0 {
		v, ok := cur.get(retIn)
		if !ok {
			return f, cur, fmt.Errorf("return address register %s unknown", a.RegName(retIn))
		}
		f.RetReg, f.Ret = retIn, v
	} else {
		v, err := mem.ReadWord(entry, a.PtrSize)
		if err != nil {
			return f, cur, err
		}
		if v == 0 {
			return f, cur, fmt.Errorf("scanned return slot %#x holds 0", entry)
		}
		f.RetSlot, f.Ret = entry, v
	}
	for n := 0; n < a.NumRegs; n++ {
		if !isCalleeSaved(a, n) {
			next.forget(n)
		}
	}
	for n, off := range saved {
		addr := entry - uint64(off)
		v, err := mem.ReadWord(addr, a.PtrSize)
		if err != nil {
			return f, cur, err
		}
		f.Saved = append(f.Saved, SavedSlot{Reg: n, Addr: addr, Value: v})
		next.set(n, v)
	}
	sortSaved(f.Saved)
	next.set(a.SP, f.CFA)
	next.set(a.PC, f.Ret)
	return f, next, nil
}

// writesSP reports whether an ordinary instruction's destination is the
// stack pointer.
func writesSP(in *disasm.Insn) bool {
	r, ok := in.Inst.Args[0].(x86asm.Reg)
	return ok && (r == x86asm.RSP || r == x86asm.ESP || r == x86asm.SP)
}

// spAdjust is the bytes `sub $imm,%rsp` pushes (negative for add).
func spAdjust(in *disasm.Insn) (int64, bool) {
	imm, ok := in.Inst.Args[1].(x86asm.Imm)
	if !ok {
		return 0, false
	}
	switch in.Inst.Op {
	case x86asm.SUB:
		return int64(imm), true
	case x86asm.ADD:
		return -int64(imm), true
	}
	return 0, false
}

// regNum maps a full-width general register to its DWARF number.
func regNum(r x86asm.Reg, a *arch.Arch) (int, bool) {
	var hw int
	switch {
	case a.PtrSize == 8 && r >= x86asm.RAX && r <= x86asm.R15:
		hw = int(r - x86asm.RAX)
	case a.PtrSize == 4 && r >= x86asm.EAX && r <= x86asm.EDI:
		hw = int(r - x86asm.EAX)
	default:
		return 0, false
	}
	if a.PtrSize == 4 {
		return hw, true // i386 DWARF numbers follow the hardware order
	}
	return [16]int{0, 2, 1, 3, 7, 6, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15}[hw], true
}
