//go:build linux && amd64

package ptrace

import (
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// The requests below pass pointers to kernel structures (an iovec for
// NT_PRSTATUS, a siginfo_t, a debug register's word): raw ptrace(2) calls
// that x/sys/unix has no wrapper for.

// wait4 is wait4(2) with no rusage, called straight (x/sys's Wait4 is two
// calls deeper): Wait runs once per single-step. A normal system call, not
// a raw one: it blocks, and the runtime must be able to give this
// thread's P to other goroutines meanwhile (the signal and timeout
// watchers, the garbage collector's stop of the world).
func wait4(pid, options int) (int, unix.WaitStatus, error) {
	var ws unix.WaitStatus
	r, _, errno := syscall.Syscall6(unix.SYS_WAIT4, uintptr(pid), uintptr(unsafe.Pointer(&ws)), uintptr(options), 0, 0, 0)
	if errno != 0 {
		return 0, 0, errno
	}
	return int(r), ws, nil
}

// rawWait4NoHang is wait4(-1, __WALL|WNOHANG) as a raw system call: it
// never blocks. pid 0: no state change is there yet.
func rawWait4NoHang() (int, unix.WaitStatus, error) {
	var ws unix.WaitStatus
	r, _, errno := syscall.RawSyscall6(unix.SYS_WAIT4, ^uintptr(0), uintptr(unsafe.Pointer(&ws)), unix.WALL|unix.WNOHANG, 0, 0, 0)
	if errno != 0 {
		return 0, 0, errno
	}
	return int(r), ws, nil
}

// Regs reads a stopped tracee's general registers. The kernel returns the
// tracee's own NT_PRSTATUS layout (68 bytes for an i386 tracee, 216 for
// amd64), which tells the architecture; x/sys's PtraceGetRegs would silently
// mis-decode the 32-bit layout.
func (t *Thread) Regs(pid int, regs *arch.Regs) error {
	n, err := t.getRegset(pid)
	if err != nil {
		return err
	}
	return arch.DecodePrStatus(t.regBuf[:n], regs)
}

// getRegset leaves task pid's NT_PRSTATUS in regBuf and returns its size:
// from regsCache when it holds them.
func (t *Thread) getRegset(pid int) (int, error) {
	epoch := killEpoch.Load()
	if c := &t.regs; c.ok && c.pid == pid && c.epoch == epoch {
		return c.n, nil
	}
	t.dropRegs()
	Calls.GetRegs++
	t.iov[0].Base = &t.regBuf[0]
	t.iov[0].SetLen(len(t.regBuf))
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETREGSET, uintptr(pid),
		uintptr(elfNTPrStatus), uintptr(unsafe.Pointer(&t.iov[0])), 0, 0)
	if errno != 0 {
		return 0, wrap("PTRACE_GETREGSET", pid, errno)
	}
	n := int(t.iov[0].Len)
	t.regs = regsCache{pid: pid, n: n, epoch: epoch, ok: true}
	return n, nil
}

// PC reads a stopped tracee's program counter alone: one PTRACE_PEEKUSER
// of its ip word, about half the kernel's work of a GETREGSET (which copies
// every register through a buffer allocated for the call; measured on the
// KVM machines: 0.53 µs against 1.1 µs per call, with a single-step and its
// wait costing 11-14 µs).
func (t *Thread) PC(pid int) (uint64, error) {
	Calls.GetPC++
	var v uint64
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKUSR, uintptr(pid),
		uintptr(offsetIP), uintptr(unsafe.Pointer(&v)), 0, 0)
	if errno != 0 {
		return 0, wrap("PTRACE_PEEKUSER(ip)", pid, errno)
	}
	return v, nil
}

// SetRegs writes regs back to a stopped tracee (segment registers and flags
// are preserved from a fresh read).
func (t *Thread) SetRegs(pid int, regs *arch.Regs) error {
	Calls.SetRegs++
	n, err := t.getRegset(pid)
	if err != nil {
		return err
	}
	if n != regs.Arch.PrStatusSize {
		return fmt.Errorf("set registers of %d: tracee is not %s", pid, regs.Arch.Name)
	}
	arch.EncodePrStatus(regs, t.regBuf[:n])
	t.dropRegs()
	t.iov[0].Base = &t.regBuf[0]
	t.iov[0].SetLen(n)
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SETREGSET, uintptr(pid),
		uintptr(elfNTPrStatus), uintptr(unsafe.Pointer(&t.iov[0])), 0, 0)
	if errno != 0 {
		return wrap("PTRACE_SETREGSET", pid, errno)
	}
	// Not kept: the kernel may store other than it was given (the flags
	// it lets a tracer set, the trap flag of a step); the next read asks.
	return nil
}

// SigInfo reads PTRACE_GETSIGINFO. At a group-stop (not a signal-delivery
// stop) the kernel answers EINVAL.
func (t *Thread) SigInfo(pid int) (SigInfo, error) {
	Calls.SigInfo++
	var raw [128]byte
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETSIGINFO, uintptr(pid), 0,
		uintptr(unsafe.Pointer(&raw[0])), 0, 0)
	if errno != 0 {
		return SigInfo{}, wrap("PTRACE_GETSIGINFO", pid, errno)
	}
	return SigInfo{
		Signo: *(*int32)(unsafe.Pointer(&raw[0])),
		Errno: *(*int32)(unsafe.Pointer(&raw[4])),
		Code:  *(*int32)(unsafe.Pointer(&raw[8])),
		Addr:  *(*uint64)(unsafe.Pointer(&raw[16])),
	}, nil
}

// SetDebugReg writes debug register n (0–7) of a stopped tracee.
func (t *Thread) SetDebugReg(pid, n int, v uint64) error {
	Calls.SetDebugReg++
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_POKEUSR, uintptr(pid),
		uintptr(offsetDebugReg+8*n), uintptr(v), 0, 0)
	if errno != 0 {
		return wrap(fmt.Sprintf("PTRACE_POKEUSER(DR%d)", n), pid, errno)
	}
	return nil
}

// DebugReg reads debug register n (0–7) of a stopped tracee.
func (t *Thread) DebugReg(pid, n int) (uint64, error) {
	Calls.DebugReg++
	var v uint64
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKUSR, uintptr(pid),
		uintptr(offsetDebugReg+8*n), uintptr(unsafe.Pointer(&v)), 0, 0)
	if errno != 0 {
		return 0, wrap(fmt.Sprintf("PTRACE_PEEKUSER(DR%d)", n), pid, errno)
	}
	return v, nil
}

// ThreadArea returns the base address of TLS descriptor entry of an i386
// tracee (PTRACE_GET_THREAD_AREA; entry is its %gs selector >> 3): its
// thread pointer.
func (t *Thread) ThreadArea(pid, entry int) (uint64, error) {
	var desc [4]uint32 // struct user_desc: entry_number, base_addr, limit, flags
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, ptraceGetThreadArea, uintptr(pid),
		uintptr(entry), uintptr(unsafe.Pointer(&desc[0])), 0, 0)
	if errno != 0 {
		return 0, wrap("PTRACE_GET_THREAD_AREA", pid, errno)
	}
	return uint64(desc[1]), nil
}

// ptraceGetThreadArea is PTRACE_GET_THREAD_AREA (<asm/ptrace-abi.h>).
const ptraceGetThreadArea = 25

// ReadRanges reads each bufs[i] from the tracee at addrs[i], in one
// process_vm_readv call per 1024 ranges. A range it cannot read whole is
// read again alone (ReadMem); failed lists the indexes still unread.
func (t *Thread) ReadRanges(pid int, addrs []uint64, bufs [][]byte) (failed []int) {
	const batch = 1024 // IOV_MAX
	Calls.ReadRanges++
	for _, b := range bufs {
		Calls.ReadRangesBytes += uint64(len(b))
	}
	local := make([]unix.Iovec, 0, min(len(bufs), batch))
	remote := make([]unix.RemoteIovec, 0, min(len(bufs), batch))
	for start := 0; start < len(bufs); start += batch {
		end := min(start+batch, len(bufs))
		local, remote = local[:0], remote[:0]
		want := 0
		for i := start; i < end; i++ {
			if len(bufs[i]) == 0 {
				continue
			}
			var v unix.Iovec
			v.Base = &bufs[i][0]
			v.SetLen(len(bufs[i]))
			local = append(local, v)
			remote = append(remote, unix.RemoteIovec{Base: uintptr(addrs[i]), Len: len(bufs[i])})
			want += len(bufs[i])
		}
		if n, err := unix.ProcessVMReadv(pid, local, remote, 0); err == nil && n == want {
			continue
		}
		for i := start; i < end; i++ {
			if t.ReadMem(pid, addrs[i], bufs[i]) != nil {
				failed = append(failed, i)
			}
		}
	}
	return failed
}
