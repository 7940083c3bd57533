package ptrace

import (
	"os/exec"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func sigchldAction(t *testing.T) kernelSigaction {
	t.Helper()
	var act kernelSigaction
	if _, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD), 0,
		uintptr(unsafe.Pointer(&act)), unsafe.Sizeof(act.mask), 0, 0); errno != 0 {
		t.Fatal(errno)
	}
	return act
}

// QuietStops adds SA_NOCLDSTOP and keeps the Go runtime's handler, mask
// and flags; children are still waited for as before.
func TestQuietStops(t *testing.T) {
	before := sigchldAction(t)
	if err := QuietStops(); err != nil {
		t.Fatal(err)
	}
	after := sigchldAction(t)
	if after.flags != before.flags|saNoCldStop || after.handler != before.handler || after.mask != before.mask {
		t.Errorf("SIGCHLD action %+v, want %+v with SA_NOCLDSTOP", after, before)
	}
	if err := QuietStops(); err != nil { // again: nothing changes
		t.Fatal(err)
	}
	if again := sigchldAction(t); again != after {
		t.Errorf("second QuietStops changed the action: %+v, was %+v", again, after)
	}
	if err := exec.Command("/bin/sh", "-c", "exit 3").Run(); err == nil || err.Error() != "exit status 3" {
		t.Errorf("a child's exit status after QuietStops: %v, want exit status 3", err)
	}
}
