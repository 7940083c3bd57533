package tracer

import (
	"encoding/binary"
	"testing"

	"github.com/go-delve/delve/pkg/dwarf/regnum"
	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/internal/arch"
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
		k := newTaskAfterClone(t, img, c.nr, c.flags, 0, false)
		if got := len(k.inherited) > 0; got != c.inherit {
			t.Errorf("%s: int3s to undo in the child %v, want %v", c.name, k.inherited, c.inherit)
		}
	}
}

// TestVforkChildInherited: a vfork event's child (held for its story)
// gets vtrace's int3s undone only when its memory is a copy: the kernel
// reports PTRACE_EVENT_VFORK for clone(CLONE_VFORK|SIGCHLD), whose child
// has no CLONE_VM (targets/clonevforkcopy.c). A vfork or a clone with
// CLONE_VM shares the memory: its int3s are the story's own. Flags that
// cannot be read (clone3's struct unreadable, an unknown call) count as
// sharing, as the story takes them (begin).
func TestVforkChildInherited(t *testing.T) {
	a := newAsm(codeBase)
	a.fn("main").raw(0x90, 0x90, 0x90, 0x90).exitWith(0)
	img := a.image(t)
	for _, c := range []struct {
		name    string
		nr      uint64
		flags   uint64
		argPtr  uint64 // clone3's struct (0: args)
		inherit bool
	}{
		{"vfork", 58, 0, 0, false},
		{"clone(CLONE_VM|CLONE_VFORK|SIGCHLD)", 56, unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD), 0, false},
		{"clone(CLONE_VFORK|SIGCHLD)", 56, unix.CLONE_VFORK | uint64(unix.SIGCHLD), 0, true},
		{"clone3(CLONE_VFORK)", 435, unix.CLONE_VFORK, 0, true},
		{"clone3(CLONE_VM|CLONE_VFORK)", 435, unix.CLONE_VM | unix.CLONE_VFORK, 0, false},
		{"clone3(unreadable struct)", 435, unix.CLONE_VFORK, 0x10, false},
		{"syscall 999", 999, unix.CLONE_VFORK, 0, false},
	} {
		k := newTaskAfterClone(t, img, c.nr, c.flags, c.argPtr, true)
		if got := len(k.inherited) > 0; got != c.inherit {
			t.Errorf("%s: int3s to undo in the child %v, want %v", c.name, k.inherited, c.inherit)
		}
	}
}

// newTaskAfterClone registers the task a fake process's system call nr
// made (flags its first argument; for clone3, the flags of a struct
// clone_args written on its stack, or argPtr as the struct's address when
// not 0), with one of vtrace's int3s planted in the parent: held as a vfork
// event's child is, or not as a fork event's.
func newTaskAfterClone(t *testing.T, img *fakeImage, nr, flags, argPtr uint64, held bool) *task {
	t.Helper()
	const args = fakeStackTop - 256 // a struct clone_args
	f, s, p := spawnedTask(t, img)
	pid, mm := p.pid, p.proc.mm
	mm.bps[codeBase+1] = &breakpoint{addr: codeBase + 1, orig: 0x90, owners: map[int]bool{1: true}}
	r := &f.tasks[pid].regs
	r.OrigAX = nr
	r.R[regnum.AMD64_Rdi] = flags
	if nr == 435 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], flags)
		if !img.write(args, b[:]) {
			t.Fatal("no memory for clone_args")
		}
		r.R[regnum.AMD64_Rdi] = args
		if argPtr != 0 {
			r.R[regnum.AMD64_Rdi] = argPtr
		}
	}
	return s.newTask(p, pid+1, false, held)
}

// TestCloneMemory: what a new task's memory is, from the decoded call, on
// both arches (i386 passes clone's flags in %ebx, amd64 in %rdi; the exit
// signal's low byte is no flag).
func TestCloneMemory(t *testing.T) {
	for _, c := range []struct {
		name string
		a    *arch.Arch
		nr   uint64
		arg0 uint64
		want cloneMemory
	}{
		{"amd64 vfork", arch.AMD64, 58, 0, memShared},
		{"amd64 clone(CLONE_VM|CLONE_VFORK|SIGCHLD)", arch.AMD64, 56, unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD), memShared},
		{"amd64 clone(CLONE_VFORK|SIGCHLD)", arch.AMD64, 56, unix.CLONE_VFORK | uint64(unix.SIGCHLD), memCopy},
		{"amd64 clone(SIGCHLD)", arch.AMD64, 56, uint64(unix.SIGCHLD), memCopy},
		{"amd64 fork", arch.AMD64, 57, 0, memUnknown}, // not a call of the vfork family: nothing decoded
		{"amd64 syscall 999", arch.AMD64, 999, unix.CLONE_VM, memUnknown},
		{"i386 vfork", arch.I386, 190, 0, memShared},
		{"i386 clone(CLONE_VFORK|SIGCHLD)", arch.I386, 120, unix.CLONE_VFORK | uint64(unix.SIGCHLD), memCopy},
		{"i386 clone(CLONE_VM|CLONE_VFORK|SIGCHLD)", arch.I386, 120, unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD), memShared},
		{"i386 number 56 (not clone there)", arch.I386, 56, unix.CLONE_VFORK, memUnknown},
	} {
		regs := arch.Regs{Arch: c.a}
		regs.OrigAX = c.nr
		if c.a == arch.AMD64 {
			regs.R[regnum.AMD64_Rdi] = c.arg0
			regs.R[regnum.AMD64_Rsi] = 0xdead0000 // the stack argument: not the flags
		} else {
			regs.R[regnum.I386_Ebx] = c.arg0
			regs.R[regnum.I386_Ecx] = 0xdead0000
		}
		s := &session{}
		call := s.cloneCallAt(1, &regs)
		if got := call.memory(); got != c.want {
			t.Errorf("%s: memory %v, want %v (decoded %+v)", c.name, got, c.want, call)
		}
		if call.name == "clone" && call.childSP != 0xdead0000 {
			t.Errorf("%s: child stack %#x, want the second argument 0xdead0000", c.name, call.childSP)
		}
	}
}
