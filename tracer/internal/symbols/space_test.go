package symbols

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"github.com/vtrace/vtrace/tracer/internal/arch"
)

func readMaps(t *testing.T, name string) []Mapping {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	maps, err := ParseMaps(f)
	if err != nil {
		t.Fatal(err)
	}
	return maps
}

// testdataOpener opens the mapped files found among the checked-in
// binaries by base name (a maps file names them where they were when it was
// captured); the host's libraries are not used: their modules have no
// Binary. rename maps a base name to another checked-in file.
func testdataOpener(rename map[string]string) func(string) (*Binary, error) {
	return func(path string) (*Binary, error) {
		base := filepath.Base(path)
		if r, ok := rename[base]; ok {
			return OpenBinary(r)
		}
		if p := filepath.Join(disasmData, base); fileExists(p) {
			return OpenBinary(p)
		}
		return nil, os.ErrNotExist
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestParseMaps(t *testing.T) {
	maps := readMaps(t, "maps-gcc-O2.txt")
	if len(maps) != 23 {
		t.Fatalf("%d mappings, want 23", len(maps))
	}
	want := Mapping{Start: 0x555555557000, End: 0x555555558000, Perms: "r--p", Offset: 0x2000, Major: 0xfe, Inode: 5308807,
		Path: "/work/main/tracer/disasm/testdata/gcc-O2"}
	if maps[3] != want {
		t.Errorf("mapping 3: %+v, want %+v", maps[3], want)
	}
	if m := maps[5]; m.Path != "" || m.Perms != "rw-p" || m.Start != 0x7ffff7dd1000 {
		t.Errorf("anonymous mapping: %+v", m)
	}
	if m := maps[len(maps)-1]; m.Path != "[vsyscall]" || m.Start != 0xffffffffff600000 || m.End != 0xffffffffff601000 {
		t.Errorf("vsyscall: %+v", m)
	}

	text := "00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/my  prog\n" +
		"00651000-00652000 rw-p 00051000 08:02 173521                     /usr/bin/gone (deleted)\n" +
		"7fff0000-7fff1000 rw-p 00000000 00:00 0 \n" +
		"short line\n"
	maps, err := ParseMaps(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, m := range maps {
		paths = append(paths, m.Path)
	}
	if got := strings.Join(paths, "|"); got != "/usr/bin/my  prog|/usr/bin/gone (deleted)|" {
		t.Errorf("paths %q", got)
	}
	for _, bad := range []string{
		"00400000 r-xp 00000000 08:02 173521 /bin/x\n",
		"0040000g-00452000 r-xp 00000000 08:02 173521 /bin/x\n",
		"00400000-00452000 r-xp 0000000z 08:02 173521 /bin/x\n",
	} {
		if _, err := ParseMaps(strings.NewReader(bad)); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
}

func TestSpaceAMD64(t *testing.T) {
	// gcc-O2 at its main (ASLR off: loaded at 0x555555554000), with libc
	// and ld.so mapped but not opened. Its line information comes from
	// gcc-O2-g, the same program built with -g (same load layout).
	const exe = "/work/main/tracer/disasm/testdata/gcc-O2"
	const bias = 0x555555554000
	maps := readMaps(t, "maps-gcc-O2.txt")
	sp := newSpace(maps, exe, testdataOpener(map[string]string{"gcc-O2": "testdata/gcc-O2-g"}))
	if sp.Arch() != arch.AMD64 {
		t.Fatalf("arch %v", sp.Arch())
	}
	if len(sp.Mappings()) != len(maps) {
		t.Errorf("%d mappings, want %d", len(sp.Mappings()), len(maps))
	}
	const libc = 0x7ffff7dd4000
	for _, c := range []struct {
		addr uint64
		want Sym
	}{
		{bias + 0x1070, Sym{Name: "main", Module: "gcc-O2", File: "badvfork.c", Line: 20}},
		{bias + 0x1076, Sym{Name: "main", Off: 6, Module: "gcc-O2", File: "badvfork.c", Line: 21}},
		{bias + 0x1092, Sym{Name: "main", Off: 0x22, Module: "gcc-O2", PastEnd: true}},
		{bias + 0x1040, Sym{Name: "vfork@plt", Module: "gcc-O2"}},
		{bias + 0x11a1, Sym{Name: "createproc", Off: 0x11, Module: "gcc-O2", File: "badvfork.c", Line: 29}},
		{libc + 0x2724a, Sym{Module: "libc.so.6", Off: 0x2724a}},
		{0x7ffff7fcb000, Sym{Module: "ld-linux-x86-64.so.2", Off: 0x1000}},
		{0x7ffff7fc8010, Sym{Module: "[vdso]", Off: 0x10}},
		{0x7fffffffe000, Sym{Module: "[stack]", Off: 0x7fffffffe000 - 0x7ffffffde000}},
		{0x7ffff7dd1500, Sym{}}, // anonymous
		{0x1000, Sym{}},         // unmapped
	} {
		if got := sp.Symbolize(c.addr); got != c.want {
			t.Errorf("Symbolize(%#x) = %+v, want %+v", c.addr, got, c.want)
		}
	}

	for addr, want := range map[uint64]bool{bias + 0x1070: true, bias + 0x2000: false, libc + 0x30000: true, 0x7fffffffe000: false, 0x1000: false} {
		if got := sp.IsCode(addr); got != want {
			t.Errorf("IsCode(%#x) = %v", addr, got)
		}
	}
	if m, ok := sp.MappingAt(bias + 0x1070); !ok || m.Start != bias+0x1000 || m.Perms != "r-xp" {
		t.Errorf("MappingAt(main) = %+v, %v", m, ok)
	}
	if m, ok := sp.MappingAt(0x7ffffffff000); ok {
		t.Errorf("MappingAt(end of stack) = %+v", m)
	}

	for _, c := range []struct {
		module, name string
		want         uint64
	}{
		{"", "main", bias + 0x1070},
		{"gcc", "createproc", bias + 0x1190},
		{"libc", "main", 0},
		{"", "printf", 0},
	} {
		got, ok := sp.Lookup(c.module, c.name)
		if got != c.want || ok != (c.want != 0) {
			t.Errorf("Lookup(%q, %q) = %#x, %v; want %#x", c.module, c.name, got, ok, c.want)
		}
	}

	fde, err := sp.FDEForPC(bias + 0x1076)
	if err != nil || fde.Begin() != bias+0x1070 || fde.End() != bias+0x1092 {
		t.Errorf("FDE of main: %v, %v", fde, err)
	}
	var noFDE *frame.ErrNoFDEForPC
	for _, pc := range []uint64{libc + 0x30000, 0x7fffffffe000, 0x1000} {
		if _, err := sp.FDEForPC(pc); !errors.As(err, &noFDE) {
			t.Errorf("FDEForPC(%#x): %v, want ErrNoFDEForPC", pc, err)
		}
	}

	// The load bias comes from the first mapping (file offset 0), not
	// from the fourth, RELRO, which maps offset 0x2000 like the third.
	bin := openT(t, "testdata/gcc-O2-g")
	if b, ok := bin.biasFor(maps[0].Start, maps[0].Offset); !ok || b != bias {
		t.Errorf("bias from the first mapping: %#x, %v", b, ok)
	}

	if sp := newSpace(maps, "/elsewhere/gcc-O2", testdataOpener(nil)); sp.Arch() != nil {
		t.Errorf("arch %v for an executable that is not mapped", sp.Arch())
	}
}

func TestSpaceI386(t *testing.T) {
	const bias = 0x56555000
	sp := newSpace(readMaps(t, "maps-gcc-m32-O0.txt"), "/work/main/tracer/disasm/testdata/gcc-m32-O0", testdataOpener(nil))
	if sp.Arch() != arch.I386 {
		t.Fatalf("arch %v", sp.Arch())
	}
	for _, c := range []struct {
		addr uint64
		want Sym
	}{
		{bias + 0x1040, Sym{Name: "printf@plt", Module: "gcc-m32-O0"}},
		{bias + 0x106b, Sym{Name: "vfork@plt", Off: 0xb, Module: "gcc-m32-O0"}},
		{bias + 0x11cf, Sym{Name: "main", Off: 0x22, Module: "gcc-m32-O0"}},
		{0xf7daf000, Sym{Module: "libc.so.6", Off: 0x22000}},
	} {
		if got := sp.Symbolize(c.addr); got != c.want {
			t.Errorf("Symbolize(%#x) = %+v, want %+v", c.addr, got, c.want)
		}
	}
	if fde, err := sp.FDEForPC(bias + 0x1060); err != nil || fde.Begin() != bias+0x1020 || fde.End() != bias+0x1070 {
		t.Errorf("FDE of vfork@plt: %v, %v", fde, err)
	}
}

func TestCommonArch(t *testing.T) {
	// gcc-O2's maps with its libc opened as the i386 build: the modules
	// disagree, and only the executable's path can tell the arch.
	maps := readMaps(t, "maps-gcc-O2.txt")
	same := newSpace(maps, "", testdataOpener(nil))
	if a := same.commonArch(); a != arch.AMD64 {
		t.Errorf("one amd64 module: %v", a)
	}
	mixed := newSpace(maps, "", testdataOpener(map[string]string{"libc.so.6": filepath.Join(disasmData, "gcc-m32-O0")}))
	if a := mixed.commonArch(); a != nil {
		t.Errorf("amd64 and i386 modules: %v", a.Name)
	}
	if a := mixed.archOf("/work/main/tracer/disasm/testdata/gcc-O2"); a != arch.AMD64 {
		t.Errorf("arch of the executable: %v", a)
	}
	if a := newSpace(maps, "", func(string) (*Binary, error) { return nil, os.ErrNotExist }).commonArch(); a != nil {
		t.Errorf("no module opened: %v", a.Name)
	}
}

func TestSpaceCache(t *testing.T) {
	var c spaceCache
	sps := make([]*Space, len(c.entries)+1)
	for i := range sps {
		sps[i] = &Space{}
		c.put(7, []byte{byte(i)}, sps[i])
	}
	if c.get(7, []byte{0}) != nil {
		t.Error("the oldest space was not evicted")
	}
	for i := 1; i < len(sps); i++ {
		if c.get(7, []byte{byte(i)}) != sps[i] {
			t.Errorf("space %d not found", i)
		}
	}
	if c.get(7, []byte{1, 0}) != nil {
		t.Error("found a space for other text")
	}
	if c.get(8, []byte{1}) != nil {
		t.Error("found a space of another process")
	}
}

func TestLoadSpaceSelf(t *testing.T) {
	sp, err := LoadSpace(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]*arch.Arch{"amd64": arch.AMD64, "386": arch.I386}[runtime.GOARCH]; sp.Arch() != want {
		t.Errorf("arch of the test binary: %v", sp.Arch())
	}
	if len(sp.Mappings()) == 0 {
		t.Error("no mappings")
	}
	if _, err := LoadSpace(-1); err == nil {
		t.Error("no error for pid -1")
	}
}

func TestVDSO(t *testing.T) {
	// The test process's own vDSO, read from its memory: named functions
	// and CFI, cached by content.
	sp, err := LoadSpace(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var vdso *module
	for _, mod := range sp.mods {
		if mod.name == "[vdso]" {
			vdso = mod
		}
	}
	if vdso == nil {
		t.Skip("no [vdso] mapped")
	}
	if vdso.bin != nil {
		t.Error("[vdso] read before it was needed")
	}
	if vdso.binary() == nil {
		t.Fatal("[vdso] not read")
	}
	// clock_gettime is __vdso_clock_gettime's alias (preferred: no
	// leading underscore).
	name, want := "__vdso_clock_gettime", "clock_gettime"
	if runtime.GOARCH == "386" {
		name, want = "__kernel_vsyscall", "__kernel_vsyscall"
	}
	addr, ok := sp.Lookup("[vdso]", name)
	if !ok {
		t.Fatalf("no %s in the vDSO", name)
	}
	if y := sp.Symbolize(addr + 1); y.Name != want || y.Off != 1 || y.Module != "[vdso]" {
		t.Errorf("Symbolize(%s+1) = %+v, want %s+1", name, y, want)
	}
	if fde, err := sp.FDEForPC(addr + 1); err != nil || !fde.Cover(addr+1) {
		t.Errorf("no CFI for %s: %v", name, err)
	}
	again, err := vdsoBinary(vdso.bin.img.data)
	if err != nil || again != vdso.bin {
		t.Errorf("vDSO read twice: %v", err)
	}
}

// SameCode compares the executable mappings only: a heap grown or a data
// mapping added leaves the code the same; a library unloaded and another
// mapped at its address, or a mapping made executable, does not.
func TestSameCode(t *testing.T) {
	const base = "555555554000-555555555000 r--p 00000000 08:01 100 /prog\n" +
		"555555555000-555555556000 r-xp 00001000 08:01 100 /prog\n" +
		"555555558000-555555559000 rw-p 00003000 08:01 100 /prog\n"
	space := func(text string) *Space {
		maps, err := parseMaps([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return newSpace(maps, "/prog", func(string) (*Binary, error) { return nil, errors.New("not opened") })
	}
	liba := "7ffff7fc0000-7ffff7fc1000 r-xp 00001000 08:01 200 /liba.so\n"
	libb := "7ffff7fc0000-7ffff7fc1000 r-xp 00001000 08:01 201 /libb.so\n"
	was := space(base + liba)
	for _, c := range []struct {
		what, text string
		same       bool
	}{
		{"the same text", base + liba, true},
		{"a heap added", base + "555555559000-55555557a000 rw-p 00000000 00:00 0 [heap]\n" + liba, true},
		{"another library at the same address", base + libb, false},
		{"the library unloaded", base, false},
		{"a page made executable", base + "7ffff7f00000-7ffff7f01000 rwxp 00000000 00:00 0\n" + liba, false},
	} {
		if got := was.SameCode(space(c.text)); got != c.same {
			t.Errorf("%s: SameCode %v, want %v", c.what, got, c.same)
		}
	}
}
