package tracer

import (
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/symbols"
)

// The snapshot plan: candidates by priority, disjoint, word-aligned, within
// maxGlobals bytes; what does not fit is listed.
func TestGlobalsPlan(t *testing.T) {
	m := &memWatch{word: 8}
	m.plan([]symbols.DataRange{
		{Start: 0x7000_0f00, End: 0x7000_1700, Area: "tls", Path: "[tls]"},
		{Start: 0x5000_0003, End: 0x5000_2001, Area: "data", Path: "/bin/prog"},      // unaligned ends
		{Start: 0x7000_1000, End: 0x7000_3000, Area: "data", Path: "/lib/libc.so.6"}, // overlaps the TLS range
		{Start: 0x6000_0000, End: 0x6000_0000 + 2*maxGlobals, Area: "heap", Path: "[heap]"},
	})
	want := []memRange{
		{lo: 0x5000_0008, hi: 0x5000_2000, area: event.AreaData, mapping: "/bin/prog"},
		{lo: 0x6000_0000, area: event.AreaHeap, mapping: "[heap]"},
		{lo: 0x7000_0f00, hi: 0x7000_1700, area: event.AreaTLS, mapping: "[tls]"},
		{lo: 0x7000_1700, hi: 0x7000_3000, area: event.AreaData, mapping: "/lib/libc.so.6"},
	}
	if len(m.ranges) != len(want) {
		t.Fatalf("ranges %+v, want %d", m.ranges, len(want))
	}
	total, off := 0, 0
	for i, r := range m.ranges {
		if r.off != off {
			t.Errorf("range %d at offset %d, want %d", i, r.off, off)
		}
		off += int(r.hi - r.lo)
		total += int(r.hi - r.lo)
		w := want[i]
		if r.lo != w.lo || r.area != w.area || r.mapping != w.mapping || w.hi != 0 && r.hi != w.hi {
			t.Errorf("range %d = [%#x,%#x) %s %s, want [%#x,%#x) %s %s", i, r.lo, r.hi, r.area, r.mapping, w.lo, w.hi, w.area, w.mapping)
		}
	}
	if total != maxGlobals {
		t.Errorf("%d bytes planned, want the bound %d (the heap fills what is left)", total, maxGlobals)
	}
	if len(m.leftOut) != 1 || !strings.HasPrefix(m.leftOut[0], "[heap] [0x") {
		t.Errorf("left out %q, want the rest of the heap", m.leftOut)
	}
	// Lookups: a word inside a range, its last word, one past it.
	if r, ok := m.rangeOf(0x5000_1ff8); !ok || r.mapping != "/bin/prog" {
		t.Errorf("rangeOf(last word of prog) = %v %v", r, ok)
	}
	if _, ok := m.rangeOf(0x5000_2000); ok {
		t.Errorf("rangeOf(end of prog) found a range")
	}
}

// Word values in and out of the snapshot's buffer, and the byte masks the
// parent's reads and writes are matched with.
func TestGlobalsWords(t *testing.T) {
	for _, word := range []int{4, 8} {
		m := &memWatch{word: word}
		m.plan([]symbols.DataRange{{Start: 0x1000, End: 0x1040, Area: "data", Path: "p"}})
		buf := make([]byte, 0x40)
		r := &m.ranges[0]
		m.putWord(buf, r, 0x1010, 0x11223344)
		if got := m.wordIn(buf, r, 0x1010); got != 0x11223344 {
			t.Errorf("word %d: read back %#x", word, got)
		}
		if got := m.wordIn(buf, r, 0x1000); got != 0 {
			t.Errorf("word %d: neighbour %#x", word, got)
		}
	}
	if got := changedBytes(0x0000_0001_0000_73c2, 0x0000_0002_0000_73c2, 8); got != 0x10 {
		t.Errorf("changedBytes = %#b, want byte 4 (musl errno_val next to tid)", got)
	}
	// A 4-byte store at x+4 touches bytes 4-7 of the 8-byte word at x.
	if got := touched(0x1000, 8, 0x1004, 4); got != 0xf0 {
		t.Errorf("touched = %#b, want 0xf0", got)
	}
	if got := touched(0x1000, 8, 0x0ffc, 8); got != 0x0f {
		t.Errorf("touched (straddling) = %#b, want 0x0f", got)
	}
}

// libc's bookkeeping is told by the variable: libc's own (or, in a static
// program, libc's by name), a GOT slot, the dynamic linker's state; the
// program's own variable of the same name is not libc's.
func TestClassifyLibc(t *testing.T) {
	for _, c := range []struct {
		y           symbols.Sym
		libcDynamic bool
		want        event.LibcUse
	}{
		{symbols.Sym{Name: "errno", Module: "libc.so.6"}, true, event.LibcErrno},
		{symbols.Sym{Name: "_IO_stdfile_1_lock", Module: "libc.so.6"}, true, event.LibcStdioLock},
		{symbols.Sym{Name: "__libc_single_threaded", Module: "libc.so.6"}, true, event.LibcSingleThreaded},
		{symbols.Sym{Name: "main_arena", Module: "libc.so.6", Off: 96}, true, event.LibcMalloc},
		{symbols.Sym{Name: "execl@got", Module: "prog"}, true, event.LibcBinding},
		{symbols.Sym{Name: "_rtld_global", Module: "ld-linux.so.2", Off: 1500}, true, event.LibcBinding},
		{symbols.Sym{Name: "_rtld_global", Module: "prog"}, true, ""},
		{symbols.Sym{Name: "main_arena", Module: "prog"}, false, event.LibcMalloc}, // static glibc
		{symbols.Sym{Name: "main_arena", Module: "prog"}, true, ""},                // the program's own
		{symbols.Sym{Name: "have_private_mount_ns", Module: "prog"}, false, ""},
		{symbols.Sym{Name: "_IO_2_1_stdout_", Module: "libc.so.6"}, true, ""}, // a FILE's buffer: the child printed
		{symbols.Sym{Module: "libc.so.6", Off: 0x1234}, true, ""},
	} {
		if got := classifyLibc(c.y, c.libcDynamic); got != c.want {
			t.Errorf("classifyLibc(%+v, dynamic %v) = %q, want %q", c.y, c.libcDynamic, got, c.want)
		}
	}
}
