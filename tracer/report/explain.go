package report

import (
	"fmt"
	"strings"

	"github.com/vtrace/vtrace/tracer/event"
)

// Explain tells one story in plain words, naming the functions involved,
// the way the seed article tells it. Every sentence follows from an event
// of the story; nothing is said that the events do not show.
func Explain(st *Story) string {
	var b strings.Builder
	v := st.Vfork
	caller := "the function that called vfork()"
	child := "The child"
	if v != nil {
		if v.Caller != nil && v.Caller.Sym != "" {
			caller = Fn(v.Caller)
		}
		child = fmt.Sprintf("The child (pid %d)", v.Child)
	}
	if st.Judgement() == event.Unchecked {
		why := Abandoned(st)
		if why == "" {
			why = "see the notes"
		}
		return fmt.Sprintf("vtrace could not follow this story (%s): nothing the child did was checked, and the story is neither clean nor a violation.", why)
	}
	for i, r := range st.Returns {
		if r.How == event.LeaveSP || r.How == event.LeaveJump {
			by := "an instruction"
			if r.By.Sym != nil && r.By.Sym.Sym != "" {
				by = Fn(r.By.Sym)
			}
			if r.During != nil && r.During.Sym != nil {
				by += " (in the call at " + r.During.Sym.String() + ")"
			}
			fmt.Fprintf(&b, "%s left %s without returning from it: %s took its stack pointer above that frame's return slot while the parent was still suspended inside vfork(). ",
				child, Fn(r.FrameFn), by)
			continue
		}
		if i == 0 {
			fmt.Fprintf(&b, "%s returned from %s — the function that called vfork() — into %s while the parent was still suspended inside vfork(). ",
				child, Fn(r.FrameFn), Fn(r.ToSym))
		} else {
			fmt.Fprintf(&b, "It then returned from %s into %s as well. ", Fn(r.FrameFn), Fn(r.ToSym))
		}
	}
	for i, w := range st.SlotWrites {
		if i == 3 {
			fmt.Fprintf(&b, "(%d more slot writes.) ", len(st.SlotWrites)-3)
			break
		}
		what := fmt.Sprintf("the return-address slot of %s at %s", Fn(w.FrameFn), w.Slot)
		if w.Kind == event.SlotSavedReg {
			what = fmt.Sprintf("the saved %%%s of %s at %s", w.Reg, Fn(w.FrameFn), w.Slot)
		}
		fmt.Fprintf(&b, "%s overwrote %s (%s → %s). ", writer(w), what, Val(w.Old, w.OldSym), Val(w.New, w.NewSym))
	}
	for _, c := range st.Consumes {
		switch c.Kind {
		case event.SlotSavedReg:
			fmt.Fprintf(&b, "When the parent woke, %s restored %%%s from that slot and got %s instead of %s. ",
				At(c.By), c.Reg, c.Value, c.Was)
		case event.SlotLocal:
			inside := ""
			if c.During != nil {
				inside = ", inside the function it called at " + At(*c.During)
			}
			fmt.Fprintf(&b, "The parent then read the word at %s that the child had changed (%s, was %s) at %s%s. ",
				c.Addr, c.Value, c.Was, At(c.By), inside)
		}
	}
	for _, c := range st.Channels {
		b.WriteString(channelSentence(c))
	}
	if l := st.Landing; l != nil {
		switch l.How {
		case event.LandRetClobbered:
			exp := "where it was called from"
			if l.Expected != nil {
				exp = Val(*l.Expected, l.ExpectedSym)
			}
			fmt.Fprintf(&b, "When the parent woke and returned through the clobbered slot, it landed at %s instead of %s. ",
				Val(l.PC, l.Sym), exp)
		case event.LandSignal:
			fmt.Fprintf(&b, "The parent received a signal at %s before it left the affected frames. ", Val(l.PC, l.Sym))
		}
	}
	b.WriteString(explainGlobals(st))
	if st.CalledExit() {
		b.WriteString("The child called exit() rather than _exit(): atexit handlers and stdio flushing ran in memory shared with the parent. ")
	}
	verdict := st.Judgement()
	if st.Verdict != nil && st.Verdict.Incomplete != "" {
		cut := st.Verdict.Incomplete
		where := "while the child was still running"
		if st.End != nil {
			where = "while the parent was still being followed"
		}
		cause := "by the " + cut + " budget"
		switch cut {
		case "error":
			cause = "by a tracing error (see the notes)"
		case "blocked":
			cause = "so that tasks vtrace held for other stories could run (the task it waited for slept in the kernel; see the notes)"
		}
		if verdict == event.Clean {
			fmt.Fprintf(&b, "%s did nothing wrong that vtrace saw before the story was cut short %s, %s.", child, cause, where)
		} else {
			fmt.Fprintf(&b, "(The story was cut short %s, %s.)", cause, where)
		}
		if n := uncheckedWords(st); n > 0 {
			fmt.Fprintf(&b, " %d word(s) the child changed still held its values: whether the parent reads them was not checked.", n)
		} else if st.End == nil {
			b.WriteString(" What the child did after that was not checked.")
		}
		return strings.TrimSpace(b.String())
	}
	if verdict == event.Clean {
		b.WriteString(cleanStory(st, child, caller))
	}
	return strings.TrimSpace(b.String())
}

// cleanStory says what a clean child did, claiming only what was watched.
func cleanStory(st *Story, child, caller string) string {
	v := st.Vfork
	how := "on its own stack"
	if v == nil || v.SharedStack {
		how = "on the parent's stack"
		if n := changedWords(st); n > 0 {
			how += fmt.Sprintf(", changing %d word(s) of live parent frames that the parent did not read back", n)
		} else {
			how += ", without changing any word of the parent's live stack"
		}
	}
	end := "ended"
	if e := st.End; e != nil {
		switch e.How {
		case event.EndExec:
			end = "exec'd " + e.Path
		case event.EndExit:
			end = "called _exit()"
		case event.EndSignal:
			end = "died of " + e.Signal
		}
	}
	if v != nil && v.Mechanism == event.MechCopy {
		// Nothing to claim from watching: the child could not reach the
		// parent's memory at all.
		if e := st.End; e != nil && e.How == event.EndExit && e.Code != nil {
			end = fmt.Sprintf("exited with status %d", *e.Code)
		}
		return fmt.Sprintf("%s ran in its own copy of the parent's memory (%s without CLONE_VM: the parent waited for it as for a vfork child, but shared nothing with it) and %s; nothing it did could reach the parent.",
			child, v.Syscall, end)
	}
	if v != nil && v.CorruptBefore != nil {
		cb := v.CorruptBefore
		return fmt.Sprintf("%s ran %s and %s; it did no harm of its own, but the parent's stack was already corrupt before this vfork: %s returns to %s, which is not code (the aftermath of an earlier vfork or another bug).",
			child, how, end, Fn(cb.Fn), cb.Ret)
	}
	if !framesKnown(v) {
		return fmt.Sprintf("%s ran %s and %s; the parent's callers could not be unwound, so only the stack words vtrace watched are known to be unchanged.",
			child, how, end)
	}
	return fmt.Sprintf("%s ran %s and %s; the parent resumed in %s with its return and saved-register slots intact.", child, how, end, caller)
}

// channelSentence tells a libc_channel: what the libc did, by design.
func channelSentence(c *event.LibcChannel) string {
	switch c.Kind {
	case event.ChannelSpawnError:
		who := Fn(&c.WriterFn)
		if c.WriterFn.Sym == "" {
			who = "the libc's spawn child (" + c.WriterFn.String() + ")"
		}
		return fmt.Sprintf("The child reported its failure through glibc's posix_spawn error channel: %s stored the error in the argument block at %s on the parent's stack (%s, was %s), and the parent read it back at %s — the libc's own channel, by design, not a finding. ",
			who, c.Addr, c.Value, c.Was, At(c.Reader))
	}
	return fmt.Sprintf("The word at %s is the libc's own channel (%s), read by %s. ", c.Addr, c.Kind, At(c.Reader))
}

// changedWords counts the words of the live stack the child left changed.
func changedWords(st *Story) int {
	if st.Diff != nil {
		return len(st.Diff.Changed)
	}
	return len(st.StackWrites) + len(st.SlotWrites)
}

// framesKnown reports whether the unwind found the vfork-calling frame by
// a method that can be trusted (not "none").
func framesKnown(v *event.Vfork) bool {
	if v == nil || len(v.Frames) < 2 {
		return false
	}
	for _, f := range v.Frames[:2] {
		if f.Method == event.MethodNone {
			return false
		}
	}
	return true
}

// RunExplanation sums up a run: the counts, and the first worst story told
// in full.
func RunExplanation(v *event.Verdict, first *Story) string {
	switch {
	case v.Vforks == 0:
		return "The program made no vfork that vtrace could follow."
	case first == nil || first.Judgement() == event.Clean:
		return fmt.Sprintf("%d vfork(s), all clean: no child touched what its parent still needed.", v.Vforks)
	}
	return fmt.Sprintf("%d vfork(s): %d violation(s), %d warning(s). First %s, vfork #%d: %s",
		v.Vforks, v.Violations, v.Warnings, first.Judgement(), first.ID(), Explain(first))
}

// Fn names the function of a frame: "createproc()".
func Fn(y *event.Sym) string {
	if y == nil || y.Sym == "" {
		return "an unknown function"
	}
	return y.Sym + "()"
}

// Val renders a value that may be a code address by its symbol ("main+18"),
// else by its module and offset (libc's internal functions without a debug
// file: "libc.so.6+0x1234"), else as a number.
func Val(a event.Addr, y *event.Sym) string {
	if y != nil && (y.Sym != "" || y.Module != "") {
		return y.String()
	}
	return a.String()
}

// At quotes an instruction: "main+41 `call 555555555030 <printf@plt>`".
func At(in event.Insn) string {
	where := Val(in.PC, in.Sym)
	if in.Insn != "" {
		return fmt.Sprintf("%s `%s`", where, Squeeze(in.Insn))
	}
	return where
}

func writer(w *event.SlotWrite) string {
	switch {
	case w.By != nil:
		return At(*w.By)
	case w.During != nil:
		return "During the call at " + At(*w.During) + ", the callee"
	}
	return "The child"
}

// Squeeze collapses objdump's column padding for inline quotes.
func Squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }

// Narrator fills in the words the engine leaves out: each vfork_verdict's
// explanation and the run verdict's. Put it first among the sinks of a
// run (it changes the events in place), so that the log and the text
// carry the same sentences.
type Narrator struct {
	c     Collector
	first *Story // the first story with the worst verdict so far
}

// Emit narrates ev if it is a verdict.
func (n *Narrator) Emit(ev event.Event) error {
	n.c.Forget = true
	st := n.c.Add(ev)
	switch e := ev.(type) {
	case *event.VforkVerdict:
		e.Explanation = Explain(st)
		if n.first == nil || st.Judgement().Rank() > n.first.Judgement().Rank() {
			n.first = st
		}
	case *event.Verdict:
		e.Explanation = RunExplanation(e, n.first)
	}
	return nil
}

// uncheckedWords counts the words the parent's landing left unchecked.
func uncheckedWords(st *Story) int {
	n := 0
	if st.Landing != nil {
		for _, w := range st.Landing.Words {
			if w.Fate == event.FateUnchecked {
				n++
			}
		}
	}
	return n
}
