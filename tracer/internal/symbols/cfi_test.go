package symbols

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/go-delve/delve/pkg/dwarf/frame"
)

// cfiFiles are the files whose CFI the tests compare: the checked-in
// builds, and the host's C libraries and loaders where they are installed
// (they have thousands of FDEs and several CIEs), and under make test the
// seed program of every build.
func cfiFiles(t *testing.T) []string {
	files := []string{"testdata/static-ifunc-amd64", "testdata/static-pie-ifunc-amd64", "testdata/static-ifunc-i386", "testdata/gcc-O2-g"}
	for _, b := range seedBuilds {
		files = append(files, filepath.Join(disasmData, b))
	}
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2", "/lib32/libc.so.6", "/lib/ld-linux.so.2"} {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			files = append(files, r)
		}
	}
	if dir := os.Getenv("VTRACE_TARGETS"); dir != "" { // make test: every build of the seed
		m, _ := filepath.Glob(filepath.Join(dir, "*", "badvfork"))
		files = append(files, m...)
	}
	return files
}

func TestFDEForPCMatchesWholeParse(t *testing.T) {
	// FDEForPC finds an FDE through .eh_frame_hdr and parses it alone; it
	// must give what the whole of .eh_frame parsed by delve gives, at every
	// FDE's first, middle and last byte and just outside it.
	withHdr := 0
	for _, path := range cfiFiles(t) {
		b := openT(t, path)
		if b.ehFrame == nil {
			continue
		}
		if b.ehHdrOK {
			withHdr++
		}
		for _, bias := range []uint64{0, 0x7f0000001000} {
			if b.Arch.PtrSize == 4 {
				bias &= 0xfffff000
			}
			all, err := b.FDEs(bias)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			bad := 0
			for _, f := range all {
				for _, pc := range []uint64{f.Begin() - 1, f.Begin(), f.Begin() + (f.End()-f.Begin())/2, f.End() - 1, f.End()} {
					want, werr := all.FDEForPC(pc)
					got, gerr := b.FDEForPC(pc, bias)
					var noFDE *frame.ErrNoFDEForPC
					switch {
					case werr != nil && errors.As(gerr, &noFDE):
					case werr != nil || gerr != nil:
						t.Errorf("%s bias %#x pc %#x: %v, whole parse: %v", filepath.Base(path), bias, pc, gerr, werr)
						bad++
					case got.Begin() != want.Begin() || got.End() != want.End() ||
						!bytes.Equal(got.Instructions, want.Instructions) ||
						!bytes.Equal(got.CIE.InitialInstructions, want.CIE.InitialInstructions) ||
						got.CIE.DataAlignmentFactor != want.CIE.DataAlignmentFactor ||
						got.CIE.CodeAlignmentFactor != want.CIE.CodeAlignmentFactor ||
						got.CIE.ReturnAddressRegister != want.CIE.ReturnAddressRegister:
						t.Errorf("%s bias %#x pc %#x: FDE [%#x,%#x), whole parse: [%#x,%#x)", filepath.Base(path), bias, pc,
							got.Begin(), got.End(), want.Begin(), want.End())
						bad++
					}
					if bad > 10 {
						t.Fatalf("%s: too many differences", path)
					}
				}
			}
		}
	}
	if withHdr < 3 {
		t.Errorf("only %d files searched through .eh_frame_hdr", withHdr)
	}
}

func TestFDEForPCCaches(t *testing.T) {
	b := openT(t, filepath.Join(disasmData, "gcc-O0"))
	const bias = 0x555555554000
	f1, err := b.FDEForPC(0x11a0+bias, bias)
	if err != nil {
		t.Fatal(err)
	}
	if f2, _ := b.FDEForPC(0x11a5+bias, bias); f2 != f1 {
		t.Error("FDE parsed twice")
	}
	if f3, _ := b.FDEForPC(0x11a0, 0); f3 == f1 || f3 == nil || f3.Begin() != 0x1191 {
		t.Errorf("FDE at bias 0: %v", f3)
	}
}

func TestParseEhFrameHdr(t *testing.T) {
	hdr := []byte{1, 0x1b, 0x03, 0x3b, 0, 0, 0, 0, 2, 0, 0, 0, 0xf0, 0xff, 0xff, 0xff, 0x10, 0, 0, 0, 0x20, 0, 0, 0, 0x30, 0, 0, 0}
	ix, ok := parseEhFrameHdr(hdr, 0x1000, 8)
	if !ok || ix.n != 2 || ix.loc(0) != 0xff0 || ix.fdeAddr(0) != 0x1010 || ix.loc(1) != 0x1020 || ix.fdeAddr(1) != 0x1030 {
		t.Errorf("parsed %+v ok=%v", ix, ok)
	}
	for name, bad := range map[string][]byte{
		"version 2":           append([]byte{2}, hdr[1:]...),
		"absptr table":        append([]byte{1, 0x1b, 0x03, 0x00}, hdr[4:]...),
		"count omitted":       append([]byte{1, 0x1b, 0xff, 0x3b}, hdr[4:]...),
		"count past the end":  append(append([]byte{}, hdr[:8]...), 9, 0, 0, 0),
		"uleb eh_frame_ptr":   append([]byte{1, 0x01, 0x03, 0x3b}, hdr[4:]...),
		"truncated":           hdr[:3],
		"empty":               nil,
		"count over 2^31 / 8": append(append([]byte{}, hdr[:8]...), 0xff, 0xff, 0xff, 0xff),
	} {
		if _, ok := parseEhFrameHdr(bad, 0x1000, 8); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Functions whose call-frame information ends right before a system call
// instruction (glibc's clone and clone3: cfi_endproc before the syscall),
// and a pc past it, where a vfork-like call's parent stops: cfiGapFunc
// gives the function from that FDE's start. Found in the host's C
// libraries by their CFI and code alone, as vtrace finds them where no
// symbol names them; where libc's symbols are installed, clone3's start is
// checked against its symbol. Nothing for a pc past an FDE that does not
// end at a system call (that code may be another function's, one without
// CFI: the review's case). (maxCFIGap, the bound on the distance, is not
// reached in these libraries: the FDE after each system call starts
// within it.)
func TestCFIGapFunc(t *testing.T) {
	ran := 0
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib32/libc.so.6"} {
		path, err := filepath.EvalSymlinks(p)
		if err != nil {
			continue
		}
		ran++
		b := openT(t, path)
		hdr := b.ehHdrOK
		// Through .eh_frame_hdr's table, then through the whole section
		// (a static binary has no table).
		for _, c := range []struct {
			hdr  bool
			bias uint64
		}{{hdr, 0}, {hdr, 0x7f0000001000}, {false, 0x7f0000001000}} {
			b.ehHdrOK = c.hdr
			bias := c.bias
			if b.Arch.PtrSize == 4 {
				bias &= 0xfffff000
			}
			all, err := b.FDEs(bias)
			if err != nil {
				t.Fatal(err)
			}
			sort.Slice(all, func(i, j int) bool { return all[i].Begin() < all[j].Begin() })
			var gaps, others int
			var starts []uint64
			for i := 0; i+1 < len(all); i++ {
				f, next := all[i], all[i+1].Begin()
				if next <= f.End()+1 || coveredBy(all, f.End()) {
					continue
				}
				code, ok := b.codeAt(f.End()-bias, min(next, f.End()+8)-bias)
				if !ok {
					continue
				}
				if syscallInsn(code, b.Arch.PtrSize) {
					gaps++
					pc := f.End() + 2 // past syscall or int $0x80; inside call *%gs:0x10, still in the gap
					s, e, ok := b.cfiGapFunc(pc, bias)
					if !ok || s != f.Begin()-bias || e <= pc-bias {
						t.Errorf("%s bias %#x: CFI [%#x, %#x) ends at a system call; cfiGapFunc(%#x) = %#x, %#x, %v", path, bias, f.Begin(), f.End(), pc, s, e, ok)
					}
					starts = append(starts, s)
				} else if s, e, ok := b.cfiGapFunc(f.End()+1, bias); ok {
					others++
					t.Errorf("%s bias %#x: CFI [%#x, %#x) ends at no system call (% x); cfiGapFunc gave [%#x, %#x)", path, bias, f.Begin(), f.End(), code, s, e)
				} else {
					others++
				}
			}
			if gaps == 0 || others == 0 {
				t.Fatalf("%s: %d FDEs end at a system call, %d at other code past a gap; want some of each (glibc's clone and clone3 among the first)", path, gaps, others)
			}
			if b.Arch.PtrSize != 8 {
				continue
			}
			b.Prefetch() // the symbols, and the debug file's where there is one
			if addr, ok := b.Lookup("clone3"); ok {
				if fs, _, ok := b.funcBounds(addr); !ok || !slices.Contains(starts, fs) {
					t.Errorf("%s: clone3 starts at %#x; the functions found at a system call start at %#x", path, fs, starts)
				}
			} else {
				t.Logf("%s: libc's own symbols (libc6-dbg) are not installed: clone3 not checked by name", path)
			}
		}
	}
	if ran == 0 {
		t.Skip("no C library at /lib/x86_64-linux-gnu/libc.so.6 or /lib32/libc.so.6")
	}
}

func coveredBy(fdes frame.FrameDescriptionEntries, pc uint64) bool {
	for _, f := range fdes {
		if f.Cover(pc) {
			return true
		}
	}
	return false
}
