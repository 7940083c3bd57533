package tracer

import (
	"slices"

	"github.com/vtrace/vtrace/tracer/event"
)

// judge gives one story its verdict and reasons, from what the story saw.
//
// A violation needs the child to have left the function that called vfork
// (it returned past that frame), or the parent to have consumed a
// return-address or saved-register slot the child changed. A child writing
// into the parent's stack alone is not one: Go's os/exec child legitimately
// writes locals of the frame it shares. It is a warning when the parent
// then reads such a word, when a slot was clobbered but the parent never
// used it, or when the child called exit() (atexit handlers and stdio
// flushing run in the parent's memory). The words are the renderers'
// (report.Explain); the engine states the facts.
func judge(st *story) (event.Judgement, []event.Reason) {
	reasons := []event.Reason{}
	add := func(r event.Reason) {
		if !slices.Contains(reasons, r) {
			reasons = append(reasons, r)
		}
	}
	if len(st.kid.returns) > 0 {
		add(event.ReasonReturnedPast)
	}
	for _, c := range st.par.consumes {
		if c.Kind == event.SlotLocal {
			add(event.ReasonReadChildWrite)
		} else {
			add(event.ReasonConsumedSlot)
		}
	}
	if len(st.kid.writes) > 0 {
		add(event.ReasonClobberedSlot)
	}
	if st.kid.calledExit {
		add(event.ReasonCalledExit)
	}
	for _, r := range st.globalReasons() {
		add(r)
	}
	v := event.Clean
	for _, r := range reasons {
		if r.Severity().Rank() > v.Rank() {
			v = r.Severity()
		}
	}
	return v, reasons
}

// verdict judges one story and emits its vfork_verdict.
func (s *session) verdict(st *story) event.Judgement {
	v, reasons := judge(st)
	s.emit(&event.VforkVerdict{Header: s.hdr("vfork_verdict", st.parent.pid), Vfork: st.id,
		Verdict: v, Reasons: reasons, Incomplete: st.cut,
		FramesUnknown: len(st.frames) > 0 && st.frames[0].Method == string(event.MethodNone)})
	return v
}

// tally counts story verdicts for the run's verdict (the worst of them).
type tally struct {
	vforks, violations, warnings, unchecked int
	worst                                   event.Judgement
}

func (t *tally) add(v event.Judgement) {
	t.vforks++
	switch v {
	case event.Violation:
		t.violations++
	case event.Warning:
		t.warnings++
	case event.Unchecked:
		t.unchecked++
	}
	if v.Rank() > t.worst.Rank() {
		t.worst = v
	}
}

func (t *tally) verdict() *event.Verdict {
	v := t.worst
	if v == "" {
		v = event.Clean
	}
	return &event.Verdict{Verdict: v, Vforks: t.vforks, Violations: t.violations, Warnings: t.warnings, Unchecked: t.unchecked}
}
