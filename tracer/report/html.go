package report

import (
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/vtrace/vtrace/tracer/event"
)

// HTML renders a run as one self-contained page (no script, font or image
// from anywhere): for each story that is not clean, a picture of the
// parent's stack — its frames as a column of slots from the innermost
// frame down, frame boundaries drawn, each slot's value before → after the
// child ran, the changed ones highlighted, an arrow from each changed slot
// to the child instruction that wrote it and from each slot the parent
// consumed to where the parent landed — and a timeline of the story:
// vfork → the child's steps → its exit or exec → the parent's landing.
type HTML struct {
	runDocument
	sites   Sites
	stories []*Story // the non-clean stories drawn, up to maxHTMLStories
	more    int      // non-clean stories not drawn
}

// maxHTMLStories bounds the page: a program that vforks badly in a loop
// draws its first stories and counts the rest.
const maxHTMLStories = 50

// NewHTML returns an HTML renderer.
func NewHTML() *HTML {
	h := &HTML{}
	h.runDocument = newRunDocument(h.story)
	return h
}

func (h *HTML) story(st *Story) {
	h.sites.Add(st)
	if st.Judgement() == event.Clean {
		return
	}
	if len(h.stories) == maxHTMLStories {
		h.more++
		return
	}
	h.stories = append(h.stories, st)
}

// Render writes the page.
func (h *HTML) Render(w io.Writer) error {
	run := h.run()
	for _, st := range h.unfinished() {
		if st.Vfork != nil {
			h.story(st)
		}
	}
	page := htmlPage{Program: run.Program(), More: h.more}
	if s := run.Start; s != nil {
		page.Argv, page.Mode, page.Version = strings.Join(s.Argv, " "), s.Mode, s.Version
	}
	if v := run.Verdict; v != nil {
		page.Verdict = string(v.Verdict)
		page.Summary = fmt.Sprintf("%d vfork(s), %d violation(s), %d warning(s)", v.Vforks, v.Violations, v.Warnings)
		if v.Incomplete != "" {
			page.Summary += " — run stopped: " + v.Incomplete
		}
	} else {
		page.Verdict = "incomplete"
		page.Summary = "the log ends before the run's verdict: the run did not finish"
	}
	if e := run.MainExit(); e != nil {
		page.Fate = "The program " + Fate(e) + "."
	}
	for _, s := range h.sites.InOrder() {
		page.Sites = append(page.Sites, htmlSite{Where: s.Where(), Key: s.Key, Count: s.Count, Verdict: string(s.Verdict),
			Headline: Headline(s.Worst)})
	}
	for _, st := range h.stories {
		page.Stories = append(page.Stories, drawStory(st))
	}
	if err := htmlTemplate().Execute(w, page); err != nil {
		return fmt.Errorf("html: %w", err)
	}
	return nil
}

type htmlPage struct {
	Program, Argv, Mode, Version string
	Verdict, Summary, Fate       string
	Sites                        []htmlSite
	Stories                      []htmlStory
	More                         int
}

type htmlSite struct {
	Where, Key, Verdict, Headline string
	Count                         int
}

type htmlStory struct {
	ID                 int
	Verdict, Headline  string
	Explanation        string
	Reasons            []string
	Timeline           []htmlStep
	Width, Height      int
	Frames             []htmlFrame
	Slots              []htmlSlot
	Writers, Landings  []htmlBox
	Arrows             []htmlArrow
	SlotsX, WritersX   int
	SlotsW, WritersW   int
	RowH, HeadH, Wrote int
}

type htmlStep struct {
	Side, Text string // Side: vfork, child, parent
}

type htmlFrame struct {
	Label    string
	Y, H     int
	LabelY   int
	Boundary bool
}

type htmlSlot struct {
	Addr, Kind, Before, After string
	Changed, Consumed         bool
	Y                         int
	Title                     string
}

type htmlBox struct {
	ID, Text, Title string
	Y, H            int
	Kind            string
}

type htmlArrow struct {
	Class, From, To, Path, Label string
}

// Geometry of the stack picture, in CSS pixels.
const (
	rowH     = 26
	headH    = 34
	slotsX   = 190
	slotsW   = 640
	writersX = 930
	writersW = 430
	boxH     = 44
)

// stackRow is one word of the picture before layout.
type stackRow struct {
	addr           event.Addr
	frame          int
	kind           string
	before, after  string
	changed, eaten bool
	writers        []string // writer box ids
}

// drawStory lays out one story: rows for every return-address and
// saved-register slot (slot_diff, else the vfork event's frames) and every
// other word the child changed, sorted by address (the innermost frame's
// words first), then the writers and landing boxes beside them.
func drawStory(st *Story) htmlStory {
	out := htmlStory{ID: st.ID(), Verdict: string(st.Judgement()), Headline: Headline(st), Explanation: Explain(st),
		RowH: rowH, HeadH: headH, SlotsX: slotsX, SlotsW: slotsW, WritersX: writersX, WritersW: writersW}
	if st.Verdict != nil {
		for _, r := range st.Verdict.Reasons {
			out.Reasons = append(out.Reasons, string(r))
		}
	}
	out.Timeline = timeline(st)

	rows := map[event.Addr]*stackRow{}
	row := func(a event.Addr, frame int) *stackRow {
		r := rows[a]
		if r == nil {
			r = &stackRow{addr: a, frame: frame}
			rows[a] = r
		}
		return r
	}
	fnOf := map[int]string{}
	if v := st.Vfork; v != nil {
		for _, f := range v.Frames {
			fnOf[f.Index] = frameName(f)
			if f.RetSlot != nil {
				r := row(*f.RetSlot, f.Index)
				r.kind, r.before, r.after = "ret", Val(f.Ret, f.RetSym), "?"
			}
			for _, sv := range f.Saved {
				r := row(sv.Slot, f.Index)
				r.kind, r.before, r.after = "saved %"+sv.Reg, sv.Value.String(), "?"
			}
		}
	}
	if d := st.Diff; d != nil {
		for _, s := range d.Slots {
			r := row(s.Slot, s.Frame)
			r.kind = "ret"
			if s.Kind == event.SlotSavedReg {
				r.kind = "saved %" + s.Reg
			}
			r.before, r.after, r.changed = Val(s.Before, s.BeforeSym), Val(s.After, s.AfterSym), s.Changed
		}
		for _, c := range d.Changed {
			r := row(c.Addr, c.Frame)
			if r.kind == "" {
				r.kind = "local"
				r.before, r.after = c.Before.String(), c.After.String()
			}
			r.changed = true
		}
	}
	// Writers: one box per distinct instruction, in the order they wrote.
	var writers []htmlBox
	writerID := map[string]string{}
	addWriter := func(a event.Addr, frame int, by, during *event.Insn, what string) {
		text, title := "found when the child ended", ""
		switch {
		case by != nil:
			text, title = insnText(*by), At(*by)
		case during != nil:
			text, title = "during "+insnText(*during), "during the call at "+At(*during)
		}
		id, ok := writerID[text]
		if !ok {
			id = fmt.Sprintf("w%d-%d", st.ID(), len(writers)+1)
			writerID[text] = id
			writers = append(writers, htmlBox{ID: id, Text: text, Title: title, Kind: "writer"})
		}
		r := row(a, frame)
		if r.kind == "" {
			r.kind = what
		}
		r.changed = true
		for _, w := range r.writers {
			if w == id {
				return
			}
		}
		r.writers = append(r.writers, id)
	}
	for _, w := range st.SlotWrites {
		kind := "ret"
		if w.Kind == event.SlotSavedReg {
			kind = "saved %" + w.Reg
		}
		r := row(w.Slot, w.Frame)
		if r.after == "" || r.after == "?" {
			r.after = Val(w.New, w.NewSym)
		}
		if r.before == "" {
			r.before = Val(w.Old, w.OldSym)
		}
		addWriter(w.Slot, w.Frame, w.By, w.During, kind)
	}
	for _, w := range st.StackWrites {
		r := row(w.Addr, w.Frame)
		if r.before == "" {
			r.before, r.after = w.Old.String(), w.New.String()
		}
		addWriter(w.Addr, w.Frame, w.By, w.During, "local")
	}
	for _, c := range st.Consumes {
		r := row(c.Addr, -1)
		r.eaten = true
		if r.kind == "" {
			r.kind = string(c.Kind)
		}
	}

	// Layout: rows by address, frames as bands.
	var sorted []*stackRow
	for _, r := range rows {
		sorted = append(sorted, r)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].addr < sorted[j].addr })
	y := headH
	lastFrame := -2
	rowY := map[event.Addr]int{}
	for _, r := range sorted {
		if r.frame < 0 {
			r.frame = lastFrame
		}
		if r.frame != lastFrame {
			if n := len(out.Frames); n > 0 {
				out.Frames[n-1].H = y - out.Frames[n-1].Y
			}
			label := fnOf[r.frame]
			if label == "" {
				label = "?"
			}
			out.Frames = append(out.Frames, htmlFrame{Label: clip(fmt.Sprintf("#%d %s", r.frame, label), 23), Y: y, LabelY: y + 17, Boundary: lastFrame != -2})
			lastFrame = r.frame
		}
		out.Slots = append(out.Slots, htmlSlot{Addr: r.addr.String(), Kind: r.kind, Before: clip(r.before, 23), After: clip(r.after, 23),
			Changed: r.changed, Consumed: r.eaten, Y: y,
			Title: fmt.Sprintf("%s %s: %s → %s", r.addr, r.kind, r.before, r.after)})
		rowY[r.addr] = y
		y += rowH
	}
	if n := len(out.Frames); n > 0 {
		out.Frames[n-1].H = y - out.Frames[n-1].Y
	}
	stackBottom := y

	// Writer boxes beside the rows, stacked in write order.
	by := headH
	for i := range writers {
		writers[i].Y, writers[i].H = by, boxH
		writers[i].Text = clip(writers[i].Text, 52)
		by += boxH + 12
	}
	out.Writers = writers
	boxY := map[string]int{}
	for _, w := range writers {
		boxY[w.ID] = w.Y + boxH/2
	}
	for _, r := range sorted {
		for _, id := range r.writers {
			out.Arrows = append(out.Arrows, htmlArrow{Class: "arrow writer", From: r.addr.String(), To: id,
				Path: curve(slotsX+slotsW, rowY[r.addr]+rowH/2, writersX, boxY[id])})
		}
	}
	// The landing, below the writers, with an arrow from each consumed slot.
	if l := st.Landing; l != nil {
		text := landingText(l)
		ly := max(by+10, headH)
		id := fmt.Sprintf("l%d", st.ID())
		out.Landings = []htmlBox{{ID: id, Text: clip(text, 52), Title: text, Y: ly, H: boxH, Kind: "landing " + string(l.How)}}
		for _, r := range sorted {
			if r.eaten {
				out.Arrows = append(out.Arrows, htmlArrow{Class: "arrow landing", From: r.addr.String(), To: id,
					Path: curve(slotsX+slotsW, rowY[r.addr]+rowH/2, writersX, ly+boxH/2)})
			}
		}
		by = ly + boxH
	}
	out.Width = writersX + writersW + 10
	out.Height = max(stackBottom, by) + 12
	return out
}

// frameName names a frame by its function: "createproc()".
func frameName(f event.Frame) string {
	if f.Sym != nil && f.Sym.Sym != "" {
		return f.Sym.Sym + "()"
	}
	return Val(f.PC, f.Sym)
}

// insnText: "main+41 call printf@plt [badvfork.c:22]".
func insnText(in event.Insn) string {
	s := Val(in.PC, in.Sym)
	if in.Insn != "" {
		s += " " + shortInsn(in.Insn)
	}
	if in.Sym != nil && in.Sym.File != "" && in.Sym.Line > 0 {
		s += fmt.Sprintf(" [%s:%d]", in.Sym.File, in.Sym.Line)
	}
	return s
}

// shortInsn drops a call's absolute target, keeping its symbol:
// "call 555555555030 <printf@plt>" → "call printf@plt".
func shortInsn(s string) string {
	f := strings.Fields(s)
	if len(f) == 3 && strings.HasPrefix(f[2], "<") && strings.HasSuffix(f[2], ">") {
		return f[0] + " " + strings.Trim(f[2], "<>")
	}
	return strings.Join(f, " ")
}

func landingText(l *event.ParentLanding) string {
	switch l.How {
	case event.LandRetClobbered:
		exp := "its caller"
		if l.Expected != nil {
			exp = Val(*l.Expected, l.ExpectedSym)
		}
		return fmt.Sprintf("parent lands at %s instead of %s", Val(l.PC, l.Sym), exp)
	case event.LandReturned:
		return "parent returns at " + Val(l.PC, l.Sym) + ", above every changed word"
	case event.LandOverwritten:
		return "parent rewrote or left every changed word by " + Val(l.PC, l.Sym)
	case event.LandUntouched:
		return "parent not followed: the child changed no word of its live stack"
	case event.LandVfork:
		return "parent vforked again at " + Val(l.PC, l.Sym)
	}
	return fmt.Sprintf("parent stopped at %s: %s", Val(l.PC, l.Sym), l.How)
}

// timeline is the story in order: the vfork, the child's returns and
// writes, its end, the parent's resume, reads and landing.
func timeline(st *Story) []htmlStep {
	var steps []htmlStep
	if v := st.Vfork; v != nil {
		at := v.Site
		if v.Call != nil {
			at = *v.Call
		}
		on := map[bool]string{true: "on the parent's stack", false: "on its own stack"}[v.SharedStack]
		if v.Mechanism == event.MechCopy {
			on = "in its own copy of the parent's memory (no CLONE_VM)"
		}
		steps = append(steps, htmlStep{"vfork", fmt.Sprintf("vfork #%d: %s calls %s; child %d runs %s", v.Vfork, Fn(v.Caller), v.Syscall, v.Child, on) +
			" — " + insnText(at)})
	}
	type timed struct {
		t    int64
		step htmlStep
	}
	var child []timed
	for _, r := range st.Returns {
		child = append(child, timed{r.T, htmlStep{"child", fmt.Sprintf("returns from %s into %s — %s", Fn(r.FrameFn), Val(r.To, r.ToSym), insnText(r.By))}})
	}
	for _, w := range st.SlotWrites {
		child = append(child, timed{w.T, htmlStep{"child", fmt.Sprintf("overwrites %s: %s → %s, %s", slotName(w), Val(w.Old, w.OldSym), Val(w.New, w.NewSym), writtenBy(w))}})
	}
	for _, w := range st.StackWrites {
		child = append(child, timed{w.T, htmlStep{"child", fmt.Sprintf("changes the word at %s in %s: %s → %s", w.Addr, Fn(w.FrameFn), w.Old, w.New)}})
	}
	sort.SliceStable(child, func(i, j int) bool { return child[i].t < child[j].t })
	for i, c := range child {
		if i == 30 {
			steps = append(steps, htmlStep{"child", fmt.Sprintf("… and %d more", len(child)-30)})
			break
		}
		steps = append(steps, c.step)
	}
	if e := st.End; e != nil {
		var s string
		switch e.How {
		case event.EndExec:
			s = "execs " + e.Path
		case event.EndExit:
			s = "exits"
			if e.Code != nil {
				s += fmt.Sprintf(" with status %d", *e.Code)
			}
			if e.Via != "" {
				s += " via " + e.Via
			}
		case event.EndSignal:
			s = "is killed by " + e.Signal
			if e.PC != nil {
				s += " at " + Val(*e.PC, e.Sym)
			}
		default:
			s = "is killed by vtrace (budget)"
		}
		steps = append(steps, htmlStep{"end", "child " + s})
	}
	if r := st.Resume; r != nil {
		steps = append(steps, htmlStep{"parent", "parent resumes at " + Val(r.PC, r.Sym)})
	}
	for _, c := range st.Consumes {
		what := "reads the changed word at " + c.Addr.String()
		switch c.Kind {
		case event.SlotRet:
			what = "returns through the overwritten slot " + c.Addr.String()
		case event.SlotSavedReg:
			what = "restores %" + c.Reg + " from the overwritten slot " + c.Addr.String()
		}
		steps = append(steps, htmlStep{"parent", fmt.Sprintf("parent %s (%s, was %s) — %s", what, c.Value, c.Was, insnText(c.By))})
	}
	if l := st.Landing; l != nil {
		steps = append(steps, htmlStep{"landing", landingText(l)})
	}
	return steps
}

// curve is an SVG path from (x1,y1) to (x2,y2), bending horizontally.
func curve(x1, y1, x2, y2 int) string {
	mid := (x1 + x2) / 2
	return fmt.Sprintf("M %d %d C %d %d, %d %d, %d %d", x1, y1, mid, y1, mid, y2, x2-6, y2)
}

// clip shortens s to n runes with an ellipsis (the full text is in the
// element's title).
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// htmlTemplate is parsed on first use: parsing it in the package's init
// cost every run 0.7 ms of CPU, HTML asked for or not.
var htmlTemplate = sync.OnceValue(parseHTMLTemplate)

func parseHTMLTemplate() *template.Template {
	return template.Must(template.New("page").Funcs(template.FuncMap{
		"add": func(a, b int) int { return a + b },
		"rem": func(i int) int { return i % 2 },
	}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vtrace: {{.Program}} — {{.Verdict}}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1b1f24; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 6px; }
code, .mono, svg text { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
.verdict { display: inline-block; padding: 1px 8px; border-radius: 4px; font-weight: 600; color: #fff; text-transform: uppercase; font-size: 12px; }
.verdict.violation { background: #c62828; } .verdict.warning { background: #b26a00; } .verdict.clean { background: #2e7d32; } .verdict.incomplete { background: #555; }
table.sites { border-collapse: collapse; margin: 8px 0; } table.sites td, table.sites th { border: 1px solid #ccd; padding: 3px 8px; text-align: left; }
.story { border-top: 2px solid #dde; margin-top: 18px; }
.explanation { max-width: 1100px; }
ol.timeline { padding-left: 0; list-style: none; margin: 8px 0 12px; }
ol.timeline li { margin: 2px 0; padding: 2px 8px; border-left: 4px solid #999; }
ol.timeline li.vfork { border-color: #1565c0; } ol.timeline li.child { border-color: #c62828; margin-left: 24px; }
ol.timeline li.end { border-color: #6a1b9a; margin-left: 24px; } ol.timeline li.parent { border-color: #2e7d32; }
ol.timeline li.landing { border-color: #000; font-weight: 600; }
svg.stack { display: block; margin: 6px 0 10px; }
svg.stack .band { fill: #f4f6fa; stroke: none; } svg.stack .band.odd { fill: #e9edf5; }
svg.stack .boundary { stroke: #334; stroke-width: 2; }
svg.stack .frame-label { font-size: 13px; font-weight: 600; fill: #223; }
svg.stack rect.cell { fill: #fff; stroke: #b8c0cc; }
svg.stack g.slot.changed rect.cell { fill: #ffd6d6; stroke: #c62828; stroke-width: 2; }
svg.stack g.slot.consumed rect.cell { stroke: #000; stroke-width: 3; }
svg.stack text { font-size: 12.5px; fill: #1b1f24; }
svg.stack g.slot.changed text.after { fill: #b71c1c; font-weight: 700; }
svg.stack .col-head { font-size: 12px; fill: #556; font-weight: 600; }
svg.stack rect.box { fill: #fff8e1; stroke: #b26a00; stroke-width: 1.5; rx: 5; }
svg.stack g.landing rect.box { fill: #ffebee; stroke: #000; stroke-width: 2; }
svg.stack path.arrow { fill: none; stroke-width: 1.6; }
svg.stack path.arrow.writer { stroke: #c62828; } svg.stack path.arrow.landing { stroke: #000; stroke-dasharray: 5 3; }
.more { color: #555; }
</style>
</head>
<body>
<h1>vtrace: <code>{{.Argv}}</code> <span class="verdict {{.Verdict}}" id="run-verdict">{{.Verdict}}</span></h1>
<p class="summary">{{.Summary}} · {{.Mode}} mode · vtrace {{.Version}}</p>
{{with .Fate}}<p class="fate">{{.}}</p>{{end}}
{{if .Sites}}<table class="sites"><tr><th>vfork call site</th><th>vforks</th><th>verdict</th><th>worst finding</th></tr>
{{range .Sites}}<tr class="site"><td class="mono">{{.Where}}{{if ne .Where .Key}} ({{.Key}}){{end}}</td><td>{{.Count}}</td><td><span class="verdict {{.Verdict}}">{{.Verdict}}</span></td><td>{{.Headline}}</td></tr>
{{end}}</table>{{else}}<p>The program made no vfork that vtrace could follow.</p>{{end}}
{{range .Stories}}{{$s := .}}<section class="story" id="story-{{.ID}}" data-verdict="{{.Verdict}}">
<h2>vfork #{{.ID}} <span class="verdict {{.Verdict}}">{{.Verdict}}</span> {{.Headline}}</h2>
<p class="reasons mono">{{range $i, $r := .Reasons}}{{if $i}}, {{end}}{{$r}}{{end}}</p>
<p class="explanation">{{.Explanation}}</p>
<ol class="timeline">{{range .Timeline}}<li class="{{.Side}}">{{.Text}}</li>{{end}}</ol>
<svg class="stack" xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="the parent's stack during vfork #{{.ID}}">
<defs><marker id="head-{{.ID}}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#333"/></marker></defs>
<text class="col-head" x="8" y="20">parent frame</text><text class="col-head" x="{{.SlotsX}}" y="20">slot · kind · before → after the child</text><text class="col-head" x="{{.WritersX}}" y="20">written by (child) · parent landing</text>
{{range $i, $f := .Frames}}<g class="frame"><rect class="band{{if eq (rem $i) 1}} odd{{end}}" x="0" y="{{.Y}}" width="{{$s.SlotsX}}" height="{{.H}}"/>{{if .Boundary}}<line class="boundary" x1="0" y1="{{.Y}}" x2="{{add $s.SlotsX $s.SlotsW}}" y2="{{.Y}}"/>{{end}}<text class="frame-label" x="8" y="{{.LabelY}}">{{.Label}}</text></g>
{{end}}{{range .Slots}}<g class="slot{{if .Changed}} changed{{end}}{{if .Consumed}} consumed{{end}}" data-addr="{{.Addr}}"><title>{{.Title}}</title><rect class="cell" x="{{$s.SlotsX}}" y="{{.Y}}" width="{{$s.SlotsW}}" height="{{$s.RowH}}"/><text class="addr" x="{{add $s.SlotsX 8}}" y="{{add .Y 17}}">{{.Addr}}</text><text class="kind" x="{{add $s.SlotsX 150}}" y="{{add .Y 17}}">{{.Kind}}</text><text class="before" x="{{add $s.SlotsX 250}}" y="{{add .Y 17}}">{{.Before}}</text><text class="to" x="{{add $s.SlotsX 440}}" y="{{add .Y 17}}">→</text><text class="after" x="{{add $s.SlotsX 462}}" y="{{add .Y 17}}">{{.After}}</text></g>
{{end}}{{range .Writers}}<g class="writer" id="{{.ID}}"><title>{{.Title}}</title><rect class="box" x="{{$s.WritersX}}" y="{{.Y}}" width="{{$s.WritersW}}" height="{{.H}}"/><text x="{{add $s.WritersX 10}}" y="{{add .Y 27}}">{{.Text}}</text></g>
{{end}}{{range .Landings}}<g class="{{.Kind}}" id="{{.ID}}"><title>{{.Title}}</title><rect class="box" x="{{$s.WritersX}}" y="{{.Y}}" width="{{$s.WritersW}}" height="{{.H}}"/><text class="landing-text" x="{{add $s.WritersX 10}}" y="{{add .Y 27}}">{{.Text}}</text></g>
{{end}}{{range .Arrows}}<path class="{{.Class}}" data-from="{{.From}}" data-to="{{.To}}" d="{{.Path}}" marker-end="url(#head-{{$s.ID}})"/>
{{end}}</svg>
</section>
{{end}}{{if .More}}<p class="more">{{.More}} more non-clean stories are not drawn.</p>{{end}}
</body>
</html>
`))
}
