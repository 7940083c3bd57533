// Package arch describes the target architectures vtrace can trace — amd64
// and i386 — as data: register names, their DWARF numbers and x86 encoding
// numbers, pointer size,
// which registers a callee must preserve, and how the kernel lays out a
// tracee's general registers (NT_PRSTATUS) for each.
//
// Registers are always indexed by their DWARF number (delve's pkg/dwarf/regnum),
// so the CFI unwinder, the disassembler's address evaluation and the
// renderers all speak the same language. Values are held as uint64 for both
// architectures; i386 values are zero-extended.
package arch

import (
	"encoding/binary"
	"fmt"
)

// Arch describes one target architecture.
type Arch struct {
	Name    string // "amd64" or "i386"
	PtrSize int    // 8 or 4
	Bits    int    // 64 or 32: x86asm decoding mode
	PC, SP  int    // DWARF numbers of the program counter and stack pointer
	BP      int    // DWARF number of the frame pointer
	// NumRegs is the number of DWARF-numbered general registers held in Regs
	// (including the PC).
	NumRegs int
	// RegNames maps DWARF numbers to AT&T names without the % sign.
	RegNames []string
	// GPRDWARF maps a general-purpose register's x86 encoding number —
	// the 3-bit ModRM/SIB field extended by REX to 4 bits: ax cx dx bx sp
	// bp si di, then r8-r15 on amd64 (Intel SDM vol. 2, table 2-2) — to
	// its DWARF number. The two orders differ on amd64 (rdx is DWARF 1,
	// rcx 2, rsi 4, rdi 5, rbp 6, rsp 7) and agree on i386. The
	// disassembler and the code scanner of the unwinder both use it.
	GPRDWARF []int
	// CalleeSaved lists the registers the psABI requires a callee to
	// preserve: their stack save slots are what a vfork child can poison.
	CalleeSaved []int
	// PrStatusSize is the size in bytes of NT_PRSTATUS for a tracee of this
	// architecture, as PTRACE_GETREGSET returns it.
	PrStatusSize int
	// prStatusSlot maps DWARF number to the word index in NT_PRSTATUS.
	prStatusSlot []int
	// ELFMachine is the e_machine value (debug/elf.EM_*) of this arch.
	ELFMachine uint16
}

// DWARF register numbers (System V psABI, x86-64 and i386 supplements;
// TestDWARFNumbers checks them against delve's regnum tables). Not imported
// from delve: its regnum package builds name maps at init, 0.3 ms of every
// run's start.
const (
	dwarf64Rax = 0
	dwarf64Rdx = 1
	dwarf64Rcx = 2
	dwarf64Rbx = 3
	dwarf64Rsi = 4
	dwarf64Rdi = 5
	dwarf64Rbp = 6
	dwarf64Rsp = 7
	dwarf64R8  = 8
	dwarf64R9  = 9
	dwarf64R10 = 10
	dwarf64R11 = 11
	dwarf64R12 = 12
	dwarf64R13 = 13
	dwarf64R14 = 14
	dwarf64R15 = 15
	dwarf64Rip = 16

	dwarf32Eax = 0
	dwarf32Ecx = 1
	dwarf32Edx = 2
	dwarf32Ebx = 3
	dwarf32Esp = 4
	dwarf32Ebp = 5
	dwarf32Esi = 6
	dwarf32Edi = 7
	dwarf32Eip = 8
)

// AMD64 is the x86-64 architecture.
var AMD64 = &Arch{
	Name: "amd64", PtrSize: 8, Bits: 64,
	PC: dwarf64Rip, SP: dwarf64Rsp, BP: dwarf64Rbp,
	NumRegs: 17,
	RegNames: []string{"rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
		"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip"},
	GPRDWARF: []int{dwarf64Rax, dwarf64Rcx, dwarf64Rdx, dwarf64Rbx,
		dwarf64Rsp, dwarf64Rbp, dwarf64Rsi, dwarf64Rdi,
		dwarf64R8, dwarf64R9, dwarf64R10, dwarf64R11,
		dwarf64R12, dwarf64R13, dwarf64R14, dwarf64R15},
	CalleeSaved: []int{dwarf64Rbx, dwarf64Rbp, dwarf64R12,
		dwarf64R13, dwarf64R14, dwarf64R15},
	PrStatusSize: 27 * 8,
	// struct user_regs_struct (x86_64): r15 r14 r13 r12 rbp rbx r11 r10 r9 r8
	// rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs
	prStatusSlot: []int{
		dwarf64Rax: 10, dwarf64Rdx: 12, dwarf64Rcx: 11,
		dwarf64Rbx: 5, dwarf64Rsi: 13, dwarf64Rdi: 14,
		dwarf64Rbp: 4, dwarf64Rsp: 19, dwarf64R8: 9,
		dwarf64R9: 8, dwarf64R10: 7, dwarf64R11: 6,
		dwarf64R12: 3, dwarf64R13: 2, dwarf64R14: 1,
		dwarf64R15: 0, dwarf64Rip: 16,
	},
	ELFMachine: 62, // EM_X86_64
}

// I386 is the 32-bit x86 architecture (a compat tracee on an x86-64 kernel).
var I386 = &Arch{
	Name: "i386", PtrSize: 4, Bits: 32,
	PC: dwarf32Eip, SP: dwarf32Esp, BP: dwarf32Ebp,
	NumRegs:  9,
	RegNames: []string{"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip"},
	GPRDWARF: []int{dwarf32Eax, dwarf32Ecx, dwarf32Edx, dwarf32Ebx,
		dwarf32Esp, dwarf32Ebp, dwarf32Esi, dwarf32Edi},
	CalleeSaved:  []int{dwarf32Ebx, dwarf32Ebp, dwarf32Esi, dwarf32Edi},
	PrStatusSize: 17 * 4,
	// struct user_regs_struct (i386): ebx ecx edx esi edi ebp eax xds xes xfs
	// xgs orig_eax eip xcs eflags esp xss
	prStatusSlot: []int{
		dwarf32Eax: 6, dwarf32Ecx: 1, dwarf32Edx: 2,
		dwarf32Ebx: 0, dwarf32Esp: 15, dwarf32Ebp: 5,
		dwarf32Esi: 3, dwarf32Edi: 4, dwarf32Eip: 12,
	},
	ELFMachine: 3, // EM_386
}

// ForELFMachine returns the Arch for an ELF e_machine value, or nil.
func ForELFMachine(m uint16) *Arch {
	switch m {
	case AMD64.ELFMachine:
		return AMD64
	case I386.ELFMachine:
		return I386
	}
	return nil
}

// IsCalleeSaved reports whether DWARF register n is one a callee preserves.
func (a *Arch) IsCalleeSaved(n int) bool {
	for _, r := range a.CalleeSaved {
		if r == n {
			return true
		}
	}
	return false
}

// GPR returns the DWARF number of the general-purpose register with x86
// encoding number enc (0-15 on amd64, 0-7 on i386); ok is false for a
// number the architecture does not have.
func (a *Arch) GPR(enc int) (dwarf int, ok bool) {
	if enc < 0 || enc >= len(a.GPRDWARF) {
		return -1, false
	}
	return a.GPRDWARF[enc], true
}

// RegName returns the AT&T name of DWARF register n ("rbp"), or "r<n>".
func (a *Arch) RegName(n int) string {
	if n >= 0 && n < len(a.RegNames) {
		return a.RegNames[n]
	}
	return fmt.Sprintf("r%d", n)
}

// Regs is a snapshot of a task's general registers, indexed by DWARF number.
type Regs struct {
	Arch *Arch
	R    [17]uint64
	// OrigAX is the syscall number the task entered the kernel with (orig_rax
	// or orig_eax), meaningful at a syscall or ptrace event stop.
	OrigAX uint64
	// TP is the thread pointer (amd64 fs_base): the thread control block,
	// which threads other than the main one keep just above their stack.
	// 0 on i386 (its %gs base is not in NT_PRSTATUS).
	TP uint64
	// GSBase is amd64's gs_base: 0 unless the program set one
	// (arch_prctl ARCH_SET_GS, wrgsbase). 0 on i386.
	GSBase uint64
	// Flags is rflags / eflags. Written back by EncodePrStatus only when
	// nonzero: a value the kernel gave always has bit 1 set, so Regs made
	// by hand leave the task's flags alone.
	Flags uint64
	// GS is the i386 %gs selector: the base of its TLS descriptor (entry
	// GS>>3, PTRACE_GET_THREAD_AREA) is the thread pointer. 0 on amd64.
	GS uint64
}

// FlagTF is the trap flag in Flags.
const FlagTF = 1 << 8

// PC returns the program counter.
func (r *Regs) PC() uint64 { return r.R[r.Arch.PC] }

// SP returns the stack pointer.
func (r *Regs) SP() uint64 { return r.R[r.Arch.SP] }

// DWARF numbers of amd64's segment bases (the psABI's fs.base, gs.base):
// Get gives TP and GSBase by them.
const (
	DwarfFSBase = 58
	DwarfGSBase = 59
)

// Get returns DWARF register n.
func (r *Regs) Get(n int) (uint64, bool) {
	if r.Arch == AMD64 {
		switch n {
		case DwarfFSBase:
			return r.TP, true
		case DwarfGSBase:
			return r.GSBase, true
		}
	}
	if n < 0 || n >= r.Arch.NumRegs {
		return 0, false
	}
	return r.R[n], true
}

// Set sets DWARF register n (it is ignored if n is out of range).
func (r *Regs) Set(n int, v uint64) {
	if n >= 0 && n < r.Arch.NumRegs {
		if r.Arch.PtrSize == 4 {
			v = uint64(uint32(v))
		}
		r.R[n] = v
	}
}

// SetPC sets the program counter.
func (r *Regs) SetPC(v uint64) { r.Set(r.Arch.PC, v) }

// SyscallArg returns the syscall argument n (0-based) as the kernel reads it at
// syscall entry: rdi rsi rdx r10 r8 r9 on amd64, ebx ecx edx esi edi ebp on
// i386.
func (r *Regs) SyscallArg(n int) uint64 {
	if r.Arch == AMD64 {
		return r.R[[]int{dwarf64Rdi, dwarf64Rsi, dwarf64Rdx,
			dwarf64R10, dwarf64R8, dwarf64R9}[n]]
	}
	return r.R[[]int{dwarf32Ebx, dwarf32Ecx, dwarf32Edx,
		dwarf32Esi, dwarf32Edi, dwarf32Ebp}[n]]
}

// AX returns %rax (%eax on i386; DWARF 0 on both): the number of the
// system call a task is about to make, and a call's or system call's
// result after it.
func (r *Regs) AX() uint64 { return r.R[0] }

// CallArg returns integer argument n (0-3) of a function a task is about
// to call, on amd64 (rdi rsi rdx rcx); ok is false on i386, whose cdecl
// arguments are on the stack (at %esp + 4n at the call).
func (r *Regs) CallArg(n int) (v uint64, ok bool) {
	if r.Arch != AMD64 || n < 0 || n > 3 {
		return 0, false
	}
	return r.R[[]int{dwarf64Rdi, dwarf64Rsi, dwarf64Rdx, dwarf64Rcx}[n]], true
}

// DecodePrStatus decodes an NT_PRSTATUS register set as returned by
// PTRACE_GETREGSET. Its length tells the tracee's architecture: the kernel
// returns the tracee's own layout (216 bytes for amd64, 68 for i386).
func DecodePrStatus(buf []byte, regs *Regs) error {
	var a *Arch
	switch len(buf) {
	case AMD64.PrStatusSize:
		a = AMD64
	case I386.PrStatusSize:
		a = I386
	default:
		return fmt.Errorf("NT_PRSTATUS of %d bytes: not an amd64 or i386 tracee", len(buf))
	}
	*regs = Regs{Arch: a} // no value of a previous decode survives
	word := func(i int) uint64 {
		if a.PtrSize == 8 {
			return binary.LittleEndian.Uint64(buf[i*8:])
		}
		return uint64(binary.LittleEndian.Uint32(buf[i*4:]))
	}
	for n := 0; n < a.NumRegs; n++ {
		regs.R[n] = word(a.prStatusSlot[n])
	}
	if a == AMD64 {
		regs.OrigAX = word(15)
		regs.TP = word(21)
		regs.GSBase = word(22)
		regs.Flags = word(18)
	} else {
		regs.OrigAX = uint64(int64(int32(word(11))))
		regs.Flags = word(14)
		regs.GS = word(10) & 0xffff
	}
	return nil
}

// EncodePrStatus writes regs back into an NT_PRSTATUS buffer previously
// filled by DecodePrStatus (other words, such as segment registers, are kept).
func EncodePrStatus(regs *Regs, buf []byte) {
	a := regs.Arch
	for n := 0; n < a.NumRegs; n++ {
		i := a.prStatusSlot[n]
		if a.PtrSize == 8 {
			binary.LittleEndian.PutUint64(buf[i*8:], regs.R[n])
		} else {
			binary.LittleEndian.PutUint32(buf[i*4:], uint32(regs.R[n]))
		}
	}
	switch {
	case regs.Flags == 0:
	case a == AMD64:
		binary.LittleEndian.PutUint64(buf[18*8:], regs.Flags)
	default:
		binary.LittleEndian.PutUint32(buf[14*4:], uint32(regs.Flags))
	}
}
