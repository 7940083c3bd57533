package tracer

import (
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// memOnly is a procs whose only answer is ReadMem over [lo, hi); it counts
// the reads.
type memOnly struct {
	procs
	lo      uint64
	mem     []byte
	reads   int
	batches int // ReadRanges calls
}

func (m *memOnly) ReadMem(pid int, addr uint64, buf []byte) error {
	m.reads++
	if addr < m.lo || addr+uint64(len(buf)) > m.lo+uint64(len(m.mem)) {
		return fmt.Errorf("read %d at %#x: %w", len(buf), addr, unix.EFAULT)
	}
	copy(buf, m.mem[addr-m.lo:])
	return nil
}

func TestPageMemory(t *testing.T) {
	// Two readable pages, 0x7000-0x9000; each byte holds its address's
	// low byte, so every word tells where it was read from.
	m := &memOnly{lo: 0x7000, mem: make([]byte, 0x2000)}
	for i := range m.mem {
		m.mem[i] = byte(m.lo + uint64(i))
	}
	want := func(addr uint64, size int) uint64 {
		b := make([]byte, 8)
		copy(b, m.mem[addr-m.lo:addr-m.lo+uint64(size)])
		return binary.LittleEndian.Uint64(b)
	}
	s := &session{p: m}
	pm := &pageMemory{s: s, pid: 1}

	// Thirty words of one page: one read.
	for a := uint64(0x7100); a < 0x7100+30*8; a += 8 {
		got, err := pm.ReadWord(a, 8)
		if err != nil || got != want(a, 8) {
			t.Fatalf("ReadWord(%#x, 8) = %#x, %v; want %#x", a, got, err, want(a, 8))
		}
	}
	if m.reads != 1 {
		t.Errorf("30 words of one page took %d reads, want 1", m.reads)
	}
	// A 4-byte word, and a word of the second page: one more read.
	if got, err := pm.ReadWord(0x7204, 4); err != nil || got != want(0x7204, 4) {
		t.Errorf("ReadWord(0x7204, 4) = %#x, %v; want %#x", got, err, want(0x7204, 4))
	}
	if got, err := pm.ReadWord(0x8ff8, 8); err != nil || got != want(0x8ff8, 8) {
		t.Errorf("ReadWord(0x8ff8, 8) = %#x, %v; want %#x", got, err, want(0x8ff8, 8))
	}
	if m.reads != 2 {
		t.Errorf("after a second page: %d reads, want 2", m.reads)
	}
	// A word across the two pages is read as it is.
	if got, err := pm.ReadWord(0x7ffc, 8); err != nil || got != want(0x7ffc, 8) {
		t.Errorf("ReadWord(0x7ffc, 8) = %#x, %v; want %#x", got, err, want(0x7ffc, 8))
	}
	// An unreadable page fails, every time, and is not kept.
	for range 2 {
		if got, err := pm.ReadWord(0x9000, 8); err == nil {
			t.Errorf("ReadWord(0x9000) = %#x, nil; want an error", got)
		}
	}
	if len(pm.pages) != 2 {
		t.Errorf("%d pages kept, want 2", len(pm.pages))
	}
	// copyOut gives what the two pages hold, across them too, with no
	// read; a range reaching past them is not given.
	reads := m.reads
	for _, r := range []struct{ addr, n uint64 }{{0x7100, 16}, {0x7f00, 0x300}, {0x7000, 0x2000}} {
		buf := make([]byte, r.n)
		if ok := pm.copyOut(r.addr, buf); !ok || string(buf) != string(m.mem[r.addr-m.lo:r.addr-m.lo+r.n]) {
			t.Errorf("copyOut(%#x, %d): %v, not the memory there", r.addr, r.n, ok)
		}
	}
	if pm.copyOut(0x8f00, make([]byte, 0x200)) || pm.copyOut(0x6ff8, make([]byte, 16)) {
		t.Error("copyOut gave a range the pages do not hold")
	}
	if m.reads != reads {
		t.Errorf("copyOut read memory: %d reads, were %d", m.reads, reads)
	}
	// Past maxMemPages pages it reads words directly.
	big := &memOnly{lo: 0x10000, mem: make([]byte, (maxMemPages+2)*memPageSize)}
	pm = &pageMemory{s: &session{p: big}, pid: 1}
	for i := uint64(0); i < maxMemPages+2; i++ {
		if _, err := pm.ReadWord(big.lo+i*memPageSize, 8); err != nil {
			t.Fatal(err)
		}
	}
	if len(pm.pages) != maxMemPages || big.reads != maxMemPages+2 {
		t.Errorf("%d pages kept, %d reads; want %d and %d", len(pm.pages), big.reads, maxMemPages, maxMemPages+2)
	}
}

// ReadRanges reads each range alone (as the real one does after a batch
// fails), counting the batch.
func (m *memOnly) ReadRanges(pid int, addrs []uint64, bufs [][]byte) (failed []int) {
	m.batches++
	for i := range addrs {
		if m.ReadMem(pid, addrs[i], bufs[i]) != nil {
			failed = append(failed, i)
		}
	}
	return failed
}

func TestPageMemoryPrefetch(t *testing.T) {
	m := &memOnly{lo: 0x7000, mem: make([]byte, 0x2000)}
	for i := range m.mem {
		m.mem[i] = byte(m.lo+uint64(i)) ^ byte(i>>8)
	}
	pm := &pageMemory{s: &session{p: m}, pid: 1}
	// Words on two readable pages (one twice) and on an unreadable one:
	// one batch; the unreadable page is not kept.
	pm.prefetch([]uint64{0x7ff8, 0x8010, 0x9008, 0x7010})
	if m.batches != 1 || len(pm.pages) != 2 || pm.page(0x7000) == nil || pm.page(0x8000) == nil {
		t.Fatalf("prefetch: %d batches, pages %d (0x7000 %v, 0x8000 %v); want 1 batch and both readable pages",
			m.batches, len(pm.pages), pm.page(0x7000) != nil, pm.page(0x8000) != nil)
	}
	reads := m.reads
	for _, a := range []uint64{0x7ff8, 0x8010, 0x7010, 0x7ffc} {
		b := make([]byte, 8)
		copy(b, m.mem[a-m.lo:])
		if got, err := pm.ReadWord(a, 8); err != nil || got != binary.LittleEndian.Uint64(b) {
			t.Errorf("ReadWord(%#x) = %#x, %v; want %#x", a, got, err, binary.LittleEndian.Uint64(b))
		}
	}
	if _, err := pm.ReadWord(0x9008, 8); err == nil {
		t.Error("ReadWord(0x9008) read an unreadable page")
	}
	// 0x7ffc straddles the pages (read alone, as before); 0x9008's page
	// and then the word alone fail, as without the prefetch.
	if m.reads != reads+3 {
		t.Errorf("words of prefetched pages: %d reads, want 3 (the straddling word; the unreadable page, its word)", m.reads-reads)
	}
	// read: from the pages with no read; a range that cannot be read
	// fails as ReadMem fails.
	buf := make([]byte, 0x40)
	reads = m.reads
	if err := pm.read(0x7fe0, buf); err != nil || string(buf) != string(m.mem[0xfe0:0x1020]) {
		t.Errorf("read(0x7fe0): %v, not the memory there", err)
	}
	if m.reads != reads {
		t.Errorf("read of prefetched pages: %d reads", m.reads-reads)
	}
	if err := pm.read(0x8fe0, buf); err == nil {
		t.Error("read(0x8fe0) across into an unreadable page did not fail")
	}
	// Nothing more than maxMemPages pages.
	big := &memOnly{lo: 0x10000, mem: make([]byte, (maxMemPages+4)*memPageSize)}
	pm = &pageMemory{s: &session{p: big}, pid: 1}
	var addrs []uint64
	for i := uint64(0); i < maxMemPages+4; i++ {
		addrs = append(addrs, big.lo+i*memPageSize+8)
	}
	pm.prefetch(addrs)
	if len(pm.pages) != maxMemPages || big.batches != 1 {
		t.Errorf("prefetch of %d pages: %d kept, %d batches; want %d, 1", len(addrs), len(pm.pages), big.batches, maxMemPages)
	}
}
