package disasm

import (
	"errors"
	"fmt"

	"golang.org/x/arch/x86/x86asm"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// Insn is one decoded instruction at a known address, with everything Effects
// needs precomputed so that evaluating it for a register set is cheap.
type Insn struct {
	PC    uint64      // address of the first byte
	Len   int         // length in bytes
	Class Class       // control-flow / stack category
	Inst  x86asm.Inst // raw x86asm decoding (zero for endbr64/endbr32 and undecodable bytes)
	// Target is the absolute target of a direct call, jump or conditional
	// branch; 0 for indirect branches and non-branches.
	Target uint64
	Bits   int // 64 or 32: the decoding mode

	arch *arch.Arch

	kind kind
	raw  [15]byte // the instruction's bytes (Len of them), for formatting

	// Precomputed memory effects.
	mem     [2]memRef // explicit (ModRM or moffs) memory operands
	nmem    uint8
	str     strOp // string instruction (movs, stos, ...), if str.elem != 0
	stkW    int16 // bytes written just below the stack pointer: [sp-stkW, sp)
	stkR    int16 // bytes read at the stack pointer: [sp, sp+stkR)
	bpR     int16 // bytes read at the frame pointer (leave): [bp, bp+bpR)
	unknown bool  // may touch memory Effects cannot describe
	sp, bp  int8  // DWARF numbers of the stack and frame pointers
	cx      int8  // DWARF number of the count register
	si, di  int8  // DWARF numbers of the string source and destination registers
	amask   uint64
	smask   uint64 // stack address mask (32-bit stacks wrap at 4 GiB)

	// facts caches Silent, OwnTrapFree and NamesSP, set by Decode: a
	// single-stepper asks them at every step of a decoded instruction it
	// keeps (an Insn built otherwise computes them when asked).
	facts facts
}

type facts uint8

const (
	factsSet facts = 1 << iota
	factSilent
	factOwnTrapFree
	factNamesSP
)

// setFacts computes facts; the instruction's decoding is final.
func (in *Insn) setFacts() {
	f := factsSet
	if in.silent() {
		f |= factSilent
	}
	if in.ownTrapFree() {
		f |= factOwnTrapFree
	}
	if in.namesSP() {
		f |= factNamesSP
	}
	in.facts = f
}

type kind uint8

const (
	kindNormal kind = iota
	kindBad         // undecodable; formats as "(bad)"
	kindPrefix      // a lone prefix x86asm could not attach to an instruction
	// Instructions x86asm v0.32 does not know, recognised by localInsn.
	kindEndbr64
	kindEndbr32
	kindRdssp  // rdsspd/rdsspq: reads the shadow-stack pointer into a register
	kindIncssp // incsspd/incsspq: pops shadow-stack entries
	kindRdpkru // rdpkru: %eax = PKRU, %edx = 0
	kindWrpkru // wrpkru: PKRU = %eax
)

// memRef is a memory operand as an address expression over DWARF registers.
type memRef struct {
	disp       uint64 // displacement; for rip-relative operands, the absolute address
	mask       uint64 // address-size mask (0xffff, 0xffffffff or all ones)
	idxMask    uint64 // mask applied to the index register value (xlat's %al)
	size       int32
	base       int8 // DWARF number or noReg
	index      int8 // DWARF number or noReg
	scale      uint8
	read       bool
	write      bool
	seg        bool // %fs/%gs-relative
	gs         bool // %gs-relative (seg)
	spAdj      int8 // added to the stack pointer when used in the address (pop to memory)
	bitReg     int8 // bt/bts/btr/btc: register holding a bit offset (noReg if none)
	bitRegSize int8 // width of that register in bytes
}

// strOp describes a string instruction's implicit operands.
type strOp struct {
	elem    int8 // element size in bytes; 0: not a string instruction
	rep     bool // rep/repz/repnz prefix: repeat rcx times (an upper bound for cmps/scas)
	srcRead bool // reads [rsi] (movs, lods, cmps, outs)
	dstRead bool // reads [rdi] (cmps, scas)
	dstW    bool // writes [rdi] (movs, stos, ins)
	srcSeg  bool // the source has an %fs/%gs override
	srcGS   bool // that override is %gs
}

// ErrNoArch is returned by Decode when no architecture is given.
var ErrNoArch = errors.New("disasm: nil architecture")

// Decode decodes the instruction at the start of code, which was read from
// address pc of a process of architecture a. On a decoding error it still
// returns a usable *Insn (Len 1, Class Other, Effects reporting unknown,
// FormatATT "(bad)") together with the error, so that a caller stepping
// through arbitrary code can carry on.
func Decode(code []byte, pc uint64, a *arch.Arch) (*Insn, error) {
	in, err := decode(code, pc, a)
	if in != nil {
		in.setFacts()
	}
	return in, err
}

func decode(code []byte, pc uint64, a *arch.Arch) (*Insn, error) {
	if a == nil {
		return nil, ErrNoArch
	}
	in := &Insn{PC: pc, Bits: a.Bits, arch: a}
	in.setArch()
	if n := copy(in.raw[:], code); n == 0 {
		in.bad(0)
		return in, errors.New("disasm: no bytes")
	}
	if k, n := localInsn(code, a.Bits); k != kindNormal {
		in.kind, in.Len = k, n
		// incssp reads the shadow stack at the shadow-stack pointer, a
		// register Effects has no value for.
		in.unknown = k == kindIncssp
		return in, nil
	}
	inst, ok, err := vzeroInsn(code, a.Bits)
	if !ok {
		inst, ok = syscall32Insn(code, a.Bits)
	}
	if !ok {
		inst, err = x86asm.Decode(code, a.Bits)
	}
	if err != nil {
		in.bad(inst.Len)
		return in, fmt.Errorf("disasm: %#x: %w", pc, err)
	}
	fixVEXRIPRelative(&inst, code, a.Bits)
	in.Inst, in.Len = inst, inst.Len
	if inst.Op == 0 {
		// x86asm reports a prefix it could not attach as a 1-byte
		// pseudo-instruction with no opcode.
		in.kind = kindPrefix
		in.unknown = true
		return in, nil
	}
	in.analyze()
	return in, nil
}

func (in *Insn) bad(n int) {
	in.kind = kindBad
	in.Len = max(n, 1)
	in.unknown = true
}

func (in *Insn) setArch() {
	in.sp, in.bp = int8(in.arch.SP), int8(in.arch.BP)
	in.cx, in.si, in.di = in.reg(x86asm.ECX), in.reg(x86asm.ESI), in.reg(x86asm.EDI)
	if in.Bits == 64 {
		in.amask, in.smask = ^uint64(0), ^uint64(0)
	} else {
		in.amask, in.smask = 0xffffffff, 0xffffffff
	}
}

// localInsn recognises the instructions x86asm v0.32 does not know, all
// of them register-only (ModRM mod = 11), checked against objdump (binutils
// 2.40) by TestLocalDecodings:
//
//   - endbr64 (f3 0f 1e fa) and endbr32 (f3 0f 1e fb), which x86asm
//     decodes as a lone 1-byte rep prefix;
//   - rdsspd/rdsspq (f3 [rex] 0f 1e /1) and incsspd/incsspq
//     (f3 [rex] 0f ae /5), likewise a lone rep prefix to x86asm: the
//     shadow-stack instructions glibc's longjmp and setcontext run when CET
//     is enabled;
//   - rdpkru (0f 01 ee) and wrpkru (0f 01 ef), unrecognised by x86asm: the
//     protection-key register accessors of glibc's pkey_get/pkey_set.
//
// It returns the kind and length, or kindNormal.
func localInsn(code []byte, bits int) (kind, int) {
	if len(code) >= 3 && code[0] == 0x0f && code[1] == 0x01 {
		switch code[2] {
		case 0xee:
			return kindRdpkru, 3
		case 0xef:
			return kindWrpkru, 3
		}
		return kindNormal, 0
	}
	if len(code) < 4 || code[0] != 0xf3 {
		return kindNormal, 0
	}
	i := 1
	if bits == 64 && code[1]&0xf0 == 0x40 {
		i++
	}
	if len(code) < i+3 || code[i] != 0x0f {
		return kindNormal, 0
	}
	m := code[i+2]
	reg := m >> 3 & 7
	switch {
	case code[i+1] == 0x1e && i == 1 && m == 0xfa:
		return kindEndbr64, 4
	case code[i+1] == 0x1e && i == 1 && m == 0xfb:
		return kindEndbr32, 4
	case code[i+1] == 0x1e && m>>6 == 3 && reg == 1:
		return kindRdssp, i + 3
	case code[i+1] == 0xae && m>>6 == 3 && reg == 5:
		return kindIncssp, i + 3
	}
	return kindNormal, 0
}

// syscall32Insn decodes syscall (0F 05) in 32-bit code, which x86asm
// v0.32 refuses there ("unrecognized instruction": Intel's manual has it
// invalid outside 64-bit mode). AMD's CPUs run it in compatibility mode,
// and on them the kernel's 32-bit vDSO enters every system call with it:
// __kernel_vsyscall is `mov %ecx,%ebp; syscall; int $0x80` there
// (X86_FEATURE_SYSCALL32), `sysenter` on Intel's. The kernel returns past
// the int $0x80 (int80_landing_pad), as after sysenter.
func syscall32Insn(code []byte, bits int) (x86asm.Inst, bool) {
	if bits != 32 || len(code) < 2 || code[0] != 0x0f || code[1] != 0x05 {
		return x86asm.Inst{}, false
	}
	return x86asm.Inst{Op: x86asm.SYSCALL, Opcode: 0x0f05 << 16, Len: 2, Mode: 32, AddrSize: 32, DataSize: 32}, true
}

// vzeroInsn decodes vzeroupper and vzeroall (VEX.0F 77, VEX.L selecting
// which), which x86asm v0.32 decodes one or two bytes too long: its AVX
// decoder reads a ModRM byte after every VEX opcode — and the SIB and
// displacement that byte implies — but 0F 77 has none. glibc's AVX2 string
// functions end in vzeroupper; ret, so a wrong length made the tracer
// predict a pc past the ret. Like objdump, any VEX.pp and VEX.W are
// accepted; VEX.vvvv must be 1111b (Intel SDM: otherwise #UD), and objdump
// shows the instruction as (bad) otherwise.
//
// ok is false when code does not start with VEX 0F 77, and x86asm decodes
// it.
func vzeroInsn(code []byte, bits int) (inst x86asm.Inst, ok bool, err error) {
	// x86asm's rule for a VEX prefix: at the very start, and in 32-bit
	// mode only when the next byte's top two bits are set (else c4/c5 are
	// les/lds with a memory operand).
	if len(code) < 3 || bits == 32 && code[1]&0xc0 != 0xc0 {
		return inst, false, nil
	}
	var n int    // length of the VEX prefix
	var vex byte // the byte holding ~vvvv, L and pp
	switch code[0] {
	case 0xc5:
		n, vex = 2, code[1]
	case 0xc4:
		if len(code) < 4 || code[1]&0x1f != 1 { // map 0F
			return inst, false, nil
		}
		n, vex = 3, code[2]
	default:
		return inst, false, nil
	}
	if code[n] != 0x77 {
		return inst, false, nil
	}
	inst = x86asm.Inst{Len: n + 1, Opcode: 0x77 << 24, Mode: bits, AddrSize: bits, DataSize: bits}
	for i := 0; i < n; i++ {
		inst.Prefix[i] = x86asm.Prefix(code[i]) // as x86asm records a VEX prefix
	}
	if vex>>3&0xf != 0xf {
		return inst, true, errors.New("vzeroupper/vzeroall with VEX.vvvv != 1111b")
	}
	inst.Op = x86asm.VZEROUPPER
	if vex&4 != 0 {
		inst.Op = x86asm.VZEROALL
	}
	return inst, true, nil
}

// fixVEXRIPRelative makes a VEX- or EVEX-encoded memory operand with ModRM
// mod = 00, r/m = 101 rip-relative in 64-bit mode, as the CPU does: x86asm
// v0.32's AVX decoder leaves it as an absolute address, so `vmovdqa
// 0x4d429(%rip),%ymm0` read 0x4d429 instead of the constant next to the
// code. (With a SIB byte, base 101 and mod 00 is absolute in both modes,
// and in 32-bit mode r/m 101 is absolute.)
func fixVEXRIPRelative(inst *x86asm.Inst, code []byte, bits int) {
	if bits != 64 || inst.Len < 4 {
		return
	}
	var modrm int // the opcode byte follows the prefix; ModRM follows it
	switch code[0] {
	case 0xc5:
		modrm = 3
	case 0xc4:
		modrm = 4
	case 0x62:
		modrm = 5
	default:
		return
	}
	if !inst.Prefix[0].IsVEX() && !inst.Prefix[0].IsEVEX() || modrm >= inst.Len || code[modrm]&0xc7 != 0x05 {
		return
	}
	for i, a := range inst.Args {
		if m, ok := a.(x86asm.Mem); ok && m.Base == 0 && m.Index == 0 {
			m.Base = x86asm.RIP
			inst.Args[i] = m
			return
		}
	}
}

// Mnemonic-independent facts about the encoding, recovered from the bytes
// because x86asm does not expose them.
type encoding struct {
	modrm    int // offset of the ModRM byte, -1 if none
	mod      int
	opcode   int // offset of the (last) opcode byte
	map0F    bool
	vex      bool
	nprefix  int // legacy prefix bytes
	rex      byte
	addrSize int
}

// encodingOf locates the opcode and ModRM bytes the same way x86asm reads
// them: legacy prefixes, then at most one REX (64-bit mode), or a VEX/EVEX
// prefix at the very start.
func (in *Insn) encodingOf() encoding {
	b := in.raw[:in.Len]
	e := encoding{modrm: -1, addrSize: in.Bits}
	i := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case 0xf0, 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0x66:
			continue
		case 0x67:
			if in.Bits == 64 {
				e.addrSize = 32
			} else {
				e.addrSize = 16
			}
			continue
		}
		break
	}
	e.nprefix = i
	if i >= len(b) {
		return e
	}
	vexStart := i == 0 && len(b) > 1 && (in.Bits == 64 || b[1] >= 0xc0)
	switch {
	case vexStart && b[0] == 0xc5:
		e.vex, e.map0F, i = true, true, 2
	case vexStart && b[0] == 0xc4:
		e.vex, e.map0F, i = true, true, 3
	case vexStart && b[0] == 0x62:
		e.vex, e.map0F, i = true, true, 4
	default:
		if in.Bits == 64 && b[i]&0xf0 == 0x40 {
			e.rex = b[i]
			i++
		}
		if i < len(b) && b[i] == 0x0f {
			e.map0F = true
			i++
			if i < len(b) && (b[i] == 0x38 || b[i] == 0x3a) {
				i++
			}
		}
	}
	e.opcode = i
	if hasModRM(in.Inst) && i+1 < len(b) {
		e.modrm = i + 1
		e.mod = int(b[i+1] >> 6)
	}
	return e
}

// hasModRM reports whether the instruction has an operand that can only
// come from a ModRM byte (a register/memory operand, or a register operand
// of an instruction that also has a ModRM memory form).
func hasModRM(inst x86asm.Inst) bool {
	for _, a := range inst.Args {
		if a == nil {
			break
		}
		if m, ok := a.(x86asm.Mem); ok && !isImplicitMem(inst, m) {
			return true
		}
	}
	return false
}

// isImplicitMem reports whether m is a memory operand that is not encoded in
// a ModRM byte: string instruction operands and the moffs of mov a0-a3.
func isImplicitMem(inst x86asm.Inst, m x86asm.Mem) bool {
	if stringElem(inst.Op) != 0 || inst.Op == x86asm.XLATB {
		return true
	}
	if inst.Op == x86asm.MOV && m.Base == 0 && m.Index == 0 && m.Scale == 0 {
		op := inst.Opcode >> 24
		return op >= 0xa0 && op <= 0xa3
	}
	return false
}

// stringElem returns the element size of a string instruction, or 0.
func stringElem(op x86asm.Op) int {
	switch op {
	case x86asm.MOVSB, x86asm.CMPSB, x86asm.STOSB, x86asm.LODSB, x86asm.SCASB, x86asm.INSB, x86asm.OUTSB:
		return 1
	case x86asm.MOVSW, x86asm.CMPSW, x86asm.STOSW, x86asm.LODSW, x86asm.SCASW, x86asm.INSW, x86asm.OUTSW:
		return 2
	case x86asm.MOVSD, x86asm.CMPSD, x86asm.STOSD, x86asm.LODSD, x86asm.SCASD, x86asm.INSD, x86asm.OUTSD:
		return 4
	case x86asm.MOVSQ, x86asm.CMPSQ, x86asm.STOSQ, x86asm.LODSQ, x86asm.SCASQ:
		return 8
	}
	return 0
}

// hasPrefix reports whether the instruction carries prefix byte p.
func hasPrefix(inst *x86asm.Inst, p byte) bool {
	for _, q := range inst.Prefix {
		if q == 0 {
			break
		}
		if q.IsVEX() || q.IsEVEX() {
			// x86asm keeps the VEX/EVEX payload bytes after the prefix
			// byte: they are not prefixes (c5 65 is no %gs).
			break
		}
		if byte(q) == p {
			return true
		}
	}
	return false
}

// opSize16 reports whether an operand-size prefix makes a stack operation
// 16-bit wide.
func (in *Insn) opSize16() bool {
	if in.Bits == 64 && in.Inst.Prefix[0] != 0 {
		for _, p := range in.Inst.Prefix {
			if p == 0 {
				break
			}
			if p.IsREX() && p&x86asm.PrefixREXW != 0 {
				return false
			}
		}
	}
	return hasPrefix(&in.Inst, 0x66)
}

// analyze fills in Class, Target and the precomputed effects.
func (in *Insn) analyze() {
	inst := &in.Inst
	ptr := in.Bits / 8
	stk := ptr // width of push/pop/pushf/popf/leave/ret operations
	if in.opSize16() {
		stk = 2
	}
	for _, a := range inst.Args {
		if r, ok := a.(x86asm.Rel); ok {
			t := in.PC + uint64(in.Len) + uint64(int64(r))
			if in.Bits == 32 {
				t &= 0xffffffff
				if inst.DataSize == 16 {
					t &= 0xffff
				}
			}
			in.Target = t
		}
	}
	e := in.encodingOf()
	if e.addrSize != 64 {
		in.amask = 1<<e.addrSize - 1
	}

	switch op := inst.Op; op {
	case x86asm.CALL:
		in.Class = Call
		in.stkW = int16(ptr)
		if in.Bits == 32 && stk == 2 {
			in.stkW = 2
		}
	case x86asm.LCALL:
		in.Class = Call
		in.stkW = int16(2 * ptr)
		in.unknown = true
	case x86asm.RET:
		in.Class = Ret
		in.stkR = int16(ptr)
		if in.Bits == 32 && stk == 2 {
			in.stkR = 2
		}
	case x86asm.LRET:
		in.Class = Ret
		in.stkR = int16(2 * ptr)
	case x86asm.IRET, x86asm.IRETD, x86asm.IRETQ:
		in.Class = Ret
		in.stkR = int16(3 * ptr)
		if in.Bits == 64 {
			in.stkR = int16(5 * ptr)
		}
		in.unknown = true
	case x86asm.JMP:
		in.Class = Jump
	case x86asm.LJMP:
		in.Class = Jump
		in.unknown = true // far pointer operand
	case x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE, x86asm.JG, x86asm.JGE,
		x86asm.JL, x86asm.JLE, x86asm.JNE, x86asm.JNO, x86asm.JNP, x86asm.JNS, x86asm.JO,
		x86asm.JP, x86asm.JS, x86asm.JCXZ, x86asm.JECXZ, x86asm.JRCXZ,
		x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE:
		in.Class = CondJump
	case x86asm.SYSCALL, x86asm.SYSENTER:
		in.Class = Syscall
		in.unknown = true
	case x86asm.INT:
		switch n, _ := inst.Args[0].(x86asm.Imm); {
		case n == 0x80:
			in.Class = Syscall
			in.unknown = true
		case n == 3:
			in.Class = Halt
		default:
			in.unknown = true
		}
	case x86asm.INTO, x86asm.SYSEXIT, x86asm.SYSRET:
		in.unknown = true
	case x86asm.HLT, x86asm.UD0, x86asm.UD1, x86asm.UD2, x86asm.ICEBP:
		in.Class = Halt
	case x86asm.PUSH:
		in.Class = Push
		in.stkW = int16(stk)
	case x86asm.POP:
		in.Class = Pop
		in.stkR = int16(stk)
	case x86asm.PUSHF, x86asm.PUSHFD, x86asm.PUSHFQ:
		in.Class = Push
		in.stkW = int16(stk)
	case x86asm.POPF, x86asm.POPFD, x86asm.POPFQ:
		in.Class = Pop
		in.stkR = int16(stk)
	case x86asm.PUSHA, x86asm.PUSHAD:
		in.Class = Push
		in.stkW = int16(8 * stk)
	case x86asm.POPA, x86asm.POPAD:
		in.Class = Pop
		in.stkR = int16(8 * stk)
	case x86asm.LEAVE:
		in.Class = Leave
		in.bpR = int16(stk)
	case x86asm.ENTER:
		// enter $n,$0 pushes the frame pointer; a non-zero nesting level
		// also copies frame pointers from the old frame.
		in.stkW = int16(stk)
		if lvl, _ := inst.Args[1].(x86asm.Imm); lvl&0x1f != 0 {
			in.unknown = true
		}
	case x86asm.XLATB:
		m := memRef{base: in.reg(x86asm.EBX), index: in.reg(x86asm.EAX), scale: 1, idxMask: 0xff,
			mask: in.amask, size: 1, read: true, bitReg: noReg}
		m.seg, m.gs = segOverride(inst)
		in.mem[0], in.nmem = m, 1
		return
	case x86asm.MASKMOVQ, x86asm.MASKMOVDQU, x86asm.VMASKMOVDQU:
		n := int32(16)
		if op == x86asm.MASKMOVQ {
			n = 8
		}
		in.mem[0] = memRef{base: in.di, index: noReg, mask: in.amask, idxMask: ^uint64(0),
			size: n, write: true, bitReg: noReg}
		in.mem[0].seg, in.mem[0].gs = segOverride(inst)
		in.nmem = 1
		return
	}
	if n := stringElem(inst.Op); n != 0 {
		in.stringOp(n)
		return
	}
	if unknownMemOp(inst.Op) {
		in.unknown = true
	}
	for i, a := range inst.Args {
		if a == nil {
			break
		}
		m, ok := a.(x86asm.Mem)
		if !ok {
			continue
		}
		if int(in.nmem) == len(in.mem) {
			in.unknown = true
			break
		}
		r, ok := in.memRef(m, e)
		if !ok {
			in.unknown = true
			continue
		}
		r.read, r.write = memRole(inst, i)
		if !r.read && !r.write {
			continue
		}
		r.size = int32(in.memSize())
		if r.size <= 0 {
			r.size = 1
			in.unknown = true
		}
		if inst.Op == x86asm.POP {
			r.spAdj = int8(stk)
		}
		if isBitOp(inst.Op) {
			if reg, ok := inst.Args[1].(x86asm.Reg); ok {
				if d, ok := DWARFReg(reg, in.arch); ok {
					_, sz, _, _ := gpr(reg)
					r.bitReg, r.bitRegSize = int8(d), int8(sz)
				}
			}
		}
		in.mem[in.nmem] = r
		in.nmem++
	}
}

// segOverride reports whether the instruction has an %fs or %gs prefix,
// and whether it is %gs.
func segOverride(inst *x86asm.Inst) (seg, gs bool) {
	gs = hasPrefix(inst, 0x65)
	return gs || hasPrefix(inst, 0x64), gs
}

func (in *Insn) stringOp(n int) {
	inst := &in.Inst
	s := strOp{elem: int8(n)}
	s.rep = hasPrefix(inst, 0xf3) || hasPrefix(inst, 0xf2)
	switch inst.Op {
	case x86asm.MOVSB, x86asm.MOVSW, x86asm.MOVSD, x86asm.MOVSQ:
		s.srcRead, s.dstW = true, true
	case x86asm.CMPSB, x86asm.CMPSW, x86asm.CMPSD, x86asm.CMPSQ:
		s.srcRead, s.dstRead = true, true
	case x86asm.STOSB, x86asm.STOSW, x86asm.STOSD, x86asm.STOSQ, x86asm.INSB, x86asm.INSW, x86asm.INSD:
		s.dstW = true
	case x86asm.LODSB, x86asm.LODSW, x86asm.LODSD, x86asm.LODSQ, x86asm.OUTSB, x86asm.OUTSW, x86asm.OUTSD:
		s.srcRead = true
	case x86asm.SCASB, x86asm.SCASW, x86asm.SCASD, x86asm.SCASQ:
		s.dstRead = true
	}
	s.srcSeg, s.srcGS = segOverride(inst)
	in.str = s
}

// memRef converts an x86asm memory operand to an address expression.
func (in *Insn) memRef(m x86asm.Mem, e encoding) (memRef, bool) {
	m.Disp = signedDisp(m)
	r := memRef{base: noReg, index: noReg, bitReg: noReg, mask: in.amask,
		idxMask: ^uint64(0), disp: uint64(m.Disp)}
	if m.Segment == x86asm.FS || m.Segment == x86asm.GS {
		r.seg, r.gs = true, m.Segment == x86asm.GS
	}
	switch m.Base {
	case 0:
	case x86asm.RIP, x86asm.EIP:
		r.disp = (in.PC + uint64(in.Len) + uint64(m.Disp)) & r.mask
	default:
		d, ok := DWARFReg(m.Base, in.arch)
		if !ok {
			return r, false
		}
		r.base = int8(d)
		r.mask = regMask(m.Base)
	}
	if m.Index != 0 {
		d, ok := DWARFReg(m.Index, in.arch)
		if !ok {
			return r, false // VSIB (gather/scatter) or garbage
		}
		r.index, r.scale = int8(d), m.Scale
		r.mask = regMask(m.Index)
	}
	return r, true
}

// regMask returns the address-size mask implied by an address register.
func regMask(r x86asm.Reg) uint64 {
	switch _, sz, _, _ := gpr(r); sz {
	case 2:
		return 0xffff
	case 4:
		return 0xffffffff
	}
	return ^uint64(0)
}

func isBitOp(op x86asm.Op) bool {
	switch op {
	case x86asm.BT, x86asm.BTS, x86asm.BTR, x86asm.BTC:
		return true
	}
	return false
}

// memSize returns the width of the instruction's explicit memory operand.
func (in *Insn) memSize() int {
	inst := &in.Inst
	switch inst.Op {
	case x86asm.FXSAVE, x86asm.FXSAVE64, x86asm.FXRSTOR, x86asm.FXRSTOR64:
		return 512
	case x86asm.XSAVE, x86asm.XSAVE64, x86asm.XSAVEOPT, x86asm.XSAVEOPT64,
		x86asm.XSAVEC, x86asm.XSAVEC64, x86asm.XSAVES, x86asm.XSAVES64,
		x86asm.XRSTOR, x86asm.XRSTOR64, x86asm.XRSTORS, x86asm.XRSTORS64:
		return 576 // legacy area and header; the extended areas vary (unknown)
	case x86asm.FNSTENV, x86asm.FLDENV:
		if inst.DataSize == 16 {
			return 14
		}
		return 28
	case x86asm.FNSAVE, x86asm.FRSTOR:
		if inst.DataSize == 16 {
			return 94
		}
		return 108
	case x86asm.FNSTCW, x86asm.FLDCW, x86asm.FNSTSW:
		return 2
	case x86asm.FLD, x86asm.FSTP, x86asm.FBLD, x86asm.FBSTP:
		// x86asm leaves MemBytes 0 for the 80-bit forms, fldt/fstpt
		// (db /5, db /7) and fbld/fbstp (df /4, df /6): a 10-byte
		// extended real or packed BCD.
		if inst.MemBytes == 0 {
			return 10
		}
	case x86asm.STMXCSR, x86asm.LDMXCSR, x86asm.VSTMXCSR, x86asm.VLDMXCSR:
		return 4
	case x86asm.SGDT, x86asm.SIDT, x86asm.LGDT, x86asm.LIDT:
		if in.Bits == 64 {
			return 10
		}
		return 6
	case x86asm.SLDT, x86asm.STR, x86asm.SMSW, x86asm.LLDT, x86asm.LTR, x86asm.LMSW,
		x86asm.VERR, x86asm.VERW, x86asm.ARPL:
		return 2
	case x86asm.CALL, x86asm.JMP:
		if inst.MemBytes == 0 {
			return in.Bits / 8
		}
	case x86asm.MOV:
		// mov to or from a segment register moves 16 bits.
		for _, a := range inst.Args {
			if r, ok := a.(x86asm.Reg); ok && isSeg(r) {
				return 2
			}
		}
	}
	if inst.MemBytes > 0 {
		return inst.MemBytes
	}
	if inst.DataSize > 0 {
		return inst.DataSize / 8
	}
	return 0
}

// unknownMemOp reports instructions whose memory extent Effects cannot
// describe exactly: the state-save family writes a CPU-dependent amount,
// the rest access memory implicitly or through the kernel.
func unknownMemOp(op x86asm.Op) bool {
	switch op {
	case x86asm.XSAVE, x86asm.XSAVE64, x86asm.XSAVEOPT, x86asm.XSAVEOPT64,
		x86asm.XSAVEC, x86asm.XSAVEC64, x86asm.XSAVES, x86asm.XSAVES64,
		x86asm.XRSTOR, x86asm.XRSTOR64, x86asm.XRSTORS, x86asm.XRSTORS64,
		x86asm.FXSAVE, x86asm.FXSAVE64, x86asm.FNSAVE, x86asm.FNSTENV,
		x86asm.FXRSTOR, x86asm.FXRSTOR64, x86asm.FRSTOR, x86asm.FLDENV,
		x86asm.INVLPG, x86asm.LGDT, x86asm.LIDT, x86asm.SGDT, x86asm.SIDT,
		x86asm.LLDT, x86asm.LTR, x86asm.SLDT, x86asm.STR,
		x86asm.MONITOR, x86asm.MWAIT, x86asm.RSM,
		x86asm.LDS, x86asm.LES, x86asm.LFS, x86asm.LGS, x86asm.LSS:
		return true
	}
	return false
}

// signedDisp sign-extends a ModRM displacement: x86asm keeps disp32 (and
// disp16) zero-extended, but the CPU adds it as a signed value.
func signedDisp(m x86asm.Mem) int64 {
	if m.Base >= x86asm.AX && m.Base <= x86asm.DI || m.Index >= x86asm.AX && m.Index <= x86asm.DI {
		return int64(int16(m.Disp))
	}
	return int64(int32(m.Disp))
}
