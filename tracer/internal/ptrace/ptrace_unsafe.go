//go:build linux && amd64

package ptrace

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// The requests below pass pointers to kernel structures (an iovec for
// NT_PRSTATUS, a siginfo_t, a debug register's word): raw ptrace(2) calls
// that x/sys/unix has no wrapper for.

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

func (t *Thread) getRegset(pid int) (int, error) {
	Calls.GetRegs++
	t.iov[0].Base = &t.regBuf[0]
	t.iov[0].SetLen(len(t.regBuf))
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETREGSET, uintptr(pid),
		uintptr(elfNTPrStatus), uintptr(unsafe.Pointer(&t.iov[0])), 0, 0)
	if errno != 0 {
		return 0, wrap("PTRACE_GETREGSET", pid, errno)
	}
	return int(t.iov[0].Len), nil
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
	t.iov[0].Base = &t.regBuf[0]
	t.iov[0].SetLen(n)
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SETREGSET, uintptr(pid),
		uintptr(elfNTPrStatus), uintptr(unsafe.Pointer(&t.iov[0])), 0, 0)
	if errno != 0 {
		return wrap("PTRACE_SETREGSET", pid, errno)
	}
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
