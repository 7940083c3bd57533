package disasm

import (
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

func TestPoppedReg(t *testing.T) {
	cases := []struct {
		a    *arch.Arch
		code []byte
		want int // -1: not a pop
	}{
		{arch.AMD64, []byte{0x5b}, 3},        // pop %rbx
		{arch.AMD64, []byte{0x41, 0x5c}, 12}, // pop %r12
		{arch.AMD64, []byte{0x5d}, 6},        // pop %rbp
		{arch.AMD64, []byte{0xc9}, 6},        // leave
		{arch.AMD64, []byte{0x58}, 0},        // pop %rax
		{arch.AMD64, []byte{0xc3}, -1},       // ret
		{arch.AMD64, []byte{0x8f, 0x00}, -1}, // pop (%rax): a memory destination
		{arch.I386, []byte{0x5b}, 3},         // pop %ebx
		{arch.I386, []byte{0x5e}, 6},         // pop %esi
		{arch.I386, []byte{0xc9}, 5},         // leave: %ebp
	}
	for _, c := range cases {
		in, err := Decode(c.code, 0x1000, c.a)
		if err != nil {
			t.Fatalf("% x: %v", c.code, err)
		}
		got, ok := in.PoppedReg()
		if !ok {
			got = -1
		}
		if got != c.want {
			t.Errorf("%s % x: PoppedReg = %d, want %d", c.a.Name, c.code, got, c.want)
		}
	}
}

// DWARFReg maps every width of a general-purpose register to the full
// register's DWARF number, through arch's one encoding table; the expected
// names are the psABI's (DWARF numbering as arch.RegName prints it).
func TestDWARFReg(t *testing.T) {
	cases := []struct {
		r     x86asm.Reg
		amd64 string // "" when not a general-purpose register
		i386  string // "" when i386 lacks it
	}{
		{x86asm.AL, "rax", "eax"}, {x86asm.AH, "rax", "eax"}, {x86asm.AX, "rax", "eax"},
		{x86asm.EAX, "rax", "eax"}, {x86asm.RAX, "rax", "eax"},
		{x86asm.CL, "rcx", "ecx"}, {x86asm.CH, "rcx", "ecx"}, {x86asm.ECX, "rcx", "ecx"},
		{x86asm.DL, "rdx", "edx"}, {x86asm.DH, "rdx", "edx"}, {x86asm.RDX, "rdx", "edx"},
		{x86asm.BL, "rbx", "ebx"}, {x86asm.BH, "rbx", "ebx"}, {x86asm.EBX, "rbx", "ebx"},
		{x86asm.SPB, "rsp", "esp"}, {x86asm.SP, "rsp", "esp"}, {x86asm.ESP, "rsp", "esp"}, {x86asm.RSP, "rsp", "esp"},
		{x86asm.BPB, "rbp", "ebp"}, {x86asm.BP, "rbp", "ebp"}, {x86asm.EBP, "rbp", "ebp"},
		{x86asm.SIB, "rsi", "esi"}, {x86asm.SI, "rsi", "esi"}, {x86asm.ESI, "rsi", "esi"},
		{x86asm.DIB, "rdi", "edi"}, {x86asm.DI, "rdi", "edi"}, {x86asm.EDI, "rdi", "edi"}, {x86asm.RDI, "rdi", "edi"},
		{x86asm.R8B, "r8", ""}, {x86asm.R8W, "r8", ""}, {x86asm.R8L, "r8", ""}, {x86asm.R8, "r8", ""},
		{x86asm.R12, "r12", ""}, {x86asm.R13B, "r13", ""}, {x86asm.R15L, "r15", ""}, {x86asm.R15, "r15", ""},
		{x86asm.X0, "", ""}, {x86asm.RIP, "", ""}, {x86asm.FS, "", ""}, {x86asm.K1, "", ""}, {0, "", ""},
	}
	for _, c := range cases {
		for _, w := range []struct {
			a    *arch.Arch
			name string
		}{{arch.AMD64, c.amd64}, {arch.I386, c.i386}} {
			n, ok := DWARFReg(c.r, w.a)
			if w.name == "" {
				if ok {
					t.Errorf("%s %v: DWARF %d (%s), want none", w.a.Name, c.r, n, w.a.RegName(n))
				}
				continue
			}
			if !ok || w.a.RegName(n) != w.name {
				t.Errorf("%s %v: DWARF %d (%s, %v), want %s", w.a.Name, c.r, n, w.a.RegName(n), ok, w.name)
			}
		}
	}
}

// A segment override says which segment: %fs or %gs (GS), for a memory
// operand and for a string instruction's source.
func TestSegmentAccesses(t *testing.T) {
	var regs arch.Regs
	regs.Arch = arch.AMD64
	regs.TP, regs.GSBase = 0x7000, 0x9000
	for _, c := range []struct {
		code  []byte
		write bool
		gs    bool
	}{
		{[]byte{0x64, 0x48, 0x8b, 0x04, 0x25, 0x10, 0, 0, 0}, false, false}, // mov %fs:0x10,%rax
		{[]byte{0x65, 0x48, 0x8b, 0x04, 0x25, 0x10, 0, 0, 0}, false, true},  // mov %gs:0x10,%rax
		{[]byte{0x65, 0x48, 0x89, 0x04, 0x25, 0x10, 0, 0, 0}, true, true},   // mov %rax,%gs:0x10
		{[]byte{0x65, 0xac}, false, true},                                   // lods %gs:(%rsi),%al
	} {
		in, err := Decode(c.code, 0x1000, arch.AMD64)
		if err != nil {
			t.Fatalf("% x: %v", c.code, err)
		}
		acc, _ := in.Effects(&regs, nil)
		found := false
		for _, a := range acc {
			if a.Seg {
				found = true
				base := uint64(0x7000)
				if c.gs {
					base = 0x9000
				}
				if a.Write != c.write || a.GS != c.gs || !a.SegBaseOK || a.SegBase != base {
					t.Errorf("% x: %+v, want write %v gs %v, base %#x", c.code, a, c.write, c.gs, base)
				}
			}
		}
		if !found {
			t.Errorf("% x: no segment access in %+v", c.code, acc)
		}
	}
}
