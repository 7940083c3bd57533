package report

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/vtrace/vtrace/tracer/event"
)

// Meaning is what a run says about a program, without what changes from
// one run of the same build to the next: pids, addresses (ASLR moves the
// stack, the libraries and a PIE), timestamps and written values. Two
// logs mean the same when their Meanings are equal; `vtrace diff` shows
// where they are not.
type Meaning struct {
	Verdict string // "violation", "clean (incomplete: max_steps)"
	Vforks  int
	Fate    string // how the program ended
	Sites   []*SiteMeaning
}

// SiteMeaning is what a run says about one vfork call site: every fact
// is a set (of strings naming code by symbol+offset, frames by function),
// so that the same story told twice, or a loop's thousand identical
// stories, compare equal.
type SiteMeaning struct {
	Match    string // what the site is matched by across runs: file:line, else Key
	Key      string // the call as symbol+offset
	Caller   string // the vfork-calling function
	Syscall  string
	Stories  int
	Verdicts []string // "violation ×1", "clean ×1"
	Reasons  []string
	Returns  []string // "createproc() → main+18"
	Slots    []string // "createproc() ret", "createproc() saved %rbp"
	Writers  []string // "createproc() ret ← main+41"
	Ends     []string // "exit", "exit via exit()", "signal SIGSEGV"
	Reads    []string // "saved_reg %rbp at createproc+57"
	Landings []string // "ret_clobbered at createproc, expected main+18"
}

// MeaningCollector builds a Meaning from a run's events; it is a sink.
type MeaningCollector struct {
	runDocument
	sites map[string]*siteFacts
	order []string
}

type siteFacts struct {
	m        *SiteMeaning
	verdicts map[string]int
	sets     map[*[]string]map[string]bool
}

// NewMeaningCollector returns an empty collector.
func NewMeaningCollector() *MeaningCollector {
	m := &MeaningCollector{sites: map[string]*siteFacts{}}
	m.runDocument = newRunDocument(m.story)
	return m
}

func (mc *MeaningCollector) story(st *Story) {
	var sites Sites
	site := sites.Add(st)
	match := site.Key
	if site.File != "" && site.Line > 0 {
		match = site.Where()
	}
	f := mc.sites[match]
	if f == nil {
		sm := &SiteMeaning{Match: match, Key: site.Key}
		if v := st.Vfork; v != nil {
			sm.Caller, sm.Syscall = Fn(v.Caller), v.Syscall
		}
		f = &siteFacts{m: sm, verdicts: map[string]int{}, sets: map[*[]string]map[string]bool{}}
		mc.sites[match] = f
		mc.order = append(mc.order, match)
	}
	m := f.m
	add := func(list *[]string, s string) {
		set := f.sets[list]
		if set == nil {
			set = map[string]bool{}
			f.sets[list] = set
		}
		if !set[s] {
			set[s] = true
			*list = append(*list, s)
		}
	}
	m.Stories++
	v := string(st.Judgement())
	if st.Verdict != nil && st.Verdict.Incomplete != "" {
		v += " (cut short: " + st.Verdict.Incomplete + ")"
	}
	f.verdicts[v]++
	if st.Verdict != nil {
		for _, r := range st.Verdict.Reasons {
			add(&m.Reasons, string(r))
		}
	}
	for _, r := range st.Returns {
		add(&m.Returns, fmt.Sprintf("%s → %s", Fn(r.FrameFn), symOnly(r.To, r.ToSym)))
	}
	for _, w := range st.SlotWrites {
		slot := Fn(w.FrameFn) + " ret"
		if w.Kind == event.SlotSavedReg {
			slot = Fn(w.FrameFn) + " saved %" + w.Reg
		}
		add(&m.Slots, slot)
		switch {
		case w.By != nil:
			add(&m.Writers, slot+" ← "+symOnly(w.By.PC, w.By.Sym))
		case w.During != nil:
			add(&m.Writers, slot+" ← during the call at "+symOnly(w.During.PC, w.During.Sym))
		default:
			add(&m.Writers, slot+" ← found when the child ended")
		}
	}
	if e := st.End; e != nil {
		end := string(e.How)
		switch e.How {
		case event.EndSignal:
			end += " " + e.Signal
		case event.EndExec:
			end += " " + e.Path
		}
		if e.Via != "" {
			end += " via " + e.Via
		}
		add(&m.Ends, end)
	}
	for _, c := range st.Consumes {
		what := string(c.Kind)
		if c.Reg != "" {
			what += " %" + c.Reg
		}
		add(&m.Reads, what+" at "+symOnly(c.By.PC, c.By.Sym))
	}
	if l := st.Landing; l != nil {
		s := string(l.How) + " at " + symOnly(l.PC, l.Sym)
		if l.Expected != nil {
			s += ", expected " + symOnly(*l.Expected, l.ExpectedSym)
		}
		add(&m.Landings, s)
	}
}

// symOnly names a code address by symbol+offset, or module+offset; an
// address in no known code is "?" — its number would differ under ASLR.
func symOnly(a event.Addr, y *event.Sym) string {
	if y != nil && (y.Sym != "" || y.Module != "") {
		return y.String()
	}
	return "?"
}

// Meaning returns what the run said.
func (mc *MeaningCollector) Meaning() *Meaning {
	run := mc.run()
	for _, st := range mc.unfinished() {
		if st.Vfork != nil {
			mc.story(st)
		}
	}
	m := &Meaning{Verdict: "none (the log ends before the run's verdict)"}
	if v := run.Verdict; v != nil {
		m.Verdict, m.Vforks = string(v.Verdict), v.Vforks
		if v.Incomplete != "" {
			m.Verdict += " (incomplete: " + v.Incomplete + ")"
		}
	}
	m.Fate = "unknown (no exit of the program in the log)"
	if e := run.MainExit(); e != nil {
		m.Fate = fateMeaning(e)
	}
	for _, k := range mc.order {
		f := mc.sites[k]
		var vs []string
		for v, n := range f.verdicts {
			vs = append(vs, fmt.Sprintf("%s ×%d", v, n))
		}
		sort.Strings(vs)
		f.m.Verdicts = vs
		for _, l := range []*[]string{&f.m.Reasons, &f.m.Returns, &f.m.Slots, &f.m.Writers, &f.m.Ends, &f.m.Reads, &f.m.Landings} {
			sort.Strings(*l)
		}
		m.Sites = append(m.Sites, f.m)
	}
	return m
}

// fateMeaning says how the program ended without addresses: the fault
// address only when it is near null (below 64 KiB, where no mapping is
// and ASLR places nothing), else whether it was null at all.
func fateMeaning(e *event.Exit) string {
	if e.Status == "exited" && e.Code != nil {
		return fmt.Sprintf("exited with status %d", *e.Code)
	}
	s := "killed by " + e.Signal
	if e.SiCode != "" {
		s += " (" + e.SiCode + ")"
	}
	if e.PC != nil {
		s += " at " + symOnly(*e.PC, e.Sym)
	}
	if e.Addr != nil {
		if *e.Addr < 0x10000 {
			s += ", fault address " + e.Addr.String()
		} else {
			s += ", fault address not near null"
		}
	}
	return s
}

// Difference is one fact two runs disagree on.
type Difference struct {
	Where string // "run", or "vfork call site badvfork.c:28"
	What  string
	A, B  string
}

// DiffMeanings lists where two runs differ in meaning, run facts first,
// then each call site in A's order, then the sites only B has.
func DiffMeanings(a, b *Meaning) []Difference {
	var out []Difference
	cmp := func(where, what, x, y string) {
		if x != y {
			out = append(out, Difference{where, what, x, y})
		}
	}
	cmp("run", "verdict", a.Verdict, b.Verdict)
	cmp("run", "vforks", fmt.Sprint(a.Vforks), fmt.Sprint(b.Vforks))
	cmp("run", "the program", a.Fate, b.Fate)
	bSites := map[string]*SiteMeaning{}
	for _, s := range b.Sites {
		bSites[s.Match] = s
	}
	seen := map[string]bool{}
	for _, sa := range a.Sites {
		where := "vfork call site " + sa.Match
		sb := bSites[sa.Match]
		seen[sa.Match] = true
		if sb == nil {
			out = append(out, Difference{where, "call site", sa.Key + " in " + sa.Caller, "(none: no vfork here)"})
			continue
		}
		cmp(where, "call", sa.Key+" in "+sa.Caller, sb.Key+" in "+sb.Caller)
		cmp(where, "syscall", sa.Syscall, sb.Syscall)
		cmp(where, "stories", fmt.Sprint(sa.Stories), fmt.Sprint(sb.Stories))
		for _, f := range []struct {
			what string
			x, y []string
		}{
			{"verdicts", sa.Verdicts, sb.Verdicts}, {"reasons", sa.Reasons, sb.Reasons},
			{"child returned past", sa.Returns, sb.Returns}, {"slots written", sa.Slots, sb.Slots},
			{"writers", sa.Writers, sb.Writers}, {"child ended", sa.Ends, sb.Ends},
			{"parent used", sa.Reads, sb.Reads}, {"parent landed", sa.Landings, sb.Landings},
		} {
			cmp(where, f.what, list(f.x), list(f.y))
		}
	}
	for _, sb := range b.Sites {
		if !seen[sb.Match] {
			out = append(out, Difference{"vfork call site " + sb.Match, "call site", "(none: no vfork here)", sb.Key + " in " + sb.Caller})
		}
	}
	return out
}

func list(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, "; ")
}

// WriteDiff prints differences as a readable diff, grouped by where.
func WriteDiff(w io.Writer, nameA, nameB string, diffs []Difference) {
	if len(diffs) == 0 {
		fmt.Fprintf(w, "same meaning: %s and %s\n", nameA, nameB)
		return
	}
	fmt.Fprintf(w, "--- A %s\n+++ B %s\n", nameA, nameB)
	last := ""
	for _, d := range diffs {
		if d.Where != last {
			fmt.Fprintf(w, "%s:\n", d.Where)
			last = d.Where
		}
		fmt.Fprintf(w, "  %s:\n  - %s\n  + %s\n", d.What, d.A, d.B)
	}
	fmt.Fprintf(w, "%d difference(s)\n", len(diffs))
}
