package main

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/targets/expect"
	"github.com/vtrace/vtrace/tracer/event"
)

// summary is what fast mode and --step mode must agree on: per vfork, the
// final value each return-address or saved-register slot was left with,
// the parent's landing, and the verdict.
func summary(r *traced) string {
	var b strings.Builder
	for _, v := range all[*event.Vfork](r) {
		last := map[event.Addr]string{}
		for _, w := range ofVfork[*event.SlotWrite](r, v.Vfork) {
			last[w.Slot] = fmt.Sprintf("%s %s %s=%s", w.Kind, w.Reg, w.Slot, w.New)
		}
		var ws []string
		for _, s := range last {
			ws = append(ws, s)
		}
		sort.Strings(ws)
		fmt.Fprintf(&b, "vfork #%d writes %v", v.Vfork, ws)
		for _, l := range ofVfork[*event.ParentLanding](r, v.Vfork) {
			fmt.Fprintf(&b, " landing %s %s", l.How, symStr(l.Sym))
		}
		for _, vv := range ofVfork[*event.VforkVerdict](r, v.Vfork) {
			fmt.Fprintf(&b, " %s %v", vv.Verdict, vv.Reasons)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "verdict %s", r.verdict().Verdict)
	return b.String()
}

// Fast mode and --step mode tell the same story on every target, and no
// int3 survives a child in the parent's code.
func TestFastMatchesStep(t *testing.T) {
	requirePtrace(t)
	builds := expect.Builds
	if testing.Short() {
		builds = builds[:1]
	}
	for _, build := range builds {
		if expect.I386(build) && !i386Native(t) {
			t.Logf("%s: this kernel cannot run i386 programs; the VM tests cover it", build)
			continue
		}
		for _, c := range expect.Cases {
			if c.Workload || !expect.Built(c.Target, build) {
				continue
			}
			if why := expect.StepTooLong(c, build); why != "" {
				t.Logf("%s/%s: not compared: --step cannot finish this story: %s", build, c.Name(), why)
				continue
			}
			if e := expect.For(c, build); e.Pending != "" {
				t.Logf("%s/%s: not compared while its story waits for a fix: %s", build, c.Name(), e.Pending)
				continue
			}
			t.Run(build+"/"+c.Name(), func(t *testing.T) {
				// Each pair of runs is its own vtrace processes, and the
				// stories compared do not depend on timing: two targets at
				// once (-parallel, GOMAXPROCS) halve the package's longest
				// test (877 pairs, 156 s alone on the CI machine).
				t.Parallel()
				prog := targetPath(t, build, c.Target)
				args := append(append([]string{"--no-aslr", "--max-vforks", "4", "--timeout", "30s"}, c.Flags...), prog)
				args = append(args, c.Args...)
				fast := trace(t, args...)
				step := trace(t, append([]string{"--step"}, args...)...)
				if a, b := summary(fast), summary(step); a != b {
					t.Errorf("fast and --step differ\nfast:\n%s\nstep:\n%s", a, b)
				}
				for _, r := range []*traced{fast, step} {
					for _, n := range all[*event.Note](r) {
						if strings.Contains(n.Msg, "int3 left") {
							t.Errorf("%s", n.Msg)
						}
					}
					r.assertNoneLeft(t)
				}
			})
		}
	}
}
