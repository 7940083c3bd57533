package report

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vtrace/vtrace/tracer/event"
)

// Site is one vfork call site of a run: the place in the program that
// called vfork (or clone/clone3 with CLONE_VFORK), with every story made
// there summed up. Summaries, JUnit test cases and CI annotations are per
// site: a loop that vforks 10,000 times is one site.
type Site struct {
	// Key names the site without addresses (stable under ASLR): the call
	// into the wrapper as symbol+offset, else the syscall instruction's.
	Key string
	// Call is the call instruction in the vfork-calling function (or the
	// syscall instruction when the caller is unknown) of the first story.
	Call   event.Insn
	Caller *event.Sym
	File   string
	Line   int

	Count      int
	Verdict    event.Judgement // the worst of its stories
	Violations int
	Warnings   int
	Incomplete int            // stories cut short
	Reasons    []event.Reason // every reason of its stories, first seen first
	Worst      *Story         // the first story with the worst verdict
	Stories    []int          // story numbers, up to maxSiteStories
	reasonSeen map[event.Reason]bool
}

const maxSiteStories = 20

// Sites groups stories by call site, in the order the sites first vforked.
type Sites struct {
	list  []*Site
	byKey map[string]*Site
}

// Add counts a finished story (one with its vfork event and verdict).
func (s *Sites) Add(st *Story) *Site {
	if s.byKey == nil {
		s.byKey = map[string]*Site{}
	}
	key, call := siteOf(st)
	site := s.byKey[key]
	if site == nil {
		site = &Site{Key: key, Call: call, Verdict: event.Clean, reasonSeen: map[event.Reason]bool{}}
		if st.Vfork != nil {
			site.Caller = st.Vfork.Caller
		}
		if call.Sym != nil {
			site.File, site.Line = call.Sym.File, call.Sym.Line
		}
		s.byKey[key] = site
		s.list = append(s.list, site)
	}
	site.Count++
	if len(site.Stories) < maxSiteStories {
		site.Stories = append(site.Stories, st.ID())
	}
	v := st.Judgement()
	switch v {
	case event.Violation:
		site.Violations++
	case event.Warning:
		site.Warnings++
	}
	if st.Verdict != nil {
		if st.Verdict.Incomplete != "" {
			site.Incomplete++
		}
		for _, r := range st.Verdict.Reasons {
			if !site.reasonSeen[r] {
				site.reasonSeen[r] = true
				site.Reasons = append(site.Reasons, r)
			}
		}
	}
	if site.Worst == nil || v.Rank() > site.Verdict.Rank() {
		site.Verdict, site.Worst = v, st
	}
	return site
}

// List returns the sites, worst verdict first, then in the order they
// first vforked.
func (s *Sites) List() []*Site {
	out := append([]*Site(nil), s.list...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Verdict.Rank() > out[j].Verdict.Rank() })
	return out
}

// siteOf keys a story by its call site: the call into the vfork wrapper
// when the program made it, else the innermost frame outside the C
// library (a posix_spawn, system or popen call: the wrapper's caller is
// inside libc).
func siteOf(st *Story) (string, event.Insn) {
	v := st.Vfork
	if v == nil {
		return "?", event.Insn{}
	}
	in := v.Site
	if v.Call != nil {
		in = *v.Call
	}
	if inLibc(in.Sym) {
		for _, f := range v.Frames[min(2, len(v.Frames)):] {
			if f.Sym != nil && f.Sym.Sym != "" && !inLibc(f.Sym) {
				in = event.Insn{PID: in.PID, PC: f.PC, Sym: f.Sym}
				break
			}
		}
	}
	if in.Sym != nil && (in.Sym.Sym != "" || in.Sym.Module != "") {
		return in.Sym.String(), in
	}
	return in.PC.String(), in
}

// inLibc reports whether a code address is in a shared C library (glibc's
// libc.so.6, musl's libc.so / ld-musl-*.so.1) or unknown.
func inLibc(y *event.Sym) bool {
	if y == nil {
		return true
	}
	m := y.Module
	return strings.HasPrefix(m, "libc.so") || strings.HasPrefix(m, "libc-") || strings.HasPrefix(m, "ld-musl")
}

// Where is the site's source position, "badvfork.c:28", or its symbol.
func (s *Site) Where() string {
	if s.File != "" && s.Line > 0 {
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	}
	return s.Key
}

// Headline says in one line what a story's worst finding is: what a
// summary table, a JUnit failure message or a CI annotation shows.
func Headline(st *Story) string {
	v := st.Vfork
	if st.Judgement() == event.Unchecked {
		if why := Abandoned(st); why != "" {
			return "vtrace could not follow it: " + why
		}
		return "vtrace could not follow it"
	}
	switch {
	case len(st.Returns) > 0:
		r := st.Returns[0]
		s := fmt.Sprintf("the vfork child returned from %s into %s while the parent was suspended", Fn(r.FrameFn), Fn(r.ToSym))
		if l := st.Landing; l != nil && l.How == event.LandRetClobbered {
			s += fmt.Sprintf("; the parent then returned through the clobbered slot to %s", Val(l.PC, l.Sym))
		}
		return s
	}
	for _, c := range st.Consumes {
		switch c.Kind {
		case event.SlotRet:
			if l := st.Landing; l != nil && l.How == event.LandRetClobbered {
				return fmt.Sprintf("the parent returned through a return slot the child overwrote and landed at %s", Val(l.PC, l.Sym))
			}
			return fmt.Sprintf("the parent used a return slot the child overwrote (%s, was %s)", c.Value, c.Was)
		case event.SlotSavedReg:
			return fmt.Sprintf("the parent restored %%%s from a slot the child overwrote (%s, was %s) at %s", c.Reg, c.Value, c.Was, Val(c.By.PC, c.By.Sym))
		}
	}
	if len(st.SlotWrites) > 0 {
		w := st.SlotWrites[0]
		what := "the return address"
		if w.Kind == event.SlotSavedReg {
			what = "the saved %" + w.Reg
		}
		return fmt.Sprintf("the vfork child overwrote %s of %s (the parent did not use it)", what, Fn(w.FrameFn))
	}
	for _, c := range st.Consumes {
		if c.Kind == event.SlotLocal {
			return fmt.Sprintf("the parent read a stack word the vfork child changed (%s, was %s) at %s", c.Value, c.Was, Val(c.By.PC, c.By.Sym))
		}
	}
	if len(st.GlobalReads) > 0 {
		r := st.GlobalReads[0]
		return fmt.Sprintf("the parent read %s, which the vfork child changed (%s, was %s), at %s",
			GlobalName(r.Area, r.Mapping, r.Sym, r.Addr), r.Value, r.Was, Val(r.By.PC, r.By.Sym))
	}
	if st.CalledExit() {
		return "the vfork child called exit() instead of _exit()"
	}
	if st.Verdict != nil && st.Verdict.Incomplete != "" {
		return "story cut short (" + st.Verdict.Incomplete + ")"
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
	where := "on the parent's stack"
	switch {
	case v != nil && v.Mechanism == event.MechCopy:
		where = "in its own copy of the parent's memory (no CLONE_VM)"
		if e := st.End; e != nil && e.How == event.EndExit && e.Code != nil {
			end = fmt.Sprintf("exited with status %d", *e.Code)
		}
	case v != nil && !v.SharedStack:
		where = "on its own stack"
	}
	if len(st.Channels) > 0 {
		end += ", reporting its error through the libc's channel (" + string(st.Channels[0].Kind) + ")"
	}
	return fmt.Sprintf("the child ran %s and %s", where, end)
}

// InOrder returns the sites in the order they first vforked: a listing
// that does not reorder when a verdict changes (JUnit test cases, diffs).
func (s *Sites) InOrder() []*Site { return append([]*Site(nil), s.list...) }

// Abandoned is why vtrace could not follow a story (its story_abandoned
// note), or "".
func Abandoned(st *Story) string {
	for _, n := range st.Notes {
		if n.Code == event.NoteStoryAbandoned {
			return n.Msg
		}
	}
	return ""
}
