package tracer

import (
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
	"github.com/vtrace/vtrace/tracer/internal/symbols"
)

// errno's words are watched by their 4-byte halves that still hold the
// child's bytes (errno is an int; an amd64 word holds it and a neighbour).
func TestErrnoAddrs(t *testing.T) {
	m := &memWatch{word: 8, poisoned: map[uint64]childWord{
		0x1000: {val: 2, bytes: 0x01, errno: true},       // errno in the low half
		0x2000: {val: 7, bytes: 0xff},                    // a program global
		0x3000: {val: 2 << 32, bytes: 0x10, errno: true}, // errno in the high half
	}}
	if got, want := m.errnoAddrs(), []uint64{0x1000, 0x3004}; !reflect.DeepEqual(got, want) {
		t.Errorf("amd64 errno halves %#x, want %#x", got, want)
	}
	if m.onlyErrno() {
		t.Error("onlyErrno with a program global followed too")
	}
	delete(m.poisoned, 0x2000)
	if !m.onlyErrno() {
		t.Error("not onlyErrno with errno words alone")
	}
	m32 := &memWatch{word: 4, poisoned: map[uint64]childWord{0x1000: {val: 2, bytes: 0x1, errno: true}}}
	if got := m32.errnoAddrs(); !reflect.DeepEqual(got, []uint64{0x1000}) {
		t.Errorf("i386 errno words %#x", got)
	}
	if (&memWatch{word: 8}).onlyErrno() || (*memWatch)(nil).errnoAddrs() != nil {
		t.Error("nothing followed: not onlyErrno, no addresses")
	}
}

// The parent's debug registers: its stack words (read/write, a word each)
// first, then errno's half: a write watchpoint (a store inside a call run
// at full speed), or while followErrno follows, a read/write one instead
// (one watchpoint: errnoHits tells the store from the read).
func TestArmParentDRsErrno(t *testing.T) {
	f := newFakeProcs(t)
	img := &fakeImage{path: "/prog", regions: []*fakeRegion{{start: 0x5000, data: make([]byte, 0x100), perms: "rw-p", path: "/prog"}}}
	f.tasks[1] = &fakeTask{pid: 1, img: img, atStop: true}
	s := newSession(Config{Mode: Fast}, f)
	st := &story{id: 1, parent: &task{pid: 1}}
	st.word = 8
	r := &parentRun{st: st, hw: []uint64{0x7ff0}, ehw: []uint64{0x5004}}
	if !s.armParentDRs(r) {
		t.Fatal("a stack word and errno's write watchpoint do not fit")
	}
	dr := &f.tasks[1].dr
	if dr[0] != 0x7ff0 || dr[1] != 0x5004 {
		t.Errorf("DR0 %#x DR1 %#x", dr[0], dr[1])
	}
	if want := dr7ForRW(1, 8) | dr7Entry(1, dr7RWWrite, 4); r.dr7 != want {
		t.Errorf("dr7 %#x, want %#x", r.dr7, want)
	}
	r.errnoFns = []*event.Sym{{Sym: "main"}}
	dr[2] = 0
	if !s.armParentDRs(r) {
		t.Fatal("a stack word and errno's read/write watchpoint do not fit")
	}
	if dr[1] != 0x5004 || dr[2] != 0 {
		t.Errorf("DR1 %#x DR2 %#x, want errno's half in DR1 alone", dr[1], dr[2])
	}
	if want := dr7ForRW(1, 8) | dr7Entry(1, dr7RW, 4); r.dr7 != want {
		t.Errorf("dr7 %#x, want %#x", r.dr7, want)
	}
	// DR1: enabled (bit 2), RW1 = 01 (writes, bits 20-21) or 11 (reads
	// and writes), LEN1 = 11 (4 bytes, bits 22-23).
	if got, want := dr7Entry(1, dr7RWWrite, 4), uint64(1<<2|0b01<<20|0b11<<22); got != want {
		t.Errorf("dr7 write entry %#x, want %#x", got, want)
	}
	if got, want := dr7Entry(1, dr7RW, 4), uint64(1<<2|0b11<<20|0b11<<22); got != want {
		t.Errorf("dr7 read/write entry %#x, want %#x", got, want)
	}
	r.hw = []uint64{0x7ff0, 0x7ff8, 0x8000}
	if !s.armParentDRs(r) {
		t.Error("three stack words and errno's watchpoint do not fit in four registers")
	}
	r.hw = append(r.hw, 0x8008)
	if s.armParentDRs(r) {
		t.Error("four stack words and errno's watchpoint fit in four registers")
	}
}

// A trap on errno's bytes: a store (the write watchpoint fired, or the
// bytes no longer hold the child's value) makes errno the parent's again,
// whatever it stored; a read counts only in the functions followed
// (followErrno), and only while the bytes are still the child's.
func TestErrnoHit(t *testing.T) {
	const errnoAddr = 0x5010
	for _, c := range []struct {
		name    string
		wrote   bool
		now     uint32 // errno's value at the trap
		readFn  string // the function of the instruction that touched it
		follow  []string
		kept    bool // errno still followed afterwards
		reads   int
		doneSet bool
	}{
		{"store of the child's very value (open's ENOENT)", true, 2, "open", []string{"main"}, false, 0, true},
		{"store of another value", false, 13, "open", []string{"main"}, false, 0, true},
		{"read in a followed function", false, 2, "main", []string{"spawn", "main"}, false, 1, true},
		{"read inside libc (vfprintf's save)", false, 2, "vfprintf", []string{"main"}, true, 0, false},
		{"read while only stores are watched", false, 2, "main", nil, true, 0, false},
	} {
		img := &fakeImage{path: "/prog",
			regions: []*fakeRegion{{start: 0x5000, data: make([]byte, 0x100), perms: "rw-p", path: "/prog"},
				{start: 0x401000, data: make([]byte, 0x3000), perms: "r-xp", path: "/prog"}},
			syms: []fakeSym{{"spawn", 0x401000, 0x401100}, {"main", 0x401100, 0x401200},
				{"open", 0x402000, 0x402100}, {"vfprintf", 0x403000, 0x403100}}}
		binary.LittleEndian.PutUint32(img.regions[0].data[0x10:], 9) // EBADF, the parent's
		s, st, rec := globalsStory(t, img, symbols.DataRange{Start: 0x5000, End: 0x5100, Area: "tls", Path: "[tls]"})
		st.mem.poisoned = map[uint64]childWord{errnoAddr: {val: 2, bytes: 0x01, errno: true}}
		binary.LittleEndian.PutUint32(img.regions[0].data[0x10:], c.now)
		r := &parentRun{st: st, ehw: []uint64{errnoAddr}}
		for _, n := range c.follow {
			r.errnoFns = append(r.errnoFns, &event.Sym{Sym: n, Module: "fake"})
		}
		var pc uint64
		for _, y := range img.syms {
			if y.name == c.readFn {
				pc = y.start + 4
			}
		}
		s.errnoHit(r, errnoAddr, c.wrote, &disasm.Insn{PC: pc})
		_, kept := st.mem.poisoned[errnoAddr]
		if kept != c.kept || st.mem.reads != c.reads || r.errnoDone != c.doneSet {
			t.Errorf("%s: followed %v reads %d done %v, want %v %d %v", c.name, kept, st.mem.reads, r.errnoDone, c.kept, c.reads, c.doneSet)
		}
		if rs := all[*event.GlobalRead](rec); len(rs) != c.reads || c.reads > 0 && (rs[0].Value != 2 || rs[0].Was != 9 || rs[0].By.Sym == nil || rs[0].By.Sym.Sym != c.readFn) {
			t.Errorf("%s: global_reads %+v", c.name, rs)
		}
		st.dropGlobals()
	}
}

// errnoHits with the follow's one read/write watchpoint: the instruction
// that fired it tells a store (it only writes memory) from a read (it
// reads: a load, or a read-modify-write that left the value, which the
// stepped follow counts as a read too); with a write watchpoint (no
// follow), every hit is a store.
func TestErrnoHitsReadWriteWatchpoint(t *testing.T) {
	const errnoAddr = 0x5010
	dec := func(code ...byte) *disasm.Insn {
		in, err := disasm.Decode(code, 0x401104, arch.AMD64)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	for _, c := range []struct {
		name   string
		in     *disasm.Insn
		follow bool
		fired  bool
		kept   bool
		reads  int
	}{
		{"load (mov %fs:0x10,%eax)", dec(0x64, 0x8b, 0x04, 0x25, 0x10, 0, 0, 0), true, true, false, 1},
		{"store of the same value (mov %eax,%fs:0x10)", dec(0x64, 0x89, 0x04, 0x25, 0x10, 0, 0, 0), true, true, false, 0},
		{"read-modify-write leaving it (orl $0,%fs:0x10)", dec(0x64, 0x83, 0x0c, 0x25, 0x10, 0, 0, 0, 0), true, true, false, 1},
		{"an instruction that does not decode", nil, true, true, true, 0},
		{"the watchpoint did not fire", dec(0x64, 0x8b, 0x04, 0x25, 0x10, 0, 0, 0), true, false, true, 0},
		{"write watchpoint, no follow: a store", dec(0x64, 0x8b, 0x04, 0x25, 0x10, 0, 0, 0), false, true, false, 0},
	} {
		img := &fakeImage{path: "/prog",
			regions: []*fakeRegion{{start: 0x5000, data: make([]byte, 0x100), perms: "rw-p", path: "/prog"},
				{start: 0x401000, data: make([]byte, 0x3000), perms: "r-xp", path: "/prog"}},
			syms: []fakeSym{{"main", 0x401100, 0x401200}}}
		s, st, rec := globalsStory(t, img, symbols.DataRange{Start: 0x5000, End: 0x5100, Area: "tls", Path: "[tls]"})
		st.mem.poisoned = map[uint64]childWord{errnoAddr: {val: 2, bytes: 0x01, errno: true}}
		binary.LittleEndian.PutUint32(img.regions[0].data[0x10:], 2) // still the child's ENOENT
		r := &parentRun{st: st, hw: []uint64{0x7ff0}, ehw: []uint64{errnoAddr}}
		if c.follow {
			r.errnoFns = []*event.Sym{{Sym: "main", Module: "fake"}}
		}
		var dr6 uint64
		if c.fired {
			dr6 = 1 << 1 // errno's watchpoint is DR1, after the stack word's
		}
		s.errnoHits(r, dr6, c.in, &arch.Regs{})
		_, kept := st.mem.poisoned[errnoAddr]
		if kept != c.kept || st.mem.reads != c.reads || len(all[*event.GlobalRead](rec)) != c.reads {
			t.Errorf("%s: followed %v reads %d, want %v %d", c.name, kept, st.mem.reads, c.kept, c.reads)
		}
		st.dropGlobals()
	}
}
