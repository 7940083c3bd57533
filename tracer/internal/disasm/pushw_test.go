package disasm

import (
	"testing"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// A 16-bit push or pop of memory or an immediate is printed as objdump
// prints it (rr#3270's trampoline: `66 ff 32` is `pushw (%edx)`); with a
// register the register tells the size.
func TestFormat16BitStackOps(t *testing.T) {
	cases := []struct {
		code []byte
		a    *arch.Arch
		want string
	}{
		{[]byte{0x66, 0xff, 0x32}, arch.I386, "pushw  (%edx)"},
		{[]byte{0x66, 0xff, 0x36}, arch.AMD64, "pushw  (%rsi)"},
		{[]byte{0x66, 0x8f, 0x06}, arch.AMD64, "popw   (%rsi)"},
		{[]byte{0x66, 0x6a, 0x01}, arch.AMD64, "pushw  $0x1"},
		{[]byte{0x66, 0x50}, arch.AMD64, "push   %ax"},
		{[]byte{0x66, 0x9d}, arch.AMD64, "popfw"},
	}
	for _, c := range cases {
		in, err := Decode(c.code, 0x1000, c.a)
		if err != nil {
			t.Fatalf("% x: %v", c.code, err)
		}
		if got := in.FormatATT(nil); got != c.want {
			t.Errorf("% x (%s): %q, want %q (objdump)", c.code, c.a.Name, got, c.want)
		}
	}
}
