package symbols

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// The symbol index: what reading a file's symbol tables gives — its code
// symbols sorted and named (with and without its separate debug file's),
// its data and TLS symbols, the names of its GOT slots — kept on disk per
// file, so that the next run reads one small file instead of parsing
// libc's and its debug file's tables (a third of vtrace's CPU on the seed
// program). Entries live in $XDG_CACHE_HOME/vtrace (else ~/.cache/vtrace);
// VTRACE_CACHE=off turns the index off (every run then parses, lazily, as
// before).
//
// An entry cannot be stale: it is named and keyed by everything its
// contents follow from — the file's build id and identity (device, inode,
// size, modification and change times: a file rewritten in place changes
// its ctime, which no user can set back; one replaced by rename is another
// inode), its debug file's identity (or its absence), the index format's
// version and the identity of the vtrace executable that wrote it (its
// code decides what is kept) — and the key is stored in the entry and
// compared in full. An entry is written to a temporary file and renamed
// into place, so concurrent writers each leave a whole entry and a reader
// sees one whole entry or none. Whatever is read is checked (a checksum of
// all of it, then every count, offset and order) before it is used; a
// truncated, corrupt or foreign file counts as no entry: the file is parsed
// and the entry written again.
//
// Whether the index or the parse answers, the names are the same: an entry
// holds what the parse gives once everything is read (see
// TestIndexSameAnswers).

// indexVersion is the entry format's version.
const indexVersion = 1

const indexMagic = "VTRIDX\x00\x01"

// indexHeader is the size of an entry's fixed header: magic, version,
// flags, payload length, checksum, key length.
const indexHeader = 8 + 4 + 4 + 8 + 4 + 4

// maxIndexEntries bounds the cache directory: writing an entry when it
// holds more removes the oldest down to three quarters of that.
const maxIndexEntries = 256

// symIndex is one file's index entry, decoded: the records stay in the
// entry's bytes (the file's mapping), read where a lookup reaches them;
// copying libc's thirteen thousand symbols into the heap cost more page
// faults than the lookups of a run.
type symIndex struct {
	strs     []byte     // the names, NUL-terminated; symbols' names are offsets in it
	secs     []secRange // the sections of the file, then of its debug file
	own      symRecs    // the file's own code symbols, one per address, sorted
	all      symRecs    // with the debug file's (hasDebug)
	hasDebug bool
	objs     dataRecs // data symbols, sorted as sortData does
	tls      dataRecs
	got      map[uint64]string
}

// builtIndex is an entry as buildIndex makes it, for encodeIndex.
type builtIndex struct {
	strs      *interner
	secs      []secRange
	own, all  []symbol
	hasDebug  bool
	objs, tls []dataSym
	got       map[uint64]string
}

// fileID is what tells a file's contents apart without reading them.
type fileID struct {
	dev, ino, size uint64
	mtime, ctime   int64 // nanoseconds
}

func statID(st os.FileInfo) *fileID {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return &fileID{dev: sys.Dev, ino: sys.Ino, size: uint64(sys.Size), mtime: sys.Mtim.Nano(), ctime: sys.Ctim.Nano()}
}

func (id *fileID) String() string {
	if id == nil {
		return "none"
	}
	return fmt.Sprintf("%d:%d:%d:%d:%d", id.dev, id.ino, id.size, id.mtime, id.ctime)
}

// indexDir is the cache directory ("" when the index is off). A variable
// for tests.
var indexDir = sync.OnceValue(func() string { return indexDirFrom(os.Getenv, os.Geteuid()) })

// indexDirFrom picks the directory: VTRACE_CACHE=off (0, no, false)
// turns the index off; else $XDG_CACHE_HOME/vtrace, else
// $HOME/.cache/vtrace (a relative XDG_CACHE_HOME is ignored, as the XDG
// specification says). A directory that exists and is not owned by euid
// is not used, nor one whose first existing parent is not (root running
// vtrace with a user's HOME must neither trust nor leave root's files
// there).
func indexDirFrom(getenv func(string) string, euid int) string {
	switch strings.ToLower(getenv("VTRACE_CACHE")) {
	case "off", "0", "no", "false":
		return ""
	}
	base := getenv("XDG_CACHE_HOME")
	if !filepath.IsAbs(base) {
		home := getenv("HOME")
		if !filepath.IsAbs(home) {
			return ""
		}
		base = filepath.Join(home, ".cache")
	}
	dir := filepath.Join(base, "vtrace")
	// The directory, or where MkdirAll would begin making it: the first
	// that exists of it and its parents (root with a user's HOME must not
	// make a root-owned ~/.cache, which the user's programs could then not
	// write).
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Lstat(d)
		if err == nil {
			sys, ok := st.Sys().(*syscall.Stat_t)
			if !st.IsDir() || !ok || int(sys.Uid) != euid {
				return ""
			}
			return dir
		}
		if !errors.Is(err, os.ErrNotExist) || d == filepath.Dir(d) {
			return ""
		}
	}
}

// selfID is the identity of the running vtrace executable ("" if unknown:
// then no index, since its code decides what an entry holds).
var selfID = sync.OnceValue(func() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	st, err := os.Stat(exe)
	if err != nil {
		return ""
	}
	if id := statID(st); id != nil {
		return id.String()
	}
	return ""
})

// symIndex returns the file's index entry, read from the cache directory
// or built and stored there; nil when the index is off or the Binary is
// not a file (the vDSO).
func (b *Binary) symIndex() *symIndex {
	b.idxOnce.Do(func() { b.idx = b.loadIndex() })
	return b.idx
}

// indexKey is the full key of an entry.
func (b *Binary) indexKey(self string, debug *fileID) string {
	return fmt.Sprintf("vtrace symbol index v%d\nvtrace %s\nfile %s %s ptr%d\ndebug %s\n",
		indexVersion, self, b.img.id, b.BuildID, b.Arch.PtrSize, debug)
}

// indexName is an entry's file name in the cache directory.
func indexName(buildID, key string) string {
	h := fnv.New64a()
	h.Write([]byte(key))
	if buildID == "" || len(buildID) > 80 {
		buildID = "nobuildid"
	}
	return fmt.Sprintf("%s-%016x.idx", buildID, h.Sum64())
}

// debugID is the identity of the installed debug file, nil if none.
func (b *Binary) debugID() *fileID {
	if len(b.BuildID) < 3 {
		return nil
	}
	st, err := os.Stat(b.debugPath())
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	return statID(st)
}

func (b *Binary) loadIndex() *symIndex {
	dir := indexDir()
	if dir == "" || b.img == nil || b.img.id == nil {
		return nil
	}
	self := selfID()
	if self == "" {
		return nil
	}
	key := b.indexKey(self, b.debugID())
	if ix := readIndex(filepath.Join(dir, indexName(b.BuildID, key)), key); ix != nil {
		return ix
	}
	indexBusy.Add(1)
	defer indexBusy.Add(-1)
	ix, dbg := b.buildIndex()
	// Keyed by the debug file actually read (it may have changed since
	// the stat above).
	key = b.indexKey(self, dbg)
	data := encodeIndex(key, ix)
	writeIndex(dir, indexName(b.BuildID, key), data)
	// The entry as the next run will read it: one way to the answers.
	dec, err := decodeIndex(data, key)
	if err != nil {
		return nil
	}
	return dec
}

// buildIndex parses the file (and its debug file) as the lazy path does,
// on a scratch Binary, and returns the entry and the debug file's
// identity.
func (b *Binary) buildIndex() (*builtIndex, *fileID) {
	t := &Binary{Path: b.Path, Arch: b.Arch, Type: b.Type, BuildID: b.BuildID, img: b.img, loads: b.loads}
	ix := &builtIndex{strs: &interner{m: map[string]uint32{}, buf: []byte{0}}}
	t.addPLT(t.img, t.addSymbols(t.img))
	t.sortSymbols()
	ix.own = t.kept(ix.strs)
	dbg := t.debugFile()
	var dbgID *fileID
	if dbg != nil {
		dbgID = dbg.id
		t.addSymbols(dbg)
		t.sortSymbols()
		ix.hasDebug = true
		ix.all = t.kept(ix.strs)
	}
	ix.secs = t.secs
	// The data symbols as data() reads them once the code symbols are all
	// read (the GOT slots of IRELATIVE relocations are named by them).
	d := &dataSyms{}
	readDataSyms(t.img, d)
	ix.got = t.gotNames(t.img)
	if dbg != nil {
		readDataSyms(dbg, d)
		dbg.close() // what is kept of it is copied (the names are strings)
	}
	ix.objs, ix.tls = sortData(d.objs), sortData(d.tls)
	return ix, dbgID
}

// kept returns the symbols the index keeps, one per address, with their
// names interned.
func (b *Binary) kept(strs *interner) []symbol {
	out := make([]symbol, len(b.index))
	for k, i := range b.index {
		s := b.syms[i]
		s.name, s.tab = strs.add(cBytes(b.strtabs[s.tab], s.name)), 0
		out[k] = s
	}
	return out
}

// interner collects NUL-terminated names.
type interner struct {
	m   map[string]uint32
	buf []byte
}

func (in *interner) add(name []byte) uint32 {
	if len(name) == 0 {
		return 0
	}
	if off, ok := in.m[string(name)]; ok {
		return off
	}
	off := uint32(len(in.buf))
	in.buf = append(append(in.buf, name...), 0)
	in.m[string(name)] = off
	return off
}

// useIndexed makes recs, from an entry, the Binary's code symbols.
func (b *Binary) useIndexed(ix *symIndex, recs symRecs) {
	b.recs, b.indexed, b.strtabs, b.secs = recs, true, [][]byte{ix.strs}, ix.secs
	b.syms, b.index, b.sorted = nil, nil, 0
}

// symRecs are an entry's code symbols, symRecord bytes each.
type symRecs []byte

func (r symRecs) len() int { return len(r) / symRecord }

func (r symRecs) at(i int) symbol {
	v := r[i*symRecord : i*symRecord+symRecord]
	le := binary.LittleEndian
	return symbol{addr: le.Uint64(v), size: le.Uint32(v[8:]), name: le.Uint32(v[12:]), rank: int8(v[16]), fn: v[17] == 1, sec: le.Uint16(v[18:])}
}

// dataRecs are an entry's data symbols, dataRecord bytes each.
type dataRecs struct {
	d, strs []byte
}

const dataRecord = 8 + 8 + 4

func (r dataRecs) len() int          { return len(r.d) / dataRecord }
func (r dataRecs) addr(i int) uint64 { return binary.LittleEndian.Uint64(r.d[i*dataRecord:]) }
func (r dataRecs) size(i int) uint64 { return binary.LittleEndian.Uint64(r.d[i*dataRecord+8:]) }
func (r dataRecs) name(i int) string {
	return nameAt(r.strs, binary.LittleEndian.Uint32(r.d[i*dataRecord+16:]))
}

// readIndex maps an entry and decodes it (nil if absent or bad). The
// mapping is kept: the entry's records and names are read from it. (An
// entry truncated while mapped would make those reads fault; vtrace
// replaces entries by renaming, never truncates one, as package managers
// do with the libraries mapped in images.)
func readIndex(path, key string) *symIndex {
	fd, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() < indexHeader || st.Size() != int64(int(st.Size())) {
		return nil
	}
	data, err := syscall.Mmap(int(fd.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_PRIVATE)
	mapped := err == nil
	if !mapped {
		// A file system that cannot map it: read it whole (else every
		// run would parse and write the entry again).
		data = make([]byte, st.Size())
		if _, err := io.ReadFull(fd, data); err != nil {
			return nil
		}
	}
	ix, err := decodeIndex(data, key)
	if err != nil {
		if mapped {
			_ = syscall.Munmap(data)
		}
		return nil
	}
	return ix
}

// indexBusy counts the entries being built and written (loadIndex after
// a miss).
var indexBusy atomic.Int32

// WaitIndexWrites waits, at most d, for the entries being built and
// written to be in place, and reports whether none is left. The program's
// symbols are read ahead on another goroutine (PrefetchProgram); a short
// run of a program with a big entry (node's is 8.7 MB, 150 ms of CPU to
// build) ended before the entry was written — the process exited in the
// middle of the temporary file — so that every run built it again.
func WaitIndexWrites(d time.Duration) bool {
	end := time.Now().Add(d)
	for indexBusy.Load() > 0 {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// writeIndex stores an entry: into a temporary file, renamed into place.
// Failing to (a read-only home) only costs the next run a parse.
func writeIndex(dir, name string, data []byte) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	f, err := os.CreateTemp(dir, ".tmp-*.idx")
	if err != nil {
		return
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr != nil || cerr != nil || os.Rename(f.Name(), filepath.Join(dir, name)) != nil {
		_ = os.Remove(f.Name())
		return
	}
	pruneIndex(dir)
}

// pruneIndex removes the oldest entries (and temporary files an hour old:
// a writer that died) when the directory holds more than maxIndexEntries.
func pruneIndex(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) <= maxIndexEntries {
		return
	}
	type aged struct {
		name string
		t    time.Time
	}
	var all []aged
	for _, e := range ents {
		if info, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".idx") && info.Mode().IsRegular() {
			all = append(all, aged{e.Name(), info.ModTime()})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].t.Before(all[j].t) })
	for i := 0; i < len(all) && len(all)-i > maxIndexEntries*3/4; i++ {
		if strings.HasPrefix(all[i].name, ".tmp-") && time.Since(all[i].t) < time.Hour {
			continue
		}
		_ = os.Remove(filepath.Join(dir, all[i].name))
	}
}

// The entry's layout (little-endian): the header (magic, version u32,
// flags u32 — bit 0: hasDebug —, length of what follows the header u64,
// its CRC-32 (IEEE) u32, key length u32), the key, then the sections:
// strs (u32 length, bytes), secs (u32 n, n × lo u64 hi u64), own and all
// (u32 n, n × symbol record), objs and tls (u32 n, n × addr u64 size u64
// name u32), got (u32 n, n × slot u64 name u32).

const symRecord = 8 + 4 + 4 + 1 + 1 + 2

// encodeIndex writes an entry built by buildIndex.
func encodeIndex(key string, ix *builtIndex) []byte {
	le := binary.LittleEndian
	// The names first: the data symbols' and GOT slots' join the code
	// symbols' (kept interned them).
	for _, ds := range [][]dataSym{ix.objs, ix.tls} {
		for _, d := range ds {
			ix.strs.add([]byte(d.name))
		}
	}
	slots := make([]uint64, 0, len(ix.got))
	for k := range ix.got {
		slots = append(slots, k)
	}
	slices.Sort(slots) // the same entry from the same file, byte for byte
	for _, k := range slots {
		ix.strs.add([]byte(ix.got[k]))
	}
	strs := ix.strs.buf
	off := func(name string) uint32 { return ix.strs.add([]byte(name)) }
	out := make([]byte, indexHeader, indexHeader+len(key)+len(strs)+symRecord*(len(ix.own)+len(ix.all))+1024)
	copy(out, indexMagic)
	le.PutUint32(out[8:], indexVersion)
	if ix.hasDebug {
		le.PutUint32(out[12:], 1)
	}
	le.PutUint32(out[28:], uint32(len(key)))
	out = append(out, key...)
	out = le.AppendUint32(out, uint32(len(strs)))
	out = append(out, strs...)
	out = le.AppendUint32(out, uint32(len(ix.secs)))
	for _, s := range ix.secs {
		out = le.AppendUint64(le.AppendUint64(out, s.lo), s.hi)
	}
	for _, syms := range [][]symbol{ix.own, ix.all} {
		out = le.AppendUint32(out, uint32(len(syms)))
		for _, s := range syms {
			out = le.AppendUint64(out, s.addr)
			out = le.AppendUint32(out, s.size)
			out = le.AppendUint32(out, s.name)
			fn := byte(0)
			if s.fn {
				fn = 1
			}
			out = append(out, byte(s.rank), fn)
			out = le.AppendUint16(out, s.sec)
		}
	}
	for _, ds := range [][]dataSym{ix.objs, ix.tls} {
		out = le.AppendUint32(out, uint32(len(ds)))
		for _, d := range ds {
			out = le.AppendUint32(le.AppendUint64(le.AppendUint64(out, d.addr), d.size), off(d.name))
		}
	}
	out = le.AppendUint32(out, uint32(len(slots)))
	for _, k := range slots {
		out = le.AppendUint32(le.AppendUint64(out, k), off(ix.got[k]))
	}
	le.PutUint64(out[16:], uint64(len(out)-indexHeader))
	le.PutUint32(out[24:], crc32.Checksum(out[indexHeader:], crcTable()))
	return out
}

// crcTable: IEEE, whose table costs little to make (Castagnoli's took 0.3 ms of
// a run); on amd64 the checksum itself uses PCLMULQDQ.
var crcTable = sync.OnceValue(func() *crc32.Table { return crc32.IEEETable })

var errBadIndex = errors.New("bad symbol index entry")

// cursor reads an entry's sections, failing (ok false) at its end.
type cursor struct {
	d  []byte
	ok bool
}

func (c *cursor) take(n uint64) []byte {
	if !c.ok || n > uint64(len(c.d)) {
		c.ok = false
		return nil
	}
	v := c.d[:n:n]
	c.d = c.d[n:]
	return v
}

func (c *cursor) u32() uint32 {
	if v := c.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

// count reads a record count, failing if that many records of size each
// cannot be there (no allocation follows a forged count).
func (c *cursor) count(each uint64) int {
	n := uint64(c.u32())
	if !c.ok || n*each > uint64(len(c.d)) {
		c.ok = false
		return 0
	}
	return int(n)
}

// decodeIndex checks an entry against key and decodes it.
func decodeIndex(data []byte, key string) (*symIndex, error) {
	le := binary.LittleEndian
	if len(data) < indexHeader || string(data[:8]) != indexMagic || le.Uint32(data[8:]) != indexVersion {
		return nil, errBadIndex
	}
	flags := le.Uint32(data[12:])
	if flags&^1 != 0 || le.Uint64(data[16:]) != uint64(len(data)-indexHeader) ||
		crc32.Checksum(data[indexHeader:], crcTable()) != le.Uint32(data[24:]) {
		return nil, errBadIndex
	}
	c := &cursor{d: data[indexHeader:], ok: true}
	if k := c.take(uint64(le.Uint32(data[28:]))); !c.ok || string(k) != key {
		return nil, errBadIndex
	}
	ix := &symIndex{hasDebug: flags&1 != 0}
	// The names: a table that starts with the empty name and ends with a
	// NUL, so that every offset in it reads a terminated name.
	ix.strs = c.take(uint64(c.u32()))
	if !c.ok || len(ix.strs) == 0 || ix.strs[0] != 0 || ix.strs[len(ix.strs)-1] != 0 || len(ix.strs) > 1<<31 {
		return nil, errBadIndex
	}
	nameOK := func(off uint32) bool { return uint64(off) < uint64(len(ix.strs)) }
	ix.secs = make([]secRange, c.count(16))
	for i := range ix.secs {
		v := c.take(16)
		ix.secs[i] = secRange{le.Uint64(v), le.Uint64(v[8:])}
	}
	if !c.ok || len(ix.secs) >= noSection {
		return nil, errBadIndex
	}
	le16, le32, le64 := le.Uint16, le.Uint32, le.Uint64
	for k, into := range []*symRecs{&ix.own, &ix.all} {
		n := c.count(symRecord)
		recs := symRecs(c.take(uint64(n) * symRecord))
		// One per address, by address; the fields within their ranges.
		last := uint64(0)
		for i := 0; i < n && c.ok; i++ {
			v := recs[i*symRecord : i*symRecord+symRecord]
			addr, sec := le64(v), le16(v[18:])
			if v[17] > 1 || int8(v[16]) < 0 || int8(v[16]) > maxRank || !nameOK(le32(v[12:])) ||
				sec != noSection && int(sec) >= len(ix.secs) || i > 0 && last >= addr {
				return nil, errBadIndex
			}
			last = addr
		}
		if !c.ok || k == 1 && !ix.hasDebug && n > 0 {
			return nil, errBadIndex
		}
		*into = recs
	}
	for _, into := range []*dataRecs{&ix.objs, &ix.tls} {
		n := c.count(dataRecord)
		r := dataRecs{d: c.take(uint64(n) * dataRecord), strs: ix.strs}
		for i := 0; i < n && c.ok; i++ {
			if !nameOK(le32(r.d[i*dataRecord+16:])) || i > 0 && r.addr(i-1) > r.addr(i) {
				return nil, errBadIndex
			}
		}
		*into = r
	}
	n := c.count(12)
	ix.got = make(map[uint64]string, n)
	for range n {
		v := c.take(12)
		if off := le32(v[8:]); nameOK(off) {
			ix.got[le64(v)] = nameAt(ix.strs, off)
		} else {
			return nil, errBadIndex
		}
	}
	if !c.ok || len(c.d) != 0 {
		return nil, errBadIndex
	}
	return ix, nil
}

// nameAt returns the name at off in a table that ends with a NUL, as a
// string that shares the table's memory (an entry is never written once
// decoded; a mapped one stays mapped).
func nameAt(strs []byte, off uint32) string {
	if uint64(off) >= uint64(len(strs)) {
		return ""
	}
	s := strs[off:]
	n := bytes.IndexByte(s, 0)
	if n <= 0 {
		return ""
	}
	return unsafe.String(&s[0], n)
}
