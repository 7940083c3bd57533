package tracer

import (
	"fmt"

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
	var b [1]byte
	if err := s.p.ReadMem(pid, addr, b[:]); err != nil {
		return err
	}
	if err := s.pokeByte(pid, addr, 0xcc); err != nil {
		return err
	}
	mm.bps[addr] = &breakpoint{addr: addr, orig: b[0], owners: map[int]bool{owner: true}}
	delete(mm.removed, addr)
	return nil
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
		err = s.pokeByte(pid, addr, bp.orig)
	}
	if err != nil {
		for _, t := range s.byPID {
			if t.proc.mm == mm && t.pid != pid && t.state != taskEnded {
				if err = s.pokeByte(t.pid, addr, bp.orig); err == nil {
					break
				}
			}
		}
	}
	for _, t := range s.byPID {
		if t.state == taskParked && t.proc.mm == mm && t.parkedAt == addr {
			t.parkedAt = 0
			t.set(taskRunning)
			s.cont(t, 0)
		}
	}
	return err
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

// pokeByte changes one byte of text through a word-sized PTRACE_POKEDATA.
func (s *session) pokeByte(pid int, addr uint64, b byte) error {
	var w [8]byte
	if err := s.p.ReadMem(pid, addr, w[:]); err != nil {
		// Near the end of a mapping: write the word that ends at addr.
		if err2 := s.p.ReadMem(pid, addr-7, w[:]); err2 != nil {
			return err
		}
		w[7] = b
		return s.p.WriteMem(pid, addr-7, w[:])
	}
	w[0] = b
	return s.p.WriteMem(pid, addr, w[:])
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
