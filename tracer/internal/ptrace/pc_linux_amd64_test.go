package ptrace

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// PC (PTRACE_PEEKUSER of the ip word) says what Regs says, step after step,
// of an amd64 tracee and of an i386 one (the 64-bit layout of struct user
// is the 64-bit tracer's, whatever the tracee).
func TestPCMatchesRegs(t *testing.T) {
	progs := map[string]string{"amd64": "/bin/true"}
	if dir := os.Getenv("VTRACE_TARGETS"); dir != "" {
		progs["i386"] = filepath.Join(dir, "gcc-O0-m32", "spin")
	}
	for name, path := range progs {
		t.Run(name, func(t *testing.T) {
			if _, err := os.Stat(path); err != nil {
				t.Skipf("no %s program: %v", name, err)
			}
			err := Run(-1, func(th *Thread) error {
				pid, err := th.Start(StartSpec{Path: path, Argv: []string{path, "1"}})
				if err != nil {
					return err
				}
				defer killAndReap(th, pid)
				for i := 0; i < 50; i++ {
					if st, err := th.Wait(); err != nil || st.PID != pid || !st.Status.Stopped() {
						t.Fatalf("stop %d: %+v %v", i, st, err)
					}
					n := Calls.GetPC
					pc, err := th.PC(pid)
					if err != nil {
						t.Fatal(err)
					}
					var r arch.Regs
					if err := th.Regs(pid, &r); err != nil {
						t.Fatal(err)
					}
					if pc != r.PC() || Calls.GetPC != n+1 {
						t.Fatalf("stop %d: PC %#x, Regs %s pc %#x (%d calls)", i, pc, r.Arch.Name, r.PC(), Calls.GetPC-n)
					}
					if err := th.Step(pid, 0); err != nil {
						t.Fatal(err)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
