package tracer

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
)

func TestOverlap(t *testing.T) {
	for _, c := range []struct {
		x, w uint64
		a    disasm.Access
		want uint8
	}{
		{0x1000, 8, disasm.Access{Addr: 0x1000, Size: 8}, 0xff},
		{0x1000, 8, disasm.Access{Addr: 0x1004, Size: 4}, 0xf0}, // the upper half
		{0x1000, 8, disasm.Access{Addr: 0x0ffc, Size: 8}, 0x0f}, // straddles into the lower half
		{0x1000, 4, disasm.Access{Addr: 0x1003, Size: 2}, 0x08},
		{0x1000, 8, disasm.Access{Addr: 0x1008, Size: 8}, 0},
	} {
		if got := overlap(c.x, c.w, c.a); got != c.want {
			t.Errorf("overlap(%#x, %d, %+v) = %#x, want %#x", c.x, c.w, c.a, got, c.want)
		}
	}
}

// The parent's watchpoints watch reads and writes: RW=11 (SDM vol. 3,
// 18.2.4), 8 bytes LEN=10, 4 bytes LEN=11.
func TestDR7ForRW(t *testing.T) {
	if got := dr7ForRW(1, 8); got != 0xb0001 {
		t.Errorf("dr7ForRW(1, 8) = %#x, want 0xb0001", got)
	}
	if got := dr7ForRW(1, 4); got != 0xf0001 {
		t.Errorf("dr7ForRW(1, 4) = %#x, want 0xf0001", got)
	}
	if got := dr7ForRW(2, 8); got != 0xbb0005 {
		t.Errorf("dr7ForRW(2, 8) = %#x, want 0xbb0005 (L0|L1, both 8-byte read/write)", got)
	}
}

func TestWords(t *testing.T) {
	var got []uint64
	words(0x1006, 4, 8, func(x uint64) { got = append(got, x) })
	if len(got) != 2 || got[0] != 0x1000 || got[1] != 0x1008 {
		t.Errorf("a 4-byte access at 0x1006 touches words %#x, want 0x1000 and 0x1008", got)
	}
}

func TestDR7For(t *testing.T) {
	// FACTS.md: an 8-byte write watchpoint on DR0 is 0x90001 (L0, RW0=01,
	// LEN0=10); 4 bytes is 0xd0001.
	if got := dr7For(1, 8); got != 0x90001 {
		t.Errorf("dr7For(1, 8) = %#x, want 0x90001", got)
	}
	if got := dr7For(1, 4); got != 0xd0001 {
		t.Errorf("dr7For(1, 4) = %#x, want 0xd0001", got)
	}
	if got := dr7For(2, 8); got != 0x990005 {
		t.Errorf("dr7For(2, 8) = %#x, want 0x990005 (L0|L1, both 8-byte writes)", got)
	}
}

func TestSiCodeName(t *testing.T) {
	for _, c := range []struct {
		sig  unix.Signal
		code int32
		want string
	}{
		{unix.SIGSEGV, 1, "SEGV_MAPERR"}, {unix.SIGSEGV, 2, "SEGV_ACCERR"}, {unix.SIGSEGV, 0x80, "SI_KERNEL"},
		{unix.SIGTRAP, 2, "TRAP_TRACE"}, {unix.SIGTRAP, 4, "TRAP_HWBKPT"}, {unix.SIGTRAP, -6, "SI_TKILL"},
		{unix.SIGBUS, 2, "BUS_ADRERR"}, {unix.SIGABRT, 0, "SI_USER"}, {unix.SIGSEGV, 9, "9"},
	} {
		if got := siCodeName(c.sig, c.code); got != c.want {
			t.Errorf("siCodeName(%v, %d) = %q, want %q", c.sig, c.code, got, c.want)
		}
	}
}

// cloneFlags names bits as <linux/sched.h> defines them (and strace
// prints them): the vfork wrappers' flags, and the bits an earlier table
// of vtrace's got wrong.
func TestCloneFlags(t *testing.T) {
	for _, c := range []struct {
		flags   uint64
		withSig bool
		want    string
	}{
		{0x4111, true, "CLONE_VM|CLONE_VFORK|SIGCHLD"}, // glibc/musl vfork via clone
		{0x4100, false, "CLONE_VM|CLONE_VFORK"},        // clone3 flags (exit signal apart)
		{0x100000, false, "CLONE_PARENT_SETTID"},       // not SETTLS
		{0x200000, false, "CLONE_CHILD_CLEARTID"},      // not PARENT_SETTID
		{0x80000, false, "CLONE_SETTLS"},               //
		{0x20000000, false, "CLONE_NEWPID"},            // not CLEAR_SIGHAND
		{0x100000000, false, "CLONE_CLEAR_SIGHAND"},    // clone3 only
		{0x80, false, "CLONE_NEWTIME"},                 // clone3: a flag, not a signal
		{0x1_0000_0000_0000, false, "0x1000000000000"}, // unknown bits in hex
		{0x3d0f00 | 0x11, true, "CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID|SIGCHLD"},
	} {
		if got := cloneFlags(c.flags, c.withSig); got != c.want {
			t.Errorf("cloneFlags(%#x, %v) = %q, want %q", c.flags, c.withSig, got, c.want)
		}
	}
}

func TestJudge(t *testing.T) {
	ret := &event.ChildReturnPastFrame{}
	for _, c := range []struct {
		name    string
		st      story
		verdict event.Judgement
		reasons []event.Reason
	}{
		{"nothing", story{}, event.Clean, nil},
		{"returned past", story{kid: childFacts{returns: []*event.ChildReturnPastFrame{ret}}}, event.Violation,
			[]event.Reason{event.ReasonReturnedPast}},
		{"slot clobbered, unused", story{kid: childFacts{writes: []*event.SlotWrite{{}}}}, event.Warning,
			[]event.Reason{event.ReasonClobberedSlot}},
		{"saved register restored", story{kid: childFacts{writes: []*event.SlotWrite{{}}},
			par: parentFacts{consumes: []*event.ParentConsume{{Kind: event.SlotSavedReg}}}}, event.Violation,
			[]event.Reason{event.ReasonConsumedSlot, event.ReasonClobberedSlot}},
		{"local read", story{par: parentFacts{consumes: []*event.ParentConsume{{Kind: event.SlotLocal}}}}, event.Warning,
			[]event.Reason{event.ReasonReadChildWrite}},
		{"exit()", story{kid: childFacts{calledExit: true}}, event.Warning, []event.Reason{event.ReasonCalledExit}},
	} {
		v, rs := judge(&c.st)
		if v != c.verdict || len(rs) != len(c.reasons) {
			t.Errorf("%s: %s %v, want %s %v", c.name, v, rs, c.verdict, c.reasons)
			continue
		}
		for i := range rs {
			if rs[i] != c.reasons[i] {
				t.Errorf("%s: reasons %v, want %v", c.name, rs, c.reasons)
			}
		}
	}
}
