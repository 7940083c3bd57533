package symbols

import (
	"debug/elf"
	"errors"
	"strings"
)

// symtab is an ELF symbol table read straight from its section bytes.
// debug/elf's Symbols allocates a string per symbol and a Symbol struct per
// entry; libc's debug file has ten thousand of them, and vtrace keeps only
// the code symbols. Names here are substrings of one string holding the
// whole string table: reading them allocates nothing.
type symtab struct {
	data   []byte
	strtab string
	f      *image
	is64   bool
}

type symEntry struct {
	name        uint32
	info        byte
	shndx       elf.SectionIndex
	value, size uint64
}

// readSymtab reads the first section of type typ (SHT_SYMTAB or
// SHT_DYNSYM), with the same checks as debug/elf.
func readSymtab(f *image, typ elf.SectionType) (*symtab, error) {
	s := f.SectionByType(typ)
	if s == nil || s.Type == elf.SHT_NOBITS {
		return nil, elf.ErrNoSymbols
	}
	data, err := f.sectionData(s)
	if err != nil {
		return nil, err
	}
	t := &symtab{f: f, is64: f.Class == elf.ELFCLASS64}
	if len(data) == 0 || len(data)%t.entSize() != 0 {
		return nil, errors.New("bad symbol table size")
	}
	if s.Link == 0 || int(s.Link) >= len(f.Sections) {
		return nil, errors.New("bad string table link")
	}
	str, err := f.sectionData(f.Sections[s.Link])
	if err != nil {
		return nil, err
	}
	t.data, t.strtab = data, string(str)
	return t, nil
}

func (t *symtab) entSize() int {
	if t.is64 {
		return 24
	}
	return 16
}

// len counts the entries, the null entry 0 included.
func (t *symtab) len() int { return len(t.data) / t.entSize() }

func (t *symtab) entry(i int) symEntry {
	bo := t.f.ByteOrder
	if t.is64 {
		d := t.data[i*24 : i*24+24]
		return symEntry{name: bo.Uint32(d), info: d[4], shndx: elf.SectionIndex(bo.Uint16(d[6:])),
			value: bo.Uint64(d[8:]), size: bo.Uint64(d[16:])}
	}
	d := t.data[i*16 : i*16+16]
	return symEntry{name: bo.Uint32(d), value: uint64(bo.Uint32(d[4:])), size: uint64(bo.Uint32(d[8:])),
		info: d[12], shndx: elf.SectionIndex(bo.Uint16(d[14:]))}
}

// str returns the NUL-terminated string at off ("" when out of range).
func (t *symtab) str(off uint32) string {
	if int(off) >= len(t.strtab) {
		return ""
	}
	s := t.strtab[off:]
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return ""
}

// forEachCodeSymbol calls fn for every symbol of f's .symtab, then .dynsym,
// that can name code: functions and ifuncs, and untyped symbols in an
// executable section. rank orders symbols at the same address (see
// symbol.rank); global tells a non-local binding.
func forEachCodeSymbol(f *image, fn func(s symbol, global bool)) {
	for _, typ := range []elf.SectionType{elf.SHT_SYMTAB, elf.SHT_DYNSYM} {
		t, err := readSymtab(f, typ)
		if err != nil {
			continue
		}
		for i, n := 1, t.len(); i < n; i++ {
			e := t.entry(i)
			if e.value == 0 || e.shndx == elf.SHN_UNDEF || int(e.shndx) >= len(f.Sections) && e.shndx < elf.SHN_LORESERVE {
				continue
			}
			rank := 0
			switch elf.ST_TYPE(e.info) {
			case elf.STT_FUNC, elf.STT_GNU_IFUNC:
				rank = 2
			case elf.STT_NOTYPE:
				if e.shndx >= elf.SHN_LORESERVE || f.Sections[e.shndx].Flags&elf.SHF_EXECINSTR == 0 {
					continue
				}
			default:
				continue
			}
			name := t.str(e.name)
			if name == "" || strings.HasPrefix(name, ".L") || strings.HasPrefix(name, "$") {
				continue
			}
			global := elf.ST_BIND(e.info) != elf.STB_LOCAL
			if global {
				rank++
			}
			if !strings.HasPrefix(name, "_") {
				rank++ // prefer printf over _IO_printf at the same address
			}
			fn(symbol{addr: e.value, size: e.size, name: name, rank: int8(rank)}, global)
		}
	}
}

// codeSymbolsMax is the number of entries of f's symbol tables: at most
// that many code symbols.
func codeSymbolsMax(f *image) int {
	n := 0
	for _, s := range f.Sections {
		if (s.Type == elf.SHT_SYMTAB || s.Type == elf.SHT_DYNSYM) && s.Entsize > 0 {
			n += int(s.Size / s.Entsize)
		}
	}
	return n
}
