package tracer

import (
	"fmt"
	"slices"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// Breakpoints: fast mode plants int3s at return addresses so that a callee
// runs at full speed until it returns. The bytes are in memory the parent
// shares with its vfork child: every int3 of a story is removed before the
// parent runs again, and other threads of the parent that run into one
// meanwhile are parked on it until it is gone.

// breakpoint is an int3 planted by a story.
type breakpoint struct {
	addr   uint64
	orig   byte
	owners map[int]bool // stories that need it (a nested story may share one)
}

// plant writes an int3 at addr for story owner (no-op if one is there).
func (s *session) plant(mm *addrSpace, pid int, addr uint64, owner int) error {
	if bp, ok := mm.bps[addr]; ok {
		bp.owners[owner] = true
		return nil
	}
	orig, err := s.pokeByte(pid, addr, 0xcc)
	if err != nil {
		return err
	}
	mm.bps[addr] = &breakpoint{addr: addr, orig: orig, owners: map[int]bool{owner: true}}
	delete(mm.removed, addr)
	return nil
}

// plantAll plants int3s at addrs for story owner (a block's exits): the
// aligned words that hold them read in one batch, then written one by one
// (PTRACE_POKEDATA), where plant would read each. A word it cannot read
// so is planted as plant does. On an error, the int3s planted are left to
// the caller's unclaimMany.
func (s *session) plantAll(mm *addrSpace, pid int, addrs []uint64, owner int) error {
	_, _, err := s.plantAllReading(mm, pid, addrs, owner, 0)
	return err
}

// plantAllReading is plantAll, reading besides the aligned word at also
// (not 0; a word of data, not of the code planted) in the same batch: its
// bytes, ok false when it could not be read.
func (s *session) plantAllReading(mm *addrSpace, pid int, addrs []uint64, owner int, also uint64) (alsoWord [8]byte, ok bool, err error) {
	var bases []uint64
	for _, a := range addrs {
		if bp, ok := mm.bps[a]; ok {
			bp.owners[owner] = true
		} else if !slices.Contains(bases, a&^7) {
			bases = append(bases, a&^7)
		}
	}
	n := len(bases)
	if also != 0 {
		bases = append(bases, also)
	}
	words, failed := s.readWords(pid, bases)
	if also != 0 {
		alsoWord, ok = words[n], !contains(failed, n)
		bases = bases[:n]
	}
	for i, base := range bases {
		if contains(failed, i) {
			for _, a := range addrs {
				if a&^7 == base {
					if err := s.plant(mm, pid, a, owner); err != nil {
						return alsoWord, ok, err
					}
				}
			}
			continue
		}
		w := words[i]
		var here []uint64
		for _, a := range addrs {
			if _, ok := mm.bps[a]; !ok && a&^7 == base && !slices.Contains(here, a) {
				here = append(here, a)
			}
		}
		orig := make([]byte, len(here))
		for k, a := range here {
			orig[k], w[a-base] = w[a-base], 0xcc
		}
		if err := s.p.WriteMem(pid, base, w[:]); err != nil {
			return alsoWord, ok, err
		}
		for k, a := range here {
			mm.bps[a] = &breakpoint{addr: a, orig: orig[k], owners: map[int]bool{owner: true}}
			delete(mm.removed, a)
		}
	}
	return alsoWord, ok, nil
}

// readWords reads the aligned 8-byte words at bases in one batch; failed
// are the indexes of those it could not read (ReadRanges).
func (s *session) readWords(pid int, bases []uint64) (words [][8]byte, failed []int) {
	words = make([][8]byte, len(bases))
	bufs := make([][]byte, len(bases))
	for i := range words {
		bufs[i] = words[i][:]
	}
	return words, s.p.ReadRanges(pid, bases, bufs)
}

// unclaimMany drops story owner's claims on the int3s at addrs and removes
// those no story needs any more: the words that hold them read in one
// batch, where unplant would read each.
func (s *session) unclaimMany(mm *addrSpace, pid int, addrs []uint64, owner int) {
	var gone []*breakpoint
	for _, a := range addrs {
		if bp, ok := mm.bps[a]; ok {
			delete(bp.owners, owner)
			if len(bp.owners) == 0 && !slices.Contains(gone, bp) {
				gone = append(gone, bp)
			}
		}
	}
	if t := s.byPID[pid]; len(gone) < 2 || t != nil && t.proc.mm != mm {
		for _, bp := range gone {
			_ = s.unplant(mm, pid, bp.addr) // writes through another task of mm if it must
		}
		return
	}
	var bases []uint64
	for _, bp := range gone {
		if !slices.Contains(bases, bp.addr&^7) {
			bases = append(bases, bp.addr&^7)
		}
	}
	words, failed := s.readWords(pid, bases)
	for i, base := range bases {
		w := words[i]
		for _, bp := range gone {
			if bp.addr&^7 == base {
				w[bp.addr-base] = bp.orig
			}
		}
		if contains(failed, i) || s.p.WriteMem(pid, base, w[:]) != nil {
			for _, bp := range gone {
				if bp.addr&^7 == base {
					_ = s.unplant(mm, pid, bp.addr)
				}
			}
			continue
		}
		for _, bp := range gone {
			if bp.addr&^7 == base {
				delete(mm.bps, bp.addr)
				mm.removed[bp.addr] = true
				s.resumeParked(mm, bp.addr)
			}
		}
	}
}

// unplant restores the original byte and resumes tasks parked on it.
func (s *session) unplant(mm *addrSpace, pid int, addr uint64) error {
	bp, ok := mm.bps[addr]
	if !ok {
		return nil
	}
	delete(mm.bps, addr)
	mm.removed[addr] = true
	// Write through a task that still maps this memory: not one that has
	// exec'd since (a vfork child stopped by its exec inside a call run at
	// full speed — its pid now shows the new program), nor one that is gone.
	err := fmt.Errorf("no task left to restore the int3 at %#x", addr)
	if t := s.byPID[pid]; t == nil || t.proc.mm == mm {
		_, err = s.pokeByte(pid, addr, bp.orig)
	}
	if err != nil {
		for _, t := range s.byPID {
			if t.proc.mm == mm && t.pid != pid && t.state != taskEnded {
				if _, err = s.pokeByte(t.pid, addr, bp.orig); err == nil {
					break
				}
			}
		}
	}
	s.resumeParked(mm, addr)
	return err
}

// resumeParked resumes the tasks parked on the int3 at addr, now gone.
func (s *session) resumeParked(mm *addrSpace, addr uint64) {
	for _, t := range s.byPID {
		if t.state == taskParked && t.proc.mm == mm && t.parkedAt == addr {
			t.parkedAt = 0
			t.set(taskRunning)
			s.cont(t, 0)
		}
	}
}

// unclaim drops a story's claim on the breakpoint at addr and removes it
// when no story needs it any more.
func (s *session) unclaim(mm *addrSpace, pid int, addr uint64, owner int) error {
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

// unclaimAll drops every claim of a story: no int3 of it may survive into
// the parent's run (the memory is shared).
func (s *session) unclaimAll(mm *addrSpace, pid int, owner int) error {
	var first error
	orig := map[uint64]byte{}
	for a, bp := range mm.bps {
		if bp.owners[owner] {
			orig[a] = bp.orig
		}
		if err := s.unclaim(mm, pid, a, owner); err != nil && first == nil {
			first = err
		}
	}
	// Verify, by reading the text back, that every byte is restored.
	for a, o := range orig {
		if _, still := mm.bps[a]; still {
			continue // another story still needs it
		}
		var b [1]byte
		if err := s.p.ReadMem(pid, a, b[:]); err == nil && b[0] != o {
			s.note(owner, event.NoteInt3Left, fmt.Sprintf("int3 left in the parent's code at %#x (byte %#02x, was %#02x)", a, b[0], o))
		}
	}
	return first
}

// pokeByte changes one byte of text and returns the byte it replaced: the
// aligned word that holds it is read and written back (an aligned word
// never straddles two pages: one process_vm_readv and one
// PTRACE_POKEDATA).
func (s *session) pokeByte(pid int, addr uint64, b byte) (byte, error) {
	var w [8]byte
	base := addr &^ 7
	if err := s.p.ReadMem(pid, base, w[:]); err == nil {
		old := w[addr-base]
		w[addr-base] = b
		return old, s.p.WriteMem(pid, base, w[:])
	}
	if err := s.p.ReadMem(pid, addr, w[:]); err != nil {
		// Near the end of a mapping: write the word that ends at addr.
		if err2 := s.p.ReadMem(pid, addr-7, w[:]); err2 != nil {
			return 0, err
		}
		old := w[7]
		w[7] = b
		return old, s.p.WriteMem(pid, addr-7, w[:])
	}
	old := w[0]
	w[0] = b
	return old, s.p.WriteMem(pid, addr, w[:])
}

// Trap codes (siginfo si_code) of the SIGTRAPs vtrace causes.
const (
	trapBrkpt  = 1 // TRAP_BRKPT: x86 reports a single-step over a syscall so
	trapTrace  = 2 // TRAP_TRACE: a single-step
	trapHWBkpt = 4 // TRAP_HWBKPT: a debug-register watchpoint
	// trapSignalStep: a single-step that delivered a signal stops at the
	// handler's first instruction with si_code SIGTRAP (5, TRAP_UNK): the
	// kernel's signal_delivered() reports it by ptrace_notify(SIGTRAP).
	// Measured here: PTRACE_SINGLESTEP with SIGUSR1 into a handler gives
	// si_signo 5, si_code 5.
	trapSignalStep = 5
	siKernel       = 0x80 // SI_KERNEL: an int3
)

// trapKind is whose a SIGTRAP is.
type trapKind int

const (
	trapOurs    trapKind = iota // a step vtrace asked for, its int3, its watchpoint
	trapProgram                 // the program's own: int3 of its own, raise, kill, its own TF
	trapRemoved                 // one of vtrace's int3s, removed since: the task was rewound onto it
)

// classifyTrap tells whose SIGTRAP stopped t: vtrace's own (a single-step
// it requested — step says whether it did —, an int3 it planted, a
// watchpoint) or the program's, which must be delivered as it would be
// without vtrace. It tells them apart by the siginfo's si_code and by the
// addresses of its int3s. A task that ran into an int3 vtrace has removed
// since is rewound onto the restored instruction (trapRemoved).
func (s *session) classifyTrap(t *task, step bool) trapKind {
	info, err := s.p.SigInfo(t.pid)
	if err != nil {
		return trapOurs // no siginfo to go by: as before, a trap of vtrace's
	}
	switch info.Code {
	case trapTrace, trapBrkpt:
		if step {
			return trapOurs
		}
		return trapProgram // its own trap flag (popf)
	case trapSignalStep:
		if step {
			return trapOurs // vtrace's step entered a signal handler
		}
		return trapProgram
	case trapHWBkpt:
		return trapOurs // only vtrace arms the debug registers
	case siKernel:
		mm := t.proc.mm
		var regs arch.Regs
		if mm == nil || s.p.Regs(t.pid, &regs) != nil {
			return trapProgram
		}
		at := regs.PC() - 1
		if _, ok := mm.bps[at]; ok {
			return trapOurs
		}
		if mm.removed[at] {
			var b [1]byte
			if s.p.ReadMem(t.pid, at, b[:]) == nil && b[0] != 0xcc {
				regs.SetPC(at)
				if s.p.SetRegs(t.pid, &regs) == nil {
					return trapRemoved
				}
			}
		}
		return trapProgram
	}
	return trapProgram // SI_USER (kill), SI_TKILL (raise), SI_QUEUE...
}

// parkIfForeignBreakpoint handles a SIGTRAP of a task that ran into a
// breakpoint planted for another task of the same address space (another
// thread of a vfork parent): rewind it onto the original instruction and
// leave it stopped until the breakpoint is removed.
func (s *session) parkIfForeignBreakpoint(t *task) bool {
	var regs arch.Regs
	if t.proc.mm == nil || s.p.Regs(t.pid, &regs) != nil {
		return false
	}
	at := regs.PC() - 1
	if _, ok := t.proc.mm.bps[at]; !ok {
		if s.classifyTrap(t, false) == trapRemoved {
			s.cont(t, 0) // rewound onto the restored instruction
			return true
		}
		return false
	}
	regs.SetPC(at)
	if s.p.SetRegs(t.pid, &regs) != nil {
		return false
	}
	t.set(taskParked)
	t.parkedAt = at
	s.parkedSeen = true
	return true
}

// stepOverInt3 moves a task stopped on one of vtrace's int3s (its pc just
// past it) back onto it and single-steps the original instruction.
func (s *session) stepOverInt3(t *task) (outcome, error) {
	var regs arch.Regs
	if err := s.p.Regs(t.pid, &regs); err != nil {
		return outcome{}, err
	}
	at := regs.PC() - 1
	if _, ok := t.proc.mm.bps[at]; !ok {
		return outcome{kind: outTrap}, nil
	}
	regs.SetPC(at)
	if err := s.p.SetRegs(t.pid, &regs); err != nil {
		return outcome{}, err
	}
	return s.advance(t, true, 0, at)
}
