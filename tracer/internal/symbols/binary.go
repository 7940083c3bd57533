// Package symbols turns addresses of a live process into names: ELF symbol
// tables (with separate debug files found by build-id), synthesised PLT stub
// names such as printf@plt, DWARF line tables, and the .eh_frame call-frame
// information and function code the unwinder needs — all rebased by each
// module's load bias as read from /proc/PID/maps. Files are mapped, not
// read, and each part of one is read when first needed; the vDSO is read
// from the process. A fast run on a small program is dominated by this
// package's start-up costs: keep them lazy.
package symbols

import (
	"debug/dwarf"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// Sym is a symbolised address. Name is empty when no symbol covers it;
// Module and Off (relative to the module's load address) are then still set.
type Sym struct {
	Name   string
	Off    uint64
	Module string // base name of the file, or [vdso], [stack], ...
	File   string // source file (DWARF), if known
	Line   int
	// PastEnd: addr is in the padding after the named function's end.
	PastEnd bool
}

// symbol is one code symbol at its link-time address. It holds no pointer
// (its name is an offset in one of the Binary's string tables): libc and its
// debug file give thirteen thousand of them, and every fresh page of heap
// costs a page fault that is dear under a hypervisor.
type symbol struct {
	addr uint64
	size uint32 // 0 if unknown; a code symbol's size fits (larger ones are clamped)
	name uint32 // offset of the NUL-terminated name in strtabs[tab]
	tab  uint8
	rank int8   // preference among symbols at the same address, 0..maxRank
	sec  uint16 // its section, an index in Binary.secs (noSection if none)
	fn   bool   // an STT_FUNC or STT_GNU_IFUNC symbol
}

func (s symbol) end() uint64 { return s.addr + uint64(s.size) }

const noSection = 0xffff

// secRange is a section's link-time address range.
type secRange struct{ lo, hi uint64 }

// maxRank is the rank of a synthesised PLT name: above any symbol's (0-4).
const maxRank = 10

type lineRow struct {
	addr uint64
	file string
	line int
	end  bool
}

// Binary is one ELF file's static knowledge, at link-time addresses.
type Binary struct {
	Path string
	Arch *arch.Arch
	Type elf.Type
	// BuildID is the hex GNU build-id, if the file has one.
	BuildID string

	// The code symbols, read on the first symbolAt (a mapped library may
	// never be asked for a name): syms in the order read, index the
	// positions of those kept, one per address, sorted by address.
	symOnce sync.Once
	img     *image // the mapped file
	syms    []symbol
	index   []uint32
	sorted  int        // len(syms) when index was made
	strtabs [][]byte   // string tables the symbols' names are in (mapped)
	secs    []secRange // the sections of the files the symbols came from
	pltStrs []byte     // the synthesised name@plt names, NUL-terminated

	// Lookup's names, read on its first call (the engine never looks a
	// name up; building the map for libc cost a millisecond per run).
	byNm      map[string]uint64
	byNmDebug bool // byNm includes the debug file's names

	// DWARF line information, read lazily: the compile units' address
	// ranges on first use, a unit's line table when an address in it is
	// first asked for (libc's debug file has ~300k rows: reading them all
	// would cost half a second per run).
	dwOnce  sync.Once
	dw      *dwarf.Data // read through dwarfData
	cus     []cuRange   // sorted by lo; nil until first Line
	cusDone bool
	cuLines map[dwarf.Offset][]lineRow

	loads []elf.ProgHeader

	// Data and TLS symbols, writable segments (data.go), read on first use.
	dataOnce    sync.Once
	dataSymbols *dataSyms
	layoutOnce  sync.Once
	layoutData  *dataSyms // the layout part of dataSymbols (layout)

	debugOnce   sync.Once // separate debug file's symbols, read on the first miss
	debugLoaded bool      // they were found and added

	ehFrame     []byte // slice of the mapped file
	ehFrameAddr uint64
	ehHdr       ehIndex // .eh_frame_hdr's search table, if ehHdrOK
	ehHdrOK     bool

	// The on-disk index of the symbols (index.go), when there is one: it
	// answers for the symbol tables above, read on the first need.
	idxOnce sync.Once
	idx     *symIndex
	recs    symRecs // the code symbols, from idx, when indexed (then syms and index are not used)
	indexed bool

	mu       sync.Mutex
	fdes     map[uint64]frame.FrameDescriptionEntries // whole .eh_frame by load bias, without ehHdr
	fdeCache map[fdeKey]*frame.FrameDescriptionEntry  // FDEs found through ehHdr
}

var cache = struct {
	sync.Mutex
	m map[string]*Binary
}{m: map[string]*Binary{}}

// OpenBinary reads the ELF file at path (cached by path, size and mtime).
func OpenBinary(path string) (*Binary, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s\x00%d\x00%d", path, st.Size(), st.ModTime().UnixNano())
	cache.Lock()
	b := cache.m[key]
	cache.Unlock()
	if b != nil {
		return b, nil
	}
	b, err = readBinary(path)
	if err != nil {
		return nil, err
	}
	cache.Lock()
	cache.m[key] = b
	cache.Unlock()
	return b, nil
}

func readBinary(path string) (*Binary, error) {
	f, err := openImage(path)
	if err != nil {
		return nil, err
	}
	return newBinary(path, f)
}

func newBinary(path string, f *image) (*Binary, error) {
	b := &Binary{Path: path, Arch: arch.ForELFMachine(uint16(f.Machine)), Type: f.Type,
		fdes: map[uint64]frame.FrameDescriptionEntries{}}
	if b.Arch == nil {
		return nil, fmt.Errorf("%s: unsupported machine %v", path, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			b.loads = append(b.loads, p.ProgHeader)
		}
	}
	b.BuildID = buildID(f)
	b.img = f
	// Line tables come only from the file itself (a program built with
	// -g); a separate debug file is read for its symbols alone, and only
	// when the file's own symbols leave an address unnamed (libc's
	// internal functions): see symbolAt.
	if data, s := f.section(".eh_frame"); data != nil {
		b.ehFrame, b.ehFrameAddr = data, s.Addr
		if hdr, hs := f.section(".eh_frame_hdr"); hdr != nil {
			b.ehHdr, b.ehHdrOK = parseEhFrameHdr(hdr, hs.Addr, b.Arch.PtrSize)
		}
	}
	return b, nil
}

func buildID(f *image) string {
	d, _ := f.section(".note.gnu.build-id")
	if len(d) < 16 {
		return ""
	}
	namesz := uint64(f.ByteOrder.Uint32(d[0:]))
	descsz := uint64(f.ByteOrder.Uint32(d[4:]))
	off := 12 + (namesz+3)&^3
	if uint64(len(d)) < off+descsz {
		return ""
	}
	return hex.EncodeToString(d[off : off+descsz])
}

func (b *Binary) debugPath() string {
	return filepath.Join("/usr/lib/debug/.build-id", b.BuildID[:2], b.BuildID[2:]+".debug")
}

// debugFile opens the separate debug file of a stripped library, if
// installed (/usr/lib/debug/.build-id/xx/yyyy.debug).
func (b *Binary) debugFile() *image {
	if len(b.BuildID) < 3 {
		return nil
	}
	f, err := openImage(b.debugPath())
	if err != nil {
		return nil
	}
	return f
}

// loadSymbols reads the file's own code symbols and names its PLT stubs.
func (b *Binary) loadSymbols() {
	ix := b.symIndex()
	b.mu.Lock()
	defer b.mu.Unlock()
	if ix != nil {
		b.useIndexed(ix, ix.own)
		return
	}
	b.addPLT(b.img, b.addSymbols(b.img))
	b.sortSymbols()
}

// addSymbols adds a file's code symbols and returns the number of its first
// section in b.secs.
func (b *Binary) addSymbols(f *image) uint16 {
	b.syms = slices.Grow(b.syms, codeSymbolsMax(f))
	base := b.addSections(f)
	forEachCodeSymbol(f, false, b.addStrtab, func(s symbol, _ []byte, _ bool) {
		if s.sec != noSection && base != noSection {
			s.sec += base
		} else {
			s.sec = noSection
		}
		b.syms = append(b.syms, s)
	})
	return base
}

// addSections records the address ranges of a file's sections (by section
// index, after those recorded before) and returns where they start, or
// noSection if they do not fit (then no symbol of the file knows its
// section, and an unsized one names nothing but its own address).
func (b *Binary) addSections(f *image) uint16 {
	if len(b.secs)+len(f.Sections) >= noSection {
		return noSection
	}
	base := uint16(len(b.secs))
	for _, s := range f.Sections {
		r := secRange{}
		if s.Flags&elf.SHF_ALLOC != 0 {
			r = secRange{s.Addr, s.Addr + s.Size}
		}
		b.secs = append(b.secs, r)
	}
	return base
}

// sectionHas reports whether addr lies in section sec.
func (b *Binary) sectionHas(sec uint16, addr uint64) bool {
	return sec != noSection && int(sec) < len(b.secs) && addr >= b.secs[sec].lo && addr < b.secs[sec].hi
}

// addStrtab registers a string table and returns its number.
func (b *Binary) addStrtab(t []byte) uint8 {
	b.strtabs = append(b.strtabs, t)
	return uint8(len(b.strtabs) - 1)
}

// nameOf returns a symbol's name.
func (b *Binary) nameOf(s symbol) string {
	return cString(b.strtabs[s.tab], s.name)
}

// sortSymbols orders the symbols — those kept so far, in their order, then
// those added since — by address, the best-ranked first at each address
// (ties keep their order), and keeps one per address: the first, with the
// first nonzero size among those at its address.
func (b *Binary) sortSymbols() {
	idx := make([]uint32, 0, len(b.index)+len(b.syms)-b.sorted)
	idx = append(idx, b.index...)
	for i := b.sorted; i < len(b.syms); i++ {
		idx = append(idx, uint32(i))
	}
	b.sorted = len(b.syms)
	idx = sortIndex(b.syms, idx)
	out := idx[:0]
	for _, i := range idx {
		if len(out) > 0 {
			last := &b.syms[out[len(out)-1]]
			if last.addr == b.syms[i].addr {
				if last.size == 0 {
					last.size = b.syms[i].size
				}
				last.fn = last.fn || b.syms[i].fn // a function starts here
				continue
			}
		}
		out = append(out, i)
	}
	b.index = slices.Clip(out)
}

// sortIndex sorts idx, positions in syms, by address, then rank (best
// first), keeping the order of ties. It radix-sorts (LSD, stable): rank,
// then the address relative to the lowest, 11 bits a pass. Sorting with a
// comparison function cost milliseconds for libc's debug file (ten
// thousand symbols), a third of vtrace's run time on a small program.
// The result is either idx or a new slice.
func sortIndex(syms []symbol, idx []uint32) []uint32 {
	if len(idx) < 2 {
		return idx
	}
	lo, hi := syms[idx[0]].addr, syms[idx[0]].addr
	for _, i := range idx {
		lo, hi = min(lo, syms[i].addr), max(hi, syms[i].addr)
	}
	tmp := make([]uint32, len(idx))
	src, dst := idx, tmp
	var count [1<<radixDigit + 1]int
	for _, i := range src {
		count[maxRank-syms[i].rank+1]++
	}
	radixScatter(&count, src, dst, func(i uint32) uint64 { return uint64(maxRank - syms[i].rank) })
	src, dst = dst, src
	for shift := 0; shift < bits.Len64(hi-lo); shift += radixDigit {
		count = [1<<radixDigit + 1]int{}
		for _, i := range src {
			count[(syms[i].addr-lo)>>shift&(1<<radixDigit-1)+1]++
		}
		radixScatter(&count, src, dst, func(i uint32) uint64 { return (syms[i].addr - lo) >> shift & (1<<radixDigit - 1) })
		src, dst = dst, src
	}
	return src
}

const radixDigit = 11

// radixScatter moves src into dst by digit, given each digit's count at
// count[digit+1].
func radixScatter(count *[1<<radixDigit + 1]int, src, dst []uint32, digit func(uint32) uint64) {
	for d := 1; d < len(count); d++ {
		count[d] += count[d-1]
	}
	for _, i := range src {
		d := digit(i)
		dst[count[d]] = i
		count[d]++
	}
}

// SymbolAt names a link-time code address the way objdump does: by the
// nearest symbol at or below it. An address in the alignment padding after a
// function still gets that function's name (main+0x22 past a 0x22-byte main);
// further out, a sized symbol that contains it (an outer alias) wins.
func (b *Binary) SymbolAt(addr uint64) (name string, off uint64, ok bool) {
	name, off, _, ok = b.symbolAt(addr)
	return
}

func (b *Binary) symbolAt(addr uint64) (name string, off uint64, pastEnd, ok bool) {
	b.symOnce.Do(b.loadSymbols)
	name, off, pastEnd, ok = b.lookupSym(addr)
	if !ok || pastEnd {
		b.debugOnce.Do(b.loadDebugSymbols)
		if b.debugLoaded {
			name, off, pastEnd, ok = b.lookupSym(addr)
		}
	}
	return
}

// loadDebugSymbols adds the symbols of the separate debug file. The file
// stays mapped: the names are read from it.
func (b *Binary) loadDebugSymbols() {
	if ix := b.symIndex(); ix != nil {
		if ix.hasDebug {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.useIndexed(ix, ix.all)
			b.debugLoaded = true
		}
		return
	}
	dbg := b.debugFile()
	if dbg == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addSymbols(dbg)
	b.sortSymbols()
	b.debugLoaded = true
}

// lookupSym names addr by the nearest symbol at or below it, only when addr
// really lies in it: within its size, or, for a symbol of unknown size (0:
// crtstuff's functions, hand-written assembly), within its section — it then
// extends to the next symbol. Else a sized symbol further down that contains
// it (an outer alias), else the alignment padding after the nearest one
// (pastEnd), in its section — or right at its end, where a call to a
// noreturn function that ends it returns (a function, not a PLT stub). Anything else (data after the last function
// of a section, the PLT's lazy-binding header after _init, the end marker
// _etext) is not named.
func (b *Binary) lookupSym(addr uint64) (name string, off uint64, pastEnd, ok bool) {
	// Under mu: a Prefetch on another goroutine may be adding the debug
	// file's symbols.
	b.mu.Lock()
	defer b.mu.Unlock()
	i := sort.Search(b.symCount(), func(i int) bool { return b.symAt(i).addr > addr }) - 1
	if i < 0 {
		return "", 0, false, false
	}
	near := b.symAt(i)
	if near.size != 0 && addr < near.end() || near.size == 0 && (b.sectionHas(near.sec, addr) || near.sec == noSection && addr == near.addr) {
		return b.nameOf(near), addr - near.addr, false, true
	}
	for j := i - 1; j >= 0 && addr-b.symAt(j).addr < 1<<20; j-- {
		if s := b.symAt(j); addr < s.end() {
			return b.nameOf(s), addr - s.addr, false, true
		}
	}
	if end := near.end(); near.size != 0 && addr < end+maxPadding && (b.sectionHas(near.sec, addr) || addr == end && near.rank != maxRank) {
		return b.nameOf(near), addr - near.addr, true, true
	}
	return "", 0, false, false
}

// symCount is the number of code symbols kept, one per address; symAt
// returns the i-th by address. Both under mu.
func (b *Binary) symCount() int {
	if b.indexed {
		return b.recs.len()
	}
	return len(b.index)
}

func (b *Binary) symAt(i int) symbol {
	if b.indexed {
		return b.recs.at(i)
	}
	return b.syms[b.index[i]]
}

// funcBounds returns the function that contains a link-time address: a
// sized symbol that contains it, or an unsized function symbol (assembly
// without .size, as musl's vfork) that names it, up to the next symbol or
// its section's end. An unsized symbol that is not a function (a label
// inside a function) gives no bounds: the code from it is not a function's
// entry.
func (b *Binary) funcBounds(addr uint64) (start, end uint64, ok bool) {
	if _, _, pastEnd, found := b.symbolAt(addr); !found || pastEnd {
		return 0, 0, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.symCount()
	i := sort.Search(n, func(i int) bool { return b.symAt(i).addr > addr }) - 1
	if i < 0 {
		return 0, 0, false
	}
	if near := b.symAt(i); near.size == 0 {
		if !near.fn || !b.sectionHas(near.sec, addr) {
			return 0, 0, false
		}
		end := b.secs[near.sec].hi
		if i+1 < n {
			end = min(end, b.symAt(i+1).addr)
		}
		return near.addr, end, true
	}
	for j := i; j >= 0 && addr-b.symAt(j).addr < 1<<20; j-- {
		if s := b.symAt(j); addr < s.end() {
			return s.addr, s.end(), true
		}
	}
	return 0, 0, false
}

// codeAt returns the file's bytes at link-time addresses [start, end), if a
// loadable segment holds all of them.
func (b *Binary) codeAt(start, end uint64) ([]byte, bool) {
	for _, p := range b.loads {
		if start >= p.Vaddr && end <= p.Vaddr+p.Filesz && start < end {
			off := p.Off + (start - p.Vaddr)
			if n := uint64(len(b.img.data)); off <= n && end-start <= n-off {
				return b.img.data[off : off+(end-start)], true
			}
		}
	}
	return nil, false
}

// maxPadding is how far past a function's end an address still counts as
// its alignment padding.
const maxPadding = 64

// Lookup returns the link-time address of a symbol by name: a global
// symbol's rather than a local one of the same name (a static function of
// another file), else the first local (.symtab lists every local first).
// The names are those of the file and, once read (see symbolAt), of its
// debug file.
func (b *Binary) Lookup(name string) (uint64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byNm == nil || b.byNmDebug != b.debugLoaded {
		b.byNm, b.byNmDebug = map[string]uint64{}, b.debugLoaded
		global := map[string]bool{}
		add := func(s symbol, nameBytes []byte, isGlobal bool) {
			name := string(nameBytes)
			if isGlobal {
				if !global[name] {
					b.byNm[name] = s.addr
					global[name] = true
				}
			} else if _, ok := b.byNm[name]; !ok {
				b.byNm[name] = s.addr
			}
		}
		noTab := func([]byte) uint8 { return 0 }
		forEachCodeSymbol(b.img, true, noTab, add)
		if b.debugLoaded {
			if f := b.debugFile(); f != nil {
				forEachCodeSymbol(f, true, noTab, add)
				f.close()
			}
		}
	}
	a, ok := b.byNm[name]
	return a, ok
}

type cuRange struct {
	lo, hi uint64
	cu     *dwarf.Entry
}

func dwarfOf(f *image) *dwarf.Data {
	if f.Section(".debug_line") == nil || f.Section(".debug_info") == nil {
		return nil
	}
	if f.Type == elf.ET_REL || !f.mapped {
		// relocations to apply (debug/elf does), or no mapping to slice
		d, err := f.DWARF()
		if err != nil {
			return nil
		}
		return d
	}
	// Slices of the mapping, not copies: debug/elf's DWARF() reads every
	// .debug_* section into the heap (10 MB for a python3 run's modules),
	// where a story reads the line tables of a few compile units.
	sec := func(name string) []byte {
		d, _ := f.section(name)
		return d
	}
	d, err := dwarf.New(sec(".debug_abbrev"), sec(".debug_aranges"), nil, sec(".debug_info"),
		sec(".debug_line"), nil, sec(".debug_ranges"), sec(".debug_str"))
	if err != nil {
		return nil
	}
	for _, name := range []string{".debug_addr", ".debug_line_str", ".debug_str_offsets", ".debug_rnglists"} {
		if data := sec(name); data != nil {
			if err := d.AddSection(name, data); err != nil {
				return nil
			}
		}
	}
	return d
}

// dwarfData is the file's DWARF, opened on first use.
func (b *Binary) dwarfData() *dwarf.Data {
	b.dwOnce.Do(func() {
		if b.img != nil {
			b.dw = dwarfOf(b.img)
		}
	})
	return b.dw
}

// Line returns the source position of a link-time address, if the binary
// has DWARF line information.
func (b *Binary) Line(addr uint64) (string, int) {
	if b.dwarfData() == nil {
		return "", 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.cusDone {
		b.readUnits()
	}
	i := sort.Search(len(b.cus), func(i int) bool { return b.cus[i].lo > addr }) - 1
	for ; i >= 0; i-- {
		c := b.cus[i]
		if addr >= c.hi {
			continue
		}
		rows := b.unitLines(c.cu)
		j := sort.Search(len(rows), func(j int) bool { return rows[j].addr > addr }) - 1
		if j >= 0 && !rows[j].end && rows[j].line != 0 {
			return rows[j].file, rows[j].line
		}
		return "", 0
	}
	return "", 0
}

func (b *Binary) readUnits() {
	b.cusDone = true
	b.cuLines = map[dwarf.Offset][]lineRow{}
	r := b.dw.Reader()
	last := dwarf.Offset(0)
	for first := true; ; first = false {
		e, err := r.Next()
		if err != nil || e == nil {
			break
		}
		// The reader follows DW_AT_sibling (SkipChildren) wherever the
		// file says: a sibling that points back would make it read the
		// same entries for ever (a mutated copy held vtrace, and the
		// tracees it had to resume, past --timeout). Entries are read in
		// the order of their offsets or not at all.
		if !first && e.Offset <= last {
			break
		}
		last = e.Offset
		if e.Tag == dwarf.TagCompileUnit || e.Tag == dwarf.TagPartialUnit {
			if rs, err := b.dw.Ranges(e); err == nil {
				for _, rg := range rs {
					b.cus = append(b.cus, cuRange{lo: rg[0], hi: rg[1], cu: e})
				}
			}
		}
		r.SkipChildren()
	}
	sort.Slice(b.cus, func(i, j int) bool { return b.cus[i].lo < b.cus[j].lo })
}

func (b *Binary) unitLines(cu *dwarf.Entry) []lineRow {
	if rows, ok := b.cuLines[cu.Offset]; ok {
		return rows
	}
	var rows []lineRow
	if lr, err := b.dw.LineReader(cu); err == nil && lr != nil {
		var le dwarf.LineEntry
		for lr.Next(&le) == nil {
			name := ""
			if le.File != nil {
				name = filepath.Base(le.File.Name)
			}
			rows = append(rows, lineRow{addr: le.Address, file: name, line: le.Line, end: le.EndSequence})
		}
	}
	sortLines(rows)
	b.cuLines[cu.Offset] = rows
	return rows
}

// sortLines orders line-table rows by address. A unit's sequences (one per
// section: .text, .text.startup, .text.unlikely) need not come in address
// order, and one may start right where another ends: at an address shared
// by an end_sequence row and a row of another sequence, the end row sorts
// first, so that Line finds the row that starts there.
func sortLines(rows []lineRow) {
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].addr != rows[j].addr {
			return rows[i].addr < rows[j].addr
		}
		return rows[i].end && !rows[j].end
	})
}

// FDEs returns all the .eh_frame entries relocated by a load bias, sorted
// (FDEForPC finds one through .eh_frame_hdr where it can).
func (b *Binary) FDEs(bias uint64) (frame.FrameDescriptionEntries, error) {
	if b.ehFrame == nil {
		return nil, errors.New("no .eh_frame")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if f, ok := b.fdes[bias]; ok {
		return f, nil
	}
	f, err := b.parseCFI(b.ehFrame, bias, b.ehFrameAddr, 0)
	if err != nil {
		// One malformed entry stops delve's parser: read the others one
		// by one, so that it costs that entry alone.
		f = nil
		eachFDE(b.ehFrame, func(off uint64) {
			if fde, err := b.fdeAtLocked(off, bias); err == nil {
				f = append(f, fde)
			}
		})
		if len(f) == 0 {
			return nil, err
		}
	}
	sort.Slice(f, func(i, j int) bool { return f[i].Begin() < f[j].Begin() })
	if len(b.fdes) >= maxCachedBiases {
		clear(b.fdes) // one parse per load bias: see maxCachedFDEs
	}
	b.fdes[bias] = f
	return f, nil
}

// biasFor computes the load bias of a mapping of this file that starts at
// start with file offset off.
func (b *Binary) biasFor(start, off uint64) (uint64, bool) {
	for _, p := range b.loads {
		if off >= p.Off&^0xfff && off < p.Off+p.Filesz {
			return start - ((p.Vaddr - p.Off + off) &^ 0xfff), true
		}
	}
	return 0, false
}
