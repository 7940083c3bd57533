package disasm

import (
	"testing"

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
