package expect

import (
	"slices"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// Every pending mark names a case of Cases and builds of Builds: a typo
// would silently mark nothing (or everything) pending.
func TestPendingNamesRealRows(t *testing.T) {
	cases := map[string]bool{}
	for _, c := range Cases {
		cases[c.Name()] = true
	}
	for name, rows := range pendingToday {
		if !cases[name] {
			t.Errorf("pendingToday[%q]: no such case", name)
		}
		for _, r := range rows {
			if r.why == "" {
				t.Errorf("pendingToday[%q]: a row without its reason", name)
			}
			if r.builds == "*" {
				continue
			}
			for _, b := range strings.Fields(r.builds) {
				if !slices.Contains(Builds, b) {
					t.Errorf("pendingToday[%q]: no such build %q", name, b)
				}
			}
		}
	}
}

// The truth never depends on the pending marks: For only adds the mark.
func TestForAddsOnlyThePendingMark(t *testing.T) {
	for _, c := range Cases {
		for _, b := range Builds {
			e, tr := For(c, b), truth(c, b)
			e.Pending = ""
			if e.Verdict != tr.Verdict || e.Vforks != tr.Vforks || e.ReturnsPast != tr.ReturnsPast || e.Why != tr.Why {
				t.Errorf("%s %s: For differs from truth beyond Pending", c.Name(), b)
			}
		}
	}
}

func vforkEv(n, pid int) *event.Vfork {
	return &event.Vfork{Header: event.Header{Event: "vfork", PID: pid}, Vfork: n,
		Frames: []event.Frame{{Method: "cfi", RetSym: &event.Sym{Sym: "main"}}}}
}

func verdictEv(n int, v, explanation string) *event.VforkVerdict {
	return &event.VforkVerdict{Header: event.Header{Event: "vfork_verdict"}, Vfork: n, Verdict: event.Judgement(v), Reasons: []event.Reason{}, Explanation: explanation}
}

// A process cannot vfork while suspended in a vfork: a second story of the
// same pid opened before the first ended is the tracer's nesting. A vfork
// made by the child itself (nestedvfork) is not.
func TestSummarizeNesting(t *testing.T) {
	runVerdict := &event.Verdict{Header: event.Header{Event: "verdict"}, Verdict: "clean", Vforks: 3}
	evs := []event.Event{
		vforkEv(1, 100), vforkEv(2, 101), // the child 101 vforks: legitimate
		verdictEv(2, "clean", ""), verdictEv(1, "clean", ""),
		vforkEv(3, 100), vforkEv(4, 100), // 100 again before #3 ended: nested
		verdictEv(4, "clean", ""), verdictEv(3, "clean", ""),
		runVerdict,
	}
	if s := Summarize(evs); s.Nested != 1 {
		t.Errorf("Nested = %d, want 1", s.Nested)
	}
}

// A sentence is checked against the story's own facts.
func TestUntrueClaims(t *testing.T) {
	untouched := "The child ran on the parent's stack, without touching any live parent frame and exec'd /bin/true; the parent resumed in main() with its frames intact."
	base := []event.Event{vforkEv(1, 100), verdictEv(1, "clean", untouched),
		&event.Verdict{Header: event.Header{Event: "verdict"}, Verdict: "clean", Vforks: 1}}
	if bad := untrueClaims(Summarize(base)); len(bad) != 0 {
		t.Errorf("a story with no writes and known frames: %v", bad)
	}
	write := &event.StackWrite{Header: event.Header{Event: "stack_write"}, Vfork: 1, Addr: 0x1000, Old: 1, New: 0}
	withWrite := append([]event.Event{base[0], write}, base[1:]...)
	if bad := untrueClaims(Summarize(withWrite)); len(bad) != 1 || !strings.Contains(bad[0], "without touching") {
		t.Errorf("a story with a stack write that says it touched nothing: %v", bad)
	}
	unknown := vforkEv(1, 100)
	unknown.Frames = []event.Frame{{Method: "none"}}
	noFrames := append([]event.Event{unknown}, base[1:]...)
	s := Summarize(noFrames)
	if bad := untrueClaims(s); len(bad) != 1 || !strings.Contains(bad[0], "intact") {
		t.Errorf("frames never known, said intact: %v", bad)
	}
	if bad := (Expect{Frame0Ret: "main"}).Check(s); !slices.ContainsFunc(bad, func(b string) bool { return strings.Contains(b, "frames_unknown") }) {
		t.Errorf("frames never known and no frames_unknown: %v", bad)
	}
}

func TestFlagSets(t *testing.T) {
	if !sameFlags("CLONE_VM|CLONE_VFORK|SIGCHLD", "SIGCHLD|CLONE_VFORK|CLONE_VM") {
		t.Error("the order of flag names must not matter")
	}
	if sameFlags("CLONE_VM|CLONE_VFORK|CLONE_SETTLS", "CLONE_VM|CLONE_VFORK|CLONE_PARENT_SETTID") {
		t.Error("different flag names compared equal")
	}
	if !names("libc.so.6 `call 7f00 <longjmp@plt>`", "_Unwind_|longjmp") || names("main `ret`", "longjmp") {
		t.Error("names")
	}
}
