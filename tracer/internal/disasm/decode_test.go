package disasm

import (
	"slices"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// testRegs returns a register set with distinct, recognisable values.
func testRegs(a *arch.Arch) *arch.Regs {
	r := &arch.Regs{Arch: a}
	for n := 0; n < a.NumRegs; n++ {
		r.Set(n, 0x10000*uint64(n+1))
	}
	r.Set(a.SP, 0x7ffc0000)
	return r
}

// TestLocalDecodings covers each instruction form Decode corrects or adds
// to x86asm v0.32. The expected text and length are objdump's (binutils
// 2.40, `objdump -D -b binary -m i386:x86-64` on the bytes, or the libc
// line the bytes come from); the expected accesses follow the Intel SDM's
// operand sizes. Trailing bytes after an instruction belong to the next
// one and must not be consumed.
func TestLocalDecodings(t *testing.T) {
	// objdump's annotations for the rip-relative targets below.
	sym := func(addr uint64) string {
		return map[uint64]string{
			0x1a18c0: "h_nerr@@GLIBC_2.2.5+0x4c",
			0x1a1920: "h_nerr@@GLIBC_2.2.5+0xac",
		}[addr]
	}
	sp := uint64(0x7ffc0000)
	cases := []struct {
		what    string
		a       *arch.Arch
		pc      uint64
		code    []byte
		len     int
		att     string
		silent  bool
		acc     []Access
		unknown bool
	}{
		// vzeroupper/vzeroall: VEX.0F 77 has no ModRM. x86asm read the
		// next byte as one (c3: 1 byte too long; 5b: mod 01, 2 bytes).
		// They zero vector registers only: silent.
		{"vzeroupper; ret", arch.AMD64, 0x1000, []byte{0xc5, 0xf8, 0x77, 0xc3}, 3, "vzeroupper", true, nil, false},
		{"vzeroupper; pop %rbx (glibc 0xaffd2)", arch.AMD64, 0xaffd2, []byte{0xc5, 0xf8, 0x77, 0x5b, 0x41}, 3, "vzeroupper", true, nil, false},
		{"vzeroupper at the end of the bytes", arch.AMD64, 0x1000, []byte{0xc5, 0xf8, 0x77}, 3, "vzeroupper", true, nil, false},
		{"vzeroall; ret", arch.AMD64, 0x1000, []byte{0xc5, 0xfc, 0x77, 0xc3}, 3, "vzeroall", true, nil, false},
		{"3-byte VEX vzeroupper", arch.AMD64, 0x1000, []byte{0xc4, 0xe1, 0x78, 0x77, 0xc3}, 4, "vzeroupper", true, nil, false},
		{"3-byte VEX vzeroall", arch.AMD64, 0x1000, []byte{0xc4, 0xe1, 0x7c, 0x77, 0xc3}, 4, "vzeroall", true, nil, false},
		{"3-byte VEX vzeroupper, VEX.W=1 (WIG)", arch.AMD64, 0x1000, []byte{0xc4, 0xe1, 0xf8, 0x77, 0xc3}, 4, "vzeroupper", true, nil, false},
		{"vzeroupper, VEX.pp=01 (objdump accepts it)", arch.AMD64, 0x1000, []byte{0xc5, 0xf9, 0x77, 0xc3}, 3, "vzeroupper", true, nil, false},
		{"vzeroupper, VEX.vvvv != 1111", arch.AMD64, 0x1000, []byte{0xc5, 0xb8, 0x77, 0xc3}, 3, "(bad)", false, nil, true},
		{"i386 vzeroupper; ret", arch.I386, 0x1000, []byte{0xc5, 0xf8, 0x77, 0xc3}, 3, "vzeroupper", true, nil, false},
		{"i386 vzeroall", arch.I386, 0x1000, []byte{0xc5, 0xfc, 0x77, 0x5b}, 3, "vzeroall", true, nil, false},
		{"i386 3-byte VEX vzeroupper", arch.I386, 0x1000, []byte{0xc4, 0xe1, 0x78, 0x77, 0xc3}, 4, "vzeroupper", true, nil, false},

		// VEX/EVEX ModRM mod=00 r/m=101 is rip-relative in 64-bit mode
		// (glibc 0x15448f and 0x165b6a), absolute in 32-bit mode.
		{"vmovdqa rip-relative load", arch.AMD64, 0x15448f, []byte{0xc5, 0x7d, 0x6f, 0x15, 0x29, 0xd4, 0x04, 0x00, 0xc3}, 8,
			"vmovdqa 0x4d429(%rip),%ymm10        # 1a18c0 <h_nerr@@GLIBC_2.2.5+0x4c>", true,
			[]Access{{Addr: 0x1a18c0, Size: 32}}, false},
		{"EVEX vmovdqa64 rip-relative load", arch.AMD64, 0x165b6a, []byte{0x62, 0x61, 0xfd, 0x28, 0x6f, 0x2d, 0xac, 0xbd, 0x03, 0x00}, 10,
			"vmovdqa64 0x3bdac(%rip),%ymm29        # 1a1920 <h_nerr@@GLIBC_2.2.5+0xac>", true,
			[]Access{{Addr: 0x1a1920, Size: 32}}, false},
		{"vmovdqu rip-relative store", arch.AMD64, 0, []byte{0xc5, 0xfe, 0x7f, 0x05, 0x00, 0x01, 0x00, 0x00}, 8,
			"vmovdqu %ymm0,0x100(%rip)        # 108", false,
			[]Access{{Addr: 0x108, Size: 32, Write: true}}, false},
		{"EVEX vmovdqu64 rip-relative store", arch.AMD64, 0x14, []byte{0x62, 0xe1, 0xfe, 0x28, 0x7f, 0x05, 0x00, 0x01, 0x00, 0x00}, 10,
			"vmovdqu64 %ymm16,0x100(%rip)        # 11e", false,
			[]Access{{Addr: 0x11e, Size: 32, Write: true}}, false},
		{"VEX load through a SIB without base: absolute", arch.AMD64, 0x1000, []byte{0xc5, 0xfd, 0x6f, 0x04, 0x25, 0x00, 0x20, 0x00, 0x00}, 9,
			"vmovdqa 0x2000,%ymm0", true, []Access{{Addr: 0x2000, Size: 32}}, false},
		{"i386 vmovdqa absolute load", arch.I386, 0x1000, []byte{0xc5, 0xfd, 0x6f, 0x05, 0x29, 0xd4, 0x04, 0x00}, 8,
			"vmovdqa 0x4d429,%ymm0", true, []Access{{Addr: 0x4d429, Size: 32}}, false},
		{"VEX payload byte 0x65 is not %gs", arch.AMD64, 0x1000, []byte{0xc5, 0x65, 0x74, 0x00}, 4,
			"vpcmpeqb (%rax),%ymm3,%ymm8", true, []Access{{Addr: 0x10000, Size: 32}}, false},

		// Instructions x86asm does not know.
		{"rdpkru (glibc 0x109332)", arch.AMD64, 0x109332, []byte{0x0f, 0x01, 0xee, 0x90}, 3, "rdpkru", true, nil, false},
		{"wrpkru", arch.AMD64, 0x1000, []byte{0x0f, 0x01, 0xef, 0x90}, 3, "wrpkru", true, nil, false},
		{"i386 rdpkru", arch.I386, 0x1000, []byte{0x0f, 0x01, 0xee}, 3, "rdpkru", true, nil, false},
		{"i386 wrpkru", arch.I386, 0x1000, []byte{0x0f, 0x01, 0xef}, 3, "wrpkru", true, nil, false},
		// incssp reads the shadow stack at SSP, which no register in
		// Regs holds: unknown, so not silent.
		{"incsspq %rcx", arch.AMD64, 0x1000, []byte{0xf3, 0x48, 0x0f, 0xae, 0xe9, 0x90}, 5, "incsspq %rcx", false, nil, true},
		{"incsspd %ecx", arch.AMD64, 0x1000, []byte{0xf3, 0x0f, 0xae, 0xe9, 0x90}, 4, "incsspd %ecx", false, nil, true},
		{"incsspd %r13d", arch.AMD64, 0x1000, []byte{0xf3, 0x41, 0x0f, 0xae, 0xed}, 5, "incsspd %r13d", false, nil, true},
		{"i386 incsspd %ecx", arch.I386, 0x1000, []byte{0xf3, 0x0f, 0xae, 0xe9}, 4, "incsspd %ecx", false, nil, true},
		{"rdsspd %eax", arch.AMD64, 0x1000, []byte{0xf3, 0x0f, 0x1e, 0xc8}, 4, "rdsspd %eax", false, nil, false},
		{"rdsspq %rax", arch.AMD64, 0x1000, []byte{0xf3, 0x48, 0x0f, 0x1e, 0xc8}, 5, "rdsspq %rax", false, nil, false},
		{"xrstor (%rax) is not incssp (mod 00)", arch.AMD64, 0x1000, []byte{0x0f, 0xae, 0x28}, 3, "xrstor (%rax)", false,
			[]Access{{Addr: 0x10000, Size: 576}}, true},

		// x87 80-bit memory operands: x86asm gives no size; the SDM's
		// m80fp/m80bcd are 10 bytes.
		{"fstpt (%rsp)", arch.AMD64, 0x1000, []byte{0xdb, 0x3c, 0x24}, 3, "fstpt  (%rsp)", false,
			[]Access{{Addr: sp, Size: 10, Write: true}}, false},
		{"fldt (%rsp)", arch.AMD64, 0x1000, []byte{0xdb, 0x2c, 0x24}, 3, "fldt   (%rsp)", true,
			[]Access{{Addr: sp, Size: 10}}, false},
		{"fbstp (%rsp)", arch.AMD64, 0x1000, []byte{0xdf, 0x34, 0x24}, 3, "fbstp  (%rsp)", false,
			[]Access{{Addr: sp, Size: 10, Write: true}}, false},
		{"fbld (%rsp)", arch.AMD64, 0x1000, []byte{0xdf, 0x24, 0x24}, 3, "fbld   (%rsp)", true,
			[]Access{{Addr: sp, Size: 10}}, false},
		{"i386 fstpt (%esp)", arch.I386, 0x1000, []byte{0xdb, 0x3c, 0x24}, 3, "fstpt  (%esp)", false,
			[]Access{{Addr: sp, Size: 10, Write: true}}, false},
		{"fstpl (%rsp) stays 8 bytes", arch.AMD64, 0x1000, []byte{0xdd, 0x1c, 0x24}, 3, "fstpl  (%rsp)", false,
			[]Access{{Addr: sp, Size: 8, Write: true}}, false},
	}
	for _, c := range cases {
		in, err := Decode(c.code, c.pc, c.a)
		if in == nil {
			t.Fatalf("%s: no instruction (%v)", c.what, err)
		}
		if (err != nil) != (c.att == "(bad)") {
			t.Errorf("%s %s: error %v", c.a.Name, c.what, err)
		}
		if in.Len != c.len {
			t.Errorf("%s %s (% x): Len %d, want %d", c.a.Name, c.what, c.code, in.Len, c.len)
		}
		if got := in.FormatATT(sym); got != c.att {
			t.Errorf("%s %s: FormatATT %q, want %q", c.a.Name, c.what, got, c.att)
		}
		if got := in.Silent(); got != c.silent {
			t.Errorf("%s %s: Silent %v, want %v", c.a.Name, c.what, got, c.silent)
		}
		if in.Class != Other {
			t.Errorf("%s %s: class %v, want other", c.a.Name, c.what, in.Class)
		}
		acc, unknown := in.Effects(testRegs(c.a), nil)
		if !slices.Equal(acc, c.acc) || unknown != c.unknown {
			t.Errorf("%s %s: Effects %+v unknown=%v, want %+v unknown=%v", c.a.Name, c.what, acc, unknown, c.acc, c.unknown)
		}
	}
}

// The vzeroupper correction yields the instruction x86asm itself decodes
// when it cannot read past the opcode (so cannot take a ModRM byte).
func TestVzeroMatchesX86asm(t *testing.T) {
	for _, code := range [][]byte{{0xc5, 0xf8, 0x77}, {0xc5, 0xfc, 0x77}, {0xc4, 0xe1, 0x78, 0x77}, {0xc4, 0xe1, 0x7c, 0x77}} {
		for _, bits := range []int{64, 32} {
			want, err := x86asm.Decode(code, bits)
			if err != nil {
				t.Fatalf("x86asm % x: %v", code, err)
			}
			got, ok, err := vzeroInsn(append(code, 0xc3), bits)
			if !ok || err != nil {
				t.Fatalf("% x: not recognised: %v", code, err)
			}
			if got.Op != want.Op || got.Len != want.Len || got.Prefix != want.Prefix || got.Args != want.Args {
				t.Errorf("%d-bit % x: %+v, x86asm %+v", bits, code, got, want)
			}
		}
	}
	// Not VEX 0F 77: left to x86asm (c5 with a memory ModRM is lds in
	// 32-bit mode; c4 map 0F38 77 is something else).
	for _, c := range []struct {
		code []byte
		bits int
	}{{[]byte{0xc5, 0x38, 0x77}, 32}, {[]byte{0xc4, 0xe2, 0x78, 0x77}, 64}, {[]byte{0xc5, 0xf8, 0x76, 0xc0}, 64}, {[]byte{0xc5, 0xf8}, 64}} {
		if _, ok, _ := vzeroInsn(c.code, c.bits); ok {
			t.Errorf("%d-bit % x taken as vzeroupper/vzeroall", c.bits, c.code)
		}
	}
}

// hasPrefix stops at a VEX prefix: the bytes x86asm keeps after it are
// the VEX payload (here 0x65, which as a legacy prefix would be %gs).
func TestHasPrefixStopsAtVEX(t *testing.T) {
	in, err := Decode([]byte{0xc5, 0x65, 0x74, 0x00}, 0x1000, arch.AMD64)
	if err != nil {
		t.Fatal(err)
	}
	if seg, gs := segOverride(&in.Inst); hasPrefix(&in.Inst, 0x65) || seg || gs {
		t.Error("VEX payload byte 0x65 taken as a gs prefix")
	}
	in, err = Decode([]byte{0x65, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0}, 0x1000, arch.AMD64)
	if err != nil {
		t.Fatal(err)
	}
	if seg, gs := segOverride(&in.Inst); !seg || !gs {
		t.Error("mov gs:0x28 to rax: no gs prefix")
	}
}

// TestSyscall32 decodes the system call entry of the kernel's 32-bit vDSO
// on AMD's CPUs (__kernel_vsyscall with X86_FEATURE_SYSCALL32: `push %ecx;
// push %edx; push %ebp; mov %ecx,%ebp; syscall; int $0x80`), which x86asm
// refuses in 32-bit mode: an i386 program's parent stepped through
// waitpid there lost the status word the kernel wrote (the mode-equivalence
// test waitstatus, gcc-O0-m32, on an AMD EPYC host).
func TestSyscall32(t *testing.T) {
	vdso := []byte{0x51, 0x52, 0x55, 0x89, 0xcd, 0x0f, 0x05, 0xcd, 0x80, 0x5d}
	in, err := Decode(vdso[5:], 0xf7fc3575, arch.I386)
	if err != nil {
		t.Fatalf("i386 syscall: %v", err)
	}
	if in.Len != 2 || in.Class != Syscall || in.FormatATT(nil) != "syscall" || in.Silent() {
		t.Errorf("i386 syscall: Len %d class %v %q silent %v, want 2, syscall, \"syscall\", false", in.Len, in.Class, in.FormatATT(nil), in.Silent())
	}
	if _, unknown := in.Effects(testRegs(arch.I386), nil); !unknown {
		t.Errorf("i386 syscall: its effects are the kernel's, want unknown")
	}
	// The bytes that follow are still their own instruction.
	if next, err := Decode(vdso[7:], 0xf7fc3577, arch.I386); err != nil || next.Len != 2 || next.Class != Syscall || next.FormatATT(nil) != "int    $0x80" {
		t.Errorf("i386 int $0x80 after it: %+v %v", next, err)
	}
	// 0f 05 in 64-bit code is x86asm's as before; 0f 07 (sysret) stays unknown.
	if in, err := Decode([]byte{0x0f, 0x05}, 0x1000, arch.AMD64); err != nil || in.Class != Syscall || in.Len != 2 {
		t.Errorf("amd64 syscall: %+v %v", in, err)
	}
	if _, err := Decode([]byte{0x0f, 0x07}, 0x1000, arch.I386); err == nil {
		t.Errorf("i386 0f 07 decoded")
	}
}
