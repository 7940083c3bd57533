package tracer

import (
	"encoding/binary"
	"fmt"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
	"github.com/vtrace/vtrace/tracer/internal/symbols"
)

// addrSpace is one memory image (an mm): shared by a vfork parent and its
// child until the child execs. It holds what vtrace knows about the code
// mapped there — symbols, CFI, decoded instructions — and the int3
// breakpoints planted in it.
type addrSpace struct {
	arch *arch.Arch
	// pid is a task of the image, whose maps are read when the symbols
	// are first needed.
	pid int
	// space is nil until first needed (syms): most exec'd programs (a
	// vfork child's /bin/true) are never asked about, and a program's
	// libraries are mapped only after its exec. Reloaded at each vfork
	// (new mappings, dlopen).
	space *symbols.Space
	code  map[uint64]*insnEntry
	bps   map[uint64]*breakpoint
}

type insnEntry struct {
	in  *disasm.Insn
	err error
}

// breakpoint is an int3 planted by a story.
type breakpoint struct {
	addr   uint64
	orig   byte
	owners map[int]bool // stories that need it (a nested story may share one)
}

func (s *session) newAddrSpace(pid int) (*addrSpace, error) {
	a, err := symbols.ProcessArch(pid)
	if err != nil {
		return nil, fmt.Errorf("read address space of %d: %w", pid, err)
	}
	return &addrSpace{arch: a, pid: pid, code: map[uint64]*insnEntry{}, bps: map[uint64]*breakpoint{}}, nil
}

// syms returns the image's mappings and modules, reading them on first use.
func (mm *addrSpace) syms() *symbols.Space {
	if mm.space == nil {
		sp, err := symbols.LoadSpace(mm.pid)
		if err != nil {
			sp = symbols.EmptySpace(mm.arch)
		}
		mm.space = sp
	}
	return mm.space
}

// refresh re-reads the mappings (libraries loaded since exec) through
// pid, which must be stopped.
func (s *session) refresh(mm *addrSpace, pid int) {
	if sp, err := symbols.LoadSpace(pid); err == nil {
		mm.space = sp
	}
}

// sym symbolises a code address.
func (s *session) sym(mm *addrSpace, pc uint64) *event.Sym {
	if mm == nil {
		return nil
	}
	y := mm.syms().Symbolize(pc)
	if y.Name == "" && y.Module == "" {
		return nil
	}
	return &event.Sym{Sym: y.Name, Off: y.Off, Module: y.Module, File: y.File, Line: y.Line, PastEnd: y.PastEnd}
}

// insnAt decodes the instruction at pc, from a per-address-space cache.
// Bytes hidden by planted int3s are restored before decoding.
func (s *session) insnAt(mm *addrSpace, pid int, pc uint64) (*disasm.Insn, error) {
	if e, ok := mm.code[pc]; ok {
		return e.in, e.err
	}
	buf := s.insnBuf[:]
	// An instruction may end right before an unmapped page: retry shorter.
	n := len(buf)
	var err error
	for ; n > 0; n -= 4 {
		if err = s.t.ReadMem(pid, pc, buf[:n]); err == nil {
			break
		}
	}
	var e insnEntry
	if n <= 0 {
		e.err = fmt.Errorf("read code at %#x: %w", pc, err)
	} else {
		for a, bp := range mm.bps {
			if a >= pc && a < pc+uint64(n) {
				buf[a-pc] = bp.orig
			}
		}
		e.in, e.err = disasm.Decode(buf[:n], pc, mm.arch)
	}
	mm.code[pc] = &e
	return e.in, e.err
}

// insnText renders an instruction objdump-style with runtime symbols.
func (s *session) insnText(mm *addrSpace, in *disasm.Insn) string {
	if in == nil {
		return "(bad)"
	}
	return in.FormatATT(func(a uint64) string { return s.symText(mm, a) })
}

// symText is the <sym+0xoff> form objdump prints inside instructions.
func (s *session) symText(mm *addrSpace, a uint64) string {
	y := mm.syms().Symbolize(a)
	if y.Name == "" {
		return ""
	}
	if y.Off == 0 {
		return y.Name
	}
	return fmt.Sprintf("%s+%#x", y.Name, y.Off)
}

// plant writes an int3 at addr for story owner (no-op if one is there).
func (s *session) plant(mm *addrSpace, pid int, addr uint64, owner int) error {
	if bp, ok := mm.bps[addr]; ok {
		bp.owners[owner] = true
		return nil
	}
	var b [1]byte
	if err := s.t.ReadMem(pid, addr, b[:]); err != nil {
		return err
	}
	if err := s.pokeByte(pid, addr, 0xcc); err != nil {
		return err
	}
	mm.bps[addr] = &breakpoint{addr: addr, orig: b[0], owners: map[int]bool{owner: true}}
	return nil
}

// unplant restores the original byte and resumes tasks parked on it.
func (s *session) unplant(mm *addrSpace, pid int, addr uint64) error {
	bp, ok := mm.bps[addr]
	if !ok {
		return nil
	}
	delete(mm.bps, addr)
	// Write through a task that still maps this memory: not one that has
	// exec'd since (a vfork child stopped by its exec inside a call run at
	// full speed — its pid now shows the new program), nor one that is gone.
	err := fmt.Errorf("no task left to restore the int3 at %#x", addr)
	if t := s.tasks[pid]; t == nil || !t.execed {
		err = s.pokeByte(pid, addr, bp.orig)
	}
	if err != nil {
		for _, t := range s.tasks {
			if t.proc.mm == mm && t.pid != pid && !t.ended && !t.execed {
				if err = s.pokeByte(t.pid, addr, bp.orig); err == nil {
					break
				}
			}
		}
	}
	for _, t := range s.tasks {
		if t.proc.mm == mm && t.parkedAt == addr {
			t.parkedAt = 0
			s.resume(t, 0)
		}
	}
	return err
}

// release drops a story's claim on the breakpoint at addr and removes it
// when no story needs it any more.
func (s *session) release(mm *addrSpace, pid int, addr uint64, owner int) error {
	bp, ok := mm.bps[addr]
	if !ok {
		return nil
	}
	delete(bp.owners, owner)
	if len(bp.owners) > 0 {
		return nil
	}
	return s.unplant(mm, pid, addr)
}

// releaseAll drops every claim of a story: no int3 of it may survive into
// the parent's run (the memory is shared).
func (s *session) releaseAll(mm *addrSpace, pid int, owner int) error {
	var first error
	orig := map[uint64]byte{}
	for a, bp := range mm.bps {
		if bp.owners[owner] {
			orig[a] = bp.orig
		}
		if err := s.release(mm, pid, a, owner); err != nil && first == nil {
			first = err
		}
	}
	// Verify, by reading the text back, that every byte is restored.
	for a, o := range orig {
		if _, still := mm.bps[a]; still {
			continue // another story still needs it
		}
		var b [1]byte
		if err := s.t.ReadMem(pid, a, b[:]); err == nil && b[0] != o {
			s.note(owner, fmt.Sprintf("int3 left in the parent's code at %#x (byte %#02x, was %#02x)", a, b[0], o))
		}
	}
	return first
}

// pokeByte changes one byte of text through a word-sized PTRACE_POKEDATA.
func (s *session) pokeByte(pid int, addr uint64, b byte) error {
	var w [8]byte
	if err := s.t.ReadMem(pid, addr, w[:]); err != nil {
		// Near the end of a mapping: write the word that ends at addr.
		if err2 := s.t.ReadMem(pid, addr-7, w[:]); err2 != nil {
			return err
		}
		w[7] = b
		return s.t.WriteMem(pid, addr-7, w[:])
	}
	w[0] = b
	return s.t.WriteMem(pid, addr, w[:])
}

// parkIfForeignBreakpoint handles a SIGTRAP of a task that ran into a
// breakpoint planted for another task of the same address space (another
// thread of a vfork parent): rewind it onto the original instruction and
// leave it stopped until the breakpoint is removed.
func (s *session) parkIfForeignBreakpoint(t *task) bool {
	var regs arch.Regs
	if s.t.Regs(t.pid, &regs) != nil {
		return false
	}
	at := regs.PC() - 1
	if _, ok := t.proc.mm.bps[at]; !ok {
		return false
	}
	regs.SetPC(at)
	if s.t.SetRegs(t.pid, &regs) != nil {
		return false
	}
	t.parkedAt = at
	return true
}

// readWord reads one little-endian word of the given size.
func (s *session) readWord(pid int, addr uint64, size int) (uint64, error) {
	var b [8]byte
	if err := s.t.ReadMem(pid, addr, b[:size]); err != nil {
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
