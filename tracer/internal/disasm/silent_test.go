package disasm

import (
	"testing"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// Silent instructions are the ones a single-stepping tracer may skip the
// register read for: only registers change and execution goes on at
// PC+Len. Anything that writes memory, touches the stack, branches or
// enters the kernel must not be silent.
func TestSilent(t *testing.T) {
	cases := []struct {
		a    *arch.Arch
		code []byte
		want bool
		what string
	}{
		{arch.AMD64, []byte{0x69, 0xd2, 0x6d, 0x4e, 0xc6, 0x41}, true, "imul $0x41c64e6d,%edx,%edx"},
		{arch.AMD64, []byte{0x81, 0xc2, 0x39, 0x30, 0x00, 0x00}, true, "add $0x3039,%edx"},
		{arch.AMD64, []byte{0xff, 0xc8}, true, "dec %eax"},
		{arch.AMD64, []byte{0x8b, 0x45, 0xf8}, true, "mov -0x8(%rbp),%eax (a read)"},
		{arch.AMD64, []byte{0x48, 0x8d, 0x45, 0xf0}, true, "lea -0x10(%rbp),%rax"},
		{arch.AMD64, []byte{0xf3, 0x0f, 0x1e, 0xfa}, true, "endbr64"},
		{arch.AMD64, []byte{0x48, 0x83, 0xec, 0x10}, true, "sub $0x10,%rsp (no access)"},
		{arch.AMD64, []byte{0x89, 0x45, 0xfc}, false, "mov %eax,-0x4(%rbp)"},
		{arch.AMD64, []byte{0x83, 0x45, 0xfc, 0x01}, false, "addl $1,-0x4(%rbp)"},
		{arch.AMD64, []byte{0x75, 0xf0}, false, "jne"},
		{arch.AMD64, []byte{0xeb, 0xf0}, false, "jmp"},
		{arch.AMD64, []byte{0xe8, 0, 0, 0, 0}, false, "call"},
		{arch.AMD64, []byte{0xc3}, false, "ret"},
		{arch.AMD64, []byte{0x55}, false, "push %rbp"},
		{arch.AMD64, []byte{0x5d}, false, "pop %rbp"},
		{arch.AMD64, []byte{0xc9}, false, "leave"},
		{arch.AMD64, []byte{0x0f, 0x05}, false, "syscall"},
		{arch.AMD64, []byte{0xf3, 0xab}, false, "rep stos"},
		{arch.AMD64, []byte{0xf3, 0xa6}, false, "repz cmpsb (repeats in place)"},
		{arch.AMD64, []byte{0xcc}, false, "int3"},
		{arch.AMD64, []byte{0x0f, 0x0b}, false, "ud2"},
		{arch.AMD64, []byte{0x0f, 0xae, 0x20}, false, "xsave (%rax)"},
		{arch.AMD64, []byte{0xc7, 0xf8, 0, 0, 0, 0}, false, "xbegin"},
		{arch.AMD64, []byte{0xf0}, false, "a lone lock prefix"},
		{arch.AMD64, []byte{0x8e, 0xd0}, false, "mov %eax,%ss (delays the step trap)"},
		{arch.AMD64, []byte{0x8e, 0xd8}, true, "mov %eax,%ds"},
		{arch.I386, []byte{0x01, 0xd0}, true, "add %edx,%eax"},
		{arch.I386, []byte{0xcd, 0x80}, false, "int $0x80"},
		{arch.I386, []byte{0x89, 0x04, 0x24}, false, "mov %eax,(%esp)"},
	}
	for _, c := range cases {
		in, _ := Decode(c.code, 0x1000, c.a)
		if in == nil {
			t.Fatalf("%s: no instruction", c.what)
		}
		if got := in.Silent(); got != c.want {
			t.Errorf("%s %s (% x): Silent = %v, want %v", c.a.Name, c.what, c.code, got, c.want)
		}
	}
}
