package symbols

import (
	"encoding/binary"
	"fmt"

	"github.com/go-delve/delve/pkg/dwarf/frame"
)

// delve's call-frame parser trusts the lengths it reads (an augmentation
// length, a LEB128 running off the end): a malformed entry makes it panic
// with a slice bound or a huge allocation. A program runs natively with a
// broken .eh_frame (nothing reads it until an exception unwinds), so vtrace
// must too: every call into delve's parser goes through parseCFI, and a
// panic there costs the entries it was given — one FDE where
// .eh_frame_hdr finds them one at a time — not the run.

// CFIError says that a file's call-frame information could not be read
// where it was asked for; the unwinder then reads the machine code or the
// frame pointers instead.
type CFIError struct {
	Path string // the file
	Off  uint64 // offset of the entry in .eh_frame (whole section: 0)
	Err  any    // what the parser said (an error or a recovered panic value)
}

// CFIUnreadable tells the unwinder that CFI exists but is broken.
func (e *CFIError) CFIUnreadable() bool { return true }

func (e *CFIError) Error() string {
	return fmt.Sprintf("%s .eh_frame+%#x: %v", e.Path, e.Off, e.Err)
}

// parseCFI is frame.Parse, its panics turned into a *CFIError.
func (b *Binary) parseCFI(data []byte, bias, addr, off uint64) (fdes frame.FrameDescriptionEntries, err error) {
	defer func() {
		if r := recover(); r != nil {
			fdes, err = nil, &CFIError{Path: b.Path, Off: off, Err: r}
		}
	}()
	fdes, err = frame.Parse(data, binary.LittleEndian, bias, b.Arch.PtrSize, addr)
	if err != nil {
		return nil, &CFIError{Path: b.Path, Off: off, Err: err}
	}
	return fdes, nil
}

// eachFDE calls fn with the offset of every FDE of .eh_frame, walking the
// entries' own lengths, which it checks against the section.
func eachFDE(sec []byte, fn func(off uint64)) {
	for off := uint64(0); uint64(len(sec))-off >= 8; {
		n := uint64(binary.LittleEndian.Uint32(sec[off:]))
		if n == 0 || n == 0xffffffff || n > uint64(len(sec))-off-4 {
			return // the terminator, 64-bit DWARF (delve reads none), or past the end
		}
		if binary.LittleEndian.Uint32(sec[off+4:]) != 0 {
			fn(off)
		}
		off += 4 + n
	}
}
