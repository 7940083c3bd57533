package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/tracer/event"
)

// Who waits for whom across stories (docs/reliability.md; tracer/giveway.go).
// A vfork made while another story is in progress runs its story at once,
// nested, or is held until that story ends; each choice deadlocks one
// direction, and vtrace hung until --timeout on both programs here. Now the
// story that blocks gives way: it is cut short ("blocked", a
// story_gave_way note), the held tasks run, and the program ends as
// natively. Each run has --timeout 30s, so a regression fails (the run
// stopped by its timeout) instead of hanging the suite.
func TestStoriesGiveWay(t *testing.T) {
	requirePtrace(t)
	cases := []struct {
		src   string
		flags []string
		// mainCut: the story cut short is the main program's (held
		// direction); else the nested one, another process's.
		mainCut bool
	}{
		{"nestwait.c", nil, false},
		{"threadjoin.c", []string{"-pthread"}, true},
	}
	for _, c := range cases {
		prog := buildC(t, c.src, c.flags...)
		native := runNative(t, prog)
		if native.status != 0 || native.out == "" {
			t.Fatalf("%s natively: status %d, output %q: the program does not do what it is for", c.src, native.status, native.out)
		}
		for _, mode := range [][]string{nil, {"--step"}, {"--watchpoints", "off"}} {
			name := strings.TrimSuffix(c.src, ".c") + "/" + strings.Join(append([]string{"fast"}, mode...), " ")
			t.Run(name, func(t *testing.T) {
				start := time.Now()
				r := trace(t, append(append([]string{"-q", "--timeout", "30s"}, mode...), prog)...)
				took := time.Since(start)
				v := r.verdict()
				if v.Incomplete != "" {
					t.Fatalf("the run was stopped (%s) after %v: vtrace waited for a story that could not go on", v.Incomplete, took)
				}
				if took > 20*time.Second {
					t.Errorf("the run took %v", took)
				}
				if r.exit != native.status || r.stdout != native.out {
					t.Errorf("exit %d, output %q; natively %d, %q\nstderr: %s", r.exit, r.stdout, native.status, native.out, r.stderr)
				}
				if v.Vforks != 2 {
					t.Errorf("%d vforks, want 2", v.Vforks)
				}
				mainPID := r.mainExit(t).PID
				parents := map[int]int{}
				for _, vf := range all[*event.Vfork](r) {
					parents[vf.Vfork] = vf.PID
				}
				var cut []int
				for _, vv := range all[*event.VforkVerdict](r) {
					switch vv.Incomplete {
					case "blocked":
						cut = append(cut, vv.Vfork)
					case "":
						if vv.Verdict != event.Clean {
							t.Errorf("story %d: %s %v, want clean (it ran to its end)", vv.Vfork, vv.Verdict, vv.Reasons)
						}
					default:
						t.Errorf("story %d cut short: %s", vv.Vfork, vv.Incomplete)
					}
				}
				if len(cut) != 1 {
					t.Fatalf("stories cut short as blocked: %v, want exactly one", cut)
				}
				id := cut[0]
				if got := parents[id] == mainPID; got != c.mainCut {
					t.Errorf("story %d (parent %d, main %d) was cut; want the main program's: %v", id, parents[id], mainPID, c.mainCut)
				}
				noted := slices.ContainsFunc(all[*event.Note](r), func(n *event.Note) bool {
					return n.Code == event.NoteStoryGaveWay && n.Vfork == id && strings.Contains(n.Msg, "slept in the kernel")
				})
				if !noted {
					t.Errorf("no story_gave_way note for story %d: %v", id, all[*event.Note](r))
				}
				if c.mainCut {
					// main() was followed into pthread_join with the child's
					// `x` live: that word is reported unchecked, not read.
					ls := ofVfork[*event.ParentLanding](r, id)
					if len(ls) != 1 || ls[0].How != event.LandUnchecked ||
						!slices.ContainsFunc(ls[0].Words, func(w event.WordFate) bool { return w.Fate == event.FateUnchecked }) {
						t.Errorf("story %d: landing %+v, want unchecked with the live words unchecked", id, ls)
					}
				}
				r.assertNoneLeft(t)
			})
		}
	}
}
