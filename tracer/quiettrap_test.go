package tracer

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
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
