package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// A parent that spawns from the same %rsp and %rip through different
// callers (testdata/spawncallers.c: h1's and h2's frames are of one size,
// so their calls reach the vfork with the same registers, wherever the
// stack starts): each story's frames
// name the callers of that call, as the program's structure says — the
// unwind memo reuses a parent's last unwind only when the stack words the
// frames were computed from are the same (a memo that compared registers
// alone gives h1's frames for h2's call). In both modes, at -O0 and -O2.
func TestUnwindMemoCallersSameSP(t *testing.T) {
	want := [][]string{{"g", "h1", "main"}, {"g", "h2", "main"}, {"g", "h1", "h3", "main"}}
	for _, opt := range []string{"-O0", "-O2"} {
		prog := buildC(t, "spawncallers.c", opt)
		for _, mode := range [][]string{nil, {"--step"}} {
			r := trace(t, append(append([]string{"-q", "--no-aslr"}, mode...), prog)...)
			var sps []event.Addr
			n := 0
			for _, v := range all[*event.Vfork](r) {
				if got, w := spawnCallerFrames(v), want[n%3]; !slices.Equal(got, w) {
					t.Errorf("%s %v: vfork %d: the program's frames are %v, want %v", opt, mode, v.Vfork, got, w)
				}
				sps = append(sps, v.SP)
				n++
			}
			if n != 6 {
				t.Fatalf("%s %v: %d vforks, want 6\n%s", opt, mode, n, r.stderr)
			}
			// The test is only worth its name if h1's and h2's calls
			// reached the vfork with the same stack pointer.
			if sps[0] != sps[1] {
				t.Errorf("%s %v: h1's call vforked at sp %v, h2's at %v: not the same registers (the memo case is not met)", opt, mode, sps[0], sps[1])
			}
			if v := r.verdict(); v.Verdict != "clean" {
				t.Errorf("%s %v: verdict %s, want clean", opt, mode, v.Verdict)
			}
		}
	}
}

// spawnCallerFrames names a story's frames in spawncallers' own functions
// (main, g, h1–h3), innermost first.
func spawnCallerFrames(v *event.Vfork) []string {
	var got []string
	for _, f := range v.Frames {
		if f.Sym != nil && (f.Sym.Sym == "main" || f.Sym.Sym == "g" || strings.HasPrefix(f.Sym.Sym, "h")) {
			got = append(got, f.Sym.Sym)
		}
	}
	return got
}
