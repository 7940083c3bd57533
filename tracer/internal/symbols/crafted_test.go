package symbols

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vtrace/vtrace/internal/elfpatch"
)

// Crafted files (issue 13): the parsers never trust a size, count or
// offset from the file. Each case is a real binary with one field changed;
// before the fix each one crashed vtrace or cost it a gigabyte.

func writeCrafted(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "crafted")
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// heapGrowth runs fn and returns the bytes it allocated.
func heapGrowth(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A .symtab whose sh_size says 0x7fffffffffffff00 bytes made the prefetch
// goroutine's slices.Grow panic (growslice: len out of range); a large
// bogus size (1 GiB) made vtrace allocate 1 GiB for the symbols the table
// could hold.
func TestCraftedSymtabSize(t *testing.T) {
	orig, err := os.ReadFile("testdata/gcc-O2-g")
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []uint64{0x7fffffffffffff00, 1 << 30, 0xffffffffffffffff, 0} {
		data, err := elfpatch.SetSectionSize(orig, ".symtab", size)
		if err != nil {
			t.Fatal(err)
		}
		path := writeCrafted(t, data)
		grew := heapGrowth(func() {
			b, err := OpenBinary(path)
			if err != nil {
				return // refusing the file is fine; crashing is not
			}
			b.Prefetch()
			b.SymbolAt(0x1000)
			b.Lookup("main")
		})
		if grew > 16<<20 {
			t.Errorf(".symtab sh_size %#x: opening the file allocated %d MB", size, grew>>20)
		}
	}
}

// One byte of each FDE's augmentation length changed: delve's parser
// panicked (slice bounds out of range) and vtrace died with "internal
// error". A malformed FDE now costs that FDE: FDEForPC says the CFI is
// unreadable, and the whole-section parse keeps the other entries.
func TestCraftedFDEAugmentation(t *testing.T) {
	orig, err := os.ReadFile("testdata/gcc-O2-g")
	if err != nil {
		t.Fatal(err)
	}
	good := openT(t, "testdata/gcc-O2-g")
	mainAddr, ok := good.Lookup("main")
	if !ok {
		t.Fatal("no main in testdata/gcc-O2-g")
	}
	if _, err := good.FDEForPC(mainAddr, 0); err != nil {
		t.Fatalf("the intact file has no FDE for main: %v", err)
	}
	data, err := elfpatch.BreakFDEAugmentation(orig, 0x7f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenBinary(writeCrafted(t, data))
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.FDEForPC(mainAddr, 0)
	var ce *CFIError
	if !errors.As(err, &ce) {
		t.Errorf("FDEForPC(main) in the crafted file: %v, want a CFIError", err)
	}
	// Without .eh_frame_hdr the section is parsed whole: the broken
	// entries are dropped one by one, not the section.
	b.ehHdrOK = false
	if _, err := b.FDEs(0); err == nil {
		t.Log("the whole-section parse kept no entry, and said why")
	}

	// One FDE broken, the others intact: only that one is lost.
	fdes, _ := elfpatch.FDEs(orig)
	one := append([]byte(nil), orig...)
	one[fdes[0]+16] = 0x7f
	b1, err := OpenBinary(writeCrafted(t, one))
	if err != nil {
		t.Fatal(err)
	}
	b1.ehHdrOK = false
	all, err := good.FDEs(0x1000)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b1.FDEs(0x1000)
	if err != nil || len(got) != len(all)-1 {
		t.Errorf("one broken FDE of %d: the section parse kept %d (%v), want %d", len(all), len(got), err, len(all)-1)
	}
}

// An FDE whose length says 2 bytes (too short for its CIE pointer): found
// by the mutation test, an index out of range in fdeAt.
func TestCraftedFDELength(t *testing.T) {
	orig, err := os.ReadFile("testdata/gcc-O2-g")
	if err != nil {
		t.Fatal(err)
	}
	fdes, err := elfpatch.FDEs(orig)
	if err != nil {
		t.Fatal(err)
	}
	good := openT(t, "testdata/gcc-O2-g")
	for _, n := range []uint32{1, 2, 3, 4} {
		data := append([]byte(nil), orig...)
		for _, off := range fdes {
			binary.LittleEndian.PutUint32(data[off:], n)
		}
		b, err := OpenBinary(writeCrafted(t, data))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < b.ehHdr.n; i++ {
			b.FDEForPC(good.ehHdr.loc(i), 0) // an error, not a panic
		}
		b.ehHdrOK = false
		b.FDEs(0)
	}
}
