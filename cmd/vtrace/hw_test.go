package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// Hardware watchpoints: vtrace probes whether debug-register watchpoints
// fire and, where they do, names the exact writer of a slot inside a callee
// that fast mode runs at full speed. Where they do not (some hypervisors),
// or with --watchpoints off, the same slot writes are found by diffing and
// attributed to the call. Both outcomes are checked on whatever this
// machine does; the VM tests run the "they fire" side under TCG too.
func TestWatchpoints(t *testing.T) {
	prog := targetPath(t, "gcc-O0", "badvfork")
	auto := trace(t, "--no-aslr", prog)
	off := trace(t, "--no-aslr", "--watchpoints", "off", prog)

	start := all[*event.Start](auto)[0]
	t.Logf("watchpoints %s (probe: %s)", start.Watchpoints, start.WatchpointProbe)
	if s := all[*event.Start](off)[0]; s.Watchpoints != "off" || s.WatchpointProbe != "" {
		t.Errorf("--watchpoints off: start says %q (probe %q)", s.Watchpoints, s.WatchpointProbe)
	}
	if v := all[*event.Vfork](off)[0]; v.Mechanism != "depth" {
		t.Errorf("--watchpoints off: mechanism %q, want depth", v.Mechanism)
	}

	// createproc's saved %rbp is overwritten inside `call exit@plt`, by the
	// lazy-binding PLT stub's `push $index` (FACTS.md: it becomes 0x2).
	rbp := func(r *traced) *event.SlotWrite {
		for _, w := range ofVfork[*event.SlotWrite](r, 1) {
			if w.Kind == "saved_reg" && w.Reg == "rbp" && w.FrameFn != nil && w.FrameFn.Sym == "createproc" {
				return w
			}
		}
		t.Fatalf("no slot_write of createproc's saved %%rbp")
		return nil
	}
	wOff, wAuto := rbp(off), rbp(auto)
	if wOff.FoundBy != "diff" || wOff.By != nil || wOff.During == nil || !strings.Contains(wOff.During.Insn, "exit@plt") {
		t.Errorf("--watchpoints off: found_by %q by %v during %v, want a diff during the call to exit@plt", wOff.FoundBy, wOff.By, wOff.During)
	}
	if wOff.New != 0x2 || wAuto.New != wOff.New || wAuto.Old != wOff.Old || wAuto.Slot != wOff.Slot {
		t.Errorf("saved %%rbp write differs: auto %s→%s at %s, off %s→%s at %s", wAuto.Old, wAuto.New, wAuto.Slot, wOff.Old, wOff.New, wOff.Slot)
	}

	switch start.Watchpoints {
	case "hw":
		if v := all[*event.Vfork](auto)[0]; v.Mechanism != "depth+hw" {
			t.Errorf("mechanism %q, want depth+hw", v.Mechanism)
		}
		if wAuto.FoundBy != "hw" || wAuto.By == nil || wAuto.During == nil {
			t.Fatalf("found_by %q by %v during %v, want the watchpoint's exact writer inside the call", wAuto.FoundBy, wAuto.By, wAuto.During)
		}
		if wAuto.By.Sym == nil || wAuto.By.Sym.Sym != "exit@plt" || !strings.HasPrefix(wAuto.By.Insn, "push") {
			t.Errorf("writer %s `%s`, want a push in exit@plt", symStr(wAuto.By.Sym), wAuto.By.Insn)
		}
		if end := ofVfork[*event.ChildEnd](auto, 1); len(end) != 1 || end[0].HWHits == 0 {
			t.Errorf("child_end %+v: want hw_hits > 0", end)
		}
	case "none":
		// The probe saw the store but no trap: everything as with off.
		if wAuto.FoundBy != "diff" {
			t.Errorf("watchpoints do not fire here, yet found_by %q", wAuto.FoundBy)
		}
		if !strings.Contains(start.WatchpointProbe, "did not fire") {
			t.Errorf("probe %q", start.WatchpointProbe)
		}
	default:
		t.Fatalf("watchpoints %q after the probe (%s): want hw or none", start.Watchpoints, start.WatchpointProbe)
	}

	// The verdict and landing do not depend on the mechanism.
	for _, r := range []*traced{auto, off} {
		if v := r.verdict(); v.Verdict != "violation" || v.Vforks != 2 {
			t.Errorf("verdict %+v", v)
		}
	}
	la, lo := ofVfork[*event.ParentLanding](auto, 1), ofVfork[*event.ParentLanding](off, 1)
	if fmt.Sprint(la[0].PC, la[0].How) != fmt.Sprint(lo[0].PC, lo[0].How) {
		t.Errorf("landing differs: auto %s %s, off %s %s", la[0].How, la[0].PC, lo[0].How, lo[0].PC)
	}
}
