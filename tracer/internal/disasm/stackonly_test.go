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

// SPAccesses instructions have every access known to a tracer that knows
// only the stack pointer — reads too, and the stack pointer may go up —
// for the parent's follow to run them at full speed (tracer/parentblock.go).
func TestSPAccesses(t *testing.T) {
	const sp = 0x7fff0100
	type access struct {
		addr  uint64
		size  int
		write bool
		seg   bool
	}
	cases := []struct {
		a     *arch.Arch
		code  []byte
		ok    bool
		after uint64
		acc   []access
		what  string
	}{
		{arch.AMD64, []byte{0x53}, true, sp - 8, []access{{sp - 8, 8, true, false}}, "push %rbx"},
		{arch.AMD64, []byte{0x5b}, true, sp + 8, []access{{sp, 8, false, false}}, "pop %rbx"},
		{arch.AMD64, []byte{0x48, 0x8b, 0x5c, 0x24, 0x08}, true, sp, []access{{sp + 8, 8, false, false}}, "mov 0x8(%rsp),%rbx"},
		{arch.AMD64, []byte{0x48, 0x83, 0xc4, 0x30}, true, sp + 0x30, nil, "add $0x30,%rsp"},
		{arch.AMD64, []byte{0x48, 0x81, 0xc4, 0xa8, 0x00, 0x00, 0x00}, true, sp + 0xa8, nil, "add $0xa8,%rsp"},
		{arch.AMD64, []byte{0x48, 0x83, 0xec, 0x10}, true, sp - 0x10, nil, "sub $0x10,%rsp"},
		{arch.AMD64, []byte{0xc7, 0x05, 0x10, 0x00, 0x00, 0x00, 0, 0, 0, 0}, true, sp, []access{{0x101a, 4, true, false}}, "movl $0x0,0x10(%rip)"},
		{arch.AMD64, []byte{0x80, 0x3d, 0x10, 0x00, 0x00, 0x00, 0x00}, true, sp, []access{{0x1017, 1, false, false}}, "cmpb $0x0,0x10(%rip)"},
		{arch.AMD64, []byte{0x64, 0x48, 0x2b, 0x14, 0x25, 0x28, 0, 0, 0}, true, sp, []access{{0x28, 8, false, true}}, "sub %fs:0x28,%rdx"},
		{arch.AMD64, []byte{0x48, 0x8d, 0x05, 0x0b, 0xff, 0xff, 0xff}, true, sp, nil, "lea -0xf5(%rip),%rax"},
		{arch.AMD64, []byte{0x85, 0xc0}, true, sp, nil, "test %eax,%eax"},
		{arch.AMD64, []byte{0x48, 0x8b, 0x5b, 0x10}, false, 0, nil, "mov 0x10(%rbx),%rbx"},
		{arch.AMD64, []byte{0x48, 0x83, 0x78, 0x18, 0x00}, false, 0, nil, "cmpq $0x0,0x18(%rax)"},
		{arch.AMD64, []byte{0x48, 0x89, 0xe5}, false, 0, nil, "mov %rsp,%rbp"},
		{arch.AMD64, []byte{0x48, 0x89, 0xec}, false, 0, nil, "mov %rbp,%rsp"},
		{arch.AMD64, []byte{0x48, 0x83, 0xe4, 0xf0}, false, 0, nil, "and $-16,%rsp"},
		{arch.AMD64, []byte{0x83, 0xc4, 0x10}, false, 0, nil, "add $0x10,%esp (zero-extends)"},
		{arch.AMD64, []byte{0xc9}, false, 0, nil, "leave"},
		{arch.AMD64, []byte{0x9d}, false, 0, nil, "popf"},
		{arch.AMD64, []byte{0x5c}, false, 0, nil, "pop %rsp"},
		{arch.AMD64, []byte{0x64, 0x48, 0x8b, 0x00}, false, 0, nil, "mov %fs:(%rax),%rax"},
		{arch.AMD64, []byte{0xc3}, false, 0, nil, "ret"},
		{arch.AMD64, []byte{0xe8, 0, 0, 0, 0}, false, 0, nil, "call"},
		{arch.AMD64, []byte{0x75, 0xf0}, false, 0, nil, "jne"},
		{arch.AMD64, []byte{0x0f, 0x05}, false, 0, nil, "syscall"},
		{arch.AMD64, []byte{0xf3, 0xa4}, false, 0, nil, "rep movsb"},
		{arch.I386, []byte{0x83, 0xc4, 0x1c}, true, sp + 0x1c, nil, "add $0x1c,%esp"},
		{arch.I386, []byte{0x5d}, true, sp + 4, []access{{sp, 4, false, false}}, "pop %ebp"},
	}
	for _, c := range cases {
		in, _ := Decode(c.code, 0x1000, c.a)
		if in == nil {
			t.Fatalf("%s: no instruction", c.what)
		}
		acc, after, ok := in.SPAccesses(sp, nil)
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
		var got []access
		for _, a := range acc {
			got = append(got, access{a.Addr, a.Size, a.Write, a.Seg})
		}
		if len(got) != len(c.acc) {
			t.Errorf("%s %s: accesses %+v, want %+v", c.a.Name, c.what, got, c.acc)
			continue
		}
		for i := range got {
			if got[i] != c.acc[i] {
				t.Errorf("%s %s: accesses %+v, want %+v", c.a.Name, c.what, got, c.acc)
			}
		}
	}
}
