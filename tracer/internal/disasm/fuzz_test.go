package disasm

import (
	"debug/elf"
	"path/filepath"
	"testing"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// fuzzSeedForms are encodings the checked-in binaries lack: VEX and EVEX
// (the forms x86asm gets wrong), CET and protection-key instructions,
// x87, string and prefixed instructions.
var fuzzSeedForms = [][]byte{
	{0xc5, 0xf8, 0x77, 0x5b, 0x41},                                     // vzeroupper; pop %rbx
	{0xc4, 0xe1, 0x7c, 0x77, 0xc3},                                     // vzeroall; ret
	{0xc5, 0x7d, 0x6f, 0x15, 0x29, 0xd4, 0x04, 0x00},                   // vmovdqa 0x4d429(%rip),%ymm10
	{0x62, 0x61, 0xfd, 0x28, 0x6f, 0x2d, 0xac, 0xbd, 0x03, 0x00},       // vmovdqa64 0x3bdac(%rip),%ymm29
	{0x62, 0xe1, 0xfe, 0x28, 0x7f, 0x05, 0x00, 0x01, 0x00, 0x00},       // vmovdqu64 %ymm16,0x100(%rip)
	{0x62, 0xb1, 0x7f, 0x48, 0x6f, 0x0c, 0x47},                         // vmovdqu8 (%rdi,%r8,2),%zmm1
	{0xc4, 0xe2, 0x6d, 0x90, 0x04, 0x88},                               // vpgatherdd %ymm2,(%rax,%ymm1,4),%ymm0
	{0xc5, 0x65, 0x74, 0x00},                                           // vpcmpeqb (%rax),%ymm3,%ymm8
	{0xf3, 0x48, 0x0f, 0xae, 0xe9},                                     // incsspq %rcx
	{0xf3, 0x48, 0x0f, 0x1e, 0xc8},                                     // rdsspq %rax
	{0xf3, 0x0f, 0x1e, 0xfa},                                           // endbr64
	{0x0f, 0x01, 0xee},                                                 // rdpkru
	{0xdb, 0x3c, 0x24},                                                 // fstpt (%rsp)
	{0x9b, 0xd9, 0x7c, 0x24, 0x08},                                     // fwait; fnstcw 0x8(%rsp) (objdump: fstcw)
	{0xf3, 0x48, 0xab},                                                 // rep stos %rax,%es:(%rdi)
	{0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0x00, 0x00, 0x00},             // mov %fs:0x28,%rax
	{0x67, 0x48, 0x8d, 0x04, 0x40},                                     // lea (%eax,%eax,2),%rax
	{0x48, 0x0f, 0xab, 0x07},                                           // bts %rax,(%rdi)
	{0xc8, 0x10, 0x00, 0x01},                                           // enter $0x10,$0x1
	{0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},       // cs nopw 0x0(%rax,%rax,1)
	{0x0f, 0xae, 0x64, 0x24, 0x40},                                     // xsave 0x40(%rsp)
	{0xf0, 0x48, 0x0f, 0xc7, 0x0f},                                     // lock cmpxchg16b (%rdi)
	{0x67, 0xe3, 0x10},                                                 // jecxz .+0x13
	{0xff, 0x24, 0xc5, 0x00, 0x10, 0x40, 0x00},                         // jmp *0x401000(,%rax,8)
	{0x3e, 0xff, 0xe0},                                                 // notrack jmp *%rax
	{0x0f, 0x05},                                                       // syscall
	{0xcd, 0x80},                                                       // int $0x80
	{0x66, 0x0f, 0x3a, 0x0f, 0xc1, 0x08},                               // palignr $0x8,%xmm1,%xmm0
	{0x48, 0xa1, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11},       // movabs 0x1122334455667788,%rax
	{0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66}, // data16 prefixes only
}

// FuzzDecode decodes arbitrary bytes in either mode and exercises
// everything a tracer calls on the result. Beyond not panicking, it checks
// what holds for any input: a length of 1 to 15 bytes (the architectural
// limit) within the bytes given, at most 4 accesses (Effects' documented
// bound), and a silent instruction neither branches nor writes.
//
// Seeds: each instruction of the checked-in binaries' .text (both
// arches) and fuzzSeedForms, in both modes.
func FuzzDecode(f *testing.F) {
	bins, err := filepath.Glob("testdata/*.objdump")
	if err != nil || len(bins) == 0 {
		f.Fatalf("no testdata binaries: %v", err)
	}
	for _, golden := range bins {
		path := golden[:len(golden)-len(".objdump")]
		ef, err := elf.Open(path)
		if err != nil {
			f.Fatal(err)
		}
		a := arch.ForELFMachine(uint16(ef.Machine))
		text := ef.Section(".text")
		code, err := text.Data()
		ef.Close()
		if a == nil || err != nil {
			f.Fatalf("%s: %v %v", path, a, err)
		}
		for off := 0; off < len(code); {
			in, _ := Decode(code[off:], text.Addr+uint64(off), a)
			f.Add(code[off:min(off+16, len(code))], a == arch.I386, text.Addr+uint64(off), uint64(0x7ffc0000))
			off += in.Len
		}
	}
	for _, code := range fuzzSeedForms {
		f.Add(code, false, uint64(0x401000), uint64(0x7ffc0000))
		f.Add(code, true, uint64(0x8049000), uint64(0xffd00000))
	}
	f.Fuzz(func(t *testing.T, code []byte, i386 bool, pc, regBase uint64) {
		a := arch.AMD64
		if i386 {
			a = arch.I386
		}
		in, err := Decode(code, pc, a)
		if in == nil {
			t.Fatalf("% x: nil instruction (%v)", code, err)
		}
		if len(code) > 0 && (in.Len < 1 || in.Len > 15 || in.Len > len(code)) {
			t.Fatalf("% x: length %d", code, in.Len)
		}
		sym := func(addr uint64) string { return "f+0x10" }
		_ = in.FormatATT(sym)
		_ = in.FormatATT(nil)
		_, _ = in.PoppedReg()
		regs := &arch.Regs{Arch: a}
		for n := 0; n < a.NumRegs; n++ {
			regs.Set(n, regBase*uint64(n+1))
		}
		acc, _ := in.Effects(regs, make([]Access, 0, 4))
		if len(acc) > 4 {
			t.Fatalf("% x: %d accesses", code, len(acc))
		}
		// A register set Effects cannot read from must not panic either.
		_, _ = in.Effects(noRegs{}, nil)
		if in.Silent() {
			if in.Class != Other {
				t.Fatalf("% x: silent %v", code, in.Class)
			}
			for _, x := range acc {
				if x.Write {
					t.Fatalf("% x: silent but writes %+v", code, x)
				}
			}
		}
	})
}

// noRegs supplies no register.
type noRegs struct{}

func (noRegs) Get(int) (uint64, bool) { return 0, false }
