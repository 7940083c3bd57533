package unwind

import (
	"errors"
	"fmt"
	"slices"

	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
	"golang.org/x/arch/x86/x86asm"
)

// Code is what the CFI given to Unwind may also offer for a pc that no CFI
// covers: the machine code of the function that contains it (known from a
// symbol with a size), and which addresses hold code.
type Code interface {
	FuncCode(pc uint64) (start uint64, code []byte, ok bool)
	IsCode(addr uint64) bool
}

// stepCode unwinds a frame of a function without CFI from its machine code.
// Such functions exist where vforks happen: musl is built without unwind
// tables (its syscall() subtracts 0x58 from %rsp and makes the syscall),
// and glibc's clone and clone3 end their CFI right before the syscall
// (the child's unwind rules would be wrong). The frame-pointer fallback
// then takes the caller's frame for theirs and mislabels the slot the
// child overwrites.
//
// The instructions from the function's start to pc are decoded in order
// and the stack pointer's displacement is summed: push, pop, sub/add of a
// constant, lea of a constant from the stack pointer; a call returns with
// the stack as it was. The return address is then at sp plus that sum, and
// each callee-saved register pushed before it was changed lies in its push
// slot. A pop at the entry depth takes the return address itself into a
// register (musl's vfork: pop %rdx; syscall; push %rdx), where it stays
// until pushed back or overwritten. This is sound under the rule every compiler and every CFI-annotated
// assembly routine follows (DWARF CFI cannot describe anything else): the
// stack pointer's offset from the CFA at an instruction does not depend on
// the path taken to it. The straight-line path from the entry is one such
// path as long as no unconditional jump, return or trap comes before pc
// (what follows those is reached some other way); and the sum holds only
// if nothing moves the stack pointer by an amount the code does not state
// (mov, and, leave, a loop around a push). Anything of the kind, or an
// undecodable byte, and stepCode gives up. The return address found must
// point to code.
//
// In a caller's frame (not first), pc is a return address: the function is
// the one holding the call before it (look = pc-1), as for the CFI.
func stepCode(a *arch.Arch, cur regState, pc, look uint64, first bool, mem Memory, c Code) (Frame, regState, error) {
	f := Frame{RetReg: -1, Method: "code"}
	start, code, ok := c.FuncCode(look)
	if !ok || pc < start || pc-start > uint64(len(code)) {
		return f, cur, errors.New("no function bounds")
	}
	sp, ok := cur.get(a.SP)
	if !ok {
		return f, cur, errors.New("stack pointer unknown")
	}
	ptr := int64(a.PtrSize)
	type push struct {
		reg   int
		depth int64 // stack depth after the push
	}
	var (
		depth    int64 // bytes below the entry stack pointer
		pushes   []push
		touched  = map[int]bool{} // callee-saved registers changed other than by a push
		lastMove uint64           // address just past the last stack-pointer change
		retReg   = -1             // register the return address was popped into
		stores   []ownStore       // the function's word stores through a register
	)
	for at := start; at < pc; {
		in, err := decodeAt(code[at-start:], at, a)
		if err != nil || in.Len == 0 || in.Inst.Op == 0 && !isEndbr(code[at-start:]) {
			return f, cur, fmt.Errorf("undecodable instruction at %#x", at)
		}
		next := at + uint64(in.Len)
		if next > pc {
			return f, cur, fmt.Errorf("pc %#x inside the instruction at %#x", pc, at)
		}
		delta, err := spDelta(in, a, next, next == pc && !first)
		if err != nil {
			return f, cur, fmt.Errorf("%v at %#x", err, at)
		}
		stores = trackStores(stores, in, a, next)
		written := writtenRegs(in, a)
		if retReg >= 0 && slices.Contains(written, retReg) {
			return f, cur, fmt.Errorf("return address overwritten in %s at %#x", a.RegName(retReg), at)
		}
		switch {
		case in.Inst.Op == x86asm.POP && depth == 0 && retReg < 0:
			// A pop of the return address itself into a register: musl's
			// and old glibc's vfork wrappers keep the return address out
			// of the stack the child shares.
			r, ok := in.Inst.Args[0].(x86asm.Reg)
			n, isGPR := disasm.DWARFReg(r, a)
			if !ok || !isGPR || delta != ptr || !fullWidth(r, a) {
				return f, cur, fmt.Errorf("return address popped where vtrace cannot follow it at %#x", at)
			}
			retReg = n
		case in.Inst.Op == x86asm.PUSH && retReg >= 0 && depth == -ptr:
			if r, ok := in.Inst.Args[0].(x86asm.Reg); ok && fullWidth(r, a) {
				if n, _ := disasm.DWARFReg(r, a); n == retReg && delta == -ptr {
					retReg = -1 // pushed back where it was
				}
			}
		}
		if delta != 0 {
			depth -= delta // delta < 0 pushes: depth grows
			lastMove = next
		}
		if depth < 0 && !(retReg >= 0 && depth == -ptr) {
			return f, cur, fmt.Errorf("stack above the entry's at %#x", at)
		}
		if in.Class == disasm.CondJump && in.Target != 0 && in.Target < lastMove && in.Target >= start {
			// A loop back over a stack-pointer change (a stack probe).
			return f, cur, fmt.Errorf("loop over a stack change at %#x", at)
		}
		if in.Class == disasm.Push && in.Inst.Op == x86asm.PUSH {
			if r, ok := in.Inst.Args[0].(x86asm.Reg); ok {
				if n, ok := disasm.DWARFReg(r, a); ok && isCalleeSaved(a, n) && n != a.SP && !touched[n] {
					pushes = append(pushes, push{reg: n, depth: depth})
				}
			}
		} else {
			for _, n := range written {
				touched[n] = true
			}
		}
		at = next
	}
	cfa := (sp + uint64(depth+ptr)) & mask(a)
	var ret uint64
	if retReg >= 0 {
		v, ok := cur.get(retReg)
		if !ok {
			return f, cur, fmt.Errorf("return address in %s, unknown", a.RegName(retReg))
		}
		ret, f.RetReg = v, retReg
	} else {
		retSlot := (sp + uint64(depth)) & mask(a)
		v, err := mem.ReadWord(retSlot, a.PtrSize)
		if err != nil {
			return f, cur, fmt.Errorf("read return slot %#x: %w", retSlot, err)
		}
		ret, f.RetSlot = v, retSlot
		if !c.IsCode(ret) {
			// glibc's clone stores its argument at the top of the child's
			// stack before the syscall; given a stack top just above the
			// return slot (rr#1595), that store overwrote the slot. The
			// slot is still the one the function's ret pops.
			f.RetStored = storedOver(stores, cur, a, retSlot, start, code, pc)
		}
	}
	if !c.IsCode(ret) && f.RetStored == 0 {
		return f, cur, fmt.Errorf("return address %#x is not code", ret)
	}
	f.CFA, f.Ret = cfa, ret

	next := cur
	for n := 0; n < a.NumRegs; n++ {
		if !isCalleeSaved(a, n) || touched[n] {
			next.forget(n)
		}
	}
	saved := map[int]bool{}
	for _, p := range pushes {
		if saved[p.reg] {
			continue // pushed again: the first push holds the caller's value
		}
		saved[p.reg] = true
		slot := (sp + uint64(depth-p.depth)) & mask(a)
		v, src, err := readSaved(mem, slot, a.PtrSize)
		if err != nil {
			next.forget(p.reg)
			continue
		}
		f.Saved = append(f.Saved, SavedSlot{Reg: p.reg, Addr: slot, Value: v})
		next.setFrom(p.reg, v, src)
	}
	sortSaved(f.Saved)
	next.set(a.SP, f.CFA)
	keepUnwritten(a, cur, &next, c, look, ret, func(int) bool { return false })
	next.set(a.PC, ret)
	return f, next, nil
}

// spDelta is how an instruction moves the stack pointer (negative: down),
// or an error when stepCode cannot follow it. next is the address after the
// instruction; final says it is the call a caller frame's pc returns from.
func spDelta(in *disasm.Insn, a *arch.Arch, next uint64, final bool) (int64, error) {
	inst := &in.Inst
	// push and pop move a word (8 bytes in 64-bit mode whatever x86asm's
	// DataSize says), 2 bytes with an operand-size prefix.
	size := int64(a.PtrSize)
	for _, p := range inst.Prefix {
		if p == 0 {
			break
		}
		if p&0xff == x86asm.PrefixDataSize {
			size = 2
		}
	}
	switch in.Class {
	case disasm.Jump, disasm.Ret, disasm.Halt:
		return 0, errors.New("control leaves the straight line")
	case disasm.Call:
		if inst.Op != x86asm.CALL {
			return 0, errors.New("far call")
		}
		if in.Target == next && !final {
			return -int64(a.PtrSize), nil // call 1f; 1: pop %ebx (position-independent i386 code)
		}
		return 0, nil
	case disasm.Leave:
		return 0, errors.New("leave")
	}
	switch inst.Op {
	case x86asm.PUSH, x86asm.PUSHF, x86asm.PUSHFD, x86asm.PUSHFQ:
		return -size, nil
	case x86asm.POP, x86asm.POPF, x86asm.POPFD, x86asm.POPFQ:
		if r, ok := inst.Args[0].(x86asm.Reg); ok && isSP(r) {
			return 0, errors.New("pop of the stack pointer")
		}
		return size, nil
	case x86asm.PUSHA, x86asm.PUSHAD, x86asm.POPA, x86asm.POPAD, x86asm.ENTER:
		return 0, errors.New("pusha, popa or enter")
	}
	dst, _ := inst.Args[0].(x86asm.Reg)
	if !isSP(dst) {
		for _, arg := range inst.Args[1:] {
			if r, ok := arg.(x86asm.Reg); ok && isSP(r) && exchanges(inst.Op) {
				return 0, errors.New("exchange with the stack pointer")
			}
		}
		return 0, nil
	}
	switch inst.Op {
	case x86asm.CMP, x86asm.TEST, x86asm.BT:
		return 0, nil
	case x86asm.SUB, x86asm.ADD:
		if imm, ok := inst.Args[1].(x86asm.Imm); ok {
			if inst.Op == x86asm.SUB {
				return -int64(imm), nil
			}
			return int64(imm), nil
		}
	case x86asm.LEA:
		if m, ok := inst.Args[1].(x86asm.Mem); ok && isSP(m.Base) && m.Index == 0 && m.Segment == 0 {
			return m.Disp, nil
		}
	}
	return 0, fmt.Errorf("%v changes the stack pointer", inst.Op)
}

// isEndbr tells endbr64 and endbr32 (which disasm decodes with no x86asm
// opcode) from other opcode-less decodings (a lone prefix, rdssp).
func isEndbr(code []byte) bool {
	return len(code) >= 4 && code[0] == 0xf3 && code[1] == 0x0f && code[2] == 0x1e && (code[3] == 0xfa || code[3] == 0xfb)
}

func exchanges(op x86asm.Op) bool {
	return op == x86asm.XCHG || op == x86asm.XADD || op == x86asm.CMPXCHG
}

func isSP(r x86asm.Reg) bool {
	return r == x86asm.RSP || r == x86asm.ESP || r == x86asm.SP || r == x86asm.SPB
}

// writtenRegs lists the DWARF numbers of the registers an instruction may
// change, as far as the callee-saved ones go: its destination register, both
// registers of an exchange, %ebx/%rbx for cpuid and cmpxchg8b/16b.
func writtenRegs(in *disasm.Insn, a *arch.Arch) []int {
	inst := &in.Inst
	var out []int
	add := func(arg x86asm.Arg) {
		if r, ok := arg.(x86asm.Reg); ok {
			if n, ok := disasm.DWARFReg(r, a); ok {
				out = append(out, n)
			}
		}
	}
	switch inst.Op {
	case x86asm.CMP, x86asm.TEST, x86asm.BT, x86asm.PUSH:
		return nil
	case x86asm.XCHG, x86asm.XADD, x86asm.CMPXCHG:
		add(inst.Args[0])
		add(inst.Args[1])
		return out
	case x86asm.CPUID, x86asm.CMPXCHG8B, x86asm.CMPXCHG16B:
		bx, _ := disasm.DWARFReg(x86asm.EBX, a)
		return []int{bx}
	}
	add(inst.Args[0])
	return out
}

// fullWidth reports whether r is a whole general-purpose register of the
// arch (%rdx on amd64, %edx on i386), able to hold an address.
func fullWidth(r x86asm.Reg, a *arch.Arch) bool {
	if a.PtrSize == 8 {
		return r >= x86asm.RAX && r <= x86asm.R15
	}
	return r >= x86asm.EAX && r <= x86asm.EDI
}

// ownStore is a word store of the function being unwound, `mov ...,
// off(%base)`, its address kept as the base register's value at pc plus
// off: an add or sub of a constant to the base after the store moves off,
// any other write of the base forgets the store.
type ownStore struct {
	pc   uint64
	base int
	off  int64
}

// trackStores updates stores for the instruction in (next: the address
// after it) and adds in if it is a word store through a register.
func trackStores(stores []ownStore, in *disasm.Insn, a *arch.Arch, next uint64) []ownStore {
	w, ok := insnWrites(in, a)
	if !ok || in.Class == disasm.Call && in.Target != next {
		return nil // a callee (or anything) may have changed the registers
	}
	kept := stores[:0]
	for _, st := range stores {
		if w&(1<<st.base) != 0 {
			r, isReg := in.Inst.Args[0].(x86asm.Reg)
			imm, isImm := in.Inst.Args[1].(x86asm.Imm)
			n, _ := disasm.DWARFReg(r, a)
			if !isReg || !isImm || n != st.base || !fullWidth(r, a) || in.Inst.Op != x86asm.ADD && in.Inst.Op != x86asm.SUB {
				continue
			}
			if in.Inst.Op == x86asm.ADD {
				st.off -= int64(imm)
			} else {
				st.off += int64(imm)
			}
		}
		kept = append(kept, st)
	}
	if m, ok := in.Inst.Args[0].(x86asm.Mem); ok && in.Inst.Op == x86asm.MOV && m.Index == 0 && m.Segment == 0 &&
		in.Inst.MemBytes == a.PtrSize && fullWidth(m.Base, a) && !isSP(m.Base) {
		if n, ok := disasm.DWARFReg(m.Base, a); ok {
			kept = append(kept, ownStore{pc: in.PC, base: n, off: m.Disp})
		}
	}
	return kept
}

// storedOver returns the address of the function's own store that wrote
// the word at slot on every path from its entry to pc, or 0. Every path:
// no jump of the function lands after the store and at or before pc, and
// the function has no indirect jump.
func storedOver(stores []ownStore, cur regState, a *arch.Arch, slot, start uint64, code []byte, pc uint64) uint64 {
	for i := len(stores) - 1; i >= 0; i-- {
		st := stores[i]
		b, ok := cur.get(st.base)
		if !ok || (b+uint64(st.off))&mask(a) != slot {
			continue
		}
		targets, ok := jumpTargets(a, start, code)
		if !ok {
			return 0
		}
		for _, t := range targets {
			if t > st.pc && t <= pc {
				return 0
			}
		}
		return st.pc
	}
	return 0
}

// jumpTargets lists the targets of the direct jumps and branches of a
// whole function; ok is false when it does not decode or has an indirect
// jump.
func jumpTargets(a *arch.Arch, start uint64, code []byte) (targets []uint64, ok bool) {
	end := start + uint64(len(code))
	for at := start; at < end; {
		in, err := decodeAt(code[at-start:], at, a)
		if err != nil || in.Len == 0 || in.Inst.Op == 0 && !isEndbr(code[at-start:]) {
			return nil, false
		}
		if in.Class == disasm.Jump || in.Class == disasm.CondJump {
			if in.Target == 0 {
				return nil, false
			}
			targets = append(targets, in.Target)
		}
		at += uint64(in.Len)
	}
	return targets, true
}
