package symbols

import (
	"debug/elf"
	"encoding/binary"
	"strings"
)

// PLT stubs have no symbols of their own; objdump names them after the GOT
// slot they jump through. addPLT does the same: it decodes each stub's
// indirect jmp, finds the GOT slot, and names the stub after the symbol of
// the relocation that fills the slot (JUMP_SLOT, GLOB_DAT, or for static
// binaries the IRELATIVE resolver).

const (
	rJumpSlot   = 7  // R_X86_64_JUMP_SLOT and R_386_JUMP_SLOT
	rGlobDat    = 6  // R_X86_64_GLOB_DAT and R_386_GLOB_DAT
	rIRel64     = 37 // R_X86_64_IRELATIVE
	rIRel32     = 42 // R_386_IRELATIVE
	pltFallback = 16
)

func (b *Binary) addPLT(f *image, secBase uint16) {
	got := b.gotNames(f)
	if len(got) == 0 {
		return
	}
	pltTab := b.addStrtab(nil)
	defer func() { b.strtabs[pltTab] = b.pltStrs }()
	var gotPLT uint64 // %ebx in i386 PIC code points at .got.plt
	if s := f.Section(".got.plt"); s != nil {
		gotPLT = s.Addr
	} else if s := f.Section(".got"); s != nil {
		gotPLT = s.Addr
	}
	for i, s := range f.Sections {
		switch s.Name {
		case ".plt", ".plt.sec", ".plt.got", ".iplt":
		default:
			continue
		}
		data, err := f.sectionData(s)
		if err != nil {
			continue
		}
		ent := pltStride(data, b.Arch.PtrSize, s.Entsize)
		for off := uint64(0); off+ent <= uint64(len(data)); off += ent {
			slot, ok := stubTarget(data[off:off+ent], s.Addr+off, b.Arch.PtrSize, gotPLT)
			if !ok {
				continue
			}
			if n := got[slot]; n != "" {
				sec := uint16(noSection)
				if secBase != noSection {
					sec = secBase + uint16(i)
				}
				b.syms = append(b.syms, symbol{addr: s.Addr + off, size: uint32(ent), name: uint32(len(b.pltStrs)), tab: pltTab, rank: maxRank, sec: sec})
				b.pltStrs = append(append(b.pltStrs, n...), "@plt\x00"...)
			}
		}
	}
}

// pltStride returns the size of a PLT section's stubs. sh_entsize cannot be
// trusted: ld sets it to 4 for i386 .plt (whose stubs are 16 bytes) and to 0
// for the 8-byte stubs of a static executable's .plt. The stride is instead
// the most common distance between the stubs' indirect jmps (one per stub),
// leaving out PLT0's — the lazy-binding header, which starts with a push
// through the GOT. Without two stubs to measure, a plausible sh_entsize is
// taken, then the size of a lone stub, then 16.
func pltStride(code []byte, ptrSize int, entsize uint64) uint64 {
	var pos []int
	for i := 0; i+6 <= len(code); i++ {
		if isIndirectJmp(code[i:], ptrSize) {
			pos = append(pos, i)
		}
	}
	plt0 := len(code) >= 2 && code[0] == 0xff && (code[1] == 0x35 || code[1] == 0xb3 && ptrSize == 4)
	if plt0 && len(pos) > 0 {
		pos = pos[1:]
	}
	count := map[uint64]int{}
	for i := 1; i < len(pos); i++ {
		count[uint64(pos[i]-pos[i-1])]++
	}
	var best uint64
	for d, n := range count {
		if n > count[best] || n == count[best] && d < best {
			best = d
		}
	}
	switch {
	case best >= 8 && best <= 64:
		return best
	case entsize >= 8 && entsize <= 64:
		return entsize
	case !plt0 && len(pos) == 1 && len(code) >= 8 && len(code) <= 64:
		return uint64(len(code))
	}
	return pltFallback
}

// isIndirectJmp reports whether code starts with an indirect jmp through
// memory of the forms PLT stubs use.
func isIndirectJmp(code []byte, ptrSize int) bool {
	return len(code) >= 6 && code[0] == 0xff && (code[1] == 0x25 || code[1] == 0xa3 && ptrSize == 4)
}

// stubTarget finds the GOT slot a PLT stub jumps through.
func stubTarget(code []byte, addr uint64, ptrSize int, gotPLT uint64) (uint64, bool) {
	for i := 0; i+6 <= len(code); i++ {
		if code[i] != 0xff {
			continue
		}
		disp := binary.LittleEndian.Uint32(code[i+2:])
		switch {
		case code[i+1] == 0x25 && ptrSize == 8: // jmp *disp(%rip)
			return addr + uint64(i) + 6 + uint64(int64(int32(disp))), true
		case code[i+1] == 0x25: // jmp *abs32
			return uint64(disp), true
		case code[i+1] == 0xa3 && ptrSize == 4: // jmp *disp(%ebx)
			return uint64(uint32(gotPLT + uint64(int64(int32(disp))))), true
		}
	}
	return 0, false
}

// gotNames maps GOT slot addresses to the symbol names that fill them.
func (b *Binary) gotNames(f *image) map[uint64]string {
	dyn, _ := readSymtab(f, elf.SHT_DYNSYM)
	out := map[uint64]string{}
	name := func(idx uint64) string {
		if dyn == nil || idx == 0 || idx >= uint64(dyn.len()) {
			return ""
		}
		n := cString(dyn.strtab, dyn.entry(int(idx)).name)
		if i := strings.IndexByte(n, '@'); i > 0 {
			n = n[:i]
		}
		return n
	}
	// IRELATIVE slots: the ifunc resolver's address carries the
	// user-visible name, the STT_GNU_IFUNC symbol (strcpy), usually next to
	// a local alias of the resolver function itself (strcpy_ifunc). The
	// best-ranked symbol at the address names it, the first of those
	// ranked alike; found once the relocations are read.
	irelSlots := map[uint64]uint64{} // GOT slot -> resolver address
	for _, s := range f.Sections {
		if s.Type != elf.SHT_RELA && s.Type != elf.SHT_REL {
			continue
		}
		data, err := f.sectionData(s)
		if err != nil {
			continue
		}
		if b.Arch.PtrSize == 8 && s.Type == elf.SHT_RELA {
			for o := 0; o+24 <= len(data); o += 24 {
				off := binary.LittleEndian.Uint64(data[o:])
				info := binary.LittleEndian.Uint64(data[o+8:])
				add := binary.LittleEndian.Uint64(data[o+16:])
				switch uint32(info) {
				case rJumpSlot, rGlobDat:
					out[off] = name(info >> 32)
					delete(irelSlots, off)
				case rIRel64:
					irelSlots[off] = add
				}
			}
		}
		if b.Arch.PtrSize == 4 && s.Type == elf.SHT_REL {
			for o := 0; o+8 <= len(data); o += 8 {
				off := uint64(binary.LittleEndian.Uint32(data[o:]))
				info := binary.LittleEndian.Uint32(data[o+4:])
				switch info & 0xff {
				case rJumpSlot, rGlobDat:
					out[off] = name(uint64(info >> 8))
					delete(irelSlots, off)
				case rIRel32:
					if v, ok := readWordAt(f, off); ok {
						irelSlots[off] = v
					}
				}
			}
		}
	}
	if len(irelSlots) > 0 {
		best := map[uint64]int{}
		for _, target := range irelSlots {
			best[target] = -1
		}
		for i, s := range b.syms {
			if j, ok := best[s.addr]; ok && (j < 0 || s.rank > b.syms[j].rank) {
				best[s.addr] = i
			}
		}
		for slot, target := range irelSlots {
			if i := best[target]; i >= 0 {
				out[slot] = b.nameOf(b.syms[i])
			} else {
				out[slot] = ""
			}
		}
	}
	for k, v := range out {
		if v == "" {
			delete(out, k)
		}
	}
	return out
}

// readWordAt reads a 32-bit word at a link-time address from the file.
func readWordAt(f *image, addr uint64) (uint64, bool) {
	for _, s := range f.Sections {
		if s.Type == elf.SHT_NOBITS || addr < s.Addr || addr+4 > s.Addr+s.Size || s.Addr == 0 {
			continue
		}
		// The section's bytes as the file holds them (a compressed
		// section has no ReaderAt: debug/elf leaves it nil).
		data, err := f.sectionData(s)
		if off := addr - s.Addr; err != nil || off > uint64(len(data)) || uint64(len(data))-off < 4 {
			return 0, false
		} else {
			return uint64(binary.LittleEndian.Uint32(data[off:])), true
		}
	}
	return 0, false
}
