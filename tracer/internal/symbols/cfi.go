package symbols

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sort"

	"github.com/go-delve/delve/pkg/dwarf/frame"
)

// Call-frame information is looked up one FDE at a time through
// .eh_frame_hdr, the sorted (initial location, FDE address) table the
// linker writes for the C++ unwinder: parsing the whole of libc's
// .eh_frame (3,700 FDEs) for the handful of frames of a vfork cost two
// milliseconds per run. A file without a usable table (a static program
// linked without --eh-frame-hdr) has its .eh_frame parsed whole, once.

// ehIndex is the binary-search table of .eh_frame_hdr.
type ehIndex struct {
	hdrAddr uint64 // link-time address of .eh_frame_hdr: the table's base
	table   []byte // n pairs of DW_EH_PE_datarel|sdata4 values
	n       int
	mask    uint64 // address mask of the file's class
}

const (
	ehPEudata4  = 0x03
	ehPEsdata4  = 0x0b
	ehPEdatarel = 0x30
	ehPEomit    = 0xff
)

// parseEhFrameHdr reads the header of .eh_frame_hdr (version 1); ok is false
// when it has no table vtrace can search (only datarel|sdata4 entries are
// read: what GNU ld, gold, lld and mold write).
func parseEhFrameHdr(data []byte, addr uint64, ptrSize int) (ix ehIndex, ok bool) {
	if len(data) < 4 || data[0] != 1 || data[3] != ehPEdatarel|ehPEsdata4 {
		return ix, false
	}
	off := 4
	// eh_frame_ptr: vtrace has the section itself; only its size matters.
	switch data[1] & 0x0f {
	case 0x00, 0x08:
		off += ptrSize
	case 0x02, 0x0a:
		off += 2
	case 0x03, 0x0b:
		off += 4
	case 0x04, 0x0c:
		off += 8
	default:
		return ix, false
	}
	if (data[2] != ehPEudata4 && data[2] != ehPEsdata4) || len(data) < off+4 {
		return ix, false
	}
	n := int(binary.LittleEndian.Uint32(data[off:]))
	off += 4
	if n < 0 || n > (len(data)-off)/8 {
		return ix, false
	}
	ix = ehIndex{hdrAddr: addr, table: data[off : off+8*n], n: n, mask: ^uint64(0)}
	if ptrSize == 4 {
		ix.mask = 0xffffffff
	}
	return ix, true
}

func (ix *ehIndex) field(i, j int) uint64 {
	return (ix.hdrAddr + uint64(int64(int32(binary.LittleEndian.Uint32(ix.table[8*i+4*j:]))))) & ix.mask
}

func (ix *ehIndex) loc(i int) uint64     { return ix.field(i, 0) }
func (ix *ehIndex) fdeAddr(i int) uint64 { return ix.field(i, 1) }

type fdeKey struct{ bias, off uint64 }

// Bounds of the CFI caches of one Binary: FDEs found through
// .eh_frame_hdr, and whole-section parses (one per load bias).
const (
	maxCachedFDEs   = 1024
	maxCachedBiases = 4
)

// FDEForPC returns the call-frame information entry covering a runtime pc
// of this file mapped with load bias bias.
func (b *Binary) FDEForPC(pc, bias uint64) (*frame.FrameDescriptionEntry, error) {
	if b.ehFrame == nil {
		return nil, errors.New("no .eh_frame")
	}
	if !b.ehHdrOK {
		fdes, err := b.FDEs(bias)
		if err != nil {
			return nil, err
		}
		return fdes.FDEForPC(pc)
	}
	ix := &b.ehHdr
	link := (pc - bias) & ix.mask
	i := sort.Search(ix.n, func(i int) bool { return ix.loc(i) > link }) - 1
	// Several entries may start at one address (an empty FDE before a real
	// one): try each.
	for j := i; j >= 0 && ix.loc(j) == ix.loc(i); j-- {
		fde, err := b.fdeAt(ix.fdeAddr(j)-b.ehFrameAddr, bias)
		if err != nil {
			return nil, err
		}
		if fde.Cover(pc) {
			return fde, nil
		}
	}
	return nil, &frame.ErrNoFDEForPC{PC: pc}
}

// maxCFIGap bounds how far past the end of a function's call-frame
// information a pc may lie for cfiGapFunc to take it for that function's,
// and how much code past that end it gives.
const maxCFIGap = 32

// cfiGapFunc finds the function around a runtime pc that no call-frame
// information covers when that function's CFI ends right before a system
// call instruction and pc lies past it (at most maxCFIGap bytes): glibc's
// clone and clone3 end their CFI there (cfi_endproc: the child's unwind
// rules would be wrong), and a vfork-like call's parent stops right after
// the syscall. The function is taken to run from that FDE's start to at
// most maxCFIGap bytes past its end, and not into the next FDE (clone3's
// child code, thread_start, has one of its own), in link-time addresses.
// Only a system call there: any other code past an FDE's end may be
// another function, without CFI, that the FDE's function does not fall
// into (the review's case: one ending in a call of abort, then a hidden
// function) — stepCode would then take the wrong function's pushes. false
// when pc is covered, not in such a gap, or the gap's function cannot be
// bounded. FuncCode's users check the code they are given: stepCode that
// it can follow it from the start to pc, funcWrites that it ends in a
// return or a jump.
func (b *Binary) cfiGapFunc(pc, bias uint64) (start, end uint64, ok bool) {
	if b.ehFrame == nil {
		return 0, 0, false
	}
	fde, next, ok := b.fdeBefore(pc, bias)
	if !ok || fde.Cover(pc) || pc <= fde.End() || pc-fde.End() > maxCFIGap {
		return 0, 0, false
	}
	gapEnd := min(next, fde.End()-bias+maxCFIGap)
	code, ok := b.codeAt(fde.End()-bias, gapEnd)
	if !ok || !syscallInsn(code, b.Arch.PtrSize) {
		return 0, 0, false
	}
	return fde.Begin() - bias, gapEnd, true
}

// syscallInsn reports whether code starts with a system call instruction:
// syscall (0f 05); on i386 also int $0x80 (cd 80) and glibc's call through
// the vDSO's entry, call *%gs:0x10 (65 ff 15 10 00 00 00).
func syscallInsn(code []byte, ptrSize int) bool {
	switch {
	case bytes.HasPrefix(code, []byte{0x0f, 0x05}):
		return true
	case ptrSize == 4 && bytes.HasPrefix(code, []byte{0xcd, 0x80}):
		return true
	case ptrSize == 4 && bytes.HasPrefix(code, []byte{0x65, 0xff, 0x15, 0x10, 0, 0, 0}):
		return true
	}
	return false
}

// fdeBefore returns the FDE that starts nearest at or below a runtime pc
// (of several starting there, the longest) and the link-time start of the
// next FDE; false when there is none either side. Through
// .eh_frame_hdr's table where there is one (static binaries have none:
// gcc passes --eh-frame-hdr only for dynamic links), else through the whole
// section.
func (b *Binary) fdeBefore(pc, bias uint64) (*frame.FrameDescriptionEntry, uint64, bool) {
	var fde *frame.FrameDescriptionEntry
	if b.ehHdrOK {
		ix := &b.ehHdr
		link := (pc - bias) & ix.mask
		i := sort.Search(ix.n, func(i int) bool { return ix.loc(i) > link }) - 1
		if i < 0 || i+1 >= ix.n {
			return nil, 0, false
		}
		for j := i; j >= 0 && ix.loc(j) == ix.loc(i); j-- {
			f, err := b.fdeAt(ix.fdeAddr(j)-b.ehFrameAddr, bias)
			if err != nil {
				return nil, 0, false
			}
			if fde == nil || f.End() > fde.End() {
				fde = f
			}
		}
		return fde, ix.loc(i + 1), true
	}
	fdes, err := b.FDEs(bias)
	if err != nil {
		return nil, 0, false
	}
	next := uint64(0)
	for _, f := range fdes {
		switch {
		case f.Begin() <= pc:
			if fde == nil || f.Begin() > fde.Begin() || f.Begin() == fde.Begin() && f.End() > fde.End() {
				fde = f
			}
		case next == 0 || f.Begin() < next:
			next = f.Begin()
		}
	}
	if fde == nil || next == 0 {
		return nil, 0, false
	}
	return fde, next - bias, true
}

// fdeAt parses the FDE at offset off of .eh_frame, with its CIE. delve's
// parser reads a whole section, so it is given one made of the two entries:
// the CIE, then the FDE with its CIE pointer rewritten, placed at an
// address that puts the FDE at its real one (its pc-relative initial
// location depends on it; nothing in a CIE that delve keeps does).
func (b *Binary) fdeAt(off, bias uint64) (*frame.FrameDescriptionEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fdeAtLocked(off, bias)
}

func (b *Binary) fdeAtLocked(off, bias uint64) (*frame.FrameDescriptionEntry, error) {
	key := fdeKey{bias, off}
	if fde, ok := b.fdeCache[key]; ok {
		return fde, nil
	}
	sec := b.ehFrame
	errBad := errors.New(".eh_frame_hdr points outside .eh_frame")
	entry := func(at uint64) ([]byte, bool) {
		if at > uint64(len(sec)) || uint64(len(sec))-at < 8 {
			return nil, false
		}
		n := uint64(binary.LittleEndian.Uint32(sec[at:]))
		if n < 4 || n == 0xffffffff || n > uint64(len(sec))-at-4 {
			// A terminator (0), 64-bit DWARF (delve reads neither), or
			// too short to hold its CIE id or pointer.
			return nil, false
		}
		return sec[at : at+4+n], true
	}
	fdeBytes, ok := entry(off)
	if !ok {
		return nil, errBad
	}
	ciePtr := uint64(binary.LittleEndian.Uint32(fdeBytes[4:]))
	if ciePtr == 0 || ciePtr > off+4 {
		return nil, errBad // a CIE, not an FDE
	}
	cieBytes, ok := entry(off + 4 - ciePtr)
	if !ok {
		return nil, errBad
	}
	buf := make([]byte, 0, len(cieBytes)+len(fdeBytes))
	buf = append(buf, cieBytes...)
	buf = append(buf, fdeBytes...)
	binary.LittleEndian.PutUint32(buf[len(cieBytes)+4:], uint32(len(cieBytes)+4))
	base := b.ehFrameAddr + off - uint64(len(cieBytes))
	if base == 0 {
		return nil, errBad // delve reads a section at address 0 as .debug_frame
	}
	fdes, err := b.parseCFI(buf, bias, base, off)
	if err != nil {
		return nil, err
	}
	if len(fdes) != 1 {
		return nil, errBad
	}
	if b.fdeCache == nil || len(b.fdeCache) >= maxCachedFDEs {
		// Entries are per load bias, and under ASLR every process has
		// its own: a vtrace that follows thousands of processes would
		// keep a few FDEs of each for good (TestSoak). Start afresh.
		b.fdeCache = map[fdeKey]*frame.FrameDescriptionEntry{}
	}
	b.fdeCache[key] = fdes[0]
	return fdes[0], nil
}
