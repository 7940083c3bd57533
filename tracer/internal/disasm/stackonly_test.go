package disasm

import (
	"testing"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// StackOnly instructions may run between two stops of a tracer that knows
// only the stack pointer: their stores and the stack pointer after them
// follow from it. Machine code and expectations from the Intel SDM
// (objdump spelling in the names).
func TestStackOnly(t *testing.T) {
	const sp = 0x7fff0100
	type store struct {
		addr uint64
		size int
	}
	cases := []struct {
		a      *arch.Arch
		code   []byte
		ok     bool
		after  uint64
		stores []store
		what   string
	}{
		{arch.AMD64, []byte{0x50}, true, sp - 8, []store{{sp - 8, 8}}, "push %rax"},
		{arch.AMD64, []byte{0xff, 0xb4, 0x24, 0x08, 0x01, 0x00, 0x00}, true, sp - 8, []store{{sp - 8, 8}}, "push 0x108(%rsp)"},
		{arch.AMD64, []byte{0x8b, 0x84, 0x24, 0x08, 0x01, 0x00, 0x00}, true, sp, nil, "mov 0x108(%rsp),%eax"},
		{arch.AMD64, []byte{0x48, 0x89, 0x7c, 0x24, 0x08}, true, sp, []store{{sp + 8, 8}}, "mov %rdi,0x8(%rsp)"},
		{arch.AMD64, []byte{0x44, 0x89, 0x44, 0x24, 0x2c}, true, sp, []store{{sp + 0x2c, 4}}, "mov %r8d,0x2c(%rsp)"},
		{arch.AMD64, []byte{0x48, 0x83, 0xec, 0x48}, true, sp - 0x48, nil, "sub $0x48,%rsp"},
		{arch.AMD64, []byte{0x48, 0x8b, 0x05, 0x39, 0x2f, 0x00, 0x00}, true, sp, nil, "mov 0x2f39(%rip),%rax (a read)"},
		{arch.AMD64, []byte{0x6a, 0x01}, true, sp - 8, []store{{sp - 8, 8}}, "push $1"},
		{arch.AMD64, []byte{0x48, 0x83, 0xc4, 0x48}, false, 0, nil, "add $0x48,%rsp (upwards)"},
		{arch.AMD64, []byte{0x48, 0x83, 0xe4, 0xf0}, false, 0, nil, "and $-16,%rsp"},
		{arch.AMD64, []byte{0x48, 0x89, 0xe5}, false, 0, nil, "mov %rsp,%rbp (names the stack pointer)"},
		{arch.AMD64, []byte{0x83, 0xec, 0x10}, false, 0, nil, "sub $0x10,%esp (zero-extends)"},
		{arch.AMD64, []byte{0x89, 0x45, 0xfc}, false, 0, nil, "mov %eax,-0x4(%rbp)"},
		{arch.AMD64, []byte{0x48, 0x89, 0x04, 0x1c}, false, 0, nil, "mov %rax,(%rsp,%rbx,1)"},
		{arch.AMD64, []byte{0x64, 0x48, 0x89, 0x04, 0x24}, false, 0, nil, "mov %rax,%fs:(%rsp)"},
		{arch.AMD64, []byte{0x0f, 0xab, 0x04, 0x24}, false, 0, nil, "bts %eax,(%rsp)"},
		{arch.AMD64, []byte{0x5d}, false, 0, nil, "pop %rbp"},
		{arch.AMD64, []byte{0x9c}, false, 0, nil, "pushf"},
		{arch.AMD64, []byte{0xc8, 0x10, 0x00, 0x00}, false, 0, nil, "enter $0x10,$0"},
		{arch.AMD64, []byte{0xe8, 0, 0, 0, 0}, false, 0, nil, "call"},
		{arch.AMD64, []byte{0x75, 0xf0}, false, 0, nil, "jne"},
		{arch.AMD64, []byte{0xc3}, false, 0, nil, "ret"},
		{arch.AMD64, []byte{0x0f, 0x05}, false, 0, nil, "syscall"},
		{arch.AMD64, []byte{0xf3, 0xab}, false, 0, nil, "rep stos"},
		{arch.AMD64, []byte{0x0f, 0xae, 0x24, 0x24}, false, 0, nil, "xsave (%rsp)"},
		{arch.AMD64, []byte{0xcc}, false, 0, nil, "int3"},
		{arch.I386, []byte{0x89, 0x04, 0x24}, true, sp, []store{{sp, 4}}, "mov %eax,(%esp)"},
		{arch.I386, []byte{0x55}, true, sp - 4, []store{{sp - 4, 4}}, "push %ebp"},
		{arch.I386, []byte{0x83, 0xec, 0x1c}, true, sp - 0x1c, nil, "sub $0x1c,%esp"},
	}
	for _, c := range cases {
		in, _ := Decode(c.code, 0x1000, c.a)
		if in == nil {
			t.Fatalf("%s: no instruction", c.what)
		}
		acc, after, ok := in.StackOnly(sp, nil)
		if ok != c.ok {
			t.Errorf("%s %s (% x): ok = %v, want %v", c.a.Name, c.what, c.code, ok, c.ok)
			continue
		}
		if !ok {
			continue
		}
		if after != c.after {
			t.Errorf("%s %s: stack pointer after = %#x, want %#x", c.a.Name, c.what, after, c.after)
		}
		var got []store
		for _, a := range acc {
			if !a.Write {
				t.Errorf("%s %s: a read listed: %+v", c.a.Name, c.what, a)
			}
			got = append(got, store{a.Addr, a.Size})
		}
		if len(got) != len(c.stores) {
			t.Errorf("%s %s: stores %+v, want %+v", c.a.Name, c.what, got, c.stores)
			continue
		}
		for i := range got {
			if got[i] != c.stores[i] {
				t.Errorf("%s %s: stores %+v, want %+v", c.a.Name, c.what, got, c.stores)
			}
		}
	}
}
