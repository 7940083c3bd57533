// Package elfpatch makes the crafted ELF files of vtrace's robustness
// tests: a copy of a real binary with one header field or one byte of its
// call-frame information changed, the way a corrupt or hostile file would
// have it. Only ELF64 little-endian files (what the tests start from).
package elfpatch

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
)

// section returns the offset of the section header of the named section.
func section(data []byte, name string) (hdr int, sh elf.Section64, err error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return 0, sh, err
	}
	if f.Class != elf.ELFCLASS64 {
		return 0, sh, fmt.Errorf("not an ELF64 file")
	}
	shoff := binary.LittleEndian.Uint64(data[0x28:])
	shentsize := uint64(binary.LittleEndian.Uint16(data[0x3a:]))
	for i, s := range f.Sections {
		if s.Name == name {
			hdr = int(shoff + uint64(i)*shentsize)
			if err := binary.Read(bytes.NewReader(data[hdr:]), binary.LittleEndian, &sh); err != nil {
				return 0, sh, err
			}
			return hdr, sh, nil
		}
	}
	return 0, sh, fmt.Errorf("no section %s", name)
}

// SetSectionSize returns a copy of data with the named section's sh_size
// set to size.
func SetSectionSize(data []byte, name string, size uint64) ([]byte, error) {
	hdr, _, err := section(data, name)
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(data)
	binary.LittleEndian.PutUint64(out[hdr+32:], size) // sh_size
	return out, nil
}

// FDEs returns the file offsets of the FDEs of .eh_frame.
func FDEs(data []byte) ([]int, error) {
	_, sh, err := section(data, ".eh_frame")
	if err != nil {
		return nil, err
	}
	var out []int
	end := sh.Off + sh.Size
	for off := sh.Off; off+8 <= end; {
		n := uint64(binary.LittleEndian.Uint32(data[off:]))
		if n == 0 || n == 0xffffffff {
			break
		}
		if binary.LittleEndian.Uint32(data[off+4:]) != 0 {
			out = append(out, int(off))
		}
		off += 4 + n
	}
	return out, nil
}

// BreakFDEAugmentation returns a copy of data in which every FDE's
// augmentation length (the byte after its 4-byte initial location and
// range, as gcc writes them for a "zR" CIE with pcrel|sdata4 pointers) is
// set to v. The program still runs: nothing reads its CFI unless an
// exception or a debugger unwinds it.
func BreakFDEAugmentation(data []byte, v byte) ([]byte, error) {
	fdes, err := FDEs(data)
	if err != nil {
		return nil, err
	}
	if len(fdes) == 0 {
		return nil, fmt.Errorf("no FDE in .eh_frame")
	}
	out := bytes.Clone(data)
	for _, off := range fdes {
		out[off+16] = v
	}
	return out, nil
}
