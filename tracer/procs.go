package tracer

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/ptrace"
	"github.com/vtrace/vtrace/tracer/internal/sockdiag"
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
	// SpaceMaps is Space through h, which keeps the maps of one address
	// space open between calls: pid is a task of that address space,
	// stopped (refresh).
	SpaceMaps(h *mapsHandle, pid int) (space, error)
	// Arch is the architecture of the program a process runs.
	Arch(pid int) (*arch.Arch, error)
	// ExePath is the program a process runs ("" when unknown).
	ExePath(pid int) string
	// LookUpExe looks /proc/PID/exe up without reading it: the kernel
	// keeps the lookup (the process's /proc entries are made on first
	// use), and a later ExePath of the task costs a third. vtrace does it
	// while a vfork child runs toward its exec, whose stop waits for
	// ExePath.
	LookUpExe(pid int)
	// SameThreadGroup reports whether pid is a thread of process tgid.
	SameThreadGroup(tgid, pid int) bool
	// LeakSanitizer names the sanitizer runtime with a leak check that
	// process pid (stopped) has mapped, "" when none or when its
	// environment turns the check at exit off (detect_leaks=0 or
	// leak_check_at_exit=0 in ASAN_OPTIONS or LSAN_OPTIONS).
	LeakSanitizer(pid int) string
	// StopPending reports whether a SIGSTOP is pending for task pid (the
	// thread's or its process's).
	StopPending(pid int) bool
	// Activity is what /proc says task pid is doing (wait.go: a story
	// that blocks gives way).
	Activity(pid int) (activity, bool)
	// FdWriters says what task pid's file descriptor fd refers to and,
	// for a pipe or FIFO, which processes (their pids) hold it open for
	// writing, for a connected Unix socket which hold its peer
	// (giveway.go: who can wake a reader).
	FdWriters(pid, fd int) (fdKind, []int)
	// EpollFds is what epoll descriptor fd of pid watches: the
	// descriptors added to it (/proc/PID/fdinfo/FD), nil when fd is none.
	EpollFds(pid, fd int) []int
}

// fdKind is what a file descriptor refers to, as far as who may write to
// it goes.
type fdKind int

const (
	fdUnknown fdKind = iota // unreadable, or a socket whose peer is closed: its writers are not known
	fdPipe                  // a pipe or FIFO, or a connected Unix socket: the writers are the processes holding it (its peer) open for writing
	fdDevice                // a terminal, another device, a file, a network or netlink socket, a listening or unconnected Unix socket: the kernel or the world feeds it
)

// activity is a task's scheduling state as /proc shows it.
type activity struct {
	// state is the letter of /proc/PID/stat: R running, S or D blocked in
	// the kernel, t in a ptrace-stop, T stopped, Z or X dead.
	state byte
	// ran is the CPU time the task has run, in ns (/proc/PID/schedstat);
	// it does not change while the task is blocked.
	ran uint64
	// syscall is the system call it is in (/proc/PID/syscall), -1 when
	// it is in none or unknown, sysRunning when /proc said "running" of a
	// task asleep; args are its arguments.
	syscall int
	args    [6]uint64
}

// sysRunning is activity.syscall when /proc/PID/syscall said "running" of
// a task its stat showed asleep: which system call it sleeps in is not
// known at that look.
const sysRunning = -2

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

// SpaceMaps reads the maps through the file h keeps open, opening it
// through pid first if need be: the kernel binds the file to the memory
// pid has when it opens it, which h's address space stands for. When the
// file reads as empty or fails (that memory has no task left: pid's
// process died, its pid may be another's now), it is closed, and the maps
// are read as Space does.
func (livePtrace) SpaceMaps(h *mapsHandle, pid int) (space, error) {
	if h.m == nil {
		m, err := symbols.OpenMaps(pid)
		if err != nil {
			return nil, err
		}
		h.m = m
	}
	if sp, err := symbols.LoadSpaceMaps(h.m, pid); err == nil {
		return sp, nil
	}
	h.close()
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
	p, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return p
}

func (livePtrace) LookUpExe(pid int) {
	var st unix.Stat_t
	_ = unix.Lstat("/proc/"+strconv.Itoa(pid)+"/exe", &st)
}

func (livePtrace) LeakSanitizer(pid int) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return ""
	}
	ms, err := symbols.ParseMaps(f)
	f.Close()
	if err != nil {
		return ""
	}
	module := ""
	for _, m := range ms {
		if base := path.Base(m.Path); strings.HasPrefix(base, "libasan.so") || strings.HasPrefix(base, "liblsan.so") {
			module = base
			break
		}
	}
	if module == "" {
		return ""
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return module
	}
	for _, kv := range strings.Split(string(env), "\x00") {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || name != "ASAN_OPTIONS" && name != "LSAN_OPTIONS" {
			continue
		}
		for _, opt := range strings.FieldsFunc(val, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
			switch opt {
			case "detect_leaks=0", "detect_leaks=false", "leak_check_at_exit=0", "leak_check_at_exit=false":
				return ""
			}
		}
	}
	return module
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
	return fmt.Sprintf("wait %d yield %d (missed %d) step %d cont %d getregs %d getpc %d setregs %d readmem %d (%d bytes, %d by peek) bulk reads %d (%d bytes) writemem %d eventmsg %d siginfo %d dr-read %d dr-write %d (%d skipped) setoptions %d; parent unwinds %d, reused %d; blocks decoded %d, reused %d; maps read %d, reused %d",
		c.Wait, c.Yield, c.YieldMissed, c.Step, c.Cont, c.GetRegs, c.GetPC, c.SetRegs, c.ReadMem, c.ReadMemBytes, c.ReadMemPeek, c.ReadRanges, c.ReadRangesBytes, c.WriteMem, c.EventMsg, c.SigInfo, c.DebugReg, c.SetDebugReg, drSkips.Load(), c.SetOptions,
		unwinds.done.Load(), unwinds.reused.Load(), blockMemos.decoded.Load(), blockMemos.reused.Load(),
		symbols.MapsStats.Texts.Load(), symbols.MapsStats.Reused.Load())
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
	// /proc/PID/syscall says "running" when the kernel could not catch
	// the task still (task_current_syscall: its state or its count of
	// context switches moved while it looked), now and then even for a
	// task asleep for seconds: looked at again, then left sysRunning.
	for try := 0; try < 3; try++ {
		if b, err = os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid)); err != nil {
			break
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			break
		}
		if f[0] == "running" {
			if !a.blocked() {
				break
			}
			a.syscall = sysRunning
			continue
		}
		if n, err := strconv.Atoi(f[0]); err == nil {
			a.syscall = n
			for i := 0; i < len(a.args) && i+1 < len(f); i++ {
				a.args[i], _ = strconv.ParseUint(strings.TrimPrefix(f[i+1], "0x"), 16, 64)
			}
		}
		break
	}
	return a, true
}

func (livePtrace) FdWriters(pid, fd int) (fdKind, []int) {
	var obj unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", pid, fd), &obj); err != nil {
		return fdUnknown, nil
	}
	end, forWriting := obj.Ino, true
	switch obj.Mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		// A Unix socket's peer is found by asking the kernel (/proc does
		// not say); its holders write to it whatever their open mode.
		u, err := sockdiag.UnixByInode(obj.Ino)
		switch {
		case errors.Is(err, sockdiag.ErrNotUnix):
			return fdDevice, nil // another family: the network, the kernel (netlink) feed it
		case err != nil:
			return fdUnknown, nil
		case u.Peer != 0:
			end, forWriting = u.Peer, false
		case u.State == sockdiag.Listen || u.State == sockdiag.Close:
			return fdDevice, nil // anyone may connect, or send to it
		default:
			return fdUnknown, nil // its peer is closed: a read returns at once
		}
	case unix.S_IFIFO:
	default:
		return fdDevice, nil
	}
	return fdPipe, holders(obj.Dev, end, forWriting)
}

// holders returns the processes that hold the pipe, FIFO or socket with
// inode ino on device dev open (for writing, if forWriting says so). Every
// process's descriptors: a pipe's (pipefs) or a socket's (sockfs) holders
// are only found so. Done once a reader has slept blockQuiet.
func holders(dev, ino uint64, forWriting bool) []int {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var writers []int
	for _, d := range dirs {
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p))
		if err != nil {
			continue
		}
		for _, f := range fds {
			var st unix.Stat_t
			path := fmt.Sprintf("/proc/%d/fd/%s", p, f.Name())
			if unix.Stat(path, &st) != nil || st.Dev != dev || st.Ino != ino {
				continue
			}
			if !forWriting || fdWritable(p, f.Name()) {
				writers = append(writers, p)
				break
			}
		}
	}
	return writers
}

func (livePtrace) EpollFds(pid, fd int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
	if err != nil {
		return nil
	}
	var fds []int
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "tfd:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				if n, err := strconv.Atoi(f[0]); err == nil {
					fds = append(fds, n)
				}
			}
		}
	}
	return fds
}

// fdWritable reports whether process p's descriptor fd is open for
// writing (its flags in /proc/P/fdinfo/FD, in octal).
func fdWritable(p int, fd string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", p, fd))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			fl, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return err == nil && fl&unix.O_ACCMODE != unix.O_RDONLY
		}
	}
	return false
}
