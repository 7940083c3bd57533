package symbols

import (
	"bufio"
	"cmp"
	"debug/dwarf"
	"debug/elf"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

func openT(t testing.TB, path string) *Binary {
	t.Helper()
	b, err := OpenBinary(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type symWant struct {
	addr    uint64
	name    string
	off     uint64
	pastEnd bool
}

func checkSyms(t *testing.T, b *Binary, want []symWant) {
	t.Helper()
	for _, w := range want {
		name, off, past, ok := b.symbolAt(w.addr)
		if !ok || name != w.name || off != w.off || past != w.pastEnd {
			t.Errorf("%s: symbolAt(%#x) = %s+%#x pastEnd=%v ok=%v, want %s+%#x pastEnd=%v",
				filepath.Base(b.Path), w.addr, name, off, past, ok, w.name, w.off, w.pastEnd)
		}
	}
}

func TestOpenBinary(t *testing.T) {
	for _, c := range []struct {
		build string
		arch  *arch.Arch
	}{
		{"gcc-O0", arch.AMD64}, {"clang-O2", arch.AMD64}, {"gcc-m32-O0", arch.I386},
	} {
		path := filepath.Join(disasmData, c.build)
		b := openT(t, path)
		if b.Arch != c.arch || b.Type != elf.ET_DYN || b.Path != path {
			t.Errorf("%s: arch %s, type %v, path %s", c.build, b.Arch.Name, b.Type, b.Path)
		}
		if again := openT(t, path); again != b {
			t.Errorf("%s: opened twice, not cached", c.build)
		}
	}
	if b := openT(t, "testdata/static-ifunc-amd64"); b.Type != elf.ET_EXEC {
		t.Errorf("static-ifunc-amd64: type %v", b.Type)
	}
	if _, err := OpenBinary("testdata/gen.sh"); err == nil {
		t.Error("a shell script opened as ELF")
	}
	if _, err := OpenBinary("testdata/no-such-file"); err == nil {
		t.Error("a missing file opened")
	}
}

func TestBuildID(t *testing.T) {
	notes, err := os.ReadFile("testdata/gcc-O2-g.notes")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Build ID: ([0-9a-f]+)`).FindSubmatch(notes)
	if m == nil {
		t.Fatal("no build-id in readelf -n output")
	}
	if b := openT(t, "testdata/gcc-O2-g"); b.BuildID != string(m[1]) {
		t.Errorf("build-id %s, readelf says %s", b.BuildID, m[1])
	}
}

func TestPLTStubs(t *testing.T) {
	// The lazy PLT stubs of PIE programs (16 bytes) and .plt.got (8
	// bytes), named after their GOT slot's JUMP_SLOT or GLOB_DAT symbol;
	// i386 stubs jump through %ebx (jmp *0x10(%ebx)), and ld marks their
	// section with sh_entsize 4.
	checkSyms(t, openT(t, filepath.Join(disasmData, "gcc-O0")), []symWant{
		{0x1030, "printf@plt", 0, false},
		{0x1040, "vfork@plt", 0, false},
		{0x104b, "vfork@plt", 0xb, false},
		{0x104f, "vfork@plt", 0xf, false},
		{0x1050, "exit@plt", 0, false},
		{0x1060, "__cxa_finalize@plt", 0, false},
		{0x1067, "__cxa_finalize@plt", 7, false},
	})
	checkSyms(t, openT(t, filepath.Join(disasmData, "gcc-m32-O0")), []symWant{
		{0x1030, "__libc_start_main@plt", 0, false},
		{0x1040, "printf@plt", 0, false},
		{0x1050, "exit@plt", 0, false},
		{0x1060, "vfork@plt", 0, false},
		{0x106b, "vfork@plt", 0xb, false},
		{0x1070, "__cxa_finalize@plt", 0, false},
	})
	// Static programs' IRELATIVE stubs, named after the STT_GNU_IFUNC
	// symbol at the resolver's address (not its local alias add_ifunc):
	// 8 bytes each in a static executable, whose .plt has sh_entsize 0;
	// lazy-style 16-byte stubs after PLT0 in a static PIE. Addresses from
	// testdata/*.objdump and *.relocs.
	checkSyms(t, openT(t, "testdata/static-ifunc-amd64"), []symWant{
		{0x401000, "add@plt", 0, false}, // jmp *0x404000, slot filled by add (0x40101d)
		{0x401007, "add@plt", 7, false},
		{0x401008, "sub@plt", 0, false},
	})
	checkSyms(t, openT(t, "testdata/static-ifunc-i386"), []symWant{
		{0x8049000, "add@plt", 0, false}, // jmp *0x804c000, which holds 0x8049026: add
		{0x8049008, "sub@plt", 0, false},
		{0x804900f, "sub@plt", 7, false},
	})
	pie := openT(t, "testdata/static-pie-ifunc-amd64")
	checkSyms(t, pie, []symWant{
		{0x1010, "add@plt", 0, false},
		{0x101b, "add@plt", 0xb, false},
		{0x1020, "sub@plt", 0, false},
	})
	if name, off, ok := pie.SymbolAt(0x1000); ok {
		t.Errorf("PLT0 of the static PIE (no symbol below it): %s+%#x", name, off)
	}
}

func TestPLTStride(t *testing.T) {
	stub8 := []byte{0xff, 0x25, 1, 2, 3, 4, 0x66, 0x90}
	lazy16 := []byte{0xff, 0x25, 1, 2, 3, 4, 0x68, 0, 0, 0, 0, 0xe9, 0xe0, 0xff, 0xff, 0xff}
	plt0 := []byte{0xff, 0x35, 1, 2, 3, 4, 0xff, 0x25, 1, 2, 3, 4, 0x0f, 0x1f, 0x40, 0}
	ebx16 := append([]byte{0xff, 0xa3, 0x10, 0, 0, 0}, lazy16[6:]...)
	rep := func(n int, parts ...[]byte) []byte {
		var out []byte
		for i := 0; i < n; i++ {
			for _, p := range parts {
				out = append(out, p...)
			}
		}
		return out
	}
	for _, c := range []struct {
		name    string
		code    []byte
		ptrSize int
		entsize uint64
		want    uint64
	}{
		{"static 8-byte stubs, entsize 0", rep(4, stub8), 8, 0, 8},
		{"two static 8-byte stubs", rep(2, stub8), 8, 0, 8},
		{"one static 8-byte stub", stub8, 8, 0, 8},
		{"PLT0 and two stubs, entsize 0", append(plt0, rep(2, lazy16)...), 8, 0, 16},
		{"PLT0 and one i386 stub, entsize 4", append(plt0, ebx16...), 4, 4, 16},
		{"lazy amd64 .plt", append(plt0, rep(3, lazy16)...), 8, 16, 16},
		{"lazy i386 .plt, entsize 4", append(plt0, rep(3, ebx16)...), 4, 4, 16},
		{"one .plt.got stub", stub8, 8, 8, 8},
		{"one stub, entsize 0", lazy16, 8, 0, 16},
		{"i386 ebx jmp is not one on amd64", rep(3, ebx16), 8, 0, 16},
	} {
		if got := pltStride(c.code, c.ptrSize, c.entsize); got != c.want {
			t.Errorf("%s: stride %d, want %d", c.name, got, c.want)
		}
	}
}

func TestPastEnd(t *testing.T) {
	// gcc -O2's main ends in call exit (0x108d, 5 bytes): its return
	// address 0x1092 = main+0x22 is past main's 0x22 bytes, in the padding
	// before _start (0x10a0).
	b := openT(t, filepath.Join(disasmData, "gcc-O2"))
	checkSyms(t, b, []symWant{
		{0x1070, "main", 0, false},
		{0x108d, "main", 0x1d, false},
		{0x1091, "main", 0x21, false},
		{0x1092, "main", 0x22, true},
		{0x109f, "main", 0x2f, true},
		{0x10a0, "_start", 0, false},
		// Unsized symbols (crtstuff's) cover everything up to the next.
		{0x10d0, "deregister_tm_clones", 0, false},
		{0x10ff, "deregister_tm_clones", 0x2f, false},
		// createproc (0x1190, 0x25 bytes), then _fini's section.
		{0x11b4, "createproc", 0x24, false},
		{0x11b5, "createproc", 0x25, true},
	})
}

func TestLookup(t *testing.T) {
	b := openT(t, filepath.Join(disasmData, "gcc-O0"))
	for name, want := range map[string]uint64{"main": 0x1159, "createproc": 0x1191, "_start": 0x1070, "_init": 0x1000} {
		if got, ok := b.Lookup(name); !ok || got != want {
			t.Errorf("Lookup(%s) = %#x, %v; want %#x", name, got, ok, want)
		}
	}
	for _, name := range []string{"printf", "printf@plt", "nosuch"} {
		if got, ok := b.Lookup(name); ok {
			t.Errorf("Lookup(%s) = %#x, want none (undefined or synthesised)", name, got)
		}
	}
	// A global symbol wins over a local one of the same name, though the
	// symbol table lists the local first; add is the IFUNC symbol.
	for path, want := range map[string]map[string]uint64{
		"testdata/static-ifunc-amd64":     {"twin": 0x40105d, "add": 0x40101d, "add_ifunc": 0x40101d},
		"testdata/static-ifunc-i386":      {"twin": 0x8049067, "sub": 0x804902c},
		"testdata/static-pie-ifunc-amd64": {"twin": 0x1081},
	} {
		b := openT(t, path)
		for name, addr := range want {
			if got, ok := b.Lookup(name); !ok || got != addr {
				t.Errorf("%s: Lookup(%s) = %#x, %v; want %#x", path, name, got, ok, addr)
			}
		}
	}
}

func TestLine(t *testing.T) {
	// gcc-O2-g.lines is addr2line's answer for each instruction of .text.
	b := openT(t, "testdata/gcc-O2-g")
	f, err := os.Open("testdata/gcc-O2-g.lines")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n, withLine := 0, 0
	for sc.Scan() {
		a, pos, ok := strings.Cut(sc.Text(), " ")
		addr, err := strconv.ParseUint(a, 0, 64)
		if !ok || err != nil {
			t.Fatalf("bad golden line %q", sc.Text())
		}
		file, line := "", 0
		if i := strings.LastIndexByte(pos, ':'); i > 0 {
			if l, err := strconv.Atoi(pos[i+1:]); err == nil && l > 0 {
				file, line = pos[:i], l
			}
		}
		gf, gl := b.Line(addr)
		if gf != file || gl != line {
			t.Errorf("Line(%#x) = %s:%d, addr2line says %s", addr, gf, gl, pos)
		}
		n++
		if line > 0 {
			withLine++
		}
	}
	if n < 50 || withLine < 15 {
		t.Errorf("golden has %d addresses, %d with a line: too few", n, withLine)
	}
	if f, l := openT(t, filepath.Join(disasmData, "gcc-O0")).Line(0x1159); f != "" || l != 0 {
		t.Errorf("a build without -g has line %s:%d", f, l)
	}
}

func TestSortLines(t *testing.T) {
	// Two sequences, the later one listed first, the first ending where
	// the later starts.
	rows := []lineRow{
		{addr: 0x20, file: "b.c", line: 5}, {addr: 0x30, end: true},
		{addr: 0x10, file: "a.c", line: 1}, {addr: 0x20, end: true},
	}
	sortLines(rows)
	var got []string
	for _, r := range rows {
		got = append(got, r.file+":"+strconv.Itoa(r.line)+":"+strconv.FormatBool(r.end))
	}
	want := "[a.c:1:false :0:true b.c:5:false :0:true]"
	if s := "[" + strings.Join(got, " ") + "]"; s != want {
		t.Errorf("sorted %s, want %s", s, want)
	}
}

func TestFDEs(t *testing.T) {
	b := openT(t, filepath.Join(disasmData, "gcc-O0"))
	const bias = 0x555555554000
	at0, err := b.FDEs(0)
	if err != nil {
		t.Fatal(err)
	}
	at, err := b.FDEs(bias)
	if err != nil {
		t.Fatal(err)
	}
	if len(at) != len(at0) || len(at) == 0 {
		t.Fatalf("%d FDEs at bias 0, %d at %#x", len(at0), len(at), bias)
	}
	for i := range at {
		if at[i].Begin() != at0[i].Begin()+bias || at[i].End() != at0[i].End()+bias {
			t.Errorf("FDE %d: [%#x,%#x) at bias, [%#x,%#x) without", i, at[i].Begin(), at[i].End(), at0[i].Begin(), at0[i].End())
		}
		if i > 0 && at[i].Begin() < at[i-1].Begin() {
			t.Errorf("FDEs not sorted at %d", i)
		}
	}
	// readelf --debug-frame: createproc's FDE is pc=1191..11cc, the .plt's
	// 1020..1060.
	for pc, want := range map[uint64][2]uint64{0x11a0: {0x1191, 0x11cc}, 0x1040: {0x1020, 0x1060}} {
		fde, err := at.FDEForPC(pc + bias)
		if err != nil || fde.Begin() != want[0]+bias || fde.End() != want[1]+bias {
			t.Errorf("FDE for %#x: %v %v, want [%#x,%#x)", pc, fde, err, want[0], want[1])
		}
	}
	if again, _ := b.FDEs(bias); &again[0] != &at[0] {
		t.Error("FDEs not cached per bias")
	}
}

func TestSortIndex(t *testing.T) {
	// Ties at an address go best rank first, then in the given order, for
	// narrow and wide address spans (one to six radix passes).
	rng := rand.New(rand.NewPCG(1, 2))
	for _, span := range []uint64{1, 64, 1 << 20, 1 << 62} {
		syms := make([]symbol, 5000)
		for i := range syms {
			syms[i] = symbol{addr: 0x1000 + rng.Uint64N(span), rank: int8(rng.IntN(maxRank + 1))}
			if i%7 == 0 && i > 0 {
				syms[i].addr = syms[i-1].addr // plenty of ties
			}
		}
		idx := rng.Perm(len(syms))
		in := make([]uint32, len(idx))
		for i, v := range idx {
			in[i] = uint32(v)
		}
		want := slices.Clone(in)
		slices.SortStableFunc(want, func(i, j uint32) int {
			if syms[i].addr != syms[j].addr {
				return cmp.Compare(syms[i].addr, syms[j].addr)
			}
			return cmp.Compare(syms[j].rank, syms[i].rank)
		})
		if got := sortIndex(syms, in); !slices.Equal(got, want) {
			t.Errorf("span %#x: order differs from a stable sort", span)
		}
	}
	if got := sortIndex(nil, nil); len(got) != 0 {
		t.Errorf("empty: %v", got)
	}
}

func TestNameOnlyInside(t *testing.T) {
	// gcc-O0: _init (.init, unsized) at 0x1000, PLT0 at 0x1020 (.plt),
	// __cxa_finalize@plt (8 bytes, .plt.got) at 0x1060, .text from 0x1070,
	// _fini (.fini, unsized) at 0x11cc, 9 bytes; .rodata at 0x2000.
	b := openT(t, filepath.Join(disasmData, "gcc-O0"))
	checkSyms(t, b, []symWant{
		{0x1012, "_init", 0x12, false},             // inside .init
		{0x11d0, "_fini", 4, false},                // inside .fini
		{0x1063, "__cxa_finalize@plt", 3, false},   // inside the stub
		{0x10a0, "deregister_tm_clones", 0, false}, // unsized, in .text
		{0x1150, "frame_dummy", 0, false},          // unsized, up to main
		{0x11c7, "createproc", 0x36, false},        // last function of .text
		{0x11cc, "_fini", 0, false},                // the next section starts with _fini
	})
	for _, addr := range []uint64{
		0x1020, // PLT0, the lazy-binding header: not _init+0x20
		0x102f, // still PLT0
		0x1017, // between .init and .plt
		0x1068, // between .plt.got and .text: not __cxa_finalize@plt's padding
		0x11d5, // past .fini
		0x2000, // .rodata: not _fini+0xe34
		0x2010,
	} {
		if name, off, past, ok := b.symbolAt(addr); ok {
			t.Errorf("%#x named %s+%#x (pastEnd %v): it lies in no symbol", addr, name, off, past)
		}
	}
}

// TestDWARFMapped: the DWARF of a mapped file is opened on the first Line,
// from slices of the mapping, and says what debug/elf's copy says: every
// compile unit's line table, row by row.
func TestDWARFMapped(t *testing.T) {
	b, err := readBinary("testdata/gcc-O2-g")
	if err != nil {
		t.Fatal(err)
	}
	if b.dw != nil {
		t.Fatal("DWARF read when the file was opened")
	}
	if !b.img.mapped {
		t.Fatal("testdata/gcc-O2-g is not mapped")
	}
	b.Line(0)
	if b.dw == nil {
		t.Fatal("no DWARF after Line")
	}
	ref, err := b.img.DWARF()
	if err != nil {
		t.Fatal(err)
	}
	rows := func(d *dwarf.Data) []string {
		var out []string
		r := d.Reader()
		for {
			e, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if e == nil {
				return out
			}
			if e.Tag != dwarf.TagCompileUnit {
				r.SkipChildren()
				continue
			}
			lr, err := d.LineReader(e)
			if err != nil || lr == nil {
				t.Fatalf("line reader: %v", err)
			}
			var le dwarf.LineEntry
			for lr.Next(&le) == nil {
				out = append(out, fmt.Sprintf("%#x %s:%d end=%v", le.Address, le.File.Name, le.Line, le.EndSequence))
			}
		}
	}
	got, want := rows(b.dw), rows(ref)
	if len(want) < 15 {
		t.Fatalf("debug/elf gives %d line rows: too few", len(want))
	}
	if !slices.Equal(got, want) {
		t.Errorf("mapped DWARF gives %d rows, debug/elf %d; first: %q vs %q", len(got), len(want), got[:min(3, len(got))], want[:3])
	}
}
