package tracer

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
	"github.com/vtrace/vtrace/tracer/internal/symbols"
)

// addrSpace is one memory image (an mm): shared by a vfork parent and its
// child until the child execs. It holds what vtrace knows about the code
// mapped there — symbols, CFI, decoded instructions — and the int3
// breakpoints planted in it (breakpoints.go).
type addrSpace struct {
	arch *arch.Arch
	// pid is a task of the image, whose maps are read when the symbols
	// are first needed.
	pid int
	// space is nil until first needed (syms): most exec'd programs (a
	// vfork child's /bin/true) are never asked about, and a program's
	// libraries are mapped only after its exec. Reloaded at each vfork
	// (new mappings, dlopen).
	space space
	load  func(pid int) (space, error)
	code  map[uint64]*insnEntry
	// codePages holds the pages of file-backed code insnAt read, as they
	// were before any int3 of vtrace's (restored when read): one read a
	// page instead of one an instruction (a shell's story decodes ~100
	// instructions, in a new process each time). Dropped with code when
	// other code is mapped (refresh).
	codePages map[uint64][]byte
	// recent holds entries of code by pc modulo its size, looked up
	// before code: a single-stepped loop's instructions without hashing.
	recent [64]recentInsn
	// blocks are blockAt's answers here, decoded from code (block.go).
	blocks map[blockKey]*blockMemo
	bps    map[uint64]*breakpoint
	// removed are the addresses of int3s vtrace planted and took out
	// again: a thread that ran into one just before it went is rewound
	// onto the restored instruction, not given a SIGTRAP.
	removed map[uint64]bool
	// symCache holds Symbolize's answers for the space they were asked of
	// (symOf): a symbols.Space is what one maps text gives (LoadSpace
	// returns the same one while the text is the same), so they hold for
	// as long as it is the image's. A loop of vforks names the same
	// frames and slots at every story.
	symOf    *symbols.Space
	symCache map[uint64]symbols.Sym
	// evSyms holds sym's answers, kept with symCache: events share them
	// (nothing changes an event.Sym once made).
	evSyms map[uint64]*event.Sym
	// textCache holds the objdump-style text of decoded instructions
	// (insnText), which names symbols: kept with symCache.
	textCache map[*disasm.Insn]string
	// exe is the program's path (/proc/PID/exe) as read when the space was
	// exeOf: the maps text names the program's file too, so while it is
	// the same the link says the same.
	exeOf *symbols.Space
	exe   string
	// unwound is the last unwind of a vfork parent here (capture.go).
	unwound *unwindMemo
	// maps keeps this memory's /proc/PID/maps open (refresh).
	maps mapsHandle
	// watchPlan is the last plan of the memory watch (memory.go).
	watchPlan *watchPlan
	// lastRegion is the live region of the last vfork parent here
	// [lo, hi), and lastPages the pages read at its vfork event stop
	// (capture.go): the next vfork's begin reads them in one batch.
	lastRegion [2]uint64
	lastPages  []uint64
}

// mapsHandle is an address space's /proc/PID/maps, open (m not nil) or
// not: see symbols.Maps. It is opened through a task of the address space
// the handle belongs to, and only read again for that address space: the
// file shows the memory it was opened on, and an addrSpace is one memory
// (a task that execs gets a new addrSpace, and a new handle).
type mapsHandle struct {
	m *symbols.Maps
}

func (h *mapsHandle) close() {
	if h.m != nil {
		_ = h.m.Close()
		h.m = nil
	}
}

// maxMapsOpen bounds the maps files kept open: the oldest is closed (and
// opened again at its address space's next refresh).
const maxMapsOpen = 16

// maxSymCache bounds symCache (memory flat in the number of vforks).
const maxSymCache = 1 << 14

type insnEntry struct {
	in  *disasm.Insn
	err error
}

type recentInsn struct {
	pc uint64
	e  *insnEntry
}

func (s *session) newAddrSpace(pid int) (*addrSpace, error) {
	a, err := s.p.Arch(pid)
	if err != nil {
		return nil, fmt.Errorf("read address space of %d: %w", pid, err)
	}
	return &addrSpace{arch: a, pid: pid, load: s.p.Space, code: map[uint64]*insnEntry{}, bps: map[uint64]*breakpoint{},
		removed: map[uint64]bool{}}, nil
}

// forkCopy is the image of a fork child: the same mappings and modules, its
// own memory (so no breakpoint and no code read through the parent).
func (mm *addrSpace) forkCopy(pid int) *addrSpace {
	c := *mm
	c.pid = pid
	c.code, c.recent, c.codePages = map[uint64]*insnEntry{}, [len(c.recent)]recentInsn{}, nil
	c.blocks = nil
	c.bps = map[uint64]*breakpoint{}
	c.removed = map[uint64]bool{}
	c.symOf, c.symCache, c.textCache, c.exeOf, c.unwound, c.evSyms, c.watchPlan = nil, nil, nil, nil, nil, nil, nil
	c.maps = mapsHandle{} // the file shows the parent's memory, not the copy
	c.lastRegion, c.lastPages = [2]uint64{}, nil
	return &c
}

// syms returns the image's mappings and modules, reading them on first use.
func (mm *addrSpace) syms() space {
	if mm.space == nil {
		sp, err := mm.load(mm.pid)
		if err != nil {
			sp = symbols.EmptySpace(mm.arch)
		}
		mm.space = sp
	}
	return mm.space
}

// cachedSpace returns the image's symbols.Space, with symCache and
// textCache emptied if they were filled from another one (or are full);
// false for another kind of space (a test's scripted one: not cached).
func (mm *addrSpace) cachedSpace() (*symbols.Space, bool) {
	sp, ok := mm.syms().(*symbols.Space)
	if !ok {
		return nil, false
	}
	if sp != mm.symOf || len(mm.symCache) >= maxSymCache || len(mm.textCache) >= maxSymCache || len(mm.evSyms) >= maxSymCache {
		mm.symOf, mm.symCache, mm.textCache = sp, map[uint64]symbols.Sym{}, map[*disasm.Insn]string{}
		mm.evSyms = map[uint64]*event.Sym{}
	}
	return sp, true
}

// symbolize is syms().Symbolize(addr), from symCache when the space is a
// symbols.Space (a test's scripted space is asked every time).
func (mm *addrSpace) symbolize(addr uint64) symbols.Sym {
	sp, ok := mm.cachedSpace()
	if !ok {
		return mm.syms().Symbolize(addr)
	}
	if y, ok := mm.symCache[addr]; ok {
		return y
	}
	y := sp.Symbolize(addr)
	mm.symCache[addr] = y
	return y
}

// exePath is the program the image runs, read through pid (one of its
// tasks), from exe while the space is the one it was read with.
func (s *session) exePath(mm *addrSpace, pid int) string {
	sp, ok := mm.syms().(*symbols.Space)
	if !ok {
		return s.p.ExePath(pid)
	}
	if sp != mm.exeOf {
		mm.exeOf, mm.exe = sp, s.p.ExePath(pid)
	}
	return mm.exe
}

// refresh re-reads the mappings (libraries loaded since exec) through
// pid, a task of mm, which must be stopped. mm's maps file is kept open
// for its next refresh (a program that spawns in a loop is refreshed at
// every vfork): at most maxMapsOpen of them, the oldest closed first.
// Where the kernel has PROCMAP_QUERY, it is asked instead whether each
// writable and each executable mapping is still what the last text said:
// the same Space comes back while none changed, and the text is read
// again only when one did (symbols.LoadSpaceMaps says what that check
// cannot see: a read-only mapping's change alone, a file renamed).
func (s *session) refresh(mm *addrSpace, pid int) {
	wasOpen := mm.maps.m != nil
	if sp, err := s.p.SpaceMaps(&mm.maps, pid); err == nil {
		if was, ok := mm.space.(*symbols.Space); ok {
			if now, ok := sp.(*symbols.Space); ok && !was.SameCode(now) {
				// Other code is mapped (a library unloaded, another
				// loaded at its address): what insnAt and blockAt kept
				// may be another instruction's now (an int3 planted at a
				// stale block exit lands inside an instruction).
				mm.code, mm.recent, mm.blocks, mm.codePages = map[uint64]*insnEntry{}, [len(mm.recent)]recentInsn{}, nil, nil
			}
		}
		mm.space = sp
	}
	if mm.maps.m == nil || wasOpen {
		return
	}
	// Opened anew: once in the list (it may have been closed there,
	// found gone).
	s.mapsOpen = slices.DeleteFunc(s.mapsOpen, func(h *mapsHandle) bool { return h == &mm.maps })
	if len(s.mapsOpen) == maxMapsOpen {
		s.mapsOpen[0].close()
		s.mapsOpen = s.mapsOpen[1:]
	}
	s.mapsOpen = append(s.mapsOpen, &mm.maps)
}

// closeMaps closes the maps files refresh kept open.
func (s *session) closeMaps() {
	for _, h := range s.mapsOpen {
		h.close()
	}
	s.mapsOpen = nil
}

// sym symbolises a code address.
func (s *session) sym(mm *addrSpace, pc uint64) *event.Sym {
	if mm == nil {
		return nil
	}
	_, cached := mm.cachedSpace()
	if e, ok := mm.evSyms[pc]; ok && cached {
		return e
	}
	y := mm.symbolize(pc)
	var e *event.Sym
	if y.Name != "" || y.Module != "" {
		e = &event.Sym{Sym: y.Name, Off: y.Off, Module: y.Module, File: y.File, Line: y.Line, PastEnd: y.PastEnd}
	}
	if cached {
		mm.evSyms[pc] = e
	}
	return e
}

// insnAt decodes the instruction at pc, from a per-address-space cache.
// Bytes hidden by planted int3s are restored before decoding.
func (s *session) insnAt(mm *addrSpace, pid int, pc uint64) (*disasm.Insn, error) {
	r := &mm.recent[pc%uint64(len(mm.recent))]
	if r.e != nil && r.pc == pc {
		return r.e.in, r.e.err
	}
	if e, ok := mm.code[pc]; ok {
		r.pc, r.e = pc, e
		return e.in, e.err
	}
	buf := s.insnBuf[:]
	var err error
	n := mm.codeBytes(s, pid, pc, buf)
	if n == 0 {
		// pc's page is not kept: the instruction alone, shorter where
		// it may end right before an unmapped page.
		for n = len(buf); n > 0; n-- {
			if err = s.p.ReadMem(pid, pc, buf[:n]); err == nil {
				mm.hideInt3s(buf[:n], pc)
				break
			}
		}
	}
	var e insnEntry
	if n <= 0 {
		e.err = fmt.Errorf("read code at %#x: %w", pc, err)
	} else {
		e.in, e.err = disasm.Decode(buf[:n], pc, mm.arch)
	}
	mm.code[pc] = &e
	r.pc, r.e = pc, &e
	return e.in, e.err
}

// Bounds of an address space's codePages.
const (
	codePage     = 4096
	maxCodePages = 256
)

// codeBytes fills buf with the code at pc from the address space's code
// pages (vtrace's int3s hidden as read), reading a page whole when it is
// not there yet, and returns the
// bytes it filled: fewer where the next page cannot be read (code that
// ends at a mapping's end), 0 when pc's own page cannot be (insnAt then
// reads the instruction alone).
func (mm *addrSpace) codeBytes(s *session, pid int, pc uint64, buf []byte) int {
	n := 0
	for n < len(buf) {
		a := pc + uint64(n)
		base := a &^ (codePage - 1)
		pg, ok := mm.codePages[base]
		if !ok {
			if !mm.fileCode(base) {
				return n
			}
			if len(mm.codePages) >= maxCodePages {
				clear(mm.codePages)
			}
			pg = make([]byte, codePage)
			if s.p.ReadMem(pid, base, pg) != nil {
				return n
			}
			mm.hideInt3s(pg, base)
			if mm.codePages == nil {
				mm.codePages = map[uint64][]byte{}
			}
			mm.codePages[base] = pg
		}
		n += copy(buf[n:], pg[a-base:])
	}
	return n
}

// hideInt3s puts back, in buf (the code read at addr), the bytes vtrace's
// int3s planted there hide.
func (mm *addrSpace) hideInt3s(buf []byte, addr uint64) {
	for at, bp := range mm.bps {
		if at >= addr && at < addr+uint64(len(buf)) {
			buf[at-addr] = bp.orig
		}
	}
}

// fileCode reports whether the page at base is code mapped from a file,
// read-only and private: an ELF module's text, whose bytes stay what they
// were (but for vtrace's own int3s) — not a JIT's memory, anonymous,
// writable, shared, or a memfd or /dev/shm file mapped a second time for
// writing, which is read an instruction at a time. (Other code mapped at
// the address since: refresh drops the pages with the decoded code.)
func (mm *addrSpace) fileCode(base uint64) bool {
	if mm.space == nil {
		return false
	}
	m, ok := mm.space.MappingAt(base)
	return ok && base >= m.Start && base+codePage <= m.End && len(m.Perms) == 4 && m.Perms[1] != 'w' && m.Perms[3] == 'p' &&
		strings.HasPrefix(m.Path, "/") && !strings.HasPrefix(m.Path, "/memfd:") && !strings.HasPrefix(m.Path, "/dev/shm/") &&
		!strings.HasSuffix(m.Path, " (deleted)")
}

// insnText renders an instruction objdump-style with runtime symbols.
func (s *session) insnText(mm *addrSpace, in *disasm.Insn) string {
	if in == nil {
		return "(bad)"
	}
	if mm.space == nil {
		// No symbols read yet (the watchpoint probe's store, at the
		// exec stop): they are read only if an operand is to be named.
		// Read now, they would be thrown away at the first vfork's
		// refresh (libraries are mapped since).
		named := false
		t := in.FormatATT(func(a uint64) string { named = true; return s.symText(mm, a) })
		if !named {
			return t
		}
	}
	_, cached := mm.cachedSpace()
	if t, ok := mm.textCache[in]; ok && cached {
		return t
	}
	t := in.FormatATT(func(a uint64) string { return s.symText(mm, a) })
	if cached {
		mm.textCache[in] = t
	}
	return t
}

// symText is the <sym+0xoff> form objdump prints inside instructions.
func (s *session) symText(mm *addrSpace, a uint64) string {
	y := mm.symbolize(a)
	if y.Name == "" {
		return ""
	}
	if y.Off == 0 {
		return y.Name
	}
	return fmt.Sprintf("%s+%#x", y.Name, y.Off)
}

// readWord reads one little-endian word of the given size.
func (s *session) readWord(pid int, addr uint64, size int) (uint64, error) {
	var b [8]byte
	if err := s.p.ReadMem(pid, addr, b[:size]); err != nil {
		return 0, err
	}
	if size == 4 {
		return uint64(binary.LittleEndian.Uint32(b[:])), nil
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// taskMemory adapts a task's memory to the unwinder.
type taskMemory struct {
	s   *session
	pid int
}

func (m taskMemory) ReadWord(addr uint64, size int) (uint64, error) {
	return m.s.readWord(m.pid, addr, size)
}

// pageMemory is taskMemory for a task that stays stopped while it is read
// (the parent held in its vfork event stop while it is unwound): it reads
// whole pages and answers the words in them from its copy. Unwinding a
// posix_spawn parent read 25 words one process_vm_readv each; their pages
// are one or two.
type pageMemory struct {
	s     *session
	pid   int
	pages []memPage
}

type memPage struct {
	base uint64
	data [memPageSize]byte
}

const memPageSize = 4096

// maxMemPages bounds the copy (a deep stack is unwound 64 frames at most).
const maxMemPages = 16

// page is the page at base read so far, or nil.
func (m *pageMemory) page(base uint64) *memPage {
	for i := range m.pages {
		if m.pages[i].base == base {
			return &m.pages[i]
		}
	}
	return nil
}

// copyOut fills buf with the memory at addr from the pages read, if they
// hold all of it.
func (m *pageMemory) copyOut(addr uint64, buf []byte) bool {
	for done := 0; done < len(buf); {
		a := addr + uint64(done)
		base := a &^ (memPageSize - 1)
		pg := m.page(base)
		if pg == nil {
			return false
		}
		done += copy(buf[done:], pg.data[a-base:])
	}
	return true
}

// prefetch reads, in one batch, the pages holding the words at addrs that
// are not read yet (as many as there is room for). A page that cannot be
// read is left out: ReadWord then reads its words alone, and fails as
// they do.
func (m *pageMemory) prefetch(addrs []uint64) {
	n := len(m.pages)
	for _, a := range addrs {
		base := a &^ (memPageSize - 1)
		if len(m.pages) == maxMemPages {
			break
		}
		if m.page(base) == nil {
			m.pages = append(m.pages, memPage{base: base})
		}
	}
	if len(m.pages) == n {
		return
	}
	bases := make([]uint64, 0, len(m.pages)-n)
	bufs := make([][]byte, 0, len(m.pages)-n)
	for i := n; i < len(m.pages); i++ {
		bases, bufs = append(bases, m.pages[i].base), append(bufs, m.pages[i].data[:])
	}
	failed := m.s.p.ReadRanges(m.pid, bases, bufs)
	for i := len(failed) - 1; i >= 0; i-- { // failed is in increasing order
		m.pages = slices.Delete(m.pages, n+failed[i], n+failed[i]+1)
	}
}

// read fills buf with the memory at addr through the pages, reading each
// page it needs whole the first time (while there is room for it).
func (m *pageMemory) read(addr uint64, buf []byte) error {
	for base := addr &^ (memPageSize - 1); base < addr+uint64(len(buf)); base += memPageSize {
		if m.page(base) != nil {
			continue
		}
		if len(m.pages) == maxMemPages {
			return m.s.p.ReadMem(m.pid, addr, buf)
		}
		m.pages = append(m.pages, memPage{base: base})
		if err := m.s.p.ReadMem(m.pid, base, m.pages[len(m.pages)-1].data[:]); err != nil {
			m.pages = m.pages[:len(m.pages)-1]
			return m.s.p.ReadMem(m.pid, addr, buf)
		}
	}
	if !m.copyOut(addr, buf) {
		return m.s.p.ReadMem(m.pid, addr, buf)
	}
	return nil
}

func (m *pageMemory) ReadWord(addr uint64, size int) (uint64, error) {
	base := addr &^ (memPageSize - 1)
	off := addr - base
	if off+uint64(size) > memPageSize {
		return m.s.readWord(m.pid, addr, size) // straddles two pages
	}
	pg := m.page(base)
	if pg == nil {
		if len(m.pages) == maxMemPages {
			return m.s.readWord(m.pid, addr, size)
		}
		m.pages = append(m.pages, memPage{base: base})
		pg = &m.pages[len(m.pages)-1]
		if err := m.s.p.ReadMem(m.pid, base, pg.data[:]); err != nil {
			m.pages = m.pages[:len(m.pages)-1]
			return m.s.readWord(m.pid, addr, size)
		}
	}
	if size == 4 {
		return uint64(binary.LittleEndian.Uint32(pg.data[off:])), nil
	}
	return binary.LittleEndian.Uint64(pg.data[off:]), nil
}
