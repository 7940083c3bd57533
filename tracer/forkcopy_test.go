package tracer

import (
	"encoding/binary"
	"testing"

	"github.com/go-delve/delve/pkg/dwarf/regnum"
	"golang.org/x/sys/unix"
)

// TestForkChildInherited: a new process made by a fork event gets vtrace's
// int3s undone at its first stop only when its memory is a copy. The
// kernel reports clone(CLONE_VM|SIGCHLD) (no CLONE_VFORK) as a fork event
// too; that child shares the parent's memory, and undoing "its" int3s
// took out the story's own: a vfork child whose call (run at full speed)
// made such a clone came back from it past the int3 at its return address
// and ran on untraced (bp_hits 0, its stores found by diff, not step).
func TestForkChildInherited(t *testing.T) {
	a := newAsm(codeBase)
	a.fn("main").raw(0x90, 0x90, 0x90, 0x90).exitWith(0)
	img := a.image(t)
	const args = fakeStackTop - 256 // a struct clone_args
	for _, c := range []struct {
		name    string
		nr      uint64
		flags   uint64
		inherit bool
	}{
		{"fork", 57, 0, true},
		{"clone(SIGCHLD)", 56, uint64(unix.SIGCHLD), true},
		{"clone(CLONE_VM|SIGCHLD)", 56, unix.CLONE_VM | uint64(unix.SIGCHLD), false},
		{"clone3(CLONE_VM)", 435, unix.CLONE_VM, false},
		{"clone3(0)", 435, 0, true},
	} {
		f := newFakeProcs(t)
		pid := f.spawn(img, codeBase)
		s := newSession(Config{CPU: -1}, f)
		mm, err := s.newAddrSpace(pid)
		if err != nil {
			t.Fatal(err)
		}
		p := &task{pid: pid, proc: &process{tgid: pid, mm: mm}}
		mm.bps[codeBase+1] = &breakpoint{addr: codeBase + 1, orig: 0x90, owners: map[int]bool{1: true}}
		r := &f.tasks[pid].regs
		r.OrigAX = c.nr
		r.R[regnum.AMD64_Rdi] = c.flags
		if c.nr == 435 {
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], c.flags)
			if !img.write(args, b[:]) {
				t.Fatal("no memory for clone_args")
			}
			r.R[regnum.AMD64_Rdi] = args
		}
		k := s.newTask(p, pid+1, false, false)
		if got := len(k.inherited) > 0; got != c.inherit {
			t.Errorf("%s: int3s to undo in the child %v, want %v", c.name, k.inherited, c.inherit)
		}
	}
}
