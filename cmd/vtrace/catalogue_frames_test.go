package main

import (
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// The parent's frames at the vfork in two catalogue targets, the facts the
// matrix checks only in part.
//
// rr3270_popfw (gdb: hook_vfork → tramp_vfork → main): tramp_vfork keeps
// its return address in %rdi / %ecx, which hook_vfork (a leaf that writes
// only %eax and the syscall's registers) never touches, so the walk goes
// on into main.
//
// rr1595_stack: at -O2 (amd64) and on i386, clone's own store put a data
// word on its return slot before the syscall; frame 0 is clone with that
// slot and the store that overwrote it, and nothing above it. gcc -O0
// keeps the slot intact at the vfork (the child overwrites it later):
// frame 0 returns normally into spawn_on.
func TestCatalogueFrames(t *testing.T) {
	requirePtrace(t)
	for _, c := range []struct {
		target, build string
		rets          []string // the functions frames 0.. return into ("" for none)
		retReg        string   // frame 1's
		storedBy      bool     // frame 0's slot overwritten by clone itself
	}{
		{"rr3270_popfw", "gcc-O2", []string{"tramp_vfork", "main"}, "rdi", false},
		{"rr3270_popfw", "musl-O0", []string{"tramp_vfork", "main"}, "rdi", false},
		{"rr3270_popfw", "gcc-O0-m32", []string{"tramp_vfork", "main"}, "ecx", false},
		{"rr1595_stack", "gcc-O2", []string{""}, "", true},
		{"rr1595_stack", "clang-O2", []string{""}, "", true},
		{"rr1595_stack", "gcc-O2-m32", []string{""}, "", true},
		{"rr1595_stack", "gcc-O0", []string{"spawn_on"}, "", false},
	} {
		t.Run(c.target+"/"+c.build, func(t *testing.T) {
			prog := realTarget(t, c.build, c.target)
			if strings.Contains(c.build, "m32") {
				requireI386(t)
			}
			r := trace(t, prog)
			vf := all[*event.Vfork](r)
			if len(vf) != 1 {
				t.Fatalf("%d vfork events, want 1", len(vf))
			}
			frames := vf[0].Frames
			if len(frames) < len(c.rets) {
				t.Fatalf("frames %+v, want at least %d", frames, len(c.rets))
			}
			for i, want := range c.rets {
				got := ""
				if s := frames[i].RetSym; s != nil {
					got = s.Sym
				}
				if got != want {
					t.Errorf("frame %d returns into %q (%s), want %q", i, got, frames[i].Ret, want)
				}
			}
			if c.retReg != "" && (frames[1].RetReg != c.retReg || frames[1].RetSlot != nil) {
				t.Errorf("frame 1's return address in %q (slot %v), want %%%s", frames[1].RetReg, frames[1].RetSlot, c.retReg)
			}
			by := frames[0].RetStoredBy
			switch {
			case !c.storedBy && by != nil:
				t.Errorf("frame 0's return slot said overwritten by %+v", by)
			case c.storedBy && (by == nil || by.Sym == nil || by.Sym.Sym != "clone" || !strings.HasPrefix(by.Insn, "mov ") || len(frames) != 1 || frames[0].RetSlot == nil):
				t.Errorf("frames %+v (stored by %+v), want one: clone, its return slot overwritten by a mov of clone", frames, by)
			}
		})
	}
}
