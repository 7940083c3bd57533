package tracer

import (
	"slices"
	"testing"

	"github.com/go-delve/delve/pkg/dwarf/regnum"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// TestLibcIntResult: on amd64 a libc function returning int leaves its
// result in %eax; the upper half of %rax is not part of it. glibc's wait4
// fails with `mov $0xffffffff,%eax; ret` (rax 0x00000000ffffffff): -1, no
// status written — not a pid of 4294967295 (a vfork child stores into
// status, the parent waitpid(getpid(), &status, 0)s, ECHILD, then reads
// status: gcc -O0 amd64, fast mode
// said clean where the parent reads the child's value after a failed
// waitpid).
func TestLibcIntResult(t *testing.T) {
	const status = 0x7ffc0000
	before := arch.Regs{Arch: arch.AMD64}
	before.R[regnum.AMD64_Rdi] = 1234
	before.R[regnum.AMD64_Rsi] = status
	noStack := func(uint64) (uint64, bool) { return 0, false }
	for _, c := range []struct {
		fn    string
		rax   uint64
		wrote bool
	}{
		{"waitpid", 0x00000000ffffffff, false}, // -1 as int
		{"waitpid@plt", 0xffffffffffffffff, false},
		{"waitpid", 1234, true},
		{"wait4", 0x00000000ffffffff, false},
		{"pipe", 0xdead00000000, true},     // 0 as int, garbage above
		{"read", 0x00000000ffffffff, true}, // ssize_t: 4 GiB read
	} {
		after := before
		after.R[regnum.AMD64_Rax] = c.rax
		if w := libcWrites(c.fn, &before, &after, noStack); (len(w) > 0) != c.wrote {
			t.Errorf("%s returning %#x: wrote %v, want written %v", c.fn, c.rax, w, c.wrote)
		}
	}
}

// TestLibcFortified: with _FORTIFY_SOURCE (gcc -O2's default on Ubuntu and
// Fedora) a read into a buffer of known size whose count is not a
// constant is a call to __read_chk(fd, buf, nbytes, buflen): the same
// arguments first, the same bytes written. Unknown, it left the child's
// bytes in the buffer 'the child's' when read(2) stored equal ones (a
// false warning: tracer/testdata/review/readchk.c, gcc -O2
// -D_FORTIFY_SOURCE=2, fast mode).
func TestLibcFortified(t *testing.T) {
	const buf = 0x7ffc0000
	before := arch.Regs{Arch: arch.AMD64}
	before.R[regnum.AMD64_Rsi] = buf
	after := before
	after.R[regnum.AMD64_Rax] = 8
	noStack := func(uint64) (uint64, bool) { return 0, false }
	for _, fn := range []string{"__read_chk", "__read_chk@plt", "__pread_chk", "__pread64_chk"} {
		if w := libcWrites(fn, &before, &after, noStack); len(w) != 1 || w[0] != (written{buf, 8}) {
			t.Errorf("%s returning 8: wrote %v, want [{%#x 8}]", fn, w, buf)
		}
	}
}

// The live words a system call's buffer covers are visited in address
// order (write(2) of a buffer the child filled: its parent_consume events
// came in a map's order, another from run to run: gcc-O2 writebuf).
func TestLiveInAddressOrder(t *testing.T) {
	st := &story{}
	st.word = 8
	r := &parentRun{st: st, changed: map[uint64]poisoned{}}
	for x := uint64(0x7000); x < 0x7000+16*8; x += 8 {
		r.changed[x] = poisoned{bytes: 0xff}
	}
	r.changed[0x9000] = poisoned{bytes: 0xff} // outside the buffer
	var got []uint64
	r.liveIn([]written{{addr: 0x7000, size: 16 * 8}}, func(x uint64, m uint8) {
		if m != 0xff {
			t.Errorf("word %#x: mask %#x, want 0xff", x, m)
		}
		got = append(got, x)
	})
	if len(got) != 16 || !slices.IsSorted(got) {
		t.Errorf("visited %#x, want the 16 words of the buffer in address order", got)
	}
}
