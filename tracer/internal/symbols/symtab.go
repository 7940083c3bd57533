package symbols

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"math"
)

// symtab is an ELF symbol table read in place from the mapped file.
// debug/elf's Symbols allocates a string per symbol and a Symbol struct per
// entry; libc's debug file has ten thousand of them, and vtrace keeps only
// the code symbols, with their names as offsets in the string table.
type symtab struct {
	data   []byte
	strtab []byte
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
	t := &symtab{is64: f.Class == elf.ELFCLASS64}
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
	t.data, t.strtab = data, str
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

// entry reads entry i (little-endian: vtrace reads x86 files only).
func (t *symtab) entry(i int) symEntry {
	bo := binary.LittleEndian
	if t.is64 {
		d := t.data[i*24 : i*24+24]
		return symEntry{name: bo.Uint32(d), info: d[4], shndx: elf.SectionIndex(bo.Uint16(d[6:])),
			value: bo.Uint64(d[8:]), size: bo.Uint64(d[16:])}
	}
	d := t.data[i*16 : i*16+16]
	return symEntry{name: bo.Uint32(d), value: uint64(bo.Uint32(d[4:])), size: uint64(bo.Uint32(d[8:])),
		info: d[12], shndx: elf.SectionIndex(bo.Uint16(d[14:]))}
}

// cString returns the NUL-terminated string at off in a string table (""
// when out of range or unterminated).
func cString(strtab []byte, off uint32) string {
	return string(cBytes(strtab, off))
}

func cBytes(strtab []byte, off uint32) []byte {
	if int(off) >= len(strtab) {
		return nil
	}
	s := strtab[off:]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return nil
}

// forEachCodeSymbol calls fn for every symbol of f's .symtab, then .dynsym,
// that can name code: functions and ifuncs, and untyped symbols in an
// executable section. Each table's string table is first given to strtab,
// which returns the number the symbols' tab field gets. rank orders symbols
// at the same address (see symbol.rank); global tells a non-local binding;
// name is the symbol's name if wantNames (finding its end costs a scan).
func forEachCodeSymbol(f *image, wantNames bool, strtab func([]byte) uint8, fn func(s symbol, name []byte, global bool)) {
	for _, typ := range []elf.SectionType{elf.SHT_SYMTAB, elf.SHT_DYNSYM} {
		t, err := readSymtab(f, typ)
		if err != nil {
			continue
		}
		tab := strtab(t.strtab)
		// Names are tested by their first bytes; one ending past the last
		// NUL of the table is unterminated, and not a name (cBytes).
		lastNUL := uint32(bytes.LastIndexByte(t.strtab, 0))
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
			if e.name >= lastNUL || int(lastNUL) >= len(t.strtab) { // empty, unterminated, or no NUL at all
				continue
			}
			c0, c1 := t.strtab[e.name], t.strtab[e.name+1]
			if c0 == 0 || c0 == '.' && c1 == 'L' || c0 == '$' {
				continue
			}
			global := elf.ST_BIND(e.info) != elf.STB_LOCAL
			if global {
				rank++
			}
			if c0 != '_' {
				rank++ // prefer printf over _IO_printf at the same address
			}
			var name []byte
			if wantNames {
				name = cBytes(t.strtab, e.name)
			}
			sec := uint16(noSection)
			if e.shndx < elf.SHN_LORESERVE {
				sec = uint16(e.shndx)
			}
			fn(symbol{addr: e.value, size: uint32(min(e.size, math.MaxUint32)), name: e.name, tab: tab, rank: int8(rank), sec: sec,
				fn: elf.ST_TYPE(e.info) != elf.STT_NOTYPE}, name, global)
		}
	}
}

// codeSymbolsMax is the number of entries of f's symbol tables: at most
// that many code symbols. Only what the file really holds counts: a table's
// sh_size is the file's word, and one of 0x7fffffffffffff00 bytes must not
// become an allocation (a table past the file's end has no entries).
func codeSymbolsMax(f *image) int {
	n := 0
	for _, s := range f.Sections {
		if (s.Type == elf.SHT_SYMTAB || s.Type == elf.SHT_DYNSYM) && s.Entsize > 0 {
			if data, err := f.sectionData(s); err == nil && s.Entsize <= uint64(len(data)) {
				n += len(data) / int(s.Entsize)
			}
		}
	}
	return n
}
