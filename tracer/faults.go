package tracer

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/ptrace"
)

// fault is a signal delivered to a process: reported as its fate if it
// dies of it (exit and child_end events).
type fault struct {
	sig  unix.Signal
	info ptrace.SigInfo
	pc   uint64
}

// recordFault remembers the signal a task is about to receive.
func (s *session) recordFault(t *task, sig unix.Signal, info ptrace.SigInfo) {
	f := &fault{sig: sig, info: info}
	// No process dies of a benign signal (its default action ignores it,
	// a handler returns): its pc, told only for a death by it (faultOf),
	// is not read — the SIGCHLD at the end of every spawn.
	var regs arch.Regs
	if !benign(sig) && s.p.Regs(t.pid, &regs) == nil {
		f.pc = regs.PC()
	}
	if t.proc.faults == nil {
		t.proc.faults = map[unix.Signal]*fault{}
	}
	t.proc.faults[sig] = f
	// The signal may kill the process: its maps must be read (mm.syms)
	// while it is still there to be asked, and again if the fault is in
	// code mapped since they were (a library, before any vfork refreshed
	// them).
	if mm := t.proc.mm; mm != nil && f.pc != 0 && !mm.syms().IsCode(f.pc) && hasFaultAddr(sig) {
		s.refresh(mm, t.pid)
	}
}

// faultFields are the details of a fatal signal shared by the exit and
// child_end events.
type faultFields struct {
	siCode string
	addr   *event.Addr // fault address, for signals that have one
	pc     *event.Addr
	sym    *event.Sym
}

// faultOf describes the fault that killed p with sig, if vtrace saw the
// signal's delivery stop (recordFault).
func (s *session) faultOf(p *process, sig unix.Signal, mm *addrSpace) (faultFields, bool) {
	f := p.faults[sig]
	if f == nil {
		return faultFields{}, false
	}
	out := faultFields{siCode: siCodeName(f.sig, f.info.Code)}
	if hasFaultAddr(f.sig) {
		a := event.Addr(f.info.Addr)
		out.addr = &a
	}
	if f.pc != 0 {
		pc := event.Addr(f.pc)
		out.pc, out.sym = &pc, s.sym(mm, f.pc)
	}
	return out, true
}

// siCodes are the positive si_codes of the signals vtrace reports faults of.
var siCodes = map[unix.Signal][]string{
	unix.SIGSEGV: {1: "SEGV_MAPERR", 2: "SEGV_ACCERR"},
	unix.SIGBUS:  {1: "BUS_ADRALN", 2: "BUS_ADRERR"},
	unix.SIGILL:  {1: "ILL_ILLOPC", 2: "ILL_ILLOPN"},
	unix.SIGTRAP: {1: "TRAP_BRKPT", 2: "TRAP_TRACE", 4: "TRAP_HWBKPT"},
}

// siCodeName names a siginfo si_code for the signals vtrace reports.
func siCodeName(sig unix.Signal, code int32) string {
	switch code {
	case 0x80:
		return "SI_KERNEL"
	case 0:
		return "SI_USER"
	case -6:
		return "SI_TKILL"
	}
	if n := siCodes[sig]; code > 0 && int(code) < len(n) && n[code] != "" {
		return n[code]
	}
	return fmt.Sprintf("%d", code)
}

func hasFaultAddr(sig unix.Signal) bool {
	switch sig {
	case unix.SIGSEGV, unix.SIGBUS, unix.SIGILL, unix.SIGFPE:
		return true
	}
	return false
}
