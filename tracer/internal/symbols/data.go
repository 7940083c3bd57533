package symbols

import (
	"debug/elf"
	"encoding/binary"
	"sort"
	"strings"
)

// Data: what vtrace needs to watch and name the parent's memory outside
// the stack — the writable segments (data and bss) of each mapped file,
// their data symbols (STT_OBJECT, and untyped symbols in a writable
// section), and their thread-local storage: the TLS segment, its symbols
// (STT_TLS, by offset in the segment) and where the dynamic linker put the
// module's block relative to the thread pointer.

// dataSym is a data (or TLS) symbol: a link-time address (a TLS offset for
// STT_TLS) and a size (0: unknown, it then names only its own address).
type dataSym struct {
	addr, size uint64
	name       string
}

// dataSyms holds a Binary's data symbols, read on first use.
type dataSyms struct {
	objs, tls []dataSym // each sorted by addr, as parsed
	// What lookups read: objs and tls, or an index entry's records.
	objTab, tlsTab dataTab
	tlsSeg         *elf.ProgHeader
	writable       []elf.ProgHeader // PT_LOAD segments with PF_W
	// tpoff is a TLS relocation of the file (R_X86_64_TPOFF64,
	// R_386_TLS_TPOFF): the link-time address of the GOT word the dynamic
	// linker fills with a tp-relative offset, and the TLS offset it is
	// for. Reading that word in a process tells where the module's TLS
	// block is (TLSBase).
	tpoffAt     uint64
	tpoffOff    int64
	tpoffInFile bool // REL (i386): the word's addend is in the file; tpoffOff holds the symbol's value
	hasTpoff    bool
	// got are the link-time ranges of .got and .got.plt; gotNames names
	// their slots by the symbol the dynamic linker fills them with.
	got      [][2]uint64
	gotNames map[uint64]string
}

func (b *Binary) data() *dataSyms {
	b.dataOnce.Do(func() {
		d := b.layout()
		if ix := b.symIndex(); ix != nil {
			d.objTab, d.tlsTab, d.gotNames = ix.objs, ix.tls, ix.got
			b.dataSymbols = d
			return
		}
		b.mu.Lock()
		img := b.img
		b.mu.Unlock()
		readDataSyms(img, d)
		d.gotNames = b.gotNames(img)
		if dbg := b.debugFile(); dbg != nil {
			readDataSyms(dbg, d)
			dbg.close()
		}
		d.objs, d.tls = sortData(d.objs), sortData(d.tls)
		d.objTab, d.tlsTab = dataSlice(d.objs), dataSlice(d.tls)
		b.dataSymbols = d
	})
	return b.dataSymbols
}

// layout reads the cheap part of the data: the TLS and writable segments,
// the GOT's ranges and the TLS relocation — what placing the memory to
// watch needs (DataRanges, TLSBlocks) — without the symbol tables, which
// only naming a changed word needs (data: libc's debug file is large).
func (b *Binary) layout() *dataSyms {
	b.layoutOnce.Do(func() {
		d := &dataSyms{}
		b.mu.Lock()
		img := b.img
		b.mu.Unlock()
		for _, p := range img.Progs {
			switch {
			case p.Type == elf.PT_TLS:
				h := p.ProgHeader
				d.tlsSeg = &h
			case p.Type == elf.PT_LOAD && p.Flags&elf.PF_W != 0:
				d.writable = append(d.writable, p.ProgHeader)
			}
		}
		for _, sec := range img.Sections {
			if sec.Name == ".got" || sec.Name == ".got.plt" {
				d.got = append(d.got, [2]uint64{sec.Addr, sec.Addr + sec.Size})
			}
		}
		d.readTpoff(img)
		b.layoutData = d
	})
	return b.layoutData
}

// readDataSyms adds f's data and TLS symbols to d.
func readDataSyms(f *image, d *dataSyms) {
	for _, typ := range []elf.SectionType{elf.SHT_SYMTAB, elf.SHT_DYNSYM} {
		t, err := readSymtab(f, typ)
		if err != nil {
			continue
		}
		for i, n := 1, t.len(); i < n; i++ {
			e := t.entry(i)
			if e.shndx == elf.SHN_UNDEF || e.shndx >= elf.SHN_LORESERVE || int(e.shndx) >= len(f.Sections) {
				continue
			}
			sec := f.Sections[e.shndx]
			var into *[]dataSym
			switch elf.ST_TYPE(e.info) {
			case elf.STT_TLS:
				into = &d.tls
			case elf.STT_OBJECT:
				into = &d.objs
			case elf.STT_NOTYPE:
				if sec.Flags&elf.SHF_WRITE == 0 || sec.Flags&elf.SHF_ALLOC == 0 {
					continue
				}
				into = &d.objs
			default:
				continue
			}
			name := cString(t.strtab, e.name)
			if name == "" || strings.HasPrefix(name, ".L") || strings.HasPrefix(name, "$") {
				continue
			}
			if i := strings.IndexByte(name, '@'); i > 0 {
				name = name[:i]
			}
			*into = append(*into, dataSym{addr: e.value, size: e.size, name: name})
		}
	}
}

// sortData sorts by address, a sized symbol before an unsized one at the
// same address, and drops exact duplicates (.symtab and .dynsym).
func sortData(s []dataSym) []dataSym {
	sort.Slice(s, func(i, j int) bool {
		if s[i].addr != s[j].addr {
			return s[i].addr < s[j].addr
		}
		if s[i].size != s[j].size {
			return s[i].size > s[j].size
		}
		return s[i].name < s[j].name
	})
	out := s[:0]
	for i, x := range s {
		if i > 0 && x == s[i-1] {
			continue
		}
		out = append(out, x)
	}
	return out
}

// lookupData names a link-time address by the symbol that contains it:
// the nearest at or below it within its size (a larger one further down
// that still covers it: a struct containing a smaller alias), or an
// unsized one at exactly that address.
func lookupData(s dataTab, a uint64) (name string, off uint64, ok bool) {
	i := sort.Search(s.len(), func(i int) bool { return s.addr(i) > a }) - 1
	for j := i; j >= 0 && a-s.addr(j) < 1<<20; j-- {
		addr, size := s.addr(j), s.size(j)
		if a < addr+size || size == 0 && a == addr {
			return s.name(j), a - addr, true
		}
	}
	return "", 0, false
}

// dataTab is a sorted table of data symbols: parsed (dataSlice) or an
// index entry's records (dataRecs).
type dataTab interface {
	len() int
	addr(i int) uint64
	size(i int) uint64
	name(i int) string
}

type dataSlice []dataSym

func (s dataSlice) len() int          { return len(s) }
func (s dataSlice) addr(i int) uint64 { return s[i].addr }
func (s dataSlice) size(i int) uint64 { return s[i].size }
func (s dataSlice) name(i int) string { return s[i].name }

// readTpoff finds one TLS relocation in the file's dynamic relocations.
func (d *dataSyms) readTpoff(f *image) {
	for _, s := range f.Sections {
		if s.Type != elf.SHT_RELA && s.Type != elf.SHT_REL || s.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		data, err := f.sectionData(s)
		if err != nil {
			continue
		}
		var syms *symtab
		if int(s.Link) < len(f.Sections) && s.Link != 0 {
			if t, err := readSymtab(f, f.Sections[s.Link].Type); err == nil {
				syms = t
			}
		}
		symValue := func(idx uint32) (uint64, bool) {
			if idx == 0 {
				return 0, true
			}
			if syms == nil || int(idx) >= syms.len() {
				return 0, false
			}
			e := syms.entry(int(idx))
			if e.shndx == elf.SHN_UNDEF { // another module's TLS
				return 0, false
			}
			return e.value, true
		}
		le := binary.LittleEndian
		if f.Class == elf.ELFCLASS64 && s.Type == elf.SHT_RELA {
			for off := 0; off+24 <= len(data); off += 24 {
				info := le.Uint64(data[off+8:])
				if elf.R_X86_64(info&0xffffffff) != elf.R_X86_64_TPOFF64 {
					continue
				}
				v, ok := symValue(uint32(info >> 32))
				if !ok {
					continue
				}
				d.tpoffAt, d.tpoffOff, d.hasTpoff = le.Uint64(data[off:]), int64(v)+int64(le.Uint64(data[off+16:])), true
				return
			}
		}
		if f.Class == elf.ELFCLASS32 && s.Type == elf.SHT_REL {
			for off := 0; off+8 <= len(data); off += 8 {
				info := le.Uint32(data[off+4:])
				if elf.R_386(info&0xff) != elf.R_386_TLS_TPOFF {
					continue
				}
				v, ok := symValue(info >> 8)
				if !ok {
					continue
				}
				d.tpoffAt, d.tpoffOff, d.tpoffInFile, d.hasTpoff = uint64(le.Uint32(data[off:])), int64(v), true, true
				return
			}
		}
	}
}

// fileWord reads a link-time address's word from the file (0 when it is
// not in a loadable segment's file bytes).
func (b *Binary) fileWord(a uint64, size int) (uint64, bool) {
	for _, p := range b.loads {
		if a >= p.Vaddr && a+uint64(size) <= p.Vaddr+p.Filesz {
			off := p.Off + a - p.Vaddr
			if off+uint64(size) <= uint64(len(b.img.data)) {
				if size == 4 {
					return uint64(binary.LittleEndian.Uint32(b.img.data[off:])), true
				}
				return binary.LittleEndian.Uint64(b.img.data[off:]), true
			}
		}
	}
	return 0, false
}

// GOTName names a GOT word that no symbol fills (its reserved slots).
const GOTName = "_GLOBAL_OFFSET_TABLE_"

// IsGOT reports whether a data symbol's name is a GOT slot's
// (DataSymbolize).
func IsGOT(name string) bool { return strings.HasSuffix(name, "@got") || name == GOTName }

// DataRange is a range of a process's writable memory outside the stack.
type DataRange struct {
	Start, End uint64
	Area       string // "data" (a file's data and bss), "heap", "tls"
	Path       string // the file, "[heap]" or "[tls]"
}

// DataRanges lists the writable data and bss of every mapped file (by its
// writable PT_LOAD segments, bss included, as far as they are mapped
// writable) and the brk heap, by address.
func (sp *Space) DataRanges() []DataRange {
	var out []DataRange
	for _, mod := range sp.mods {
		bin := mod.binary()
		if bin == nil || mod.path == vdsoPath {
			continue
		}
		for _, p := range bin.layout().writable {
			lo, hi := mod.bias+p.Vaddr, mod.bias+p.Vaddr+p.Memsz
			// Only what is mapped writable now (RELRO turns the start of
			// the segment read-only after relocation).
			for _, m := range sp.maps {
				if m.End <= lo || m.Start >= hi || !strings.Contains(m.Perms, "w") {
					continue
				}
				out = append(out, DataRange{Start: max(lo, m.Start), End: min(hi, m.End), Area: "data", Path: mod.path})
			}
		}
	}
	for _, m := range sp.maps {
		if m.Path == "[heap]" && strings.Contains(m.Perms, "w") {
			out = append(out, DataRange{Start: m.Start, End: m.End, Area: "heap", Path: "[heap]"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

// DataSymbolize names a data address by the file whose writable segment
// holds it and the data symbol that covers it (Name "" when none does).
func (sp *Space) DataSymbolize(addr uint64) Sym {
	for _, mod := range sp.mods {
		bin := mod.binary()
		if bin == nil || mod.path == vdsoPath {
			continue
		}
		for _, p := range bin.layout().writable {
			lo := mod.bias + p.Vaddr
			if addr < lo || addr >= lo+p.Memsz {
				continue
			}
			y := Sym{Module: mod.name, Off: addr - mod.start}
			link := addr - mod.bias
			for _, g := range bin.layout().got {
				if link >= g[0] && link < g[1] {
					// A GOT slot: named by what fills it ("execl@got"),
					// else by the section.
					slot := link &^ uint64(bin.Arch.PtrSize-1)
					if n := bin.data().gotNames[slot]; n != "" {
						y.Name, y.Off = n+"@got", link-slot
					} else {
						y.Name, y.Off = GOTName, link-g[0]
					}
					return y
				}
			}
			if name, off, ok := lookupData(bin.data().objTab, link); ok {
				y.Name, y.Off = name, off
			}
			return y
		}
	}
	return Sym{}
}

// TLSBlock is where one module's static TLS block lies in a thread.
type TLSBlock struct {
	Start, End uint64
	Module     string // base name
	bin        *Binary
}

// TLSBlocks places the static TLS block of every mapped module that has
// one, for the thread whose thread pointer is tp (x86: TLS variant II,
// blocks below tp). A module with a TLS relocation is placed by the offset
// the dynamic linker wrote for it (read through readWord); the main
// program without one is the first block below tp (glibc's and musl's
// layout for module 1). Modules placed neither way are left out.
func (sp *Space) TLSBlocks(tp uint64, readWord func(addr uint64, size int) (uint64, bool)) []TLSBlock {
	var out []TLSBlock
	for _, mod := range sp.mods {
		bin := mod.binary()
		if bin == nil || mod.path == vdsoPath {
			continue
		}
		d := bin.layout()
		if d.tlsSeg == nil || d.tlsSeg.Memsz == 0 {
			continue
		}
		word := bin.Arch.PtrSize
		var base uint64 // runtime address of the block's offset 0
		switch {
		case d.hasTpoff:
			v, ok := readWord(mod.bias+d.tpoffAt, word)
			if !ok {
				continue
			}
			off := d.tpoffOff // TLS offset the word is for
			if d.tpoffInFile {
				addend, ok := bin.fileWord(d.tpoffAt, word)
				if !ok {
					continue
				}
				off += int64(int32(uint32(addend)))
			}
			tpoff := int64(v)
			if word == 4 {
				tpoff = int64(int32(uint32(v)))
			}
			// The word holds tp-relative(offset): the block starts at
			// tp + tpoff - off.
			base = uint64(int64(tp) + tpoff - off)
		case bin.Type == elf.ET_EXEC || mod.start == sp.exeStart():
			a := max(d.tlsSeg.Align, 1)
			first := d.tlsSeg.Vaddr & (a - 1)
			firstbyte := -first & (a - 1)
			off := (d.tlsSeg.Memsz-firstbyte+a-1)/a*a + firstbyte
			base = tp - off
		default:
			continue
		}
		out = append(out, TLSBlock{Start: base, End: base + d.tlsSeg.Memsz, Module: mod.name, bin: bin})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

// exeStart is the start of the main program's mappings: the module whose
// file is mapped lowest that is not a shared library is the program; a PIE
// program is told by being mapped first in /proc/PID/maps (the kernel
// maps it before the interpreter, at a fixed offset from mmap_base).
func (sp *Space) exeStart() uint64 {
	for _, m := range sp.maps {
		if strings.HasPrefix(m.Path, "/") {
			return m.Start
		}
	}
	return 0
}

// TLSSymbolize names an address inside one of blocks by the module and its
// TLS symbol (Name "" when none covers it).
func TLSSymbolize(blocks []TLSBlock, addr uint64) (Sym, bool) {
	for _, b := range blocks {
		if addr < b.Start || addr >= b.End {
			continue
		}
		y := Sym{Module: b.Module, Off: addr - b.Start}
		if name, off, ok := lookupData(b.bin.data().tlsTab, addr-b.Start); ok {
			y.Name, y.Off = name, off
		}
		return y, true
	}
	return Sym{}, false
}
