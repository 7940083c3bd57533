package tracer

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// --step takes the SIGTRAP after an instruction that raises none of its
// own for the step's without reading the siginfo — not while the process
// holds a perf event, whose sigtrap mode raises SIGTRAP at any
// instruction. hasPerfEvents sees one by its file descriptor.
func TestHasPerfEvents(t *testing.T) {
	if hasPerfEvents(os.Getpid()) {
		t.Fatal("a perf event before any was opened")
	}
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_DUMMY,
		Size: uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Bits: unix.PerfBitDisabled | unix.PerfBitExcludeKernel | unix.PerfBitExcludeHv}
	fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		t.Skipf("perf_event_open refused here (%v, /proc/sys/kernel/perf_event_paranoid): nothing to see", err)
	}
	defer unix.Close(fd)
	if !hasPerfEvents(os.Getpid()) {
		t.Error("perf event fd not seen")
	}
	if !hasPerfEvents(-1) {
		t.Error("an unreadable fd table must count as holding one")
	}
}

// The system calls that may make the kernel send a SIGTRAP later end
// --step's quiet traps, by the numbers of the task's ABI.
func TestAsyncTrapCall(t *testing.T) {
	for _, c := range []struct {
		a        *arch.Arch
		nr, arg1 uint64
		want     bool
	}{
		{arch.AMD64, 298, 0, true}, {arch.AMD64, 222, 0, true}, {arch.AMD64, 244, 0, true},
		{arch.AMD64, 72, unix.F_SETSIG, true}, {arch.AMD64, 72, unix.F_SETFL, false},
		{arch.AMD64, 259, 0, false}, {arch.AMD64, 1, 0, false},
		{arch.I386, 336, 0, true}, {arch.I386, 259, 0, true}, {arch.I386, 281, 0, true},
		{arch.I386, 55, unix.F_SETSIG, true}, {arch.I386, 221, unix.F_SETSIG, true}, {arch.I386, 221, unix.F_GETFL, false},
		{arch.I386, 222, 0, false}, {arch.I386, 298, 0, false},
	} {
		r := arch.Regs{Arch: c.a}
		r.R[0] = c.nr
		if c.a == arch.AMD64 {
			r.R[4] = c.arg1 // %rsi
		} else {
			r.R[1] = c.arg1 // %ecx
		}
		if got := asyncTrapCall(&r); got != c.want {
			t.Errorf("%s system call %d (arg1 %d): %v, want %v", c.a.Name, c.nr, c.arg1, got, c.want)
		}
	}
}
