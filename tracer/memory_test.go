package tracer

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/go-delve/delve/pkg/dwarf/frame"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
	"github.com/vtrace/vtrace/tracer/internal/symbols"
	"github.com/vtrace/vtrace/tracer/internal/unwind"
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

// globalsStory is the setup of the tests of the memory outside the stack:
// a fast-mode session on fake processes 1 (the parent) and 2 (the vfork
// child) sharing img, and a story of theirs whose watch covers rs, read
// (snapshotted) from img as it stands.
func globalsStory(t *testing.T, img *fakeImage, rs ...symbols.DataRange) (*session, *story, *recorder) {
	t.Helper()
	f := newFakeProcs(t)
	f.tasks[1] = &fakeTask{pid: 1, img: img, atStop: true}
	f.tasks[2] = &fakeTask{pid: 2, img: img, atStop: true}
	rec := &recorder{}
	s := newSession(Config{Mode: Fast, Sink: rec}, f)
	st := &story{id: 1, parent: &task{pid: 1}, child: &task{pid: 2},
		mm: &addrSpace{arch: arch.AMD64, space: fakeSpace{img}, code: map[uint64]*insnEntry{}}}
	st.word = 8
	st.mem = &memWatch{word: 8}
	st.mem.plan(rs)
	st.mem.read(s, st)
	return s, st, rec
}

// The snapshot and its diffs on a scripted process: a change found after a
// call is a global_write during that call, a stepped store one by the
// store; the end's global_diff lists what stays changed; the parent's read
// counts only where it touches the child's bytes, and its own store takes
// a word back.
func TestGlobalsDiffAndRead(t *testing.T) {
	img := &fakeImage{path: "/prog", regions: []*fakeRegion{{start: 0x5000, data: make([]byte, 0x100), perms: "rw-p", path: "/prog"}}}
	s, st, rec := globalsStory(t, img, symbols.DataRange{Start: 0x5000, End: 0x5100, Area: "data", Path: "/prog"})
	defer st.dropGlobals()
	mem := img.regions[0].data

	// The child's callee changes the word at 0x5010 (its low two bytes).
	binary.LittleEndian.PutUint64(mem[0x10:], 0xbeef)
	call := &event.Insn{PID: 2, PC: 0x401000, Insn: "call 401100 <reset>"}
	s.diffGlobals(st, nil, call)
	// A store the child steps: 8 bytes at 0x5020.
	binary.LittleEndian.PutUint64(mem[0x20:], 7)
	store, err := disasm.Decode([]byte{0x48, 0x89, 0x05, 0, 0, 0, 0}, 0x401010, arch.AMD64) // mov %rax,0x0(%rip)
	if err != nil {
		t.Fatal(err)
	}
	s.checkGlobalStores(st, nil, store, []disasm.Access{{Addr: 0x5020, Size: 8, Write: true}}, false)
	ws := all[*event.GlobalWrite](rec)
	if len(ws) != 2 {
		t.Fatalf("global_writes %+v, want 2", ws)
	}
	if w := ws[0]; w.Addr != 0x5010 || w.Old != 0 || w.New != 0xbeef || w.During != call || w.By != nil || w.FoundBy != event.FoundDiff ||
		w.Area != event.AreaData || w.Mapping != "/prog" || w.Libc != "" {
		t.Errorf("write during the call: %+v", w)
	}
	if w := ws[1]; w.Addr != 0x5020 || w.New != 7 || w.By == nil || w.By.PC != 0x401010 || w.FoundBy != event.FoundStep {
		t.Errorf("stepped store: %+v", w)
	}
	if !st.mem.wrote {
		t.Error("the child's writes do not count as writes")
	}
	// Nothing changed since: a diff finds nothing new.
	s.diffGlobals(st, nil, nil)
	if n := len(all[*event.GlobalWrite](rec)); n != 2 {
		t.Errorf("a diff with nothing new reported %d writes in all", n)
	}

	s.emitGlobalDiff(st)
	d := all[*event.GlobalDiff](rec)
	if len(d) != 1 || d[0].Watched != 0x100 || len(d[0].Changed) != 2 || d[0].Changed[0].Before != 0 || d[0].Changed[0].After != 0xbeef {
		t.Fatalf("global_diff %+v", d)
	}
	in := &disasm.Insn{PC: 0x402000}
	// The parent reads bytes 4-7 of 0x5010: not the child's bytes.
	if s.parentGlobals(st, in, []disasm.Access{{Addr: 0x5014, Size: 4}}, true) {
		t.Error("a read of bytes the child did not change counts")
	}
	// It stores over 0x5020 itself: that word is its own again.
	s.parentGlobals(st, in, []disasm.Access{{Addr: 0x5020, Size: 8, Write: true}}, true)
	if s.parentGlobals(st, in, []disasm.Access{{Addr: 0x5020, Size: 8}}, true) {
		t.Error("a read of a word the parent overwrote counts")
	}
	// A read in a callee (not its own frames) does not count ...
	if s.parentGlobals(st, in, []disasm.Access{{Addr: 0x5010, Size: 2}}, false) {
		t.Error("a read inside a callee counts")
	}
	// ... one in its own frames of the child's bytes does.
	if !s.parentGlobals(st, in, []disasm.Access{{Addr: 0x5010, Size: 2}}, true) {
		t.Error("the parent's read of the child's bytes is not seen")
	}
	rs := all[*event.GlobalRead](rec)
	if len(rs) != 1 || rs[0].Addr != 0x5010 || rs[0].Value != 0xbeef || rs[0].Was != 0 {
		t.Errorf("global_reads %+v", rs)
	}
	if r := st.globalReasons(); len(r) != 2 || r[0] != event.ReasonWroteGlobal || r[1] != event.ReasonReadGlobal {
		t.Errorf("reasons %v", r)
	}
}

// A word the child changed and a call the parent ran at full speed (or the
// kernel) rewrote, unseen, is no longer the child's: the parent's read of
// it counts only for the bytes that still hold the child's value
// (targets/globalreset: restore_state() stores 1 over the child's 0).
func TestGlobalsReadRewritten(t *testing.T) {
	img := &fakeImage{path: "/prog", regions: []*fakeRegion{{start: 0x5000, data: make([]byte, 0x100), perms: "rw-p", path: "/prog"}}}
	s, st, rec := globalsStory(t, img, symbols.DataRange{Start: 0x5000, End: 0x5100, Area: "data", Path: "/prog"})
	defer st.dropGlobals()
	mem := img.regions[0].data

	// The child changes 0x5010 (0 → 0xbeef) and 0x5020 (0 → 7).
	binary.LittleEndian.PutUint64(mem[0x10:], 0xbeef)
	binary.LittleEndian.PutUint64(mem[0x20:], 7)
	s.diffGlobals(st, nil, &event.Insn{PID: 2, PC: 0x401000, Insn: "call 401100 <f>"})
	s.emitGlobalDiff(st)
	// The parent's calls, run at full speed, rewrite 0x5020 whole and
	// the low byte of 0x5010.
	binary.LittleEndian.PutUint64(mem[0x20:], 1)
	binary.LittleEndian.PutUint64(mem[0x10:], 0xbe01)
	in := &disasm.Insn{PC: 0x402000}
	if s.parentGlobals(st, in, []disasm.Access{{Addr: 0x5020, Size: 8}}, true) {
		t.Error("a read of a word rewritten since the child counts")
	}
	if s.parentGlobals(st, in, []disasm.Access{{Addr: 0x5010, Size: 1}}, true) {
		t.Error("a read of a byte rewritten since the child counts")
	}
	if !s.parentGlobals(st, in, []disasm.Access{{Addr: 0x5011, Size: 1}}, true) {
		t.Error("a read of a byte that still holds the child's value is not seen")
	}
	if rs := all[*event.GlobalRead](rec); len(rs) != 1 || rs[0].Addr != 0x5010 {
		t.Errorf("global_reads %+v, want one, of 0x5010", rs)
	}
}

// diffGlobals reads the watch window by window (globWindow bytes of the
// buffers' layout, several ranges in one window, one range over several):
// it finds a changed word at every place a window's or a range's edge can
// hide it, compares with what it last saw in chunks a stepped store made
// dirty, reports each change once, and keeps the last known content of a
// range it cannot read.
func TestGlobalsDiffWindows(t *testing.T) {
	const aLen = globWindow + globWindow/2 + 8 // range A spans two windows; B starts inside the second
	img := &fakeImage{path: "/prog", regions: []*fakeRegion{
		{start: 0x100000, data: make([]byte, aLen), perms: "rw-p", path: "/prog"},
		{start: 0x300000, data: make([]byte, 0x100), perms: "rw-p", path: "/lib/libx.so"},
	}}
	s, st, rec := globalsStory(t, img, symbols.DataRange{Start: 0x100000, End: 0x100000 + aLen, Area: "data", Path: "/prog"})
	defer st.dropGlobals()
	// Add B to the watch (globalsStory plans one range) and snapshot again.
	st.dropGlobals()
	st.mem = &memWatch{word: 8}
	st.mem.plan([]symbols.DataRange{
		{Start: 0x100000, End: 0x100000 + aLen, Area: "data", Path: "/prog"},
		{Start: 0x300000, End: 0x300100, Area: "data", Path: "/lib/libx.so"},
	})
	st.mem.read(s, st)
	if len(st.mem.ranges) != 2 || len(st.mem.orig) != aLen+0x100 {
		t.Fatalf("watch %+v (%d bytes)", st.mem.ranges, len(st.mem.orig))
	}
	a, b := img.regions[0].data, img.regions[1].data
	put := func(mem []byte, off int, v uint64) { binary.LittleEndian.PutUint64(mem[off:], v) }

	// A stepped store dirties the chunk of A+0x208 (shadow holds it).
	put(a, 0x208, 0x55)
	store, err := disasm.Decode([]byte{0x48, 0x89, 0x05, 0, 0, 0, 0}, 0x401010, arch.AMD64)
	if err != nil {
		t.Fatal(err)
	}
	s.checkGlobalStores(st, nil, store, []disasm.Access{{Addr: 0x100208, Size: 8, Write: true}}, false)

	// Then, during a call: the first and last word of A, the last word of
	// its first window and the first of its second, a word of the dirty
	// chunk next to the stepped one, and a word of B; and the stepped word
	// goes back to its value at the snapshot (its window then equals the
	// snapshot: a change all the same).
	put(a, 0x208, 0)
	changed := map[uint64]uint64{
		0x100000:                  1,
		0x100000 + globWindow - 8: 2,
		0x100000 + globWindow:     3,
		0x100000 + aLen - 8:       4,
		0x100210:                  5,
		0x300080:                  6,
	}
	for x, v := range changed {
		if x >= 0x300000 {
			put(b, int(x-0x300000), v)
		} else {
			put(a, int(x-0x100000), v)
		}
	}
	call := &event.Insn{PID: 2, PC: 0x401000, Insn: "call 401100 <f>"}
	s.diffGlobals(st, nil, call)
	ws := all[*event.GlobalWrite](rec)
	if len(ws) != 2+len(changed) {
		t.Fatalf("%d global_writes %+v, want the stepped one, its undoing and %d", len(ws), ws, len(changed))
	}
	undone := false
	for _, w := range ws[1:] {
		if w.Addr == 0x100208 {
			undone = w.Old == 0x55 && w.New == 0
			continue
		}
		if v, ok := changed[uint64(w.Addr)]; !ok || uint64(w.New) != v || w.Old != 0 || w.During != call {
			t.Errorf("global_write %#x %#x -> %#x during %v: not one of the changes %v", w.Addr, w.Old, w.New, w.During, changed)
		}
		delete(changed, uint64(w.Addr))
	}
	if len(changed) > 0 || !undone {
		t.Errorf("changes not found: %v; the stepped word back to its old value found: %v", changed, undone)
	}

	// B cannot be read any more: its last known content stands, and a
	// change in A is still found.
	img.regions = img.regions[:1]
	put(a, 0x10, 9)
	s.diffGlobals(st, nil, nil)
	if ws = all[*event.GlobalWrite](rec); len(ws) != 9 || ws[8].Addr != 0x100010 || ws[8].New != 9 {
		t.Fatalf("after B became unreadable: %d global_writes, last %+v; want 9, the last of 0x100010", len(ws), ws[len(ws)-1])
	}
	s.emitGlobalDiff(st)
	d := all[*event.GlobalDiff](rec)
	if len(d) != 1 || len(d[0].Changed) != 7 {
		t.Fatalf("global_diff %+v, want the 7 words left changed", d)
	}
	if last := d[0].Changed[6]; last.Addr != 0x300080 || last.After != 6 {
		t.Errorf("B's word in the global_diff %+v, want 0x300080 = 6 (its last known content)", last)
	}
}

// A word a stepped store changed and a call then put back as it was in the
// snapshot is a change (0x55 -> 0), though the memory equals the snapshot.
func TestGlobalsDiffUndone(t *testing.T) {
	img := &fakeImage{path: "/prog", regions: []*fakeRegion{{start: 0x5000, data: make([]byte, 0x1000), perms: "rw-p", path: "/prog"}}}
	s, st, rec := globalsStory(t, img, symbols.DataRange{Start: 0x5000, End: 0x6000, Area: "data", Path: "/prog"})
	defer st.dropGlobals()
	mem := img.regions[0].data
	binary.LittleEndian.PutUint64(mem[0x808:], 0x55)
	store, err := disasm.Decode([]byte{0x48, 0x89, 0x05, 0, 0, 0, 0}, 0x401010, arch.AMD64)
	if err != nil {
		t.Fatal(err)
	}
	s.checkGlobalStores(st, nil, store, []disasm.Access{{Addr: 0x5808, Size: 8, Write: true}}, false)
	binary.LittleEndian.PutUint64(mem[0x808:], 0)
	s.diffGlobals(st, nil, &event.Insn{PID: 2, PC: 0x401000, Insn: "call 401100 <f>"})
	ws := all[*event.GlobalWrite](rec)
	if len(ws) != 2 || ws[1].Addr != 0x5808 || ws[1].Old != 0x55 || ws[1].New != 0 {
		t.Errorf("global_writes %+v, want the store and its undoing (0x55 -> 0)", ws)
	}
}

// global_diff lists the changed words of the dirty chunks in address
// order, across ranges that neither start nor end on a chunk (the buffers'
// 256-byte chunks hold words of two ranges) and chunks that are clean.
func TestGlobalDiffAcrossChunks(t *testing.T) {
	img := &fakeImage{path: "/prog", regions: []*fakeRegion{{start: 0x5000, data: make([]byte, 0x2000), perms: "rw-p", path: "/prog"}}}
	var cands []symbols.DataRange
	for _, r := range [][2]uint64{{0x5008, 0x5110}, {0x5200, 0x5408}, {0x6000, 0x6008}, {0x6100, 0x7000}} {
		cands = append(cands, symbols.DataRange{Start: r[0], End: r[1], Area: "data", Path: "/prog"})
	}
	s, st, rec := globalsStory(t, img, cands...)
	defer st.dropGlobals()
	mem := img.regions[0].data
	changed := []uint64{0x5008, 0x5100, 0x5108, 0x5200, 0x52f0, 0x5400, 0x6000, 0x6100, 0x6800, 0x6ff8}
	for i, a := range changed {
		binary.LittleEndian.PutUint64(mem[a-0x5000:], uint64(i+1))
	}
	binary.LittleEndian.PutUint64(mem[0x5180-0x5000:], 9) // not watched
	s.diffGlobals(st, nil, nil)
	s.emitGlobalDiff(st)
	d := all[*event.GlobalDiff](rec)
	if len(d) != 1 {
		t.Fatalf("global_diff %+v", d)
	}
	var got []uint64
	for i, c := range d[0].Changed {
		got = append(got, uint64(c.Addr))
		if c.Before != 0 || uint64(c.After) != uint64(i+1) {
			t.Errorf("change %d: %+v, want 0 -> %d", i, c, i+1)
		}
	}
	if !slices.Equal(got, changed) {
		t.Errorf("global_diff words %#x, want %#x", got, changed)
	}
}

// parentFollowStory is a story whose parent (pid 1, followed, standing at
// pc with stack pointer sp) is followed for its reads of the word 0x405010,
// which its child set to 0xbeef: the program's data at 0x405000, its code
// (code) at 0x401000, a stack below fakeStackTop.
func parentFollowStory(t *testing.T, code []byte, syms []fakeSym, fdes frame.FrameDescriptionEntries, pc, sp uint64) (*session, *story, *recorder, *fakeTask, *fakeImage) {
	t.Helper()
	img := &fakeImage{path: "/prog", regions: []*fakeRegion{
		{start: 0x405000, data: make([]byte, 0x100), perms: "rw-p", path: "/prog"},
		{start: 0x401000, data: code, perms: "r-xp", path: "/prog"},
		{start: fakeStackTop - 0x1000, data: make([]byte, 0x1000), perms: "rw-p", path: "[stack]"}},
		syms: syms, fdes: fdes}
	s, st, rec := globalsStory(t, img, symbols.DataRange{Start: 0x405000, End: 0x405100, Area: "data", Path: "/prog"})
	t.Cleanup(st.dropGlobals)
	binary.LittleEndian.PutUint64(img.regions[0].data[0x10:], 0xbeef) // the child's value
	st.mem.poisoned = map[uint64]childWord{0x405010: {val: 0xbeef, bytes: 0xff}}
	st.mm.bps, st.mm.removed = map[uint64]*breakpoint{}, map[uint64]bool{}
	p := st.parent
	p.proc, p.state = &process{tgid: 1, mm: st.mm}, taskFollowed
	s.byPID[1] = p
	pt := s.p.(*fakeProcs).tasks[1]
	pt.regs.Arch = arch.AMD64
	pt.regs.SetPC(pc)
	pt.regs.Set(arch.AMD64.SP, sp)
	st.par.landing = &event.ParentLanding{How: event.LandReturned}
	return s, st, rec, pt, img
}

// The parent, followed after its landing for a global the child changed
// (0x5010), runs a stretch of instructions that touch nothing watched —
// registers, the stack, another global at a fixed address, a forward
// jump — at full speed to an int3 at the first instruction that reads the
// watched word (parentblock.go): no single-step, each instruction still
// counted as one, the read seen and reported by that instruction, the
// int3 gone after.
func TestParentBlockToGlobalRead(t *testing.T) {
	code := []byte{
		0x53,             // 401000 push %rbx
		0x48, 0x89, 0xc3, // 401001 mov %rax,%rbx
		0x48, 0x8b, 0x0d, 0, 0, 0, 0, // 401004 mov 0x405040(%rip),%rcx: not watched
		0x48, 0x85, 0xc0, // 40100b test %rax,%rax
		0x74, 0x03, // 40100e je 401013
		0x48, 0x31, 0xc0, // 401010 xor %rax,%rax
		0x48, 0x83, 0xec, 0x10, // 401013 sub $0x10,%rsp
		0x48, 0x83, 0xc4, 0x10, // 401017 add $0x10,%rsp
		0x5b,                         // 40101b pop %rbx
		0x48, 0x8b, 0x15, 0, 0, 0, 0, // 40101c mov 0x405010(%rip),%rdx: the child's word
		0x90, // 401023 nop
	}
	rel := func(to, next int64) uint32 { return uint32(int32(to - next)) }
	binary.LittleEndian.PutUint32(code[7:], rel(0x405040, 0x40100b))
	binary.LittleEndian.PutUint32(code[0x1f:], rel(0x405010, 0x401023))
	s, st, rec, pt, img := parentFollowStory(t, append(code, make([]byte, 0x100)...), []fakeSym{{"main", 0x401000, 0x401100}}, nil, 0x401000, fakeStackTop-16)
	f := s.p.(*fakeProcs)

	if err := s.watchGlobalReads(st); err != nil {
		t.Fatal(err)
	}
	rs := all[*event.GlobalRead](rec)
	if len(rs) != 1 || rs[0].Addr != 0x405010 || rs[0].Value != 0xbeef || rs[0].By.PC != 0x40101c {
		t.Fatalf("global_reads %+v, want one of 0x405010 by 0x40101c", rs)
	}
	if f.stepReqs != 0 {
		t.Errorf("%d single-steps: the stretch before the read was stepped", f.stepReqs)
	}
	// push, mov, mov, test, je (taken), sub, add, pop; the read.
	if st.steps != 9 {
		t.Errorf("%d steps counted, want 9 (one per instruction executed)", st.steps)
	}
	if b := img.regions[1].data[0x1c]; b != 0x48 || len(st.mm.bps) != 0 {
		t.Errorf("the exit's int3 left behind: byte %#x, int3s %v", b, st.mm.bps)
	}
	if pt.regs.PC() != 0x40101c || pt.regs.SP() != fakeStackTop-16 {
		t.Errorf("parent at pc %#x sp %#x, want 0x40101c %#x", pt.regs.PC(), pt.regs.SP(), fakeStackTop-16)
	}
}

// A parent block runs through the calls and the rets of the parent's own
// frames (parentblock.go: callThroughOK, retThroughOK): the parent,
// followed in f for a global the child changed, calls into code that
// passes the block's exit at a deeper stack pointer (the int3 there is
// stepped over, its read inside the callee not the parent's own), stops
// at f's ret (the call came before it: conflicts), returns from f into
// its caller the story unwound, and is stopped by the exit's int3 at the
// caller's read of the word: one global_read, by the caller.
func TestParentBlockThroughCallAndRet(t *testing.T) {
	code := make([]byte, 0x300)
	put := func(at uint64, b ...byte) { copy(code[at-0x401000:], b) }
	rel := func(to, next uint64) []byte {
		return binary.LittleEndian.AppendUint32(nil, uint32(int32(int64(to)-int64(next))))
	}
	// main: 401000 call f; 401005 mov 0x405010(%rip),%rdx (the child's
	// word); 40100c nop; 40100d ret — its tail also called as a function.
	put(0x401000, append([]byte{0xe8}, rel(0x401100, 0x401005)...)...)
	put(0x401005, append([]byte{0x48, 0x8b, 0x15}, rel(0x405010, 0x40100c)...)...)
	put(0x40100c, 0x90, 0xc3)
	// f: 401100 call 401005; 401105 ret.
	put(0x401100, append([]byte{0xe8}, rel(0x401005, 0x401105)...)...)
	put(0x401105, 0xc3)
	sp := uint64(fakeStackTop - 64)
	s, st, rec, pt, img := parentFollowStory(t, code, []fakeSym{{"main", 0x401000, 0x401100}, {"f", 0x401100, 0x401200}},
		fakeFDEs(t, [2]uint64{0x401000, 0x401100}, [2]uint64{0x401100, 0x401200}), 0x401100, sp)
	f := s.p.(*fakeProcs)
	binary.LittleEndian.PutUint64(img.regions[2].data[sp-(fakeStackTop-0x1000):], 0x401005) // f's return address
	st.frames = []unwind.Frame{{PC: 0x401100, CFA: sp + 8, RetSlot: sp, Ret: 0x401005}}

	if err := s.watchGlobalReads(st); err != nil {
		t.Fatal(err)
	}
	rs := all[*event.GlobalRead](rec)
	if len(rs) != 1 || rs[0].Addr != 0x405010 || rs[0].By.PC != 0x401005 {
		t.Fatalf("global_reads %+v, want one of 0x405010 by 0x401005 in main", rs)
	}
	if pt.regs.PC() != 0x401005 || pt.regs.SP() != sp+8 {
		t.Errorf("parent at pc %#x sp %#x, want 0x401005 %#x (in main, f returned)", pt.regs.PC(), pt.regs.SP(), sp+8)
	}
	// Two single-steps: over the exit's int3 the callee passed, and f's
	// ret, where the block stopped (a call of the block came before it:
	// the callee could have changed its slot).
	if f.stepReqs != 2 {
		t.Errorf("%d single-steps, want 2 (over the int3 the callee passed, the ret)", f.stepReqs)
	}
	// call (its callee not counted), ret; the read.
	if st.steps != 3 {
		t.Errorf("%d steps counted, want 3", st.steps)
	}
	if b := code[5]; b != 0x48 || len(st.mm.bps) != 0 {
		t.Errorf("the exit's int3 left behind: byte %#x, int3s %v", b, st.mm.bps)
	}
}

// A ret whose slot no longer holds the return address the story unwound
// or that a store of the block writes, and a call that ends its function (no return: exit, abort), end a
// parent block: the parent is single-stepped there as before.
func TestParentBlockRetAndCallRefused(t *testing.T) {
	code := make([]byte, 0x500)
	put := func(at uint64, b ...byte) { copy(code[at-0x401000:], b) }
	put(0x401100, 0x90, 0x90, 0x90, 0xc3)                         // f: nop; nop; nop; ret
	put(0x401150, 0x90, 0x90, 0x48, 0x89, 0x04, 0x24, 0xc3)       // h: nop; nop; mov %rax,(%rsp); ret
	put(0x401200, 0x90, 0x90, 0x90, 0xe8, 0xf8, 0xfe, 0xff, 0xff) // g: nop; nop; nop; call 401100 — its last instruction
	put(0x401250, 0x90, 0x90, 0xe8, 0xa9, 0xfe, 0xff, 0xff, 0xc3) // j: nop; nop; call 401100; ret
	// k: nop; jne 401307; mov (%rcx),%rdx (an exit); nop; nop; nop; ret
	put(0x401300, 0x90, 0x75, 0x04, 0x48, 0x8b, 0x11, 0x90, 0x90, 0x90, 0xc3)
	// main2: call 401100; nop; nop; mov (%rcx),%rdx
	put(0x401400, 0xe8, 0xfb, 0xfc, 0xff, 0xff, 0x90, 0x90, 0x48, 0x8b, 0x11)
	sp := uint64(fakeStackTop - 64)
	s, st, _, pt, img := parentFollowStory(t, code, []fakeSym{{"f", 0x401100, 0x401104}, {"g", 0x401200, 0x401208}},
		fakeFDEs(t, [2]uint64{0x401100, 0x401104}, [2]uint64{0x401150, 0x401157}, [2]uint64{0x401200, 0x401208},
			[2]uint64{0x401250, 0x401258}, [2]uint64{0x401300, 0x40130a}, [2]uint64{0x401400, 0x401410}), 0, sp)
	binary.LittleEndian.PutUint64(img.regions[2].data[sp-(fakeStackTop-0x1000):], 0x401005)

	exits := func(pc uint64) []uint64 {
		pt.regs.SetPC(pc)
		b := s.parentBlockAt(st, &pt.regs, maxGlobalWatch)
		if b == nil {
			return nil
		}
		return slices.Clone(b.exits)
	}
	st.frames = []unwind.Frame{{PC: 0x401100, RetSlot: sp, Ret: 0x401005}}
	if got := exits(0x401100); !slices.Equal(got, []uint64{0x401005}) {
		t.Errorf("through f's ret: exits %#x, want [0x401005] (the caller's add through %%rax there)", got)
	}
	st.frames[0].Ret = 0x401009 // the slot holds another value than the unwound return address
	if got := exits(0x401100); !slices.Equal(got, []uint64{0x401103}) {
		t.Errorf("changed return slot: exits %#x, want [0x401103] (the ret)", got)
	}
	st.frames[0].Ret = 0x401005
	if got := exits(0x401150); got != nil {
		t.Errorf("a ret after the block's own store to its slot: exits %#x, want no block", got)
	}
	if got := exits(0x401200); !slices.Equal(got, []uint64{0x401203}) {
		t.Errorf("a call that ends its function: exits %#x, want [0x401203] (the call)", got)
	}
	// A call of the block can come before the ret: its callee could have
	// changed the slot.
	if got := exits(0x401250); !slices.Equal(got, []uint64{0x401257}) {
		t.Errorf("a ret after a call: exits %#x, want [0x401257] (the ret)", got)
	}
	// k's exit is below main2's call: a callee of that call could reach
	// it at its very stack pointer. The call is an exit.
	st.frames[0].Ret = 0x401400
	binary.LittleEndian.PutUint64(img.regions[2].data[sp-(fakeStackTop-0x1000):], 0x401400)
	if got := exits(0x401300); !slices.Equal(got, []uint64{0x401303, 0x401400}) {
		t.Errorf("a call above an exit: exits %#x, want [0x401303 0x401400] (k's load, main2's call)", got)
	}
}

// Where the parent stands, a parent block knows its registers: a load
// through one is in the block when it touches no watched word, a
// conditional jump goes the one way its flags say (backward too), a ret
// goes where its slot points — each refused when that is not so (a
// watched word, a loop back to where it stands, a slot that is not code).
func TestParentBlockAtStart(t *testing.T) {
	code := make([]byte, 0x200)
	put := func(at uint64, b ...byte) { copy(code[at-0x401000:], b) }
	put(0x401100, 0x48, 0x8b, 0x03, 0x90, 0x90, 0x48, 0x8b, 0x11)                         // mov (%rbx),%rax; nop; nop; mov (%rcx),%rdx
	put(0x401140, 0x90, 0x90, 0x90, 0x48, 0x8b, 0x11)                                     // nop x3; mov (%rcx),%rdx
	put(0x401160, 0x75, 0xde, 0x90, 0x90, 0x90, 0x48, 0x8b, 0x11)                         // jne 401140; nop x3; mov (%rcx),%rdx
	put(0x4011c0, 0x90, 0x90, 0x74, 0x05, 0x90, 0xeb, 0xf9, 0x90, 0x90, 0x48, 0x8b, 0x11) // nop; nop; je 4011c9; nop; jmp 4011c0; nop; nop; mov (%rcx),%rdx
	put(0x4011a0, 0xc3)                                                                   // ret
	sp := uint64(fakeStackTop - 64)
	s, st, _, pt, img := parentFollowStory(t, code, []fakeSym{{"f", 0x401100, 0x401200}}, nil, 0, sp)
	copy(img.regions[0].data[0x80:], []byte{0x90, 0x90, 0x90, 0x48, 0x8b, 0x11}) // code bytes in data
	regs := &pt.regs
	exits := func(pc uint64) []uint64 {
		regs.SetPC(pc)
		if b := s.parentBlockAt(st, regs, maxGlobalWatch); b != nil {
			return slices.Clone(b.exits)
		}
		return nil
	}
	const rbx, zf = 3, 1 << 6
	for _, c := range []struct {
		name  string
		pc    uint64
		set   func()
		exits []uint64
	}{
		{"load through %rbx, not watched", 0x401100, func() { regs.Set(rbx, 0x405040) }, []uint64{0x401105}},
		{"load through %rbx of the watched word", 0x401100, func() { regs.Set(rbx, 0x405010) }, nil},
		{"jne taken, backward", 0x401160, func() { regs.Flags = 0 }, []uint64{0x401143}},
		{"jne not taken", 0x401160, func() { regs.Flags = zf }, []uint64{0x401165}},
		{"jmp back to a loop through where it stands", 0x4011c5, func() {}, nil},
		{"ret to code", 0x4011a0, func() { binary.LittleEndian.PutUint64(img.regions[2].data[0x1000-64:], 0x401140) }, []uint64{0x401143}},
		{"ret to data", 0x4011a0, func() { binary.LittleEndian.PutUint64(img.regions[2].data[0x1000-64:], 0x405080) }, nil},
	} {
		c.set()
		if got := exits(c.pc); !slices.Equal(got, c.exits) {
			t.Errorf("%s: exits %#x, want %#x", c.name, got, c.exits)
		}
	}
}

// A harmless signal that comes while the parent stands at a call its
// block runs through is delivered on the way, and the callee it then
// enters is not taken for the parent's own frames: h's read of the word
// the child changed is a callee's (not looked at, in either mode), and
// the follow ends at the parent's own store to it.
func TestParentBlockSignalAtCall(t *testing.T) {
	code := make([]byte, 0x200)
	put := func(at uint64, b ...byte) { copy(code[at-0x401000:], b) }
	rel := func(to, next uint64) []byte {
		return binary.LittleEndian.AppendUint32(nil, uint32(int32(int64(to)-int64(next))))
	}
	put(0x401000, append([]byte{0xe8}, rel(0x401100, 0x401005)...)...) // call h
	put(0x401005, 0x90, 0x90)
	put(0x401007, append(append([]byte{0x48, 0xc7, 0x05}, rel(0x405010, 0x401012)...), 1, 0, 0, 0)...) // movq $1,g(%rip)
	put(0x401100, append([]byte{0x48, 0x8b, 0x05}, rel(0x405010, 0x401107)...)...)                     // h: mov g(%rip),%rax
	put(0x401107, 0xc3)
	s, st, rec, pt, _ := parentFollowStory(t, code, []fakeSym{{"main", 0x401000, 0x401100}, {"h", 0x401100, 0x401108}},
		fakeFDEs(t, [2]uint64{0x401000, 0x401020}, [2]uint64{0x401100, 0x401108}), 0x401000, fakeStackTop-64)
	f := s.p.(*fakeProcs)
	pt.sigpending = unix.SIGURG

	if err := s.watchGlobalReads(st); err != nil {
		t.Fatal(err)
	}
	if rs := all[*event.GlobalRead](rec); len(rs) != 0 {
		t.Errorf("global_reads %+v, want none (h's read is a callee's)", rs)
	}
	if !slices.Contains(f.delivered, unix.SIGURG) {
		t.Errorf("SIGURG not delivered (delivered %v)", f.delivered)
	}
	if len(st.mem.poisoned) != 0 || pt.regs.PC() != 0x401012 {
		t.Errorf("poisoned %v, parent at %#x: want the follow ended after main's store (0x401012)", st.mem.poisoned, pt.regs.PC())
	}
}

// An exit reached on two paths at two stack pointers (here a push on one
// of them) is refused, as any pc is: the block would take its int3 met at
// the other stack pointer for a callee's and step over it.
func TestParentBlockExitTwoStackPointers(t *testing.T) {
	code := make([]byte, 0x100)
	copy(code, []byte{0x90, 0x75, 0x01, 0x50, 0x48, 0x8b, 0x11}) // nop; jne +1; push %rax; mov (%rcx),%rdx
	s, st, _, pt, _ := parentFollowStory(t, code, []fakeSym{{"f", 0x401000, 0x401100}}, nil, 0x401000, fakeStackTop-64)
	regs := &pt.regs
	if b := s.parentBlockAt(st, regs, maxGlobalWatch); b != nil {
		t.Errorf("exits %#x: want no block", b.exits)
	}
}

// An exit's int3 that a callee of the block reaches below the exit's
// stack pointer is the callee's: stepped over, and the block runs on to
// the same int3 in the parent's own frame. Here main calls into its own
// tail: the read of the child's word runs first in the callee (not the
// parent's own frame: not looked at), then in main.
func TestParentBlockExitInCallee(t *testing.T) {
	code := make([]byte, 0x100)
	copy(code, []byte{0xe8, 0x02, 0, 0, 0, 0x90, 0x90}) // call 401007; nop; nop
	copy(code[7:], []byte{0x48, 0x8b, 0x05})            // 401007: mov 0x405010(%rip),%rax
	binary.LittleEndian.PutUint32(code[10:], 0x405010-0x40100e)
	code[14] = 0xc3 // 40100e: ret
	sp := uint64(fakeStackTop - 64)
	s, st, rec, pt, _ := parentFollowStory(t, code, []fakeSym{{"main", 0x401000, 0x401010}},
		fakeFDEs(t, [2]uint64{0x401000, 0x401010}), 0x401000, sp)
	if err := s.watchGlobalReads(st); err != nil {
		t.Fatal(err)
	}
	rs := all[*event.GlobalRead](rec)
	if len(rs) != 1 || rs[0].By.PC != 0x401007 || pt.regs.SP() != sp {
		t.Errorf("global_reads %+v, parent's sp %#x; want one by 0x401007 with the sp main has, %#x", rs, pt.regs.SP(), sp)
	}
	if n := s.p.(*fakeProcs).stepReqs; n != 1 {
		t.Errorf("%d single-steps, want 1 (over the int3 the callee met)", n)
	}
}

// systemLibc takes glibc's libc.so.6 from the system's library
// directories only: a libc built or copied elsewhere is not trusted.
func TestSystemLibc(t *testing.T) {
	for p, want := range map[string]bool{
		"/usr/lib/x86_64-linux-gnu/libc.so.6": true, "/lib/x86_64-linux-gnu/libc.so.6": true,
		"/usr/lib/i386-linux-gnu/libc.so.6": true, "/lib64/libc.so.6": true, "/usr/lib64/libc.so.6": true,
		"/lib/libc.so.6": true, "/usr/lib32/libc.so.6": true,
		"/home/me/glibc-build/libc.so.6": false, "/tmp/fake/libc.so.6": false, "/usr/lib/x86_64-linux-gnu/libc.so.6 (deleted)": false,
		"/usr/lib/x86_64-linux-gnu/libc.so": false, "/usr/local/lib/libc.so.6": false, "/opt/glibc/lib/libc.so.6": false,
		"/usr/lib/x86_64-linux-gnu/tls/libc.so.6": false,
	} {
		if got := systemLibc(p); got != want {
			t.Errorf("systemLibc(%q) = %v, want %v", p, got, want)
		}
	}
}

// A segment-relative access is its segment's base plus its offset: the
// base the registers gave at the access where they did (amd64), else the
// thread pointer in its segment (amd64 %fs, i386 %gs); the other segment
// is unknown without its base (amd64 %gs decoded ahead, i386 %fs).
func TestAccessAddrBySegment(t *testing.T) {
	for _, c := range []struct {
		word   int
		gs     bool
		base   uint64
		baseOK bool
		want   uint64
		wantOK bool
	}{
		{8, false, 0, false, 0x7000 + 0x10, true},     // amd64 %fs: TLS
		{8, true, 0, false, 0, false},                 // amd64 %gs, no base at hand: unknown
		{8, true, 0xa000, true, 0xa000 + 0x10, true},  // amd64 %gs, its base at the access
		{8, false, 0xb000, true, 0xb000 + 0x10, true}, // amd64 %fs, its base at the access
		{4, true, 0, false, 0x7000 + 0x10, true},      // i386 %gs: TLS
		{4, false, 0, false, 0, false},                // i386 %fs: unknown
	} {
		m := &memWatch{word: c.word, tp: 0x7000}
		got, ok := m.accessAddr(disasm.Access{Addr: 0x10, Size: c.word, Seg: true, GS: c.gs, SegBase: c.base, SegBaseOK: c.baseOK})
		if got != c.want || ok != c.wantOK {
			t.Errorf("word %d, gs %v, base %#x %v: %#x %v, want %#x %v", c.word, c.gs, c.base, c.baseOK, got, ok, c.want, c.wantOK)
		}
	}
	// i386 wraps at 32 bits.
	m := &memWatch{word: 4, tp: 0xfffffff8}
	if got, ok := m.accessAddr(disasm.Access{Addr: 0x10, Size: 4, Seg: true, GS: true}); got != 0x8 || !ok {
		t.Errorf("i386 %%gs past 4 GiB: %#x %v, want 0x8 true", got, ok)
	}
}
