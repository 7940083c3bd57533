package disasm

import (
	"strconv"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// FormatATT renders the instruction the way GNU objdump -d (binutils 2.40)
// prints its instruction column: the mnemonic with any prefix names, padded
// to 6 characters plus a space when operands follow, then the operands in
// AT&T order. A direct branch target is printed as objdump does, in hex
// without 0x, followed by " <sym>"; a rip-relative memory operand is
// followed by "        # addr <sym>".
//
// sym resolves such addresses and may be nil. It should return exactly the
// text objdump puts between the angle brackets — the nearest preceding symbol
// plus a hex offset, "createproc+0x34", or "printf@plt" for a PLT entry — or
// "" for no annotation (the address is then printed alone).
func (in *Insn) FormatATT(sym func(addr uint64) string) string {
	switch in.kind {
	case kindBad:
		return "(bad)"
	case kindEndbr64:
		return "endbr64"
	case kindEndbr32:
		return "endbr32"
	case kindRdssp:
		return in.shadowStackOp("rdssp")
	case kindIncssp:
		return in.shadowStackOp("incssp")
	case kindRdpkru:
		return "rdpkru"
	case kindWrpkru:
		return "wrpkru"
	case kindPrefix:
		return prefixName(in, 0, in.Inst.Prefix[0])
	}
	f := attFormatter{in: in, inst: in.Inst, sym: sym, e: in.encodingOf(), stRM: -1}
	return f.format()
}

// shadowStackOp formats rdssp or incssp (f3 [rex] 0f xx /r, register
// operand in ModRM.rm): the d or q form by REX.W, the register by REX.B.
func (in *Insn) shadowStackOp(name string) string {
	rm := in.raw[in.Len-1] & 7
	w := false
	if in.Len == 5 {
		if rex := in.raw[1]; rex&8 != 0 {
			w = true
		}
		if in.raw[1]&1 != 0 {
			rm += 8
		}
	}
	if w {
		return name + "q " + attReg[x86asm.RAX+x86asm.Reg(rm)]
	}
	return name + "d " + attReg[x86asm.EAX+x86asm.Reg(rm)]
}

type attFormatter struct {
	in      *Insn
	inst    x86asm.Inst // a copy: prefix bits are adjusted while formatting
	e       encoding
	sym     func(uint64) string
	comment string // "# addr <sym>" of a rip-relative operand
	star    bool   // indirect branch: operand prefixed with '*'
	stRM    int    // x87 register form: index of the ModRM st(i) operand, else -1
}

func (f *attFormatter) format() string {
	inst := &f.inst
	op, args := f.mnemonicAndArgs()

	var b strings.Builder
	pfx := f.prefixes(op)
	b.WriteString(pfx)
	b.WriteString(op)
	if len(args) > 0 {
		for n := len(pfx) + len(op); n < 6; n++ {
			b.WriteByte(' ')
		}
		b.WriteByte(' ')
		if f.star {
			b.WriteByte('*')
		}
		for i, a := range args {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(a)
		}
	}
	_ = inst
	if f.comment != "" {
		b.WriteString("        # ")
		b.WriteString(f.comment)
	}
	return b.String()
}

// annotate returns "addr <sym>" in objdump's style.
func (f *attFormatter) annotate(addr uint64) string {
	s := strconv.FormatUint(addr, 16)
	if f.sym != nil {
		if name := f.sym(addr); name != "" {
			s += " <" + name + ">"
		}
	}
	return s
}

// prefixes returns the names of the prefixes the instruction does not
// consume, each followed by a space, in encoding order.
func (f *attFormatter) prefixes(op string) string {
	inst := &f.inst
	var s string
	for i, p := range inst.Prefix {
		if p == 0 || p.IsVEX() || p.IsEVEX() {
			break
		}
		if p&x86asm.PrefixImplicit != 0 {
			continue
		}
		if p.IsREX() {
			// Only a REX prefix whose bits are not all used is shown.
			s += rexName(byte(p)) + " "
			continue
		}
		if n := prefixName(f.in, i, p); n != "" {
			s += n + " "
		}
	}
	return s
}

func rexName(b byte) string {
	s := "rex"
	if b&0xf == 0 {
		return s
	}
	s += "."
	for _, c := range []struct {
		bit  byte
		name byte
	}{{8, 'W'}, {4, 'R'}, {2, 'X'}, {1, 'B'}} {
		if b&c.bit != 0 {
			s += string(c.name)
		}
	}
	return s
}

// prefixName names a prefix as objdump shows an unconsumed one.
func prefixName(in *Insn, i int, p x86asm.Prefix) string {
	op := in.Inst.Op
	switch p &^ (x86asm.PrefixIgnored | x86asm.PrefixInvalid | x86asm.PrefixImplicit) {
	case x86asm.PrefixLOCK:
		return "lock"
	case x86asm.PrefixREP, x86asm.PrefixXRELEASE:
		switch op {
		case x86asm.CMPSB, x86asm.CMPSW, x86asm.CMPSD, x86asm.CMPSQ,
			x86asm.SCASB, x86asm.SCASW, x86asm.SCASD, x86asm.SCASQ:
			return "repz"
		}
		if stringElem(op) != 0 {
			return "rep"
		}
		if p&0xff00 == x86asm.PrefixXRELEASE&0xff00 {
			return "xrelease"
		}
		return "repz"
	case x86asm.PrefixREPN:
		return "repnz"
	case x86asm.PrefixXACQUIRE:
		return "xacquire"
	case x86asm.PrefixBND:
		return "bnd"
	case x86asm.PrefixCS, x86asm.PrefixPN:
		return "cs"
	case x86asm.PrefixDS, x86asm.PrefixPT:
		if (op == x86asm.CALL || op == x86asm.JMP) && in.Target == 0 {
			return "notrack"
		}
		return "ds"
	case x86asm.PrefixSS:
		return "ss"
	case x86asm.PrefixES:
		return "es"
	case x86asm.PrefixFS:
		return "fs"
	case x86asm.PrefixGS:
		return "gs"
	case x86asm.PrefixDataSize, x86asm.PrefixData16, x86asm.PrefixData32:
		if in.Bits == 16 {
			return "data32"
		}
		return "data16"
	case x86asm.PrefixAddrSize, x86asm.PrefixAddr16, x86asm.PrefixAddr32:
		if in.Bits == 32 {
			return "addr16"
		}
		return "addr32"
	}
	if p.IsREX() {
		return rexName(byte(p))
	}
	return strings.ToLower(p.String())
}

// markUsed marks the last prefix byte b as consumed by the instruction.
func (f *attFormatter) markUsed(b byte) bool {
	for i := len(f.inst.Prefix) - 1; i >= 0; i-- {
		p := f.inst.Prefix[i]
		if p != 0 && !p.IsVEX() && !p.IsEVEX() && byte(p) == b && p&x86asm.PrefixImplicit == 0 {
			f.inst.Prefix[i] |= x86asm.PrefixImplicit
			return true
		}
	}
	return false
}

func (f *attFormatter) hasVEX() bool {
	return f.e.vex
}

// nargs counts the instruction's operands.
func nargs(inst *x86asm.Inst) int {
	n := 0
	for _, a := range inst.Args {
		if a == nil {
			break
		}
		n++
	}
	return n
}

func sizeSuffix(n int) string {
	switch n {
	case 1:
		return "b"
	case 2:
		return "w"
	case 4:
		return "l"
	case 8:
		return "q"
	}
	return ""
}

// mnemonicAndArgs returns the mnemonic (with its size suffix) and the
// formatted operands in AT&T order.
func (f *attFormatter) mnemonicAndArgs() (string, []string) {
	inst := &f.inst
	in := f.in
	op := inst.Op
	name := strings.ToLower(op.String())
	if alt, ok := attNames[op]; ok {
		name = alt
	}
	n := nargs(inst)
	args := inst.Args[:n]
	hasMem := false
	for _, a := range args {
		if _, ok := a.(x86asm.Mem); ok {
			hasMem = true
		}
	}

	// Instruction-specific rewrites.
	switch op {
	case x86asm.NOP:
		if n == 0 && f.e.opcode < in.Len && in.raw[f.e.opcode] == 0x90 && f.markUsed(0x66) {
			return "xchg", []string{"%ax", "%ax"}
		}
	case x86asm.INT:
		if inst.Opcode>>24 == 0xcc {
			return "int3", nil
		}
	case x86asm.ICEBP:
		return "int1", nil
	case x86asm.MOVSXD:
		if inst.DataSize == 64 {
			name = "movslq"
		}
	case x86asm.MOVSX, x86asm.MOVZX:
		name = name[:4] + sizeSuffix(f.argBytes(args[1])) + sizeSuffix(f.argBytes(args[0]))
	case x86asm.MOV:
		if in.Bits == 64 {
			if _, ok := args[1].(x86asm.Imm); ok && inst.DataSize == 64 && inst.Opcode>>24 >= 0xb8 && inst.Opcode>>24 <= 0xbf {
				name = "movabs"
			}
			for _, a := range args {
				if m, ok := a.(x86asm.Mem); ok && isImplicitMem(*inst, m) {
					name = "movabs"
				}
			}
		}
	case x86asm.CMPPS, x86asm.CMPPD, x86asm.CMPSS, x86asm.CMPSD_XMM:
		if imm, ok := args[2].(x86asm.Imm); ok && imm >= 0 && imm < 8 {
			name = "cmp" + sseCmp[imm] + name[3:]
			args = args[:2]
		}
	case x86asm.VCMPPS, x86asm.VCMPPD, x86asm.VCMPSS, x86asm.VCMPSD:
		if imm, ok := args[n-1].(x86asm.Imm); ok && imm >= 0 && imm < 32 {
			name = "vcmp" + avxCmp[imm] + name[4:]
			args = args[:n-1]
		}
	case x86asm.VPCMPB, x86asm.VPCMPUB, x86asm.VPCMPW, x86asm.VPCMPUW,
		x86asm.VPCMPD, x86asm.VPCMPUD, x86asm.VPCMPQ, x86asm.VPCMPUQ:
		// objdump names the predicates it has a pseudo-op for
		// (vpcmpeqb, vpcmpltub, vpcmpnequq...), not 3 (false) or 7 (true).
		if imm, ok := args[n-1].(x86asm.Imm); ok && imm >= 0 && imm < 8 && imm != 3 && imm != 7 {
			name = "vpcmp" + avxCmp[imm] + name[len("vpcmp"):]
			args = args[:n-1]
		}
	case x86asm.PCLMULQDQ:
		if imm, ok := args[2].(x86asm.Imm); ok && imm&^0x11 == 0 {
			name = [...]string{"pclmullqlqdq", "pclmulhqlqdq", "pclmullqhqdq", "pclmulhqhqdq"}[(imm&0x10)>>3|imm&1]
			args = args[:2]
		}
	}
	name = f.x87RegForm(name, n)
	name += f.suffix(name, args, hasMem)
	mask := f.evexMask(args)
	if mask != "" {
		args = append(args[:1:1], args[2:]...) // shown on the destination instead
	}

	// Operands.
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == nil {
			break
		}
		// Shift/rotate by an implicit 1 (d0-d3) shows no count.
		if imm, ok := a.(x86asm.Imm); ok && imm == 1 && i == 1 && (inst.Opcode>>24)&^3 == 0xd0 {
			continue
		}
		out = append(out, f.arg(a, i))
	}
	switch op {
	case x86asm.ENTER, x86asm.BOUND, x86asm.LCALL, x86asm.LJMP:
		// Printed in Intel order.
		if op == x86asm.LCALL || op == x86asm.LJMP {
			if _, ok := args[0].(x86asm.Imm); ok {
				break
			}
			f.star = true
		}
	default:
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	if (op == x86asm.CALL || op == x86asm.JMP) && n > 0 {
		if _, ok := args[0].(x86asm.Rel); !ok {
			f.star = true
		}
	}
	if mask != "" && len(out) > 0 {
		out[len(out)-1] += mask
	}
	return name, out
}

// x87RegForm handles the register forms of the x87 arithmetic opcodes
// (d8-df, ModRM mod = 11) the way objdump prints them: the ModRM operand
// is st(i) even for i = 0 ("fadd %st(0),%st"), and — the AT&T x87 quirk
// binutils keeps (SYSV386_COMPAT) — dc and de swap sub with subr and div
// with divr: Intel's FSUBR ST(i),ST(0) (dc e0+i) is "fsub %st,%st(i)".
func (f *attFormatter) x87RegForm(name string, n int) string {
	in, i := f.in, f.e.opcode
	if i+1 >= in.Len || in.raw[i] < 0xd8 || in.raw[i] > 0xdf || in.raw[i+1] < 0xc0 || n != 2 {
		return name
	}
	if _, ok := f.inst.Args[0].(x86asm.Reg); !ok {
		return name
	}
	switch in.raw[i] {
	case 0xdc, 0xde: // st(i) is the destination: Args[0]
		f.stRM = 0
		if swapped, ok := x87Swapped[name]; ok {
			name = swapped
		}
	default: // st(0) is the destination, st(i) the source: Args[1]
		f.stRM = 1
	}
	return name
}

// x87Swapped pairs the x87 mnemonics AT&T syntax swaps in the dc and de
// register forms.
var x87Swapped = map[string]string{"fsub": "fsubr", "fsubr": "fsub", "fsubp": "fsubrp", "fsubrp": "fsubp",
	"fdiv": "fdivr", "fdivr": "fdiv", "fdivp": "fdivrp", "fdivrp": "fdivp"}

var sseCmp = [8]string{"eq", "lt", "le", "unord", "neq", "nlt", "nle", "ord"}

var avxCmp = [32]string{"eq", "lt", "le", "unord", "neq", "nlt", "nle", "ord",
	"eq_uq", "nge", "ngt", "false", "neq_oq", "ge", "gt", "true",
	"eq_os", "lt_oq", "le_oq", "unord_s", "neq_us", "nlt_uq", "nle_uq", "ord_s",
	"eq_us", "nge_uq", "ngt_uq", "false_os", "neq_os", "ge_oq", "gt_oq", "true_us"}

// evexMask returns the AVX-512 opmask decoration objdump appends to the
// destination, "{%k1}" or with zeroing "{%k1}{z}", when the EVEX prefix
// names a mask register (EVEX.aaa != 0). x86asm lists that register as the
// second operand (Args[1], after the destination); it is then not an
// operand of its own.
func (f *attFormatter) evexMask(args []x86asm.Arg) string {
	in := f.in
	if in.Len < 4 || in.raw[0] != 0x62 || !f.inst.Prefix[0].IsEVEX() || len(args) < 2 {
		return ""
	}
	aaa := in.raw[3] & 7
	if k, ok := args[1].(x86asm.Reg); aaa == 0 || !ok || k != x86asm.K0+x86asm.Reg(aaa) {
		return ""
	}
	s := "{" + attReg[x86asm.K0+x86asm.Reg(aaa)] + "}"
	if f.inst.Zeroing {
		s += "{z}"
	}
	return s
}

func (f *attFormatter) argBytes(a x86asm.Arg) int {
	switch a := a.(type) {
	case x86asm.Mem:
		return f.inst.MemBytes
	case x86asm.Reg:
		_, sz, _, _ := gpr(a)
		return sz
	}
	return 0
}

// suffix returns the operand-size suffix objdump appends to the mnemonic:
// only when no register operand tells the size, and never for the
// instructions whose size is implied (branches, stack operations, setcc...).
func (f *attFormatter) suffix(name string, args []x86asm.Arg, hasMem bool) string {
	inst := &f.inst
	op := inst.Op
	switch op {
	case x86asm.MOVSX, x86asm.MOVZX, x86asm.MOVSXD:
		return ""
	case x86asm.CALL, x86asm.JMP, x86asm.RET, x86asm.PUSH, x86asm.POP, x86asm.LEAVE, x86asm.ENTER:
		if inst.DataSize == 16 && f.markUsed(0x66) {
			return "w"
		}
		// A 16-bit push or pop of memory or an immediate: the decoder took
		// the 0x66 prefix as the operand size already; objdump says pushw.
		if inst.DataSize == 16 && (op == x86asm.PUSH || op == x86asm.POP) && len(args) > 0 {
			if _, reg := args[0].(x86asm.Reg); !reg {
				return "w"
			}
		}
		return ""
	case x86asm.LRET:
		if inst.DataSize == 64 {
			return "q"
		}
		return ""
	case x86asm.CRC32:
		return sizeSuffix(f.argBytes(args[1]))
	}
	if isFloatOp(op) {
		if !hasMem {
			return ""
		}
		return floatSuffix(op, f.in.memSize())
	}
	for i, a := range args {
		r, ok := a.(x86asm.Reg)
		if !ok {
			continue
		}
		switch op {
		case x86asm.SHL, x86asm.SHR, x86asm.SAR, x86asm.ROL, x86asm.ROR, x86asm.RCL, x86asm.RCR:
			if i == 1 {
				continue // the count does not tell the size
			}
		case x86asm.CVTSI2SD, x86asm.CVTSI2SS, x86asm.VCVTSI2SD, x86asm.VCVTSI2SS:
			if isVecReg(r) {
				continue
			}
		}
		if isGPR(r) || isSeg(r) || isVecReg(r) || r >= x86asm.K0 && r <= x86asm.K7 {
			return ""
		}
	}
	if !hasMem {
		return ""
	}
	switch op {
	case x86asm.SETA, x86asm.SETAE, x86asm.SETB, x86asm.SETBE, x86asm.SETE, x86asm.SETG,
		x86asm.SETGE, x86asm.SETL, x86asm.SETLE, x86asm.SETNE, x86asm.SETNO, x86asm.SETNP,
		x86asm.SETNS, x86asm.SETO, x86asm.SETP, x86asm.SETS,
		x86asm.CMPXCHG8B, x86asm.CMPXCHG16B, x86asm.LDMXCSR, x86asm.STMXCSR,
		x86asm.VLDMXCSR, x86asm.VSTMXCSR, x86asm.PREFETCHNTA, x86asm.PREFETCHT0,
		x86asm.PREFETCHT1, x86asm.PREFETCHT2, x86asm.PREFETCHW, x86asm.CLFLUSH,
		x86asm.FXSAVE, x86asm.FXSAVE64, x86asm.FXRSTOR, x86asm.FXRSTOR64,
		x86asm.XSAVE, x86asm.XSAVE64, x86asm.XSAVEC, x86asm.XSAVEC64, x86asm.XSAVEOPT,
		x86asm.XSAVEOPT64, x86asm.XSAVES, x86asm.XSAVES64, x86asm.XRSTOR, x86asm.XRSTOR64,
		x86asm.XRSTORS, x86asm.XRSTORS64, x86asm.INVLPG, x86asm.LGDT, x86asm.LIDT,
		x86asm.SGDT, x86asm.SIDT, x86asm.LLDT, x86asm.SLDT, x86asm.LTR, x86asm.STR,
		x86asm.LMSW, x86asm.SMSW, x86asm.VERR, x86asm.VERW, x86asm.LEA:
		return ""
	}
	if f.hasVEX() {
		return f.vexSuffix()
	}
	return sizeSuffix(inst.MemBytes)
}

// vexSuffix handles the few VEX/EVEX mnemonics whose memory form needs a
// size suffix to be unambiguous.
func (f *attFormatter) vexSuffix() string {
	inst := &f.inst
	switch inst.Op {
	case x86asm.VCVTSI2SD, x86asm.VCVTSI2SS:
		return sizeSuffix(inst.MemBytes)
	case x86asm.VCVTPD2DQ, x86asm.VCVTTPD2DQ, x86asm.VCVTPD2PS:
		switch inst.MemBytes {
		case 16:
			return "x"
		case 32:
			return "y"
		}
	}
	return ""
}

func isFloatOp(op x86asm.Op) bool {
	switch op {
	case x86asm.FADD, x86asm.FMUL, x86asm.FCOM, x86asm.FCOMP, x86asm.FSUB, x86asm.FSUBR,
		x86asm.FDIV, x86asm.FDIVR, x86asm.FLD, x86asm.FST, x86asm.FSTP,
		x86asm.FIADD, x86asm.FIMUL, x86asm.FICOM, x86asm.FICOMP, x86asm.FISUB,
		x86asm.FISUBR, x86asm.FIDIV, x86asm.FIDIVR, x86asm.FILD, x86asm.FIST,
		x86asm.FISTP, x86asm.FISTTP, x86asm.FBLD, x86asm.FBSTP, x86asm.FLDENV,
		x86asm.FNSTENV, x86asm.FLDCW, x86asm.FNSTCW, x86asm.FRSTOR, x86asm.FNSAVE,
		x86asm.FNSTSW:
		return true
	}
	return false
}

// floatSuffix follows binutils' x87 memory-operand naming: s/l/t for 32-,
// 64- and 80-bit reals, s/l/ll for 16-, 32- and 64-bit integers.
func floatSuffix(op x86asm.Op, n int) string {
	switch op {
	case x86asm.FIADD, x86asm.FIMUL, x86asm.FICOM, x86asm.FICOMP, x86asm.FISUB,
		x86asm.FISUBR, x86asm.FIDIV, x86asm.FIDIVR, x86asm.FILD, x86asm.FIST,
		x86asm.FISTP, x86asm.FISTTP:
		switch n {
		case 2:
			return "s"
		case 4:
			return "l"
		case 8:
			return "ll"
		}
	case x86asm.FADD, x86asm.FMUL, x86asm.FCOM, x86asm.FCOMP, x86asm.FSUB, x86asm.FSUBR,
		x86asm.FDIV, x86asm.FDIVR, x86asm.FLD, x86asm.FST, x86asm.FSTP:
		switch n {
		case 4:
			return "s"
		case 8:
			return "l"
		case 10:
			return "t"
		}
	}
	return ""
}

// arg formats operand i.
func (f *attFormatter) arg(a x86asm.Arg, i int) string {
	switch a := a.(type) {
	case x86asm.Reg:
		if a == x86asm.F0 && (nargs(&f.inst) == 1 || i == f.stRM) {
			return "%st(0)" // st(i) with i = 0; the implicit operand is %st
		}
		if a == x86asm.DX {
			switch f.inst.Op {
			case x86asm.IN, x86asm.OUT, x86asm.INSB, x86asm.INSW, x86asm.INSD,
				x86asm.OUTSB, x86asm.OUTSW, x86asm.OUTSD:
				return "(%dx)"
			}
		}
		return attReg[a]
	case x86asm.Mem:
		return f.mem(a)
	case x86asm.Imm:
		return "$0x" + strconv.FormatUint(f.immValue(a, i), 16)
	case x86asm.Rel:
		return f.annotate(f.in.Target)
	}
	return a.String()
}

// immValue masks an immediate to the width objdump prints it with.
func (f *attFormatter) immValue(v x86asm.Imm, i int) uint64 {
	inst := &f.inst
	u := uint64(v)
	switch inst.Op {
	case x86asm.ENTER:
		if i == 0 {
			return u & 0xffff
		}
		return u & 0xff
	case x86asm.RET, x86asm.LRET:
		return u & 0xffff
	case x86asm.INT, x86asm.IN, x86asm.OUT:
		return u & 0xff
	case x86asm.PUSH:
		if f.in.Bits == 64 && inst.DataSize != 16 {
			return u
		}
	}
	// Byte-sized operations and 8-bit immediates of SSE/AVX, shifts and
	// bit tests.
	w := inst.DataSize
	for _, a := range inst.Args {
		switch a := a.(type) {
		case x86asm.Reg:
			if isVecReg(a) || a >= x86asm.K0 && a <= x86asm.K7 {
				return u & 0xff
			}
			if _, sz, _, ok := gpr(a); ok && sz == 1 {
				w = 8
			}
		case x86asm.Mem:
			if inst.MemBytes == 1 {
				w = 8
			}
		}
	}
	switch inst.Op {
	case x86asm.SHL, x86asm.SHR, x86asm.SAR, x86asm.ROL, x86asm.ROR, x86asm.RCL,
		x86asm.RCR, x86asm.BT, x86asm.BTS, x86asm.BTR, x86asm.BTC, x86asm.SHLD, x86asm.SHRD:
		if i > 0 {
			return u & 0xff
		}
	}
	switch w {
	case 8:
		return u & 0xff
	case 16:
		return u & 0xffff
	case 32:
		return u & 0xffffffff
	}
	return u
}

// mem formats a memory operand as objdump does.
func (f *attFormatter) mem(m x86asm.Mem) string {
	inst := &f.inst
	in := f.in
	var b strings.Builder

	// Segment: string operands always show theirs; otherwise an override
	// (in 64-bit mode only %fs and %gs apply).
	if m.Segment != 0 {
		b.WriteString(attReg[m.Segment])
		b.WriteByte(':')
	} else if stringElem(inst.Op) != 0 || inst.Op == x86asm.XLATB {
		b.WriteString("%ds:")
	}
	if stringElem(inst.Op) != 0 || inst.Op == x86asm.XLATB {
		b.WriteString("(" + attReg[m.Base] + ")")
		return b.String()
	}
	if isImplicitMem(*inst, m) { // moffs
		b.WriteString("0x" + strconv.FormatUint(f.absAddr(m.Disp), 16))
		return b.String()
	}
	m.Disp = signedDisp(m)
	if m.Base == x86asm.RIP || m.Base == x86asm.EIP {
		b.WriteString(signedHex(m.Disp))
		b.WriteString("(" + attReg[m.Base] + ")")
		t := in.PC + uint64(in.Len) + uint64(m.Disp)
		if m.Base == x86asm.EIP {
			t &= 0xffffffff
		}
		f.comment = f.annotate(t)
		return b.String()
	}
	hasSIB := m.Scale != 0
	addr16 := m.Base >= x86asm.AX && m.Base <= x86asm.DI || m.Index >= x86asm.AX && m.Index <= x86asm.DI
	haveBase, haveIndex := m.Base != 0, m.Index != 0
	// In 32-bit code an index is needed to tell [disp] from [eiz*1+disp];
	// 64-bit code shows a SIB without base or index only as an address.
	needIndex := hasSIB && !haveBase && !haveIndex && in.Bits == 32 && !addr16
	haveDisp := haveBase || needIndex || hasSIB && (haveIndex || m.Scale != 1)
	if !haveBase && !haveIndex && !needIndex && (!hasSIB || m.Scale == 1) || addr16 && !haveBase && !haveIndex {
		// A bare absolute address.
		b.WriteString("0x" + strconv.FormatUint(f.absAddr(m.Disp), 16))
		return b.String()
	}
	if f.e.mod != 0 || !haveBase || m.Disp != 0 {
		if haveDisp {
			b.WriteString(signedHex(m.Disp))
		} else {
			b.WriteString("0x" + strconv.FormatUint(f.absAddr(m.Disp), 16))
		}
	}
	b.WriteByte('(')
	if haveBase {
		b.WriteString(attReg[m.Base])
	}
	if addr16 {
		if haveIndex {
			b.WriteString("," + attReg[m.Index])
		}
	} else if hasSIB && (m.Scale != 1 || needIndex || haveIndex || haveBase && !isSPBase(m.Base)) {
		b.WriteByte(',')
		switch {
		case haveIndex:
			b.WriteString(attReg[m.Index])
		case f.e.addrSize == 64:
			b.WriteString("%riz")
		default:
			b.WriteString("%eiz")
		}
		b.WriteString("," + strconv.Itoa(int(m.Scale)))
	}
	b.WriteByte(')')
	return b.String()
}

func isSPBase(r x86asm.Reg) bool {
	return r == x86asm.RSP || r == x86asm.ESP || r == x86asm.R12 || r == x86asm.R12L
}

// absAddr masks an absolute address to the address size.
func (f *attFormatter) absAddr(d int64) uint64 {
	if f.e.addrSize == 64 {
		return uint64(d)
	}
	return uint64(d) & (1<<f.e.addrSize - 1)
}

func signedHex(d int64) string {
	if d < 0 {
		return "-0x" + strconv.FormatUint(uint64(-d), 16)
	}
	return "0x" + strconv.FormatUint(uint64(d), 16)
}

// attNames maps x86asm op names to AT&T mnemonics where they differ.
var attNames = map[x86asm.Op]string{
	x86asm.CBW:       "cbtw",
	x86asm.CWDE:      "cwtl",
	x86asm.CDQE:      "cltq",
	x86asm.CWD:       "cwtd",
	x86asm.CDQ:       "cltd",
	x86asm.CQO:       "cqto",
	x86asm.MOVSD:     "movsl",
	x86asm.CMPSD:     "cmpsl",
	x86asm.MOVSD_XMM: "movsd",
	x86asm.CMPSD_XMM: "cmpsd",
	x86asm.LODSB:     "lods",
	x86asm.LODSW:     "lods",
	x86asm.LODSD:     "lods",
	x86asm.LODSQ:     "lods",
	x86asm.STOSB:     "stos",
	x86asm.STOSW:     "stos",
	x86asm.STOSD:     "stos",
	x86asm.STOSQ:     "stos",
	x86asm.SCASB:     "scas",
	x86asm.SCASW:     "scas",
	x86asm.SCASD:     "scas",
	x86asm.SCASQ:     "scas",
	x86asm.INSD:      "insl",
	x86asm.OUTSD:     "outsl",
	x86asm.PUSHFQ:    "pushf",
	x86asm.PUSHFD:    "pushf",
	x86asm.PUSHF:     "pushfw",
	x86asm.POPFQ:     "popf",
	x86asm.POPFD:     "popf",
	x86asm.POPF:      "popfw",
	x86asm.PUSHAD:    "pusha",
	x86asm.PUSHA:     "pushaw",
	x86asm.POPAD:     "popa",
	x86asm.POPA:      "popaw",
	x86asm.IRET:      "iretw",
	x86asm.IRETD:     "iret",
	x86asm.IRETQ:     "iretq",
	x86asm.XLATB:     "xlat",
	x86asm.LRET:      "lret",
	x86asm.LCALL:     "lcall",
	x86asm.LJMP:      "ljmp",
}

// attReg holds AT&T register names.
var attReg [x86asm.TR7 + 1]string

func init() {
	names := func(first x86asm.Reg, list ...string) {
		for i, s := range list {
			attReg[first+x86asm.Reg(i)] = "%" + s
		}
	}
	names(x86asm.AL, "al", "cl", "dl", "bl", "ah", "ch", "dh", "bh", "spl", "bpl", "sil", "dil",
		"r8b", "r9b", "r10b", "r11b", "r12b", "r13b", "r14b", "r15b")
	names(x86asm.AX, "ax", "cx", "dx", "bx", "sp", "bp", "si", "di",
		"r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w")
	names(x86asm.EAX, "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi",
		"r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d")
	names(x86asm.RAX, "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
		"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
	names(x86asm.IP, "ip", "eip", "rip")
	names(x86asm.ES, "es", "cs", "ss", "ds", "fs", "gs")
	attReg[x86asm.F0] = "%st"
	for i := 1; i < 8; i++ {
		attReg[x86asm.F0+x86asm.Reg(i)] = "%st(" + strconv.Itoa(i) + ")"
	}
	for i := 0; i < 8; i++ {
		attReg[x86asm.M0+x86asm.Reg(i)] = "%mm" + strconv.Itoa(i)
		attReg[x86asm.K0+x86asm.Reg(i)] = "%k" + strconv.Itoa(i)
	}
	for i := 0; i < 32; i++ {
		attReg[x86asm.X0+x86asm.Reg(i)] = "%xmm" + strconv.Itoa(i)
		attReg[x86asm.Y0+x86asm.Reg(i)] = "%ymm" + strconv.Itoa(i)
		attReg[x86asm.Z0+x86asm.Reg(i)] = "%zmm" + strconv.Itoa(i)
	}
	for i := 0; i < 16; i++ {
		attReg[x86asm.CR0+x86asm.Reg(i)] = "%cr" + strconv.Itoa(i)
		attReg[x86asm.DR0+x86asm.Reg(i)] = "%db" + strconv.Itoa(i)
	}
	for i := 0; i < 8; i++ {
		attReg[x86asm.TR0+x86asm.Reg(i)] = "%tr" + strconv.Itoa(i)
	}
}
