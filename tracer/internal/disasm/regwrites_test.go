package disasm

import (
	"testing"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// RegWrites names the registers an instruction may write (DWARF numbers:
// rax 0, rdx 1, rcx 2, rdi 5, rsp 7), and every register for one it does
// not know: a block's tracking of a pushed register (tracer: pushedRets)
// relies on it never missing a write.
func TestRegWrites(t *testing.T) {
	const all = ^uint64(0)
	bit := func(n int) uint64 { return 1 << n }
	for _, c := range []struct {
		name string
		code []byte
		want uint64
	}{
		{"push %rdi", []byte{0x57}, bit(7)},
		{"cmp $-4095,%rax", []byte{0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff}, 0},
		{"jae +1", []byte{0x73, 0x01}, 0},
		{"test %eax,%eax", []byte{0x85, 0xc0}, 0},
		{"mov %rax,(%rsp)", []byte{0x48, 0x89, 0x04, 0x24}, 0},
		{"mov $1,%edi", []byte{0xbf, 1, 0, 0, 0}, bit(5)},
		{"add $4,%rdi", []byte{0x48, 0x83, 0xc7, 0x04}, bit(5)},
		{"neg %eax", []byte{0xf7, 0xd8}, bit(0)},
		{"mov 0x0(%rip),%rcx", []byte{0x48, 0x8b, 0x0d, 0, 0, 0, 0}, bit(2)},
		{"sete %dl", []byte{0x0f, 0x94, 0xc2}, bit(1)},
		{"loop -2", []byte{0xe2, 0xfe}, bit(2)},
		{"endbr64", []byte{0xf3, 0x0f, 0x1e, 0xfa}, 0},
		{"xchg %rdi,%rax", []byte{0x48, 0x97}, all},
		{"cpuid", []byte{0x0f, 0xa2}, all},
		{"syscall", []byte{0x0f, 0x05}, all},
		{"pop %rdi", []byte{0x5f}, all},
		{"imul %rdi,%rax", []byte{0x48, 0x0f, 0xaf, 0xc7}, all},
	} {
		in, err := Decode(c.code, 0x1000, arch.AMD64)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := in.RegWrites(); got != c.want {
			t.Errorf("%s: RegWrites %#x, want %#x", c.name, got, c.want)
		}
	}
}
