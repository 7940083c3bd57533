package symbols

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The package's tests run with the symbol index in a directory of their
// own (never the user's cache): OpenBinary's Binaries read and write it as
// vtrace's do. The tests below point it elsewhere for a while, one at a
// time (none of them is parallel).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vtrace-symindex-")
	if err != nil {
		panic(err)
	}
	indexDir = func() string { return dir }
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// withIndexDir runs the rest of the test with the index in dir ("": off).
func withIndexDir(t *testing.T, dir string) {
	t.Helper()
	old := indexDir
	indexDir = func() string { return dir }
	t.Cleanup(func() { indexDir = old })
}

// indexFiles are the files of the binaries with symbols the index is
// checked on: libc with its debug file when installed, and testdata's.
func indexFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"testdata/gcc-O2-g", "testdata/static-ifunc-amd64"}
	if libc, err := filepath.EvalSymlinks("/lib/x86_64-linux-gnu/libc.so.6"); err == nil {
		files = append(files, libc)
	} else {
		t.Logf("no x86-64 glibc here (%v): testdata only", err)
	}
	return files
}

// answers are everything a Binary's symbol tables answer, asked in an
// order that starts lazy (the file's own symbols first) and ends with
// every symbol read.
type answers struct {
	lazy, eager, bounds, data []string
	got                       map[uint64]string
}

func askAll(t *testing.T, path string, probes []uint64, dataProbes []uint64) answers {
	t.Helper()
	b, err := readBinary(path)
	if err != nil {
		t.Fatal(err)
	}
	var a answers
	for _, p := range probes[:min(len(probes), 50)] {
		// The first questions, before the debug file is read (a miss
		// reads it).
		n, o, pe, ok := b.symbolAt(p)
		a.lazy = append(a.lazy, fmtAnswer(n, o, pe, ok))
	}
	b.Prefetch()
	for _, p := range probes {
		n, o, pe, ok := b.symbolAt(p)
		a.eager = append(a.eager, fmtAnswer(n, o, pe, ok))
		s, e, ok := b.funcBounds(p)
		a.bounds = append(a.bounds, fmtAnswer("", s, e == 0, ok)+fmtAnswer("", e, false, ok))
	}
	d := b.data()
	for _, p := range dataProbes {
		n, o, ok := lookupData(d.objTab, p)
		a.data = append(a.data, fmtAnswer(n, o, false, ok))
		n, o, ok = lookupData(d.tlsTab, p)
		a.data = append(a.data, fmtAnswer(n, o, false, ok))
	}
	a.got = d.gotNames
	return a
}

func fmtAnswer(name string, off uint64, pastEnd, ok bool) string {
	return fmt.Sprintf("%s+%#x past=%v ok=%v", name, off, pastEnd, ok)
}

// probesOf are addresses around every code and data symbol of a file
// (read without the index).
func probesOf(t *testing.T, path string) (code, data []uint64) {
	t.Helper()
	withIndexDir(t, "")
	b, err := readBinary(path)
	if err != nil {
		t.Fatal(err)
	}
	b.Prefetch()
	// Every symbol of a small file; of libc's thirteen thousand, a sample
	// (a miss can scan a megabyte of symbols back).
	step := max(1, b.symCount()/400)
	for i := 0; i < b.symCount(); i += step {
		s := b.symAt(i)
		code = append(code, s.addr-1, s.addr, s.addr+1, s.end(), s.end()+3, s.end()+maxPadding)
	}
	d := b.data()
	for _, s := range append(append([]dataSym{}, d.objs...), d.tls...) {
		data = append(data, s.addr-1, s.addr, s.addr+s.size/2, s.addr+s.size)
	}
	for slot := range d.gotNames {
		data = append(data, slot)
	}
	return code, data
}

func compareAnswers(t *testing.T, what string, got, want answers) {
	t.Helper()
	for _, c := range []struct {
		name string
		g, w []string
	}{{"lazy", got.lazy, want.lazy}, {"eager", got.eager, want.eager}, {"bounds", got.bounds, want.bounds}, {"data", got.data, want.data}} {
		if len(c.g) != len(c.w) {
			t.Fatalf("%s: %d %s answers, want %d", what, len(c.g), c.name, len(c.w))
		}
		bad := 0
		for i := range c.g {
			if c.g[i] != c.w[i] {
				if bad++; bad <= 5 {
					t.Errorf("%s: %s answer %d: %s, parsed %s", what, c.name, i, c.g[i], c.w[i])
				}
			}
		}
	}
	if len(got.got) != len(want.got) {
		t.Errorf("%s: %d GOT names, parsed %d", what, len(got.got), len(want.got))
	}
	for k, v := range want.got {
		if got.got[k] != v {
			t.Errorf("%s: GOT slot %#x named %q, parsed %q", what, k, got.got[k], v)
		}
	}
}

// The index answers as parsing does: with it off, with an entry just
// written (cold) and with one read back (warm) — the names, offsets,
// function bounds, data and TLS names and GOT names of every symbol.
func TestIndexSameAnswers(t *testing.T) {
	for _, path := range indexFiles(t) {
		code, data := probesOf(t, path)
		withIndexDir(t, "")
		want := askAll(t, path, code, data)
		dir := t.TempDir()
		withIndexDir(t, dir)
		cold := askAll(t, path, code, data)
		entries, _ := filepath.Glob(filepath.Join(dir, "*.idx"))
		if len(entries) != 1 {
			t.Fatalf("%s: %d entries written, want 1: %v", path, len(entries), entries)
		}
		warm := askAll(t, path, code, data)
		compareAnswers(t, path+" (cold index)", cold, want)
		compareAnswers(t, path+" (warm index)", warm, want)
		// The warm Binary read the entry: it did not parse.
		b, _ := readBinary(path)
		if ix := b.symIndex(); ix == nil || ix.own.len() == 0 {
			t.Errorf("%s: no entry read back", path)
		}
	}
}

// entryOf writes the entry of path into dir and returns its file and key.
func entryOf(t *testing.T, dir, path string) (string, string) {
	t.Helper()
	withIndexDir(t, dir)
	b, err := readBinary(path)
	if err != nil {
		t.Fatal(err)
	}
	if b.symIndex() == nil {
		t.Fatalf("%s: no index", path)
	}
	key := b.indexKey(selfID(), b.debugID())
	return filepath.Join(dir, indexName(b.BuildID, key)), key
}

// A truncated, corrupt or foreign entry is not used: the file is parsed
// (same answers), and the entry written again.
func TestIndexCorrupt(t *testing.T) {
	const path = "testdata/gcc-O2-g"
	code, data := probesOf(t, path)
	withIndexDir(t, "")
	want := askAll(t, path, code, data)
	dir := t.TempDir()
	file, key := entryOf(t, dir, path)
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	otherFile, _ := entryOf(t, t.TempDir(), "testdata/static-ifunc-amd64")
	foreign, err := os.ReadFile(otherFile)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(at int) []byte {
		d := bytes.Clone(good)
		d[at] ^= 0x40
		return d
	}
	cases := map[string][]byte{
		"empty":            {},
		"header only":      good[:indexHeader],
		"truncated key":    good[:indexHeader+len(key)/2],
		"truncated":        good[:len(good)/2],
		"one byte short":   good[:len(good)-1],
		"one byte more":    append(bytes.Clone(good), 0),
		"magic":            flip(0),
		"version":          flip(8),
		"flags":            flip(12),
		"checksum":         flip(24),
		"key":              flip(indexHeader + 3),
		"payload":          flip(len(good) * 2 / 3),
		"last byte":        flip(len(good) - 1),
		"foreign":          foreign,
		"garbage":          bytes.Repeat([]byte("vtrace"), 1000),
		"another version":  append([]byte(indexMagic[:7]+"\x02"), good[8:]...),
		"crc of corrupted": recrc(flip(len(good) * 2 / 3)),
	}
	for name, d := range cases {
		if ix, err := decodeIndex(d, key); err == nil {
			// A flipped payload byte with its checksum made good again
			// may still decode: then it must answer without panicking.
			if name != "crc of corrupted" {
				t.Errorf("%s: decoded", name)
			}
			exercise(ix)
		}
		if err := os.WriteFile(file, d, 0o600); err != nil {
			t.Fatal(err)
		}
		withIndexDir(t, dir)
		if name != "crc of corrupted" {
			compareAnswers(t, name, askAll(t, path, code, data), want)
		}
		if now, _ := os.ReadFile(file); name != "crc of corrupted" && !bytes.Equal(now, good) {
			t.Errorf("%s: the entry was not written again", name)
		}
	}
	// Not a regular file.
	os.Remove(file)
	if err := os.Mkdir(file, 0o700); err != nil {
		t.Fatal(err)
	}
	withIndexDir(t, dir)
	compareAnswers(t, "directory", askAll(t, path, code, data), want)
}

// recrc makes an entry's checksum match its contents.
func recrc(d []byte) []byte {
	binary.LittleEndian.PutUint32(d[24:], crc32.ChecksumIEEE(d[indexHeader:]))
	return d
}

// exercise reads every record of an entry, as lookups would.
func exercise(ix *symIndex) {
	for _, r := range []symRecs{ix.own, ix.all} {
		for i := range r.len() {
			s := r.at(i)
			_ = cString(ix.strs, s.name)
		}
	}
	for _, r := range []dataRecs{ix.objs, ix.tls} {
		for i := range r.len() {
			_, _, _ = r.addr(i), r.size(i), r.name(i)
		}
		_, _, _ = lookupData(r, 0x1000)
	}
}

// An entry cannot outlive its file's contents: the file rewritten in
// place — same path and inode, same size, its mtime set back — is another
// file for the index (its ctime moved), and answers with its new names.
func TestIndexStale(t *testing.T) {
	orig, err := os.ReadFile("testdata/gcc-O2-g")
	if err != nil {
		t.Fatal(err)
	}
	// One symbol renamed, nothing else changed.
	variant := bytes.ReplaceAll(orig, []byte("\x00main\x00"), []byte("\x00mbin\x00"))
	if bytes.Equal(variant, orig) {
		t.Fatal("testdata/gcc-O2-g has no symbol main")
	}
	prog := filepath.Join(t.TempDir(), "prog")
	ref := filepath.Join(t.TempDir(), "ref")
	if err := os.WriteFile(prog, orig, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ref, variant, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(prog)
	if err != nil {
		t.Fatal(err)
	}
	code, data := probesOf(t, prog)
	dir := t.TempDir()
	withIndexDir(t, dir)
	before := askAll(t, prog, code, data)
	time.Sleep(50 * time.Millisecond) // past the file system's timestamp granularity
	f, err := os.OpenFile(prog, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(variant, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(prog, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	withIndexDir(t, "")
	want := askAll(t, ref, code, data)
	withIndexDir(t, dir)
	after := askAll(t, prog, code, data)
	compareAnswers(t, "rewritten in place", after, want)
	if fmt.Sprint(before.eager) == fmt.Sprint(after.eager) {
		t.Error("the rename of main changed no answer: the test checks nothing")
	}
}

// Writers racing on one entry each leave a whole one; readers meanwhile
// see a whole entry or none.
func TestIndexConcurrentWriters(t *testing.T) {
	const path = "testdata/gcc-O2-g"
	dir := t.TempDir()
	withIndexDir(t, dir)
	var wg sync.WaitGroup
	ixs := make([]*symIndex, 8)
	for i := range ixs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := readBinary(path)
			if err != nil {
				t.Error(err)
				return
			}
			ixs[i] = b.symIndex()
		}()
	}
	wg.Wait()
	for i, ix := range ixs {
		if ix == nil || ix.own.len() == 0 {
			t.Errorf("writer %d: no entry", i)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || !strings.HasSuffix(ents[0].Name(), ".idx") || strings.HasPrefix(ents[0].Name(), ".tmp-") {
		t.Errorf("directory holds %v, want one entry", ents)
	}
	b, _ := readBinary(path)
	file := filepath.Join(dir, indexName(b.BuildID, b.indexKey(selfID(), b.debugID())))
	if readIndex(file, b.indexKey(selfID(), b.debugID())) == nil {
		t.Errorf("%s: not a valid entry", file)
	}
}

// Where the index lives, and when it is off.
func TestIndexDirFrom(t *testing.T) {
	home := t.TempDir()
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	euid := os.Geteuid()
	xdg := filepath.Join(t.TempDir(), "x", "cache") // made by MkdirAll
	for _, c := range []struct {
		env  func(string) string
		want string
	}{
		{env("HOME", home), filepath.Join(home, ".cache", "vtrace")},
		{env("HOME", home, "XDG_CACHE_HOME", xdg), filepath.Join(xdg, "vtrace")},
		{env("HOME", home, "XDG_CACHE_HOME", "rel/cache"), filepath.Join(home, ".cache", "vtrace")},
		{env("HOME", home, "VTRACE_CACHE", "off"), ""},
		{env("HOME", home, "VTRACE_CACHE", "0"), ""},
		{env("XDG_CACHE_HOME", "/x/cache", "VTRACE_CACHE", "OFF"), ""},
		{env(), ""},
		{env("HOME", "relative"), ""},
	} {
		if got := indexDirFrom(c.env, euid); got != c.want {
			t.Errorf("indexDirFrom: %q, want %q", got, c.want)
		}
	}
	// Nor made in one (root with a user's HOME and no ~/.cache yet: a
	// root-owned ~/.cache the user could not write).
	if got := indexDirFrom(env("HOME", home), euid+1); got != "" {
		t.Errorf("directory to be made in a home of uid %d used by uid %d: %q", euid, euid+1, got)
	}
	// A directory that another user owns is not used.
	if err := os.MkdirAll(filepath.Join(home, ".cache", "vtrace"), 0o700); err != nil {
		t.Fatal(err)
	}
	if got := indexDirFrom(env("HOME", home), euid+1); got != "" {
		t.Errorf("directory of uid %d used by uid %d: %q", euid, euid+1, got)
	}
	// Not a directory.
	f := filepath.Join(t.TempDir(), "vtrace")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := indexDirFrom(env("XDG_CACHE_HOME", filepath.Dir(f)), euid); got != "" {
		t.Errorf("a file as the directory: %q", got)
	}
}

// No directory to write into (a file where it should be: MkdirAll fails
// for root too): the entry is built and used all the same.
func TestIndexUnwritable(t *testing.T) {
	parent := t.TempDir()
	blocker := filepath.Join(parent, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	withIndexDir(t, filepath.Join(blocker, "vtrace"))
	b, err := readBinary("testdata/gcc-O2-g")
	if err != nil {
		t.Fatal(err)
	}
	if b.symIndex() == nil {
		t.Fatal("no entry without a directory")
	}
	var st syscall.Stat_t
	if syscall.Stat(filepath.Join(blocker, "vtrace"), &st) == nil {
		t.Error("a directory was made under a file")
	}
}

// FuzzDecodeIndex feeds the entry reader what a corrupt or forged file can
// hold: it must refuse it or answer from it, never panic or allocate what
// the file claims.
func FuzzDecodeIndex(f *testing.F) {
	dir, err := os.MkdirTemp("", "vtrace-fuzzindex-")
	if err != nil {
		f.Fatal(err)
	}
	defer os.RemoveAll(dir)
	old := indexDir
	indexDir = func() string { return dir }
	for _, p := range []string{"testdata/gcc-O2-g", "testdata/static-ifunc-amd64"} {
		b, err := readBinary(p)
		if err != nil {
			f.Fatal(err)
		}
		if b.symIndex() == nil {
			f.Fatal("no index")
		}
		key := b.indexKey(selfID(), b.debugID())
		d, err := os.ReadFile(filepath.Join(dir, indexName(b.BuildID, key)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(d, key)
		f.Add(recrc(bytes.Clone(d[:len(d)*3/4])), key)
	}
	indexDir = old
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		// Checksums would stop nearly every mutation at the door: make
		// it match, so that the structure checks are what is fuzzed.
		if len(data) >= indexHeader {
			data = recrc(bytes.Clone(data))
		}
		ix, err := decodeIndex(data, key)
		if err != nil {
			return
		}
		exercise(ix)
		for _, recs := range []symRecs{ix.own, ix.all} {
			b := &Binary{}
			b.useIndexed(ix, recs)
			b.symOnce.Do(func() {}) // the entry's symbols are all there are
			b.debugOnce.Do(func() {})
			for i := range b.symCount() {
				a := b.symAt(i).addr
				b.lookupSym(a + 1)
				b.funcBounds(a)
			}
		}
	})
}

// WaitIndexWrites returns once the entries being built and written are in
// place (vtrace waits so before it exits: a short run of a program with a
// big entry left a temporary file and built the entry again at every
// run), and at once when none is.
func TestWaitIndexWrites(t *testing.T) {
	const path = "testdata/gcc-O2-g"
	dir := t.TempDir()
	withIndexDir(t, dir)
	if !WaitIndexWrites(0) {
		t.Fatal("nothing is being written, yet WaitIndexWrites(0) reports some")
	}
	b, err := readBinary(path)
	if err != nil {
		t.Fatal(err)
	}
	indexBusy.Add(1) // as loadIndex does after a miss, before it builds
	go func() {
		defer indexBusy.Add(-1)
		time.Sleep(20 * time.Millisecond)
		b.symIndex()
	}()
	if !WaitIndexWrites(10 * time.Second) {
		t.Fatal("the entry was not written within 10 s")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || strings.HasPrefix(ents[0].Name(), ".tmp-") {
		t.Fatalf("directory holds %v when WaitIndexWrites returned, want the entry", ents)
	}
	if readIndex(filepath.Join(dir, ents[0].Name()), b.indexKey(selfID(), b.debugID())) == nil {
		t.Errorf("%s: not a valid entry", ents[0].Name())
	}
	// One that never ends: WaitIndexWrites gives up after d.
	indexBusy.Add(1)
	defer indexBusy.Add(-1)
	start := time.Now()
	if WaitIndexWrites(30 * time.Millisecond) {
		t.Error("a build in progress, yet WaitIndexWrites reports none")
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("gave up after %v, before its bound", d)
	}
}
