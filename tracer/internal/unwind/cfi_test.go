package unwind

import (
	"encoding/binary"
	"testing"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"github.com/go-delve/delve/pkg/dwarf/regnum"
	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// Hand-built CFI for rules the seed binaries do not use: a .debug_frame
// section with one amd64 CIE (code alignment 1, data alignment -8, return
// address column 16, initial rules CFA = rsp+8 and rip at CFA-8, as gcc's)
// and the given FDEs.

const (
	cfaAdvanceLoc   = 0x40 // | delta
	cfaOffset       = 0x80 // | reg, ULEB factored offset
	cfaRestore      = 0xc0 // | reg
	cfaUndefined    = 0x07
	cfaRegister     = 0x09
	cfaDefCFA       = 0x0c
	cfaDefCFAOffset = 0x0e
	cfaExpression   = 0x10

	opLit0  = 0x30
	opMinus = 0x1c
	opBreg0 = 0x70
)

type testFDE struct {
	begin, size uint64
	insns       []byte
}

func debugFrame(t *testing.T, fdes ...testFDE) frame.FrameDescriptionEntries {
	t.Helper()
	cieBody := []byte{1, 0, 1, 0x78, 16, cfaDefCFA, 7, 8, cfaOffset | 16, 1}
	var sec []byte
	sec = binary.LittleEndian.AppendUint32(sec, uint32(4+len(cieBody)))
	sec = binary.LittleEndian.AppendUint32(sec, 0xffffffff)
	sec = append(sec, cieBody...)
	for _, f := range fdes {
		sec = binary.LittleEndian.AppendUint32(sec, uint32(4+16+len(f.insns)))
		sec = binary.LittleEndian.AppendUint32(sec, 0) // the CIE at offset 0
		sec = binary.LittleEndian.AppendUint64(sec, f.begin)
		sec = binary.LittleEndian.AppendUint64(sec, f.size)
		sec = append(sec, f.insns...)
	}
	parsed, err := frame.Parse(sec, binary.LittleEndian, 0, 8, 0)
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}

// wordMem is Memory over a map of words.
type wordMem map[uint64]uint64

func (m wordMem) ReadWord(addr uint64, size int) (uint64, error) {
	v, ok := m[addr]
	if !ok {
		return 0, &frame.ErrNoFDEForPC{PC: addr} // any error will do
	}
	return v, nil
}

func amd64Regs(pc, sp uint64, set map[int]uint64) *arch.Regs {
	r := &arch.Regs{Arch: arch.AMD64}
	r.SetPC(pc)
	r.Set(regnum.AMD64_Rsp, sp)
	for n, v := range set {
		r.Set(n, v)
	}
	return r
}

const stackTop = 0x7fff0000

func TestReturnAddressInRegister(t *testing.T) {
	// glibc's amd64 vfork: pop %rdi (the return address) before the
	// syscall, with cfi_adjust_cfa_offset(-8) and cfi_register(rip, rdi).
	// The caller at 0x3000 has the CIE's rules.
	cfi := debugFrame(t,
		testFDE{0x1000, 0x20, []byte{cfaAdvanceLoc | 1, cfaDefCFAOffset, 0, cfaRegister, 16, 5}},
		testFDE{0x3000, 0x100, nil},
	)
	sp := uint64(stackTop - 0x100)
	regs := amd64Regs(0x1008, sp, map[int]uint64{regnum.AMD64_Rdi: 0x3004})
	mem := wordMem{sp: 0} // the caller's return address: 0 ends the walk
	frames, err := Unwind(regs, mem, cfi, 8)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 2 {
		t.Fatalf("%d frames, want 2: %+v", len(frames), frames)
	}
	f := frames[0]
	if f.RetSlot != 0 || f.RetReg != regnum.AMD64_Rdi || f.Ret != 0x3004 || f.CFA != sp || f.Method != "cfi" {
		t.Errorf("frame 0: %+v, want return address 0x3004 in rdi, cfa %#x, no slot", f, sp)
	}
	f = frames[1]
	if f.PC != 0x3004 || f.CFA != sp+8 || f.RetSlot != sp || f.RetReg != -1 || f.Ret != 0 {
		t.Errorf("frame 1: %+v, want pc 0x3004, cfa %#x, return slot %#x", f, sp+8, sp)
	}
}

func TestUndefinedReturnAddressIsOutermost(t *testing.T) {
	// _start and clone's child: DW_CFA_undefined rip. The frame's other
	// rules still count: here %rbx and %rbp saved at CFA-16 and CFA-24.
	cfi := debugFrame(t, testFDE{0x1000, 0x20, []byte{
		cfaUndefined, 16, cfaDefCFAOffset, 24, cfaOffset | 3, 2, cfaOffset | 6, 3,
	}})
	sp := uint64(stackTop - 0x100)
	mem := wordMem{sp: 0x6060, sp + 8: 0x3030, sp + 16: 0x1234}
	want := []SavedSlot{{Reg: regnum.AMD64_Rbp, Addr: sp, Value: 0x6060}, {Reg: regnum.AMD64_Rbx, Addr: sp + 8, Value: 0x3030}}
	for i := 0; i < 20; i++ { // the rules come from a map: try several orders
		frames, err := Unwind(amd64Regs(0x1004, sp, nil), mem, cfi, 8)
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) != 1 || frames[0].Ret != 0 || frames[0].RetSlot != 0 || frames[0].CFA != sp+24 {
			t.Fatalf("frames %+v, want one frame without a return address", frames)
		}
		if got := frames[0].Saved; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("saved %+v, want %+v", got, want)
		}
	}
}

func TestExpressionRulesStartWithCFA(t *testing.T) {
	// DW_CFA_expression (and DW_CFA_val_expression) run with the CFA
	// already pushed (DWARF 5, 6.4.2.3): "DW_OP_lit16; DW_OP_minus" is
	// the address CFA-16.
	cfi := debugFrame(t, testFDE{0x1000, 0x20, []byte{
		cfaDefCFA, 7, 24, // CFA = rsp+24
		cfaExpression, 3, 2, opLit0 + 16, opMinus, // rbx at CFA-16
		cfaExpression, 6, 2, opBreg0 + 7, 0, // rbp at rsp+0: no use of the CFA
	}})
	sp := uint64(stackTop - 0x100)
	cfa := sp + 24
	mem := wordMem{sp: 0x6060, cfa - 16: 0xb0b, cfa - 8: 0}
	frames, err := Unwind(amd64Regs(0x1004, sp, nil), mem, cfi, 8)
	if err != nil {
		t.Fatal(err)
	}
	want := []SavedSlot{{Reg: regnum.AMD64_Rbp, Addr: sp, Value: 0x6060}, {Reg: regnum.AMD64_Rbx, Addr: cfa - 16, Value: 0xb0b}}
	if len(frames) != 1 || frames[0].CFA != cfa || frames[0].RetSlot != cfa-8 {
		t.Fatalf("frames %+v, want one with cfa %#x", frames, cfa)
	}
	if got := frames[0].Saved; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("saved %+v, want %+v", got, want)
	}
}

func TestRestoredRegisterKeepsItsValue(t *testing.T) {
	// A callee that pushed %rbx and popped it again (DW_CFA_restore at the
	// ret): the caller's %rbx is the current one. The caller's CFA here is
	// rbx-based, so the walk needs it.
	cfi := debugFrame(t,
		testFDE{0x1000, 0x20, []byte{
			cfaAdvanceLoc | 1, cfaDefCFAOffset, 16, cfaOffset | 3, 2, // push %rbx
			cfaAdvanceLoc | 8, cfaDefCFAOffset, 8, cfaRestore | 3, // pop %rbx
		}},
		testFDE{0x3000, 0x100, []byte{cfaDefCFA, 3, 16}},
	)
	sp := uint64(stackTop - 0x100)
	rbx := uint64(stackTop - 0x40)
	mem := wordMem{sp: 0x3004, rbx + 8: 0}
	frames, err := Unwind(amd64Regs(0x100a, sp, map[int]uint64{regnum.AMD64_Rbx: rbx}), mem, cfi, 8)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 2 || frames[1].CFA != rbx+16 || frames[1].RetSlot != rbx+8 {
		t.Fatalf("frames %+v, want a caller with cfa %#x", frames, rbx+16)
	}
	if len(frames[0].Saved) != 0 {
		t.Errorf("frame 0 saved %+v, want none after the pop", frames[0].Saved)
	}
}
