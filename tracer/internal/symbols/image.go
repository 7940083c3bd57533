package symbols

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// image is an ELF file mapped read-only into vtrace's memory. Its
// sections are slices of the mapping: reading libc's and its debug file's
// symbol tables and CFI through debug/elf copied half a megabyte into the
// heap per run (zeroed first, then garbage to collect), where vtrace only
// touches a few pages of most of them. A Binary keeps the mappings of its
// file and of its debug file for good: symbol names, CFI and code are read
// from them on demand, and Binaries live in a process-wide cache. (A file
// truncated while mapped would make those reads fault: the files are ones
// the traced process maps itself, and package managers replace files by
// renaming them, not by truncating.)
type image struct {
	*elf.File
	data   []byte
	mapped bool
	id     *fileID // the file's identity (fstat of the descriptor it was mapped from); nil for memory images
}

// openImage maps the file at path and parses its ELF headers. A file that
// cannot be mapped is read whole instead.
func openImage(path string) (*image, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	var data []byte
	mapped := false
	if size := st.Size(); size > 0 && size == int64(int(size)) {
		data, err = syscall.Mmap(int(fd.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_PRIVATE)
		mapped = err == nil
	}
	if !mapped {
		if data, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		if mapped {
			_ = syscall.Munmap(data)
		}
		return nil, err
	}
	return &image{File: f, data: data, mapped: mapped, id: statID(st)}, nil
}

// memImage parses an ELF image held in memory (the vDSO read from a
// process).
func memImage(data []byte) (*image, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return &image{File: f, data: data}, nil
}

// close unmaps the file: no slice of its sections may be used after.
func (im *image) close() {
	if im.mapped {
		_ = syscall.Munmap(im.data)
	}
	im.data, im.mapped = nil, false
}

var errNoBits = errors.New("section has no data in the file")

// sectionData returns a section's bytes: a slice of the mapping, or for a
// compressed section its decompressed copy.
func (im *image) sectionData(s *elf.Section) ([]byte, error) {
	if s.Type == elf.SHT_NOBITS {
		return nil, errNoBits
	}
	if s.Flags&elf.SHF_COMPRESSED != 0 || strings.HasPrefix(s.Name, ".zdebug") {
		return s.Data()
	}
	if s.Offset > uint64(len(im.data)) || s.FileSize > uint64(len(im.data))-s.Offset {
		return nil, fmt.Errorf("section %s [%#x,+%#x) past the end of the file", s.Name, s.Offset, s.FileSize)
	}
	return im.data[s.Offset : s.Offset+s.FileSize : s.Offset+s.FileSize], nil
}

// section returns the bytes of the named section (nil if absent or empty).
func (im *image) section(name string) ([]byte, *elf.Section) {
	s := im.Section(name)
	if s == nil {
		return nil, nil
	}
	d, err := im.sectionData(s)
	if err != nil {
		return nil, nil
	}
	return d, s
}
