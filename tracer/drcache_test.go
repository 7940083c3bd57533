package tracer

import "testing"

// setDR skips a write of DR0–DR3 or DR7 that would not change the
// register, as long as the task runs the image it was written in; DR6
// (the kernel's too) and any register after an exec, or after a write
// that failed, are written again.
func TestSetDRSkipsUnchanged(t *testing.T) {
	a := newAsm(codeBase)
	a.fn("main").raw(0x90).exitWith(0)
	f, s, tk := spawnedTask(t, a.image(t))
	pid := tk.pid
	s.byPID[pid] = tk
	writes := func(what string, want int, regs ...[2]uint64) {
		t.Helper()
		before := f.drWrites
		for _, r := range regs {
			if err := s.setDR(pid, int(r[0]), r[1]); err != nil {
				t.Fatal(err)
			}
			if got := f.tasks[pid].dr[r[0]]; got != r[1] {
				t.Fatalf("%s: DR%d holds %#x, want %#x", what, r[0], got, r[1])
			}
		}
		if got := f.drWrites - before; got != want {
			t.Errorf("%s: %d writes, want %d", what, got, want)
		}
	}
	writes("first", 4, [2]uint64{0, 0x1000}, [2]uint64{1, 0x1000}, [2]uint64{6, 0}, [2]uint64{7, 0xfd0005})
	writes("the same again", 1, [2]uint64{0, 0x1000}, [2]uint64{1, 0x1000}, [2]uint64{6, 0}, [2]uint64{7, 0xfd0005})
	writes("DR7 off, DR1 elsewhere", 2, [2]uint64{7, 0}, [2]uint64{1, 0x2000}, [2]uint64{0, 0x1000})
	// A failed write: the register is unknown, written the next time.
	f.noDR = true
	if err := s.setDR(pid, 0, 0x3000); err == nil {
		t.Fatal("a write the fake refuses succeeded")
	}
	f.noDR = false
	writes("after a failed write", 1, [2]uint64{0, 0x1000}, [2]uint64{1, 0x2000})
	// Another image (an exec): every register is written again.
	mm, err := s.newAddrSpace(pid)
	if err != nil {
		t.Fatal(err)
	}
	tk.proc.mm = mm
	writes("after an exec", 2, [2]uint64{0, 0x1000}, [2]uint64{1, 0x2000})
	// No image (between an exec event and its stop): nothing is skipped.
	tk.proc.mm = nil
	writes("without an image", 2, [2]uint64{0, 0x1000}, [2]uint64{1, 0x2000})
}
