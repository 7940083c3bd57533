package symbols

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/unwind"
)

// The fuzz targets feed the parsers what a crafted or corrupt file can
// hold. `go test` runs each seed once; `make fuzz` mutates them for a
// bounded time (FUZZTIME).
//
// FuzzOpenBinary parses from memory (memImage, as for the vDSO), not
// through OpenBinary's path: OpenBinary caches every Binary it opens for
// good, with its file mapped. Why the fuzzer ran a few executions a
// minute: (1) a mutated sh_size of gigabytes made the symbol table's
// allocation that large on every such input (fixed: TestCraftedSymtabSize);
// (2) Go's fuzzer minimizes every input that finds new coverage, for up
// to -fuzzminimizetime (default 60 s) each, and executions spent
// minimizing are not counted: with 16 KB seeds nearly every input is new
// at first, and each one's minimization took the whole minute. `make
// fuzz` runs with -fuzzminimizetime=0: about 900 executions a second per
// worker here, a millisecond each.

// fuzzSeeds are the small real binaries in testdata: ELF64 and ELF32,
// dynamic, static and static-pie, with DWARF lines (gcc-O2-g), PLTs and
// IRELATIVE relocations.
func fuzzSeeds(f *testing.F) [][]byte {
	var out [][]byte
	paths, _ := filepath.Glob("testdata/*")
	more, _ := filepath.Glob("../disasm/testdata/gcc-*")
	for _, p := range append(paths, more...) {
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() || strings.Contains(filepath.Base(p), ".") {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if bytes.HasPrefix(data, []byte("\x7fELF")) {
			out = append(out, data)
		}
	}
	if len(out) == 0 {
		f.Fatal("no ELF seeds in testdata")
	}
	return out
}

// bytesMem reads words from data as if it were mapped at base.
type bytesMem struct {
	base uint64
	data []byte
}

func (m bytesMem) ReadWord(addr uint64, size int) (uint64, error) {
	if addr < m.base || addr-m.base > uint64(len(m.data)) || uint64(len(m.data))-(addr-m.base) < uint64(size) {
		return 0, os.ErrNotExist
	}
	var w [8]byte
	copy(w[:], m.data[addr-m.base:addr-m.base+uint64(size)])
	return binary.LittleEndian.Uint64(w[:]), nil
}

func FuzzOpenBinary(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, uint64(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, probe uint64) {
		im, err := memImage(data)
		if err != nil {
			return
		}
		b, err := newBinary("fuzz", im)
		if err != nil {
			return
		}
		b.Prefetch()
		// Every lookup the engine makes: names, bounds, code, lines and
		// CFI, at the entry point, each loadable segment's start and end,
		// the probe address, and through an unwind of a made-up stack.
		addrs := []uint64{uint64(im.Entry), probe}
		for _, p := range b.loads {
			addrs = append(addrs, p.Vaddr, p.Vaddr+p.Memsz/2, p.Vaddr+p.Memsz-1)
		}
		if a, ok := b.Lookup("main"); ok {
			addrs = append(addrs, a, a+4)
		}
		for _, a := range addrs {
			b.SymbolAt(a)
			if lo, hi, ok := b.funcBounds(a); ok && hi-lo < 1<<20 {
				b.codeAt(lo, hi)
			}
			b.Line(a)
			b.FDEForPC(a, 0)
		}
		// The same file as a process maps it (bias 0), and the unwinder
		// through it: CFI, machine code, frame pointers, over a stack
		// made of the input's first bytes.
		var maps []Mapping
		for _, p := range b.loads {
			maps = append(maps, Mapping{Start: p.Vaddr &^ 0xfff, End: p.Vaddr + p.Memsz, Perms: "r-xp", Offset: p.Off &^ 0xfff, Path: "/fuzz"})
		}
		sp := newSpace(maps, "/fuzz", func(string) (*Binary, error) { return b, nil })
		for _, a := range addrs {
			sp.Symbolize(a)
			sp.IsCode(a)
			sp.FuncCode(a)
		}
		r := &arch.Regs{Arch: b.Arch}
		r.SetPC(addrs[0])
		const stack = 0x7ff000
		r.Set(b.Arch.SP, stack)
		r.Set(b.Arch.BP, stack+16)
		_, _ = unwind.Unwind(r, bytesMem{stack, data[:min(len(data), 512)]}, sp, 8)
		b.FDEs(0)
	})
}

// FuzzParseMaps: /proc/PID/maps text, and a Space built from it (every
// file mapped is the seed binary), asked about every mapping.
func FuzzParseMaps(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/maps-*.txt")
	for _, p := range seeds {
		text, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(text)
	}
	f.Add([]byte("7f0000000000-7f0000001000 r-xp 00000000 00:00 0 [vdso]\n"))
	bin := openT(f, "testdata/gcc-O2-g")
	f.Fuzz(func(t *testing.T, text []byte) {
		maps, err := ParseMaps(bytes.NewReader(text))
		if err != nil {
			return
		}
		sp := newSpace(maps, "/x", func(path string) (*Binary, error) {
			if path == vdsoPath {
				return nil, os.ErrNotExist
			}
			return bin, nil
		})
		for _, m := range maps {
			sp.MappingAt(m.Start)
			sp.Symbolize(m.Start)
			sp.Symbolize(m.End - 1)
			sp.IsCode(m.Start)
			sp.FuncCode(m.Start)
			sp.FDEForPC(m.Start)
		}
	})
}
