package main

import (
	"testing"
	"time"

	"github.com/vtrace/vtrace/tracer/event"
)

// A task a story waits for dies while a story nested in that wait runs
// (testdata/diesnested.c): the enclosing story takes the death when the
// nested one is over and ends as the program does — it waited in wait4
// for a task that no longer existed (make -j4: a hang, every tracee
// stopped, 9 runs of 15; diesnested.c: the wait ended only when wait4 had
// nothing left to wait for, the story "incomplete: error"). In --step the
// followed task is stepped, so it cannot die during the nested story: the
// case is there for equal outcomes.
func TestFollowedDiesInNestedStory(t *testing.T) {
	requirePtrace(t)
	for _, arch := range []string{"", "-m32"} {
		var flags []string
		prefix := ""
		if arch != "" {
			requireI386(t)
			flags, prefix = []string{arch}, "i386-"
		}
		prog := buildC(t, "diesnested.c", flags...)
		native := runNativeIn(t, nil, prog)
		if native.status != 0 || native.out != "inner 0\nmid 0\n" {
			t.Fatalf("%s natively: status %d, output %q", arch, native.status, native.out)
		}
		for _, m := range []struct {
			name  string
			flags []string
		}{{"fast", nil}, {"step", []string{"--step"}}, {"fast-nohw", []string{"--watchpoints", "off"}}} {
			mode := m.flags
			t.Run(prefix+m.name, func(t *testing.T) {
				start := time.Now()
				r := trace(t, append(append([]string{"-q", "--timeout", "30s"}, mode...), prog)...)
				if took := time.Since(start); took > 20*time.Second {
					t.Errorf("the run took %v", took)
				}
				if v := r.verdict(); v.Incomplete != "" || v.Vforks != 3 || v.Verdict != event.Clean {
					t.Errorf("verdict %s, %d vforks, incomplete %q; want clean, 3, complete", v.Verdict, v.Vforks, v.Incomplete)
				}
				if r.exit != 0 || r.stdout != native.out {
					t.Errorf("exit %d, output %q; natively 0, %q\nstderr: %s", r.exit, r.stdout, native.out, r.stderr)
				}
				for _, vv := range all[*event.VforkVerdict](r) {
					if vv.Verdict != event.Clean || vv.Incomplete != "" {
						t.Errorf("story %d: %s, incomplete %q; want clean, whole", vv.Vfork, vv.Verdict, vv.Incomplete)
					}
				}
				for _, e := range all[*event.Error](r) {
					t.Errorf("error event: %+v", e)
				}
				exits := map[int]int{}
				for _, e := range all[*event.Exit](r) {
					exits[e.PID]++
				}
				for pid, n := range exits {
					if n != 1 {
						t.Errorf("pid %d: %d exit events", pid, n)
					}
				}
				if len(exits) != 3 {
					t.Errorf("%d processes' exits, want 3 (main, mid, inner)", len(exits))
				}
				r.assertNoneLeft(t)
			})
		}
	}
}
