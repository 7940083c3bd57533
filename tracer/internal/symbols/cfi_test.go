package symbols

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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

// glibc's clone3 ends its call-frame information right before its syscall
// (cfi_endproc), where a vfork-like call's parent stops; with no symbol for
// it (libc's debug file absent) cfiGapFunc must give the function from
// that FDE's start — the symbol's start where the symbol is known, which is
// what this checks, on the host's libc with its symbols. Covered pcs, and
// pcs further than maxCFIGap past an FDE, get nothing.
func TestCFIGapFuncClone3(t *testing.T) {
	path, err := filepath.EvalSymlinks("/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		t.Skip("no /lib/x86_64-linux-gnu/libc.so.6 on this host")
	}
	b := openT(t, path)
	b.Prefetch() // the symbols, and the debug file's where there is one
	addr, ok := b.Lookup("clone3")
	if !ok {
		t.Skip("libc's own symbols (libc6-dbg) are not installed: clone3's start is not known to check against")
	}
	start, end, ok := b.funcBounds(addr)
	if !ok {
		t.Fatalf("no bounds for clone3 at %#x", addr)
	}
	code, ok := b.codeAt(start, end)
	if !ok {
		t.Fatal("no code for clone3")
	}
	sys := bytes.Index(code, []byte{0x0f, 0x05})
	if sys < 0 {
		t.Fatal("no syscall in clone3")
	}
	for _, bias := range []uint64{0, 0x7f0000001000} {
		pc := start + uint64(sys) + 2 + bias // the parent's pc at its clone3 event stop
		if fde, err := b.FDEForPC(pc, bias); err == nil {
			t.Fatalf("an FDE [%#x, %#x) covers clone3's syscall: this libc keeps its CFI there", fde.Begin(), fde.End())
		}
		gs, ge, ok := b.cfiGapFunc(pc, bias)
		if !ok || gs != start || ge <= pc-bias {
			t.Errorf("bias %#x: cfiGapFunc(clone3's syscall) = %#x, %#x, %v; want the function from %#x past %#x", bias, gs, ge, ok, start, pc-bias)
		}
		if _, _, ok := b.cfiGapFunc(start+bias, bias); ok {
			t.Errorf("bias %#x: cfiGapFunc gave a function for a pc its FDE covers", bias)
		}
		// A pc in a longer gap between two FDEs, further than maxCFIGap
		// from the end of the one before it.
		all, err := b.FDEs(bias)
		if err != nil {
			t.Fatal(err)
		}
		sort.Slice(all, func(i, j int) bool { return all[i].Begin() < all[j].Begin() })
		far := uint64(0)
		for i := 0; i+1 < len(all) && far == 0; i++ {
			if end := all[i].End(); all[i+1].Begin() > end+maxCFIGap+1 && !coveredBy(all, end+maxCFIGap+1) {
				far = end + maxCFIGap + 1
			}
		}
		if far == 0 {
			t.Fatal("no gap of more than maxCFIGap bytes between two FDEs of libc")
		}
		if s, e, ok := b.cfiGapFunc(far, bias); ok {
			t.Errorf("bias %#x: cfiGapFunc(%#x), %d bytes past an FDE's end, gave [%#x, %#x)", bias, far, maxCFIGap+1, s, e)
		}
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
