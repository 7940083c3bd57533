package tracer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	mbits "math/bits"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
	"github.com/vtrace/vtrace/tracer/internal/symbols"
)

// Memory outside the stack (issue 11, "beyond the stack"; NixOS nix#16119:
// a vfork child overwrote a parent global). The child shares all of the
// parent's memory: a global, a heap block or a TLS variable it writes is
// the parent's.
//
// Soft-dirty page bits do not work on these kernels (FACTS.md), so at the
// vfork capture vtrace takes a bounded snapshot (maxGlobals, 1 MiB) of the
// parent's writable memory outside the stack: the TLS block and thread
// control block (the thread pointer: amd64 fs_base, i386 the base of the
// %gs descriptor), the data and bss of libc and the dynamic linker, of the
// program, of the other libraries, then the brk heap from its start — read in one
// process_vm_readv batch. Stores the engine steps (every store in --step
// mode, those of the shared frames in fast mode) are checked against it at
// once (global_write with `by`); after each call the child makes from a
// shared frame, after an instruction whose effects are not modelled (a
// syscall), and at the child's end it is diffed (global_write with
// `during`, or neither). global_diff lists the words left changed.
//
// libc's own bookkeeping that a correct child does (errno set by a failing
// exec, a stdio lock taken and released, malloc's state) is told by the
// variable it is in and reported with its kind (global_write "libc"),
// without a warning; errno is followed into the parent all the same
// (errno.go). Any other changed word gives child_wrote_global; the
// parent is then followed on (watchGlobalReads) until its own frames read
// one of them (global_read; child_wrote_global and
// parent_read_child_global), it overwrites them all, makes its next vfork,
// or has run maxGlobalWatch instructions.
//
// The buffers are pooled: memory stays flat in the number of vforks.
//
// glibc's own posix_spawn child, which runs no code of the program, is
// watched in its TLS block alone in fast mode (libcSpawnChild).
//
// Both reads are most of a vfork story's cost (issue 15). A second
// thread reading half does not help on the 2-vCPU hosts, and the bytes
// are the floor of this design: what would cut them is page-level write
// tracking through a userfaultfd made in the program's memory
// (asynchronous write-protect and PAGEMAP_SCAN; docs/bench.md, "The
// memory watch, third look").

// Bounds of the memory watch.
const (
	maxGlobals     = 1 << 20 // bytes snapshotted per story
	tcbWatch       = 0x700   // bytes of the thread control block above the thread pointer
	maxGlobalWatch = 20000   // instructions the parent is followed for its reads of changed globals
)

// memRange is one watched range; its bytes are buf[off:off+hi-lo] of the
// snapshot's buffers.
type memRange struct {
	lo, hi  uint64
	off     int
	area    event.MemArea
	mapping string
}

// memWatch is a story's watch of the parent's memory outside the stack.
type memWatch struct {
	ranges       []memRange // sorted, disjoint
	orig, shadow []byte
	pooled       *memBufs
	word         int
	tp           uint64
	tls          []symbols.TLSBlock
	libcDynamic  bool // libc is a shared library (else its symbols are the program's)
	musl         bool // the thread pointer is musl's struct pthread
	storesOnly   bool // other tasks share the memory: no diffs, only stepped stores
	method       event.MemMethod
	leftOut      []string // what did not fit, for the globals_capped note
	unread       []string // ranges that could not be read

	// dirty has bit i set when chunk i (globChunk bytes at offset
	// i*globChunk of the buffers) of shadow holds what vtrace last saw
	// there, written since the snapshot; a clean chunk's last seen bytes
	// are orig's (the snapshot is not copied: 1 MiB per story). global_diff
	// compares only the dirty chunks with orig.
	dirty []uint64

	wrote    bool                 // the child changed a word that is not libc's bookkeeping
	poisoned map[uint64]childWord // such words still holding the child's value
	reads    int
}

// memBufs are a story's buffers: the snapshot, the last seen bytes of the
// dirty chunks, and diffGlobals' window (globWindow bytes).
type memBufs struct{ orig, shadow, scratch []byte }

// memFree keeps the buffers of ended stories for the next ones (a
// sync.Pool would drop them at every garbage collection, and fresh 1 MiB
// buffers cost their page faults).
var memFree struct {
	sync.Mutex
	bufs []*memBufs
}

const memFreeMax = 4

func getMemBufs() *memBufs {
	memFree.Lock()
	defer memFree.Unlock()
	if n := len(memFree.bufs); n > 0 {
		b := memFree.bufs[n-1]
		memFree.bufs = memFree.bufs[:n-1]
		return b
	}
	return &memBufs{}
}

func putMemBufs(b *memBufs) {
	memFree.Lock()
	defer memFree.Unlock()
	if len(memFree.bufs) < memFreeMax {
		memFree.bufs = append(memFree.bufs, b)
	}
}

// watchGlobals plans and takes the snapshot of the parent's memory outside
// the stack (the parent is stopped at its vfork event) and says how it is
// watched, for the vfork event.
func (s *session) watchGlobals(st *story) *event.MemoryWatch {
	m := &memWatch{word: st.word, method: event.MemSnapshotDiff}
	if s.cfg.Mode == Step {
		m.method = event.MemSnapshotStep
	}
	if s.sharedWithOthers(st) {
		// Other threads of the parent (a Go program's sysmon and
		// scheduler) run on while the vforking one is suspended, and
		// write memory too: a diff cannot tell their writes from the
		// child's. Only the stores vtrace steps in the child are checked.
		m.method, m.storesOnly = event.MemStores, true
	}
	narrow := m.method == event.MemSnapshotDiff && !s.cfg.FullWatch && s.libcSpawnChild(st)
	if narrow {
		m.method = event.MemLibcSpawn
	}
	st.mem = m
	sp, ok := st.mm.syms().(interface {
		DataRanges() []symbols.DataRange
		TLSBlocks(tp uint64, readWord func(uint64, int) (uint64, bool)) []symbols.TLSBlock
	})
	var key watchKey
	if tp, err := s.p.ThreadPointer(st.parent.pid, &st.regs0); err == nil && tp != 0 {
		m.tp = tp
		if ok {
			m.tls = sp.TLSBlocks(tp, func(a uint64, size int) (uint64, bool) {
				v, err := st.stopMem.ReadWord(a, size) // the parent is in its vfork event stop
				return v, err == nil
			})
		}
		lo, hi := tp, tp+tcbWatch
		for _, b := range m.tls {
			lo = min(lo, b.Start)
		}
		if tm, ok := st.mm.syms().MappingAt(tp); ok {
			lo, hi = max(lo, tm.Start), min(hi, tm.End)
		}
		key.tp, key.tlsLo, key.tlsHi = tp, lo, hi
	}
	// The rest of the plan depends only on the mappings (the Space) and
	// the thread pointer's range: a program that spawns in a loop has
	// the same at every vfork, and its plan is reused.
	key.space, _ = st.mm.syms().(*symbols.Space)
	key.word, key.narrow = m.word, narrow
	if pl := st.mm.watchPlan; key.space != nil && pl != nil && pl.key == key {
		m.musl, m.libcDynamic = pl.musl, pl.libcDynamic
		m.ranges, m.leftOut = append([]memRange(nil), pl.ranges...), pl.leftOut
	} else {
		var cands []symbols.DataRange
		if key.tp != 0 {
			// musl's main thread descriptor is its builtin_tls (in libc's
			// or, static, the program's bss).
			if ds, ok := st.mm.syms().(interface{ DataSymbolize(uint64) symbols.Sym }); ok {
				m.musl = ds.DataSymbolize(key.tp).Name == "builtin_tls"
			}
			cands = append(cands, symbols.DataRange{Start: key.tlsLo, End: key.tlsHi, Area: string(event.AreaTLS), Path: "[tls]"})
		}
		if ok {
			exe := s.exePath(st.mm, st.parent.pid)
			data := sp.DataRanges()
			// libc and the dynamic linker first (small: ~70 KiB; where a
			// correct child's bookkeeping goes), then the program (a large
			// one, python3's 1.5 MiB, is cut), the other libraries, the heap.
			rank := func(r symbols.DataRange) int {
				switch b := path.Base(r.Path); {
				case libcModule(b):
					return 0
				case r.Path == exe:
					return 1
				case r.Area == string(event.AreaHeap):
					return 3
				}
				return 2
			}
			sort.SliceStable(data, func(i, j int) bool { return rank(data[i]) < rank(data[j]) })
			for _, r := range data {
				if libcModule(path.Base(r.Path)) && r.Area == string(event.AreaData) {
					m.libcDynamic = true
				}
			}
			if !narrow {
				cands = append(cands, data...)
			}
		}
		m.plan(cands)
		if key.space != nil {
			st.mm.watchPlan = &watchPlan{key: key, musl: m.musl, libcDynamic: m.libcDynamic,
				ranges: append([]memRange(nil), m.ranges...), leftOut: slices.Clip(m.leftOut)}
		}
	}
	m.read(s, st)
	return &event.MemoryWatch{Method: m.method, Bytes: len(m.orig), Ranges: len(m.ranges), Capped: len(m.leftOut) > 0}
}

// watchKey is what a memory watch's plan is made from: the mappings and
// the range of the thread pointer's block.
type watchKey struct {
	space            *symbols.Space
	word             int
	tp, tlsLo, tlsHi uint64
	narrow           bool // the TLS block alone (libcSpawnChild)
}

// watchPlan is the last plan of a memory watch in an address space: its
// ranges (before read drops the unreadable ones), what did not fit, and
// what the mappings say about libc.
type watchPlan struct {
	key               watchKey
	ranges            []memRange
	leftOut           []string
	musl, libcDynamic bool
}

// libcSpawnChild reports whether the story's child is glibc's own
// posix_spawn child (__spawni_child), told by the parent's frames at the
// clone: a public posix_spawn or posix_spawnp of the system's shared
// libc.so.6 (systemLibc; system and popen come through it too), under
// nothing but glibc's own frames of that file (__spawni, __spawnix, the
// clone wrappers; unnamed where libc's debug file is not installed). No
// code of the program runs in that child: its calls are bound inside libc
// (no LD_PRELOAD reaches them), and it resets every signal handler the
// kernel holds before it unblocks the signals. glibc's source writes the
// parent's memory there only in the parent's own frame (the arguments
// block, with the error code: the live region's diff sees it) and errno
// (the TLS block, which stays watched). So fast mode watches only the TLS
// block of such a child: the rest of the snapshot (up to 1 MiB; make's is
// 0.5) was most of a posix_spawn story's cost. Not a libc.so.6 elsewhere
// (one built to be debugged), not a static program's (it may define the
// functions the child calls: execve, _exit), nor musl's (its child resets
// only the handlers its own sigaction set: one installed by a raw
// rt_sigaction runs in the child). What this gives up is a glibc whose
// spawn child breaks that (a libc bug): --step and run --full-watch watch
// everything.
func (s *session) libcSpawnChild(st *story) bool {
	if st.shared || st.copy || len(st.frames) != len(st.frameFns) {
		return false
	}
	libc := ""
	for k, f := range st.frameFns {
		if f == nil || f.Module != "libc.so.6" || k > 5 {
			return false
		}
		// The system's libc, one file: not another named so (a libc
		// being debugged, built elsewhere, is watched whole).
		m, ok := st.mm.syms().MappingAt(st.frames[k].PC)
		switch {
		case !ok, libc != "" && m.Path != libc:
			return false
		case libc == "":
			if !systemLibc(m.Path) {
				return false
			}
			libc = m.Path
		}
		switch f.Sym {
		case "posix_spawn", "posix_spawnp", "__posix_spawn", "__posix_spawnp", "__posix_spawn_compat", "__posix_spawnp_compat":
			return k >= 2 // clone3 or clone, under __clone_internal at least
		case "", "clone3", "clone", "__clone", "__clone3", "__clone_internal", "__GI___clone_internal",
			"__GI___clone", "__GI___clone3", "__spawnix", "__spawni", "__GI___spawni":
		default:
			return false
		}
	}
	return false
}

// systemLibc reports whether p is a libc.so.6 in one of the system's
// library directories (/lib, /usr/lib, their 32- and 64-bit variants and
// their multiarch subdirectories, e.g. /usr/lib/x86_64-linux-gnu).
func systemLibc(p string) bool {
	if path.Base(p) != "libc.so.6" {
		return false
	}
	dir := path.Dir(p)
	if sub := path.Dir(dir); strings.HasSuffix(path.Base(dir), "-linux-gnu") || strings.HasSuffix(path.Base(dir), "-linux-gnux32") {
		dir = sub
	}
	for _, d := range []string{"/lib", "/lib64", "/lib32", "/libx32"} {
		if dir == d || dir == "/usr"+d {
			return true
		}
	}
	return false
}

// sharedWithOthers reports whether a live task other than the story's
// parent and child runs in the same memory (another thread of the parent,
// or another CLONE_VM child).
func (s *session) sharedWithOthers(st *story) bool {
	for _, t := range s.byPID {
		if t != st.parent && t != st.child && t.state != taskEnded && t.proc != nil && t.proc.mm == st.mm {
			return true
		}
	}
	return false
}

// plan turns candidate ranges, by priority, into disjoint word-aligned
// ranges within maxGlobals bytes; what does not fit is listed in leftOut.
func (m *memWatch) plan(cands []symbols.DataRange) {
	w := uint64(m.word)
	budget := uint64(maxGlobals)
	for _, c := range cands {
		lo, hi := (c.Start+w-1)&^(w-1), c.End&^(w-1)
		for _, piece := range m.uncovered(lo, hi) {
			n := piece[1] - piece[0]
			if n > budget {
				m.leftOut = append(m.leftOut, fmt.Sprintf("%s [%#x,%#x)", c.Path, piece[0]+budget, piece[1]))
				n = budget
			}
			if n == 0 {
				continue
			}
			budget -= n
			m.ranges = append(m.ranges, memRange{lo: piece[0], hi: piece[0] + n, area: event.MemArea(c.Area), mapping: c.Path})
		}
	}
	sort.Slice(m.ranges, func(i, j int) bool { return m.ranges[i].lo < m.ranges[j].lo })
	off := 0
	for i := range m.ranges {
		m.ranges[i].off = off
		off += int(m.ranges[i].hi - m.ranges[i].lo)
	}
}

// uncovered returns the parts of [lo, hi) no planned range covers.
func (m *memWatch) uncovered(lo, hi uint64) [][2]uint64 {
	out := [][2]uint64{{lo, hi}}
	for _, r := range m.ranges {
		var next [][2]uint64
		for _, p := range out {
			if r.hi <= p[0] || r.lo >= p[1] {
				next = append(next, p)
				continue
			}
			if p[0] < r.lo {
				next = append(next, [2]uint64{p[0], r.lo})
			}
			if r.hi < p[1] {
				next = append(next, [2]uint64{r.hi, p[1]})
			}
		}
		out = next
	}
	var keep [][2]uint64
	for _, p := range out {
		if p[1] > p[0] {
			keep = append(keep, p)
		}
	}
	return keep
}

// read takes the snapshot in one batch; ranges that cannot be read are
// dropped (globals_unreadable).
func (m *memWatch) read(s *session, st *story) {
	n := 0
	for _, r := range m.ranges {
		n += int(r.hi - r.lo)
	}
	b := getMemBufs()
	grow := func(p []byte) []byte {
		if cap(p) < n {
			return make([]byte, n)
		}
		return p[:n]
	}
	b.orig, b.shadow = grow(b.orig), grow(b.shadow)
	m.pooled, m.orig, m.shadow = b, b.orig, b.shadow
	failed := m.readInto(s, st, m.orig)
	if len(failed) > 0 {
		keep := m.ranges[:0]
		for i, r := range m.ranges {
			if contains(failed, i) {
				m.unread = append(m.unread, fmt.Sprintf("%s [%#x,%#x)", r.mapping, r.lo, r.hi))
				continue
			}
			keep = append(keep, r)
		}
		// Compact: the kept ranges' bytes move down to their new offsets.
		off := 0
		for i := range keep {
			sz := int(keep[i].hi - keep[i].lo)
			copy(m.orig[off:off+sz], m.orig[keep[i].off:keep[i].off+sz])
			keep[i].off = off
			off += sz
		}
		m.ranges, m.orig, m.shadow = keep, m.orig[:off], m.shadow[:off]
	}
	if len(m.ranges) == 0 {
		m.method = event.MemNone
	}
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// readInto reads every range into buf (laid out as the snapshot).
func (m *memWatch) readInto(s *session, st *story, buf []byte) []int {
	addrs := make([]uint64, len(m.ranges))
	bufs := make([][]byte, len(m.ranges))
	for i, r := range m.ranges {
		addrs[i], bufs[i] = r.lo, buf[r.off:r.off+int(r.hi-r.lo)]
	}
	return s.p.ReadRanges(st.parent.pid, addrs, bufs)
}

// globalsNotes reports, after the vfork event, what the snapshot left out.
func (s *session) globalsNotes(st *story) {
	m := st.mem
	if m == nil {
		return
	}
	if len(m.leftOut) > 0 {
		s.note(st.id, event.NoteGlobalsCapped, fmt.Sprintf("the parent's writable memory outside the stack is larger than %d bytes: not watched: %s",
			maxGlobals, strings.Join(m.leftOut, ", ")))
	}
	if len(m.unread) > 0 {
		s.note(st.id, event.NoteGlobalsUnread, "could not read, not watched: "+strings.Join(m.unread, ", "))
	}
}

// dropGlobals gives the story's buffers back to the pool.
func (st *story) dropGlobals() {
	if m := st.mem; m != nil && m.pooled != nil {
		putMemBufs(m.pooled)
		m.pooled, m.orig, m.shadow = nil, nil, nil
	}
}

// globChunk is the unit of the globals' comparisons: unchanged chunks are
// skipped by one memcmp, changed ones compared word by word. A multiple of
// the word size.
const globChunk = 256

// setShadow records cur as the word at a that vtrace last saw.
func (m *memWatch) setShadow(r *memRange, a, cur uint64) {
	m.dirtyChunk((r.off + int(a-r.lo)) / globChunk) // ranges are word-aligned: a word is in one chunk
	m.putWord(m.shadow, r, a, cur)
}

// dirtyChunk makes chunk i of shadow hold the last seen bytes.
func (m *memWatch) dirtyChunk(i int) {
	if m.dirty == nil {
		m.dirty = make([]uint64, (len(m.orig)/globChunk+64)/64)
	}
	if !m.isDirty(i) {
		lo, hi := i*globChunk, min((i+1)*globChunk, len(m.orig))
		copy(m.shadow[lo:hi], m.orig[lo:hi])
		m.dirty[i/64] |= 1 << (i % 64)
	}
}

// seen is the last seen content of [off, off+n) of the buffers, which lies
// in one chunk.
func (m *memWatch) seen(off, n int) []byte {
	if m.isDirty(off / globChunk) {
		return m.shadow[off : off+n]
	}
	return m.orig[off : off+n]
}

// seenWord is the word at a that vtrace last saw.
func (m *memWatch) seenWord(r *memRange, a uint64) uint64 {
	if m.isDirty((r.off + int(a-r.lo)) / globChunk) {
		return m.wordIn(m.shadow, r, a)
	}
	return m.wordIn(m.orig, r, a)
}

// isDirty reports whether chunk i of shadow was written since the snapshot.
func (m *memWatch) isDirty(i int) bool {
	return m.dirty != nil && m.dirty[i/64]&(1<<(i%64)) != 0
}

// rangeOf returns the watched range holding the word at a.
func (m *memWatch) rangeOf(a uint64) (*memRange, bool) {
	i := sort.Search(len(m.ranges), func(i int) bool { return m.ranges[i].hi > a })
	if i < len(m.ranges) && m.ranges[i].lo <= a && a+uint64(m.word) <= m.ranges[i].hi {
		return &m.ranges[i], true
	}
	return nil, false
}

func (m *memWatch) wordIn(buf []byte, r *memRange, a uint64) uint64 {
	off := r.off + int(a-r.lo)
	if m.word == 4 {
		return uint64(binary.LittleEndian.Uint32(buf[off:]))
	}
	return binary.LittleEndian.Uint64(buf[off:])
}

func (m *memWatch) putWord(buf []byte, r *memRange, a, v uint64) {
	off := r.off + int(a-r.lo)
	if m.word == 4 {
		binary.LittleEndian.PutUint32(buf[off:], uint32(v))
		return
	}
	binary.LittleEndian.PutUint64(buf[off:], v)
}

// accessAddr is the address an access touches. A segment-relative one is
// the segment's base plus its offset: the base the registers gave at the
// instruction (amd64's fs.base and gs.base; the program may move %gs's),
// else, in the thread pointer's segment (amd64 %fs, i386 %gs), the thread
// pointer at the vfork; the other segment's is unknown then (a parent
// block decoded ahead ends there).
func (m *memWatch) accessAddr(a disasm.Access) (uint64, bool) {
	if !a.Seg {
		return a.Addr, true
	}
	base := m.tp
	switch tlsGS := m.word == 4; {
	case a.SegBaseOK:
		base = a.SegBase
	case a.GS != tlsGS, m.tp == 0:
		return 0, false
	}
	addr := base + a.Addr
	if m.word == 4 {
		addr = uint64(uint32(addr))
	}
	return addr, true
}

// checkGlobalStores checks the stores of an instruction the child just
// executed against the snapshot; an instruction whose effects are not
// modelled (a syscall) diffs the whole of it.
func (s *session) checkGlobalStores(st *story, pre *arch.Regs, in *disasm.Insn, acc []disasm.Access, unknown bool) {
	m := st.mem
	if m == nil || len(m.ranges) == 0 {
		return
	}
	if unknown || in != nil && in.Class == disasm.Syscall {
		if !m.storesOnly {
			s.diffGlobals(st, in, nil)
		}
		return
	}
	var by *event.Insn
	for _, a := range acc {
		if !a.Write {
			continue
		}
		addr, ok := m.accessAddr(a)
		if !ok {
			continue
		}
		words(addr, a.Size, m.word, func(x uint64) {
			r, ok := m.rangeOf(x)
			if !ok {
				return
			}
			cur, err := s.readWord(st.parent.pid, x, m.word)
			if err != nil {
				return
			}
			old := m.seenWord(r, x)
			if cur == old {
				return
			}
			m.setShadow(r, x, cur)
			if by == nil {
				by = s.insnEvent(st.mm, st.child.pid, in)
			}
			s.emitGlobalWrite(st, r, x, old, cur, by, nil)
		})
	}
}

// diffGlobals reads the whole snapshot back and reports every word that
// changed since vtrace last looked, written by in (a syscall), during a
// call, or found at the child's end (both nil).
//
// It reads window by window (globWindow bytes of the buffers' layout, a
// few ranges per read when they are small) into a buffer that stays in
// the CPU's cache, and compares each window at once with what vtrace last
// saw there: one memcmp for a window whose chunks are all clean, chunk by
// chunk otherwise. Read whole into a 1 MiB buffer and compared after, the
// same bytes went through memory twice more (issue 15: python's
// _posixsubprocess spawns, 1 MiB watched per vfork: four reads). A window that cannot
// be read whole is read range by range (ReadRanges); what still cannot be
// read keeps its last known content.
func (s *session) diffGlobals(st *story, in *disasm.Insn, during *event.Insn) {
	m := st.mem
	if m == nil || len(m.ranges) == 0 || m.storesOnly {
		return
	}
	if cap(m.pooled.scratch) < globWindow {
		m.pooled.scratch = make([]byte, globWindow)
	}
	win := m.pooled.scratch[:globWindow]
	var by *event.Insn
	var pieces []memPiece
	var addrs []uint64
	var bufs [][]byte
	for w := 0; w < len(m.orig); w += globWindow {
		wEnd := min(w+globWindow, len(m.orig))
		pieces, addrs, bufs = m.window(w, wEnd, win, pieces[:0], addrs[:0], bufs[:0])
		failed := s.p.ReadRanges(st.parent.pid, addrs, bufs)
		for k, p := range pieces {
			if contains(failed, k) {
				continue // keeps its last known content
			}
			cur := bufs[k]
			if m.cleanSpan(p.off, p.off+len(cur)) && bytes.Equal(m.orig[p.off:p.off+len(cur)], cur) {
				continue
			}
			r := &m.ranges[p.r]
			end := p.off + len(cur)
			for c, ce := p.off, 0; c < end; c = ce {
				ce = min((c/globChunk+1)*globChunk, end) // within one chunk
				now := cur[c-p.off : ce-p.off]
				if bytes.Equal(m.seen(c, ce-c), now) {
					continue
				}
				for o := c; o+m.word <= ce; o += m.word {
					a := r.lo + uint64(o-r.off)
					old, v := m.seenWord(r, a), m.wordAt(now, o-c)
					if old == v {
						continue
					}
					m.setShadow(r, a, v)
					if in != nil && by == nil {
						by = s.insnEvent(st.mm, st.child.pid, in)
					}
					s.emitGlobalWrite(st, r, a, old, v, by, during)
				}
			}
		}
	}
}

// globWindow is the unit of diffGlobals' reads: small enough to stay in
// the CPU's cache between the kernel's copy and the comparison, large
// enough that the reads' own cost does not count. Each process_vm_readv
// has a fixed cost (the task and mm lookup, the ptrace access check:
// 1-2 µs on the KVM machines), so fewer, larger windows pay while one stays in
// the cache (issue 15: vtrace's own CPU, 11 interleaved runs each, against
// 64 KiB: python3 300 spawns 0.965 and 0.971, make 500 lines 0.940; 128
// KiB and 1 MiB were 1.6% and 2.7% above 256 KiB on python3; AMD EPYC,
// 1 MiB of L2 a core. h-py had found 64 KiB fastest of 16 KiB-1 MiB in a
// micro-benchmark on the earlier Xeon). A multiple of globChunk.
const globWindow = 256 << 10

// memPiece is the part of watched range r that lies in a window: its bytes
// are at offset off of the buffers.
type memPiece struct{ r, off int }

// window lists the pieces of the ranges in [w, wEnd) of the buffers'
// layout, with their addresses and their places in win (which holds the
// window's bytes from offset w).
func (m *memWatch) window(w, wEnd int, win []byte, pieces []memPiece, addrs []uint64, bufs [][]byte) ([]memPiece, []uint64, [][]byte) {
	i := sort.Search(len(m.ranges), func(i int) bool { return m.ranges[i].off+int(m.ranges[i].hi-m.ranges[i].lo) > w })
	for ; i < len(m.ranges) && m.ranges[i].off < wEnd; i++ {
		r := &m.ranges[i]
		lo, hi := max(r.off, w), min(r.off+int(r.hi-r.lo), wEnd)
		if hi <= lo {
			continue
		}
		pieces = append(pieces, memPiece{r: i, off: lo})
		addrs = append(addrs, r.lo+uint64(lo-r.off))
		bufs = append(bufs, win[lo-w:hi-w])
	}
	return pieces, addrs, bufs
}

// cleanSpan reports whether no chunk of [lo, hi) of the buffers is dirty
// (what vtrace last saw there is the snapshot).
func (m *memWatch) cleanSpan(lo, hi int) bool {
	if m.dirty == nil {
		return true
	}
	for c := lo / globChunk; c*globChunk < hi; c++ {
		if m.isDirty(c) {
			return false
		}
	}
	return true
}

// wordAt is the word at offset o of b.
func (m *memWatch) wordAt(b []byte, o int) uint64 {
	if m.word == 4 {
		return uint64(binary.LittleEndian.Uint32(b[o:]))
	}
	return binary.LittleEndian.Uint64(b[o:])
}

// describe names a watched word: its area and mapping, the variable, and
// whether it is libc's bookkeeping.
func (s *session) describe(st *story, r *memRange, a uint64, mask uint8) (area event.MemArea, mapping string, sym *event.Sym, libc event.LibcUse) {
	m := st.mem
	// Named by its first changed byte: a word can hold two variables.
	for i := 0; i < m.word; i++ {
		if mask&(1<<i) != 0 {
			a += uint64(i)
			break
		}
	}
	area, mapping = r.area, r.mapping
	if m.musl && m.tp != 0 && a == m.tp+muslErrnoOff[m.word] {
		// musl keeps errno in its struct pthread: self, dtv, prev, next,
		// sysinfo, canary, tid, errno_val. Named by its address, not by
		// the range it was watched in: in a static program the thread
		// pointer can sit at the end of the data's file-backed mapping,
		// errno_val in the bss beyond it, watched as the program's data.
		return event.AreaTLS, "[tls]", &event.Sym{Sym: "errno_val", Module: "musl struct pthread"}, event.LibcErrno
	}
	var y symbols.Sym
	switch area {
	case event.AreaTLS:
		if t, ok := symbols.TLSSymbolize(m.tls, a); ok {
			y = t
		} else if a >= m.tp {
			y = symbols.Sym{Name: "(thread control block)", Off: a - m.tp}
		}
	case event.AreaData:
		if ds, ok := st.mm.syms().(interface{ DataSymbolize(uint64) symbols.Sym }); ok {
			y = ds.DataSymbolize(a)
		}
	}
	if y.Name != "" || y.Module != "" {
		sym = &event.Sym{Sym: y.Name, Off: y.Off, Module: y.Module}
	}
	libc = classifyLibc(y, m.libcDynamic)
	return area, mapping, sym, libc
}

// muslErrnoOff is the offset of errno_val in musl's struct pthread (musl
// 1.2, x86: the descriptor is at the thread pointer), by word size.
var muslErrnoOff = map[int]uint64{8: 52, 4: 28}

// libcModule reports whether a file's base name is the C library's or its
// dynamic linker's (glibc, musl).
func libcModule(base string) bool {
	for _, p := range []string{"libc.so", "libc-", "ld-linux", "ld-musl", "libc.musl", "libpthread.so"} {
		if strings.HasPrefix(base, p) {
			return true
		}
	}
	return false
}

// libcBookkeeping maps the variables of glibc and musl that a correct vfork
// child changes to what they are.
var libcBookkeeping = map[string]event.LibcUse{
	// errno: glibc's TLS variable; a failing execve (one PATH entry of
	// execvp or posix_spawnp) sets it.
	"errno": event.LibcErrno, "__libc_errno": event.LibcErrno,
	// stdio's locks: glibc's _IO_lock_t of stdin/stdout/stderr and of the
	// list of files (flockfile and funlockfile leave them as they were,
	// but a stepped child shows the lock taken).
	"_IO_stdfile_0_lock": event.LibcStdioLock, "_IO_stdfile_1_lock": event.LibcStdioLock,
	"_IO_stdfile_2_lock": event.LibcStdioLock, "list_all_lock": event.LibcStdioLock,
	// thread state flags.
	"__libc_single_threaded": event.LibcSingleThreaded, "__libc_single_threaded_internal": event.LibcSingleThreaded,
	"__libc_initial": event.LibcSingleThreaded,
	// malloc's state (glibc, musl's mallocng).
	"main_arena": event.LibcMalloc, "mp_": event.LibcMalloc, "tcache": event.LibcMalloc,
	"thread_arena": event.LibcMalloc, "tcache_shutting_down": event.LibcMalloc,
	"__malloc_initialized": event.LibcMalloc, "global_max_fast": event.LibcMalloc,
	"__malloc_context": event.LibcMalloc, "__malloc_lock": event.LibcMalloc,
}

// classifyLibc tells libc's bookkeeping by the variable a word is in: one
// of libc's (or, in a static program, named so) from libcBookkeeping, a
// GOT slot, or the dynamic linker's state.
func classifyLibc(y symbols.Sym, libcDynamic bool) event.LibcUse {
	if symbols.IsGOT(y.Name) {
		return event.LibcBinding
	}
	if (y.Name == "_rtld_global" || y.Name == "_rtld_local") && strings.HasPrefix(y.Module, "ld-") {
		return event.LibcBinding
	}
	use, ok := libcBookkeeping[y.Name]
	if !ok {
		return ""
	}
	if libcDynamic && !libcModule(y.Module) {
		return "" // the program's own variable of that name
	}
	return use
}

// emitGlobalWrite reports one changed word outside the stack.
func (s *session) emitGlobalWrite(st *story, r *memRange, a, old, cur uint64, by, during *event.Insn) {
	area, mapping, sym, libc := s.describe(st, r, a, changedBytes(old, cur, st.word))
	if libc == "" {
		st.mem.wrote = true
	}
	s.emit(&event.GlobalWrite{Header: s.hdr("global_write", st.child.pid), Vfork: st.id, Addr: event.Addr(a), Size: st.word,
		Old: event.Addr(old), New: event.Addr(cur), Area: area, Mapping: mapping, Sym: sym, Libc: libc,
		By: by, During: during, FoundBy: foundBy(by, during)})
}

// emitGlobalDiff reports, once the child has ended, every watched word it
// left changed, and keeps those that are not libc's bookkeeping for the
// parent phase.
func (s *session) emitGlobalDiff(st *story) {
	m := st.mem
	if m == nil || len(m.ranges) == 0 || m.dirty == nil {
		return // no word of the shadow was written: it is the snapshot
	}
	ev := &event.GlobalDiff{Header: s.hdr("global_diff", st.parent.pid), Vfork: st.id, Watched: len(m.orig)}
	changed := false
	// Only the dirty chunks, in the buffers' order (the ranges' order):
	// the ranges are word-aligned, so a word lies in one chunk and one
	// range.
	ri := 0
	for wi, bits := range m.dirty {
		for ; bits != 0; bits &= bits - 1 {
			c := wi*64 + mbits.TrailingZeros64(bits)
			for o, ce := c*globChunk, min((c+1)*globChunk, len(m.orig)); o+m.word <= ce; o += m.word {
				for m.ranges[ri].off+int(m.ranges[ri].hi-m.ranges[ri].lo) <= o {
					ri++
				}
				r := &m.ranges[ri]
				a := r.lo + uint64(o-r.off)
				before, after := m.wordIn(m.orig, r, a), m.wordIn(m.shadow, r, a)
				if before == after {
					continue
				}
				if !changed {
					changed, m.poisoned = true, map[uint64]childWord{}
				}
				area, mapping, sym, libc := s.describe(st, r, a, changedBytes(before, after, m.word))
				switch {
				case libc == "":
					m.poisoned[a] = childWord{val: after, bytes: changedBytes(before, after, m.word)}
				case libc == event.LibcErrno && !m.storesOnly:
					// errno.go: followed too, its writes inside the parent's
					// calls watched (a libc call that fails stores errno,
					// often the very value the child left).
					m.poisoned[a] = childWord{val: after, bytes: changedBytes(before, after, m.word), errno: true}
				}
				if len(ev.Changed) >= event.MaxGlobalChanges {
					ev.More++
					continue
				}
				ev.Changed = append(ev.Changed, event.GlobalChange{Addr: event.Addr(a), Before: event.Addr(before),
					After: event.Addr(after), Area: area, Mapping: mapping, Sym: sym, Libc: libc})
			}
		}
	}
	if changed {
		s.emit(ev)
	}
}

// childWord is a word the child left changed: its value, and which of its
// bytes (bit i: byte i) still hold the child's data.
type childWord struct {
	val   uint64
	bytes uint8
	errno bool // libc's errno (errno.go)
}

// touched is the mask of the bytes of the word at x that an access of size
// bytes at addr covers.
func touched(x uint64, word int, addr uint64, size int) uint8 {
	var mask uint8
	for i := 0; i < word; i++ {
		if b := x + uint64(i); b >= addr && b < addr+uint64(size) {
			mask |= 1 << i
		}
	}
	return mask
}

// changedBytes is the mask of the bytes that differ between two words.
func changedBytes(a, b uint64, word int) uint8 {
	var mask uint8
	for i := 0; i < word; i++ {
		if byte(a>>(8*i)) != byte(b>>(8*i)) {
			mask |= 1 << i
		}
	}
	return mask
}

// globalReasons are the story's reasons from memory outside the stack:
// both when the parent read a word the child changed (and that is not
// libc's bookkeeping). A changed global the parent is not seen reading is
// reported (global_write, global_diff) but, like a stack word the child
// changed, raises no warning by itself: dash's vfork child allocates from
// the shell's own allocator (its stack blocks, malloc) and the parent
// takes the allocation back by overwriting those words.
func (st *story) globalReasons() []event.Reason {
	if st.mem == nil || st.mem.reads == 0 {
		return nil
	}
	return []event.Reason{event.ReasonWroteGlobal, event.ReasonReadGlobal}
}

// watchGlobalReads follows the parent on after its landing when the child
// left words outside the stack changed (not libc's bookkeeping): a global
// stays live after the function that called vfork has returned, so the
// parent's first read of it may come much later. It is followed as in the
// parent phase (fast mode: its calls run at full speed; --step: every
// instruction) until it reads such a word (global_read), has overwritten
// them all, makes its next vfork (the story ends there and the next one
// starts from that event stop, as in the parent phase), or has run
// maxGlobalWatch instructions.
func (s *session) watchGlobalReads(st *story) error {
	m := st.mem
	if m == nil || len(m.poisoned) == 0 || st.par.landing == nil || m.storesOnly {
		// (A parent with other threads is not followed further: its
		// calls may return on another thread.)
		return nil
	}
	switch st.par.landing.How {
	case event.LandReturned, event.LandOverwritten, event.LandUntouched, event.LandUnchecked:
		// stopped in its own code, followable
	default:
		return nil // it faulted, exited, exec'd, vforked again, or a budget stopped it
	}
	if m.onlyErrno() {
		return s.followErrno(st) // errno.go: a cheaper, bounded follow
	}
	// As in the parent phase: a vfork of the parent ends the story here
	// and the next one starts from that event stop (story.go).
	st.par.following = true
	defer func() { st.par.following = false }()
	p, mm := st.parent, st.mm
	var regs, now arch.Regs
	var acc []disasm.Access
	// own is the stack pointer of the parent's own frames (as in the
	// parent phase): reads are checked there only, in both modes alike —
	// fast mode runs the callees at full speed.
	var own uint64
	for n := 0; n < maxGlobalWatch; n++ {
		if err := s.countStep(st); err != nil {
			return err
		}
		if err := s.p.Regs(p.pid, &regs); err != nil {
			return err
		}
		pc := regs.PC()
		in, derr := s.insnAt(mm, p.pid, pc)
		if derr != nil {
			return nil
		}
		if own == 0 {
			own = regs.SP()
		}
		atOwn := regs.SP() >= own
		acc, _ = in.Effects(&regs, acc[:0])
		if s.parentGlobals(st, in, acc, atOwn) {
			return nil
		}
		var out outcome
		var err error
		// A call fast mode runs at full speed (a call to the next
		// instruction is a push of the pc: stepped).
		runsCall := in.Class == disasm.Call && s.cfg.Mode == Fast && !pushesPC(in)
		if b := s.parentBlockOK(st, in, atOwn, &regs, maxGlobalWatch-n); b != nil {
			// parentblock.go: a stretch that touches no watched word, at
			// full speed to its exits; its first instruction is counted.
			var k int
			k, out, err = s.runParentBlock(st, b, &regs)
			for ; err == nil && k > 1; k-- {
				n++
				err = s.countStep(st)
			}
			if err != nil {
				return err
			}
			if out.kind == outTrap {
				if atOwn {
					own = regs.SP()
				}
				continue
			}
		} else if runsCall && len(m.errnoAddrs()) > 0 {
			out, err = s.runErrnoCall(st, &regs, in) // errno.go: its stores inside the call seen
		} else if runsCall {
			out, err = s.runCall(st, p, &regs, in, 0, nil)
		} else {
			out, err = s.advance(p, true, 0, pc)
		}
		if err != nil {
			return err
		}
		switch out.kind {
		case outTrap:
		case outNested:
			continue
		case outVfork:
			st.par.vforked = true
			return nil
		case outSignal:
			st.par.resumeSig = int(out.sig)
			return nil
		case outExec:
			s.execStop(p)
			return nil
		default:
			if out.kind == outGone {
				s.gone(p, out.status)
			}
			return nil
		}
		if len(m.poisoned) == 0 {
			return nil
		}
		if atOwn && (in.Class != disasm.Call || out.ranCall) {
			if err := s.p.Regs(p.pid, &now); err != nil {
				return err
			}
			own = now.SP()
		}
	}
	return nil
}

// parentGlobals checks an instruction the parent is about to execute
// (followParent, watchGlobalReads): in its own frames, its reads of words
// outside the stack the child changed (global_read); anywhere, its stores,
// after which those words are its own again. true when it read one.
func (s *session) parentGlobals(st *story, in *disasm.Insn, acc []disasm.Access, own bool) bool {
	m := st.mem
	if m == nil || len(m.poisoned) == 0 {
		return false
	}
	found := own && s.checkGlobalReads(st, in, acc)
	for _, a := range acc {
		addr, ok := m.accessAddr(a)
		if !a.Write || !ok {
			continue
		}
		words(addr, a.Size, m.word, func(x uint64) {
			if c, ok := m.poisoned[x]; ok {
				if c.bytes &^= touched(x, m.word, addr, a.Size); c.bytes == 0 {
					delete(m.poisoned, x)
				} else {
					m.poisoned[x] = c
				}
			}
		})
	}
	return found
}

// checkGlobalReads reports the parent's reads of words the child changed;
// true when it found one.
func (s *session) checkGlobalReads(st *story, in *disasm.Insn, acc []disasm.Access) bool {
	m := st.mem
	found := false
	for _, a := range acc {
		addr, ok := m.accessAddr(a)
		if a.Write || !ok {
			continue
		}
		words(addr, a.Size, m.word, func(x uint64) {
			c, ok := m.poisoned[x]
			if !ok || c.bytes&touched(x, m.word, addr, a.Size) == 0 {
				return
			}
			// Only bytes that still hold the child's value are the
			// child's: a call the parent ran at full speed (fast mode)
			// or the kernel may have rewritten the word since, unseen.
			if cur, err := s.readWord(st.parent.pid, x, m.word); err == nil {
				if c.bytes &^= changedBytes(cur, c.val, m.word); c.bytes == 0 {
					delete(m.poisoned, x)
					return
				}
				m.poisoned[x] = c
				if c.bytes&touched(x, m.word, addr, a.Size) == 0 {
					return
				}
			}
			found = true
			s.emitGlobalRead(st, x, c, in)
		})
	}
	return found
}

// emitGlobalRead reports the parent's read by in of the word x the child
// changed (c: its value and the bytes that are still the child's); the
// word is no longer followed.
func (s *session) emitGlobalRead(st *story, x uint64, c childWord, in *disasm.Insn) {
	m := st.mem
	r, _ := m.rangeOf(x)
	area, mapping, sym, libc := s.describe(st, r, x, c.bytes)
	m.reads++
	s.emit(&event.GlobalRead{Header: s.hdr("global_read", st.parent.pid), Vfork: st.id, Addr: event.Addr(x),
		Value: event.Addr(c.val), Was: event.Addr(m.wordIn(m.orig, r, x)), Area: area, Mapping: mapping,
		Sym: sym, Libc: libc, By: *s.insnEvent(st.mm, st.parent.pid, in)})
	delete(m.poisoned, x)
}
