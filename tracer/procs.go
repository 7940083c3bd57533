package tracer

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/ptrace"
	"github.com/vtrace/vtrace/tracer/internal/symbols"
	"github.com/vtrace/vtrace/tracer/internal/unwind"
)

// procs is the engine's boundary with the processes it traces: everything
// the story logic asks of the kernel — stops, registers, memory, resuming,
// debug registers — and what /proc says about a process (its maps and
// modules, its program, its thread group). The live implementation
// (livePtrace) runs on the locked ptrace thread; engine tests replace it
// with scripted processes, so stories can be tested without ptrace.
type procs interface {
	// Wait returns the next state change of any tracee (wait4(-1, __WALL)).
	Wait() (ptrace.Stop, error)
	// WaitStepped is Wait right after a single-step of an instruction
	// that cannot block (ptrace.Thread.WaitStepped: cheaper when tracer
	// and tracee share a CPU).
	WaitStepped() (ptrace.Stop, error)
	// ReapDead reaps, without waiting, the children that have ended.
	ReapDead() int
	Step(pid, sig int) error
	Cont(pid, sig int) error
	EventMsg(pid int) (uint64, error)
	SigInfo(pid int) (ptrace.SigInfo, error)
	Regs(pid int, r *arch.Regs) error
	// PC is a stopped task's program counter (cheaper than Regs).
	PC(pid int) (uint64, error)
	SetRegs(pid int, r *arch.Regs) error
	ReadMem(pid int, addr uint64, buf []byte) error
	// ReadRanges reads bufs[i] at addrs[i], in one batch where it can, and
	// returns the indexes of the ranges it could not read.
	ReadRanges(pid int, addrs []uint64, bufs [][]byte) (failed []int)
	// ThreadPointer is a stopped task's thread pointer (amd64 fs_base;
	// i386 the base of its %gs descriptor).
	ThreadPointer(pid int, r *arch.Regs) (uint64, error)
	WriteMem(pid int, addr uint64, data []byte) error
	DebugReg(pid, n int) (uint64, error)
	SetDebugReg(pid, n int, v uint64) error
	// ExitStops turns a stopped task's PTRACE_EVENT_EXIT stops on or off
	// (its new tasks inherit the setting).
	ExitStops(pid int, on bool) error
	// Kill sends a signal to a process, Tgkill to one thread of it; both
	// are safe from any goroutine.
	Kill(pid int, sig unix.Signal) error
	Tgkill(tgid, tid int, sig unix.Signal) error
	// Detach lets a tracee in a ptrace-stop go, delivering sig.
	Detach(pid, sig int) error

	// Space reads a process's mappings and opens the modules mapped there.
	Space(pid int) (space, error)
	// Arch is the architecture of the program a process runs.
	Arch(pid int) (*arch.Arch, error)
	// ExePath is the program a process runs ("" when unknown).
	ExePath(pid int) string
	// SameThreadGroup reports whether pid is a thread of process tgid.
	SameThreadGroup(tgid, pid int) bool
	// StopPending reports whether a SIGSTOP is pending for task pid (the
	// thread's or its process's).
	StopPending(pid int) bool
	// Activity is what /proc says task pid is doing (wait.go: a story
	// that blocks gives way).
	Activity(pid int) (activity, bool)
}

// activity is a task's scheduling state as /proc shows it.
type activity struct {
	// state is the letter of /proc/PID/stat: R running, S or D blocked in
	// the kernel, t in a ptrace-stop, T stopped, Z or X dead.
	state byte
	// ran is the CPU time the task has run, in ns (/proc/PID/schedstat);
	// it does not change while the task is blocked.
	ran uint64
	// syscall is the system call it is in (/proc/PID/syscall), -1 when
	// it is in none or unknown.
	syscall int
}

// blocked reports whether the task sleeps in the kernel.
func (a activity) blocked() bool { return a.state == 'S' || a.state == 'D' }

// space is what the engine needs to know about an address space: symbols
// and source lines, mappings, and the call-frame information the unwinder
// reads (symbols.Space is the real one).
type space interface {
	Symbolize(addr uint64) symbols.Sym
	IsCode(addr uint64) bool
	MappingAt(addr uint64) (symbols.Mapping, bool)
	unwind.CFI
	unwind.Code
}

// livePtrace is procs over the real kernel: the ptrace thread and /proc.
type livePtrace struct {
	*ptrace.Thread
}

func (livePtrace) Kill(pid int, sig unix.Signal) error { return ptrace.Kill(pid, sig) }

func (livePtrace) Tgkill(tgid, tid int, sig unix.Signal) error { return ptrace.Tgkill(tgid, tid, sig) }

func (l livePtrace) ThreadPointer(pid int, r *arch.Regs) (uint64, error) {
	if r.Arch == arch.AMD64 {
		return r.TP, nil
	}
	if r.GS == 0 {
		return 0, fmt.Errorf("task %d: no %%gs selector", pid)
	}
	return l.ThreadArea(pid, int(r.GS>>3))
}

func (livePtrace) Space(pid int) (space, error) {
	sp, err := symbols.LoadSpace(pid)
	if err != nil {
		return nil, err
	}
	return sp, nil
}

// Arch reads the arch from a stopped task's registers: the kernel gives
// an i386 task its 32-bit register layout (ptrace.Regs), set at its exec
// from its program's ELF class. One ptrace call instead of opening
// /proc/PID/exe for its ELF header (the exec stop of every spawn waits for
// it); a task not in a ptrace-stop (attach) is asked through its program.
func (l livePtrace) Arch(pid int) (*arch.Arch, error) {
	var r arch.Regs
	if l.Regs(pid, &r) == nil && r.Arch != nil {
		return r.Arch, nil
	}
	return symbols.ProcessArch(pid)
}

func (livePtrace) ExePath(pid int) string {
	p, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return p
}

func (livePtrace) SameThreadGroup(tgid, pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n == tgid
		}
	}
	return false
}

// KernelCalls tells how many kernel calls of each kind vtrace's ptrace
// threads have made so far in this process (vtrace's profiling build
// prints it: cmd/vtrace/cpuprofile.go).
func KernelCalls() string {
	c := &ptrace.Calls
	return fmt.Sprintf("wait %d yield %d (missed %d) step %d cont %d getregs %d getpc %d setregs %d readmem %d (%d bytes, %d by peek) writemem %d eventmsg %d siginfo %d dr-read %d dr-write %d setoptions %d; parent unwinds %d, reused %d",
		c.Wait, c.Yield, c.YieldMissed, c.Step, c.Cont, c.GetRegs, c.GetPC, c.SetRegs, c.ReadMem, c.ReadMemBytes, c.ReadMemPeek, c.WriteMem, c.EventMsg, c.SigInfo, c.DebugReg, c.SetDebugReg, c.SetOptions,
		unwinds.done.Load(), unwinds.reused.Load())
}

func (livePtrace) StopPending(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok || (name != "SigPnd" && name != "ShdPnd") {
			continue
		}
		if m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && m&(1<<(unix.SIGSTOP-1)) != 0 {
			return true
		}
	}
	return false
}

func (livePtrace) Activity(pid int) (activity, bool) {
	a := activity{syscall: -1}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return a, false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return a, false
	}
	a.state = b[i+2]
	if b, err = os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid)); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			a.ran, _ = strconv.ParseUint(f[0], 10, 64)
		}
	}
	if b, err = os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid)); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				a.syscall = n
			}
		}
	}
	return a, true
}
