package tracer

import (
	"fmt"
	"strings"

	"github.com/vtrace/vtrace/tracer/event"
)

// Verdicts, from worst to best.
const (
	Violation = "violation"
	Warning   = "warning"
	Clean     = "clean"
)

// Reasons a story gets its verdict (stable identifiers, in vfork_verdict).
const (
	ReasonReturnedPast   = "child_returned_past_frame"      // violation
	ReasonConsumedSlot   = "parent_consumed_clobbered_slot" // violation
	ReasonClobberedSlot  = "child_clobbered_slot"           // warning: the parent did not use it
	ReasonReadChildWrite = "parent_read_child_write"        // warning: a local the child changed
	ReasonCalledExit     = "child_called_exit"              // warning: exit() not _exit()
)

type storyResult struct {
	id          int
	verdict     string
	explanation string
}

func rank(v string) int {
	switch v {
	case Violation:
		return 2
	case Warning:
		return 1
	}
	return 0
}

// verdict judges one story and emits its vfork_verdict.
//
// A violation needs the child to have left the function that called vfork
// (it returned past that frame), or the parent to have consumed a
// return-address or saved-register slot the child changed. A child writing
// into the parent's stack alone is not one: Go's os/exec child legitimately
// writes locals of the frame it shares. It is a warning when the parent
// then reads such a word, when a slot was clobbered but the parent never
// used it, or when the child called exit() (atexit handlers and stdio
// flushing run in the parent's memory).
func (s *session) verdict(st *story) storyResult {
	var reasons []string
	v := Clean
	raise := func(to, reason string) {
		if rank(to) > rank(v) {
			v = to
		}
		for _, r := range reasons {
			if r == reason {
				return
			}
		}
		reasons = append(reasons, reason)
	}
	if len(st.returns) > 0 {
		raise(Violation, ReasonReturnedPast)
	}
	for _, c := range st.consumes {
		if c.Kind == "local" {
			raise(Warning, ReasonReadChildWrite)
		} else {
			raise(Violation, ReasonConsumedSlot)
		}
	}
	if len(st.writes) > 0 {
		raise(Warning, ReasonClobberedSlot)
	}
	if st.calledExit {
		raise(Warning, ReasonCalledExit)
	}
	if reasons == nil {
		reasons = []string{}
	}
	r := storyResult{id: st.id, verdict: v, explanation: explain(st, v)}
	s.emit(&event.VforkVerdict{Header: s.hdr("vfork_verdict", st.parent.pid), Vfork: st.id,
		Verdict: v, Reasons: reasons, Explanation: r.explanation, Incomplete: st.cut})
	return r
}

// runVerdict is the worst story verdict, with counts.
func runVerdict(results []storyResult) *event.Verdict {
	v := &event.Verdict{Verdict: Clean, Vforks: len(results)}
	var first *storyResult
	for i := range results {
		r := &results[i]
		switch r.verdict {
		case Violation:
			v.Violations++
		case Warning:
			v.Warnings++
		}
		if rank(r.verdict) > rank(v.Verdict) {
			v.Verdict, first = r.verdict, r
		}
	}
	switch {
	case len(results) == 0:
		v.Explanation = "The program made no vfork that vtrace could follow."
	case first == nil:
		v.Explanation = fmt.Sprintf("%d vfork(s), all clean: no child touched what its parent still needed.", len(results))
	default:
		v.Explanation = fmt.Sprintf("%d vfork(s): %d violation(s), %d warning(s). First %s, vfork #%d: %s",
			len(results), v.Violations, v.Warnings, first.verdict, first.id, first.explanation)
	}
	return v
}

// explain writes the story in plain words, naming the functions involved,
// in the way the seed article tells it.
func explain(st *story, verdict string) string {
	var b strings.Builder
	caller := "the function that called vfork()"
	if len(st.frameFns) > 1 && st.frameFns[1] != nil {
		caller = fn(st.frameFns[1])
	}
	child := fmt.Sprintf("The child (pid %d)", st.child.pid)
	for i, r := range st.returns {
		if i == 0 {
			fmt.Fprintf(&b, "%s returned from %s — the function that called vfork() — into %s while the parent was still suspended inside vfork(). ",
				child, fn(r.FrameFn), fn(r.ToSym))
		} else {
			fmt.Fprintf(&b, "It then returned from %s into %s as well. ", fn(r.FrameFn), fn(r.ToSym))
		}
	}
	for i, w := range st.writes {
		if i == 3 {
			fmt.Fprintf(&b, "(%d more slot writes.) ", len(st.writes)-3)
			break
		}
		what := fmt.Sprintf("the return-address slot of %s at %s", fn(w.FrameFn), w.Slot)
		if w.Kind == "saved_reg" {
			what = fmt.Sprintf("the saved %%%s of %s at %s", w.Reg, fn(w.FrameFn), w.Slot)
		}
		fmt.Fprintf(&b, "%s overwrote %s (%s → %s). ", writer(w), what, val(w.Old, w.OldSym), val(w.New, w.NewSym))
	}
	for _, c := range st.consumes {
		switch c.Kind {
		case "saved_reg":
			fmt.Fprintf(&b, "When the parent woke, %s restored %%%s from that slot and got %s instead of %s. ",
				at(c.By), c.Reg, c.Value, c.Was)
		case "local":
			fmt.Fprintf(&b, "The parent then read the word at %s that the child had changed (%s, was %s) at %s. ",
				c.Addr, c.Value, c.Was, at(c.By))
		}
	}
	if l := st.landing; l != nil {
		switch l.How {
		case "ret_clobbered":
			fmt.Fprintf(&b, "When the parent woke and returned through the clobbered slot, it landed at %s instead of %s. ",
				val(l.PC, l.Sym), val(*l.Expected, l.ExpectedSym))
		case "signal":
			fmt.Fprintf(&b, "The parent received a signal at %s before it left the affected frames. ", val(l.PC, l.Sym))
		}
	}
	if st.calledExit {
		b.WriteString("The child called exit() rather than _exit(): atexit handlers and stdio flushing ran in memory shared with the parent. ")
	}
	if st.cut != "" {
		where := "while the child was still running"
		if st.end != nil {
			where = "while the parent was still being followed"
		}
		cause := "by the " + st.cut + " budget"
		if st.cut == "error" {
			cause = "by a tracing error (see the notes)"
		}
		if verdict == Clean {
			fmt.Fprintf(&b, "%s did nothing wrong that vtrace saw before the story was cut short %s, %s.", child, cause, where)
		} else {
			fmt.Fprintf(&b, "(The story was cut short %s, %s.)", cause, where)
		}
		return strings.TrimSpace(b.String())
	}
	if verdict == Clean {
		how := "on the parent's stack, without touching any live parent frame"
		if !st.shared {
			how = "on its own stack"
		}
		end := "ended"
		if st.end != nil {
			switch st.end.How {
			case "exec":
				end = "exec'd " + st.end.Path
			case "exit":
				end = "called _exit()"
			case "signal":
				end = "died of " + st.end.Signal
			}
		}
		if st.preCorrupt != "" {
			fmt.Fprintf(&b, "%s ran %s and %s; it did no harm of its own, but %s (the aftermath of an earlier vfork or another bug).",
				child, how, end, st.preCorrupt)
		} else {
			fmt.Fprintf(&b, "%s ran %s and %s; the parent resumed in %s with its frames intact.", child, how, end, caller)
		}
	}
	return strings.TrimSpace(b.String())
}

func fn(y *event.Sym) string {
	if y == nil || y.Sym == "" {
		return "an unknown function"
	}
	return y.Sym + "()"
}

func val(a event.Addr, y *event.Sym) string {
	if y != nil && y.Sym != "" {
		return y.String()
	}
	return a.String()
}

func at(in event.Insn) string {
	if in.Insn != "" {
		return fmt.Sprintf("%s `%s`", in.Sym.String(), squeeze(in.Insn))
	}
	return in.Sym.String()
}

func writer(w *event.SlotWrite) string {
	switch {
	case w.By != nil:
		return at(*w.By)
	case w.During != nil:
		return "During the call at " + at(*w.During) + ", the callee"
	}
	return "The child"
}

// squeeze collapses objdump's column padding for inline quotes.
func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }
