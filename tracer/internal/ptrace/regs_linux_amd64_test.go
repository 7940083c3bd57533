package ptrace

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// A stopped task's registers are read from the kernel once per stop: again
// only after this thread has written them, resumed the task, waited, or
// sent a signal — and what it then reads is what the task has.
func TestRegsReadOncePerStop(t *testing.T) {
	err := Run(-1, func(th *Thread) error {
		pid, err := th.Start(StartSpec{Path: "/bin/true", Argv: []string{"true"}})
		if err != nil {
			return err
		}
		defer killAndReap(th, pid)
		if st, err := th.Wait(); err != nil || st.PID != pid || !st.Status.Stopped() {
			t.Fatalf("exec stop: %+v %v", st, err)
		}
		var r1, r2 arch.Regs
		n := Calls.GetRegs
		if err := th.Regs(pid, &r1); err != nil {
			t.Fatal(err)
		}
		if err := th.Regs(pid, &r2); err != nil {
			t.Fatal(err)
		}
		if got := Calls.GetRegs - n; got != 1 || r1 != r2 {
			t.Errorf("two reads in one stop: %d GETREGSET, %+v then %+v; want 1, the same", got, r1, r2)
		}

		// Written: the next read asks the kernel, and sees the new value.
		w := r1
		w.R[0] = 0x1234 // %rax (DWARF 0)
		if err := th.SetRegs(pid, &w); err != nil {
			t.Fatal(err)
		}
		n = Calls.GetRegs
		if err := th.Regs(pid, &r2); err != nil {
			t.Fatal(err)
		}
		if Calls.GetRegs == n || r2.R[0] != 0x1234 {
			t.Errorf("after SetRegs: %d GETREGSET, %%rax %#x; want a read, 0x1234", Calls.GetRegs-n, r2.R[0])
		}

		// Stepped: the pc has moved, and the read says so.
		if err := th.Step(pid, 0); err != nil {
			t.Fatal(err)
		}
		if st, err := th.Wait(); err != nil || st.PID != pid || !st.Status.Stopped() {
			t.Fatalf("step stop: %+v %v", st, err)
		}
		if err := th.Regs(pid, &r2); err != nil {
			t.Fatal(err)
		}
		if r2.PC() == r1.PC() {
			t.Errorf("after a step: pc %#x, as before it", r2.PC())
		}

		// A signal sent: the task may have left its stop; the next read asks.
		n = Calls.GetRegs
		_ = Tgkill(pid, pid, unix.SIGCONT)
		_ = th.Regs(pid, &r2)
		if Calls.GetRegs == n {
			t.Error("after Tgkill: the registers were not read again")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// killAndReap ends a test's tracee: SIGKILL, then waits until its death
// is reaped (or the wait fails).
func killAndReap(th *Thread, pid int) {
	_ = Kill(pid, unix.SIGKILL)
	for {
		if st, err := th.Wait(); err != nil || st.PID == pid && (st.Status.Exited() || st.Status.Signaled()) {
			return
		}
	}
}
