package main

import (
	"strings"
	"testing"

	"github.com/vtrace/vtrace/targets/expect"
	"github.com/vtrace/vtrace/tracer/event"
)

// errno the vfork child changed (targets/vforkerrno.c, glibc tst-vfork3)
// and a clone(CLONE_VFORK) without CLONE_VM (targets/clonevforkcopy.c),
// in every way vtrace can follow them: fast mode with the watchpoints the
// probe found (here they fire: a write watchpoint on errno inside the
// parent's calls, a read/write one while errno alone is followed),
// --watchpoints off (the fallback where they do not: the parent's calls
// stepped), and --step. The matrix checks the verdicts in fast mode and
// TestFastMatchesStep --step's; this checks the facts behind them, and
// the fallback, which the matrix does not run.
func TestErrnoAndCopyEveryMechanism(t *testing.T) {
	modes := [][]string{nil, {"--watchpoints", "off"}, {"--step"}}
	for _, build := range []string{"gcc-O0", "gcc-O2", "clang-O2", "gcc-O2-static", "musl-O0", "musl-O2", "gcc-O0-m32", "gcc-O2-m32-static"} {
		for _, mode := range modes {
			name := build + "/" + strings.Join(append([]string{"fast"}, mode...), " ")
			t.Run(name, func(t *testing.T) {
				if expect.I386(build) {
					requireI386(t)
				}
				run := func(target string, args ...string) *traced {
					return trace(t, append(append(append([]string{}, mode...), targetPath(t, build, target)), args...)...)
				}
				// The parent reads errno after the vfork: the child's ENOENT
				// (2) instead of close(-1)'s EBADF (9), read by main.
				r := run("vforkerrno", "read")
				reads := all[*event.GlobalRead](r)
				if v := r.verdict(); v.Verdict != event.Warning || len(reads) != 1 {
					t.Fatalf("read: verdict %s, global_reads %d, want a warning and one read", v.Verdict, len(reads))
				}
				// errno is an int: on amd64 its word holds a neighbour too
				// (musl: errno_val is the high half, the tid the low one).
				g := reads[0]
				errno := func(v event.Addr) uint64 {
					if uint64(g.Value^g.Was)>>32 != 0 {
						return uint64(v) >> 32
					}
					return uint64(v) & 0xffffffff
				}
				if g.Libc != event.LibcErrno || errno(g.Value) != 2 || errno(g.Was) != 9 || g.By.Sym == nil || g.By.Sym.Sym != "main" {
					t.Errorf("read: global_read %+v by %s, want errno 2 (was 9) read by main", g, symStr(g.By.Sym))
				}
				// The parent's own failing open() stores ENOENT over the
				// child's ENOENT before it reads errno: its own value.
				o := run("vforkerrno", "open")
				if v := o.verdict(); v.Verdict != event.Clean || len(all[*event.GlobalRead](o)) != 0 || o.exit != 0 {
					t.Errorf("open: verdict %s, global_reads %d, exit %d, want clean, none, 0", v.Verdict, len(all[*event.GlobalRead](o)), o.exit)
				}
				// No CLONE_VM: a copy, run free, whatever the child does.
				c := run("clonevforkcopy")
				vf := all[*event.Vfork](c)
				if v := c.verdict(); v.Verdict != event.Clean || len(vf) != 1 || c.exit != 0 {
					t.Fatalf("clonevforkcopy: verdict %s, %d vfork(s), exit %d", v.Verdict, len(vf), c.exit)
				}
				if v := vf[0]; v.Mechanism != event.MechCopy || v.SharedStack || v.Memory != nil || v.Flags != "CLONE_VFORK|SIGCHLD" {
					t.Errorf("clonevforkcopy: vfork mechanism %q shared_stack %v memory %v flags %q", v.Mechanism, v.SharedStack, v.Memory, v.Flags)
				}
				if e := all[*event.ChildEnd](c); len(e) != 1 || e[0].How != event.EndExit || e[0].Code == nil || *e[0].Code != 3 || e[0].Steps != 0 {
					t.Errorf("clonevforkcopy: child_end %+v, want exit 3 after 0 steps", e)
				}
				if n := len(all[*event.ChildReturnPastFrame](c)) + len(all[*event.StackWrite](c)) + len(all[*event.SlotWrite](c)); n != 0 {
					t.Errorf("clonevforkcopy: %d returns past frames or writes blamed on a child that shares nothing", n)
				}
			})
		}
	}
}
