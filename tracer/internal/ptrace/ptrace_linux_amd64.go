//go:build linux && amd64

package ptrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Options every traced task gets: follow every kind of new task, report
// exec and exit, and let the kernel kill tracees if vtrace dies. Not
// PTRACE_O_TRACEVFORKDONE: a vfork parent is held in its vfork event stop
// until its child has exec'd or exited (FACTS.md), so the VFORK_DONE stop
// would come at once on its resume and tell nothing (one stop per vfork).
const Options = unix.PTRACE_O_TRACEVFORK |
	unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACECLONE |
	unix.PTRACE_O_TRACEEXEC | unix.PTRACE_O_TRACEEXIT |
	unix.PTRACE_O_EXITKILL

// Event codes carried in a stop's status (status>>16).
const (
	EventFork  = unix.PTRACE_EVENT_FORK
	EventVfork = unix.PTRACE_EVENT_VFORK
	EventClone = unix.PTRACE_EVENT_CLONE
	EventExec  = unix.PTRACE_EVENT_EXEC
	EventExit  = unix.PTRACE_EVENT_EXIT
)

// ErrNotPermitted means the kernel refused to let vtrace trace: ptrace is
// disabled by policy (Yama ptrace_scope, a seccomp profile, a missing
// CAP_SYS_PTRACE in a container).
var ErrNotPermitted = errors.New("ptrace not permitted")

// Thread is the locked OS thread that owns every ptrace call of a trace.
type Thread struct {
	regBuf [27 * 8]byte // NT_PRSTATUS scratch: large enough for amd64
	iov    [1]unix.Iovec
	rIov   [1]unix.RemoteIovec
	regs   regsCache
	// pinned: Run pinned the thread to one CPU, which the tracees it
	// starts share (WaitStepped).
	pinned bool
	// yieldMisses counts WaitStepped's yields in a row that found no
	// stop; yieldOff, the waits left before it yields again.
	yieldMisses, yieldOff int
}

// regsCache is the last NT_PRSTATUS vtrace read or wrote (regBuf[:n]) of
// task pid. A task's registers change only while it runs, and only its
// tracer — this thread — resumes it, or a SIGKILL: the copy holds until
// this thread resumes or waits for any task, or anyone sends a signal
// through Kill or Tgkill (killEpoch). One stop asks for them several
// times (whose trap it is, then what the story does there), and SetRegs
// needs the segment registers and flags of a fresh read.
type regsCache struct {
	pid, n int
	epoch  uint64
	ok     bool
}

// killEpoch counts the signals sent through Kill and Tgkill, from any
// goroutine: a register copy taken before one may be of a task that has
// left its stop since.
var killEpoch atomic.Uint64

func (t *Thread) dropRegs() { t.regs.ok = false }

// Calls counts the kernel calls of every trace of this process, by kind
// (vtrace's profiling build prints them; see cmd/vtrace/cpuprofile.go). Only
// the ptrace thread writes them; read them after Run has returned.
var Calls struct {
	Wait, Yield, YieldMissed, Step, Cont, GetRegs, GetPC, SetRegs, ReadMem, ReadMemPeek, WriteMem, EventMsg, SigInfo, DebugReg, SetDebugReg, SetOptions uint64
	ReadMemBytes                                                                                                                                        uint64
	// ReadRanges counts the bulk reads (ReadRanges calls) and their bytes.
	ReadRanges, ReadRangesBytes uint64
}

// Run runs fn on a new OS thread that stays locked to it. If cpu >= 0 the
// thread is pinned to that CPU first, so tracees it starts inherit it.
// Tracee stops no longer send this process SIGCHLD (QuietStops).
func Run(cpu int, fn func(t *Thread) error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread dies with the goroutine, so no other
		// goroutine ever runs on a thread that is some process's tracer.
		runtime.LockOSThread()
		if err := QuietStops(); err != nil {
			errc <- err
			return
		}
		if cpu >= 0 {
			var set unix.CPUSet
			set.Set(cpu)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				errc <- fmt.Errorf("pin tracer to CPU %d: %w", cpu, err)
				return
			}
		}
		growStack()
		errc <- fn(&Thread{pinned: cpu >= 0})
	}()
	return <-errc
}

// stackReserve is how deep the tracer goroutine's stack is made at its
// start (growStack).
const stackReserve = 64 << 10

// growStack grows the calling goroutine's stack to stackReserve bytes in
// one step, while it is shallow. The tracer's stories run deep (a story,
// its child's call, the report rendered at its verdict); grown on demand
// from the 2 KiB Go starts a goroutine with, it was copied at each
// doubling, every frame of it walked each time (3% of the seed run's CPU;
// 32-64 KiB are used).
//
//go:noinline
func growStack() byte {
	var b [stackReserve - 4<<10]byte
	b[stackTouch] = 1 // an index the compiler cannot know: b is kept
	return b[len(b)-stackTouch]
}

var stackTouch = 1

// StartSpec says what to run.
type StartSpec struct {
	Path   string
	Argv   []string
	Env    []string
	Files  []*os.File // stdin, stdout, stderr
	NoASLR bool       // personality(ADDR_NO_RANDOMIZE) for reproducible addresses
}

// Start forks and execs the program with PTRACE_TRACEME. The new process
// stops with SIGTRAP after its execve succeeds; the caller must Wait for that
// stop and then SetOptions. Errors from execve itself (ENOENT, EACCES,
// ENOEXEC) are returned here, unwrapped enough for errors.Is.
func (t *Thread) Start(s StartSpec) (int, error) {
	t.dropRegs()
	if s.NoASLR {
		// personality is per thread and inherited by fork: set it on this
		// (dedicated) thread around the fork only.
		old, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
		if errno != 0 {
			return 0, fmt.Errorf("personality: %w", errno)
		}
		if _, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, old|addrNoRandomize, 0, 0); errno != 0 {
			return 0, fmt.Errorf("personality(ADDR_NO_RANDOMIZE): %w", errno)
		}
		defer unix.RawSyscall(unix.SYS_PERSONALITY, old, 0, 0)
	}
	// syscall.StartProcess, as os.StartProcess does it, without the
	// os.Process: vtrace reaps every task with wait4(-1) itself, and
	// os.StartProcess first tests, with a child of its own (a clone and
	// a wait), whether the kernel gives a pidfd, then opens one.
	env := s.Env
	if env == nil {
		env = syscall.Environ()
	}
	fds := make([]uintptr, len(s.Files))
	for i, f := range s.Files {
		fds[i] = f.Fd() // ^uintptr(0), closed in the child, for a nil file
	}
	pid, _, err := syscall.StartProcess(s.Path, s.Argv, &syscall.ProcAttr{
		Env:   env,
		Files: fds,
		Sys:   &syscall.SysProcAttr{Ptrace: true},
	})
	runtime.KeepAlive(s.Files)
	if err != nil {
		err = &os.PathError{Op: "fork/exec", Path: s.Path, Err: err}
		if errors.Is(err, unix.EPERM) {
			return 0, fmt.Errorf("%w: %v", ErrNotPermitted, err)
		}
		return 0, err
	}
	return pid, nil
}

// Stop is one wait4 result.
type Stop struct {
	PID    int
	Status unix.WaitStatus
}

// Event returns the PTRACE_EVENT_* code of an event stop, or 0.
func (s Stop) Event() int {
	if !s.Status.Stopped() || s.Status.StopSignal() != unix.SIGTRAP {
		return 0
	}
	return int(s.Status) >> 16
}

// Wait reaps the next state change of any tracee or child (wait4(-1, __WALL)).
// It returns unix.ECHILD when there are no children left.
func (t *Thread) Wait() (Stop, error) {
	Calls.Wait++
	t.dropRegs()
	for {
		pid, ws, err := wait4(-1, unix.WALL)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return Stop{}, err
		}
		return Stop{PID: pid, Status: ws}, nil
	}
}

// WaitStepped is Wait for the stop of a task this thread has just
// single-stepped over an instruction that cannot block (no system call):
// when the thread is pinned to the CPU its tracees run on, it gives the
// CPU away (sched_yield) and then asks without blocking
// (wait4(WNOHANG)). The tracee, woken by the step on the same CPU, runs
// its one instruction and stops while the tracer yields; the tracer
// takes the stop without having slept in wait4 and being woken again —
// the sleep and the wake-up, on these VMs, cost more than the two calls
// (measured: a Go single-step loop 5-6 % faster than with a blocking
// wait4 alone, the stop there at every step of 1M). Both calls are raw:
// neither blocks (sched_yield returns once the thread is scheduled again),
// so the runtime need not be told. When no stop has come yet (the tracee
// runs on another CPU, was moved there, or the CPU went to another
// process first, or the step faults into a page being read), the normal
// blocking Wait follows; after eight such misses in a row WaitStepped
// stops yielding for 4096 waits.
func (t *Thread) WaitStepped() (Stop, error) {
	if !t.pinned || t.yieldOff > 0 {
		if t.yieldOff > 0 {
			t.yieldOff--
		}
		return t.Wait()
	}
	Calls.Yield++
	unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	if pid, ws, err := rawWait4NoHang(); err == nil && pid > 0 {
		Calls.Wait++
		t.dropRegs()
		t.yieldMisses = 0
		return Stop{PID: pid, Status: ws}, nil
	}
	Calls.YieldMissed++
	if t.yieldMisses++; t.yieldMisses >= 8 {
		t.yieldMisses, t.yieldOff = 0, 4096
	}
	return t.Wait()
}

// ReapDead reaps, without blocking, every child that has already ended —
// the zombies a subreaper adopts when the program dies before its own
// children — and returns how many it reaped.
func (t *Thread) ReapDead() int {
	t.dropRegs()
	n := 0
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WALL|unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return n
		}
		n++
	}
}

// SetOptions sets Options on a tracee in a ptrace-stop.
func (t *Thread) SetOptions(pid int) error {
	return wrap("PTRACE_SETOPTIONS", pid, unix.PtraceSetOptions(pid, Options))
}

// ExitStops sets Options on a tracee in a ptrace-stop, with or without
// PTRACE_O_TRACEEXIT: a task whose exit no story needs to see is spared
// that stop (the options are the task's own, and its new tasks inherit
// them).
func (t *Thread) ExitStops(pid int, on bool) error {
	Calls.SetOptions++
	opts := Options
	if !on {
		opts &^= unix.PTRACE_O_TRACEEXIT
	}
	return wrap("PTRACE_SETOPTIONS", pid, unix.PtraceSetOptions(pid, opts))
}

// Cont resumes a tracee, delivering sig (0 for none).
func (t *Thread) Cont(pid, sig int) error {
	Calls.Cont++
	t.dropRegs()
	return wrap("PTRACE_CONT", pid, unix.PtraceCont(pid, sig))
}

// Step single-steps a tracee, delivering sig (0 for none).
//
// A raw system call: PTRACE_SINGLESTEP never blocks (it sets the trap flag
// and wakes the stopped tracee; ptrace_check_attach waits at most for the
// tracee to be off its CPU), so the runtime's entersyscall/exitsyscall
// bookkeeping, which lets other goroutines have the thread's P during a
// call that may block, is left out — half of it on every step of --step.
// The wait4 that follows blocks and stays a normal call (Wait).
func (t *Thread) Step(pid, sig int) error {
	Calls.Step++
	t.dropRegs()
	_, _, errno := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_SINGLESTEP, uintptr(pid), 0, uintptr(sig), 0, 0)
	if errno != 0 {
		return wrap("PTRACE_SINGLESTEP", pid, errno)
	}
	return nil
}

// Detach lets a tracee in a ptrace-stop go, delivering sig (0: none — at a
// signal-delivery stop, the signal is then suppressed).
func (t *Thread) Detach(pid, sig int) error {
	t.dropRegs()
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(pid), 0, uintptr(sig), 0, 0)
	if errno != 0 {
		return wrap("PTRACE_DETACH", pid, errno)
	}
	return nil
}

// EventMsg returns PTRACE_GETEVENTMSG: the new pid at fork/vfork/clone
// events, the exit status at an exit event, the former tid at exec.
func (t *Thread) EventMsg(pid int) (uint64, error) {
	Calls.EventMsg++
	msg, err := unix.PtraceGetEventMsg(pid)
	return uint64(msg), wrap("PTRACE_GETEVENTMSG", pid, err)
}

const (
	elfNTPrStatus   = 1         // NT_PRSTATUS
	addrNoRandomize = 0x0040000 // ADDR_NO_RANDOMIZE, <linux/personality.h>
)

// SigInfo is the part of siginfo_t vtrace reports.
type SigInfo struct {
	Signo int32
	Errno int32
	Code  int32
	Addr  uint64 // si_addr for SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGTRAP
}

// ReadMem reads len(buf) bytes of the tracee's memory at addr.
func (t *Thread) ReadMem(pid int, addr uint64, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	Calls.ReadMem++
	Calls.ReadMemBytes += uint64(len(buf))
	t.iov[0].Base = &buf[0]
	t.iov[0].SetLen(len(buf))
	t.rIov[0] = unix.RemoteIovec{Base: uintptr(addr), Len: len(buf)}
	n, err := unix.ProcessVMReadv(pid, t.iov[:], t.rIov[:], 0)
	if err == nil && n == len(buf) {
		return nil
	}
	// process_vm_readv fails on pages it cannot pin (e.g. some special
	// mappings); PTRACE_PEEKDATA goes through the tracer's FOLL_FORCE path.
	Calls.ReadMemPeek++
	if _, perr := unix.PtracePeekData(pid, uintptr(addr), buf); perr != nil {
		if err == nil {
			err = perr
		}
		return fmt.Errorf("read %d bytes of %d at %#x: %w", len(buf), pid, addr, err)
	}
	return nil
}

// WriteMem writes data into the tracee's memory at addr, even into
// read-only text (PTRACE_POKEDATA writes through FOLL_FORCE, which is how
// breakpoints are planted). A tracee that is not in a ptrace-stop (a story
// cut short let it run on: tracer/wait.go) refuses PTRACE_POKEDATA with
// ESRCH; its /proc/PID/mem, which the tracer may write (FOLL_FORCE too),
// takes the bytes then.
func (t *Thread) WriteMem(pid int, addr uint64, data []byte) error {
	Calls.WriteMem++
	var err error
	if len(data) == 8 && addr%8 == 0 {
		// One aligned word (an int3 planted or taken out): one
		// PTRACE_POKEDATA (x/sys's PtracePokeData peeks the word first).
		_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_POKEDATA, uintptr(pid), uintptr(addr),
			uintptr(binary.LittleEndian.Uint64(data)), 0, 0)
		if errno == 0 {
			return nil
		}
		err = errno
	} else {
		_, err = unix.PtracePokeData(pid, uintptr(addr), data)
	}
	if err == unix.ESRCH {
		if werr := writeProcMem(pid, addr, data); werr == nil {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("write %d bytes of %d at %#x: %w", len(data), pid, addr, err)
	}
	return nil
}

// writeProcMem writes data at addr through /proc/PID/mem.
func writeProcMem(pid int, addr uint64, data []byte) error {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := f.WriteAt(data, int64(addr))
	if err == nil && n != len(data) {
		err = errors.New("short write")
	}
	return err
}

// offsetDebugReg is offsetof(struct user, u_debugreg) on x86-64.
const offsetDebugReg = 848

// offsetIP is offsetof(struct user, regs.rip) on x86-64: the layout of a
// 64-bit tracer's PTRACE_PEEKUSER, an i386 tracee's included.
const offsetIP = 16 * 8

// Kill sends sig to one task (tgkill is not needed: vtrace signals whole
// processes or single tids it knows). Safe from any goroutine.
func Kill(pid int, sig unix.Signal) error {
	killEpoch.Add(1)
	return unix.Kill(pid, sig)
}

// Tgkill sends sig to one thread (tid) of a thread group. Safe from any
// goroutine.
func Tgkill(tgid, tid int, sig unix.Signal) error {
	killEpoch.Add(1)
	return unix.Tgkill(tgid, tid, sig)
}

// BecomeSubreaper makes this process the reaper of orphans among its
// descendants, so a vfork child outliving the target is reparented to vtrace
// (not to pid 1) and reaped before vtrace exits.
func BecomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// TaskGone reports whether err means the tracee no longer exists or is no
// longer in a ptrace-stop (it was killed meanwhile).
func TaskGone(err error) bool {
	return errors.Is(err, unix.ESRCH)
}

func wrap(op string, pid int, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%s %d: %w (%v)", op, pid, ErrNotPermitted, err)
	}
	return fmt.Errorf("%s %d: %w", op, pid, err)
}
