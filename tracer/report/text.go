package report

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/fatih/color"

	"github.com/vtrace/vtrace/tracer/event"
)

// Detail is how much of a run the text report shows.
type Detail int

const (
	// Default tells each warning and violation in full (the first at each
	// call site and verdict; later ones there in one line, up to
	// maxSiteLines, then only counted), counts clean stories per call site,
	// and ends with the per-site summary table and the verdict: a clean
	// run of any size fits in a few lines.
	Default Detail = iota
	// Quiet prints only the verdict line.
	Quiet
	// Verbose tells every story in full as it happens (child_step lines
	// of --trace-insns included), every exec and exit, the summary table
	// and the verdict.
	Verbose
)

// TextOptions configure a Text renderer.
type TextOptions struct {
	Color  bool
	Detail Detail
	// Width wraps lines to this many columns (a terminal's); 0 leaves
	// them whole (a CI log or a file wraps, or not, by itself).
	Width int
}

// Text renders the run as a readable story. Everything it prints that came
// from the traced program (symbols, paths, argv, instructions quoting
// symbols) goes through Printable.
type Text struct {
	// w is where the renderer prints: buf (through ww when wrapping),
	// written to out in one piece at the end of each Emit and Finish — a
	// story of 400 lines is one write(2), not 400.
	w    io.Writer
	out  io.Writer
	buf  bytes.Buffer
	ww   *wrapWriter
	opts TextOptions
	sum  Summary
	// shown is, per call site, what the default detail already printed.
	shown map[*Site]*siteShown

	bad, warn, good, dim, bold, addr, sym *color.Color
}

type siteShown struct {
	rank   int // worst verdict told in full at this site
	lines  int // later stories told in one line
	folded bool
}

// maxSiteLines is how many warning or violation stories of one call site
// the default detail tells in one line each, after the first in full.
const maxSiteLines = 10

// maxDefaultSites is how many call sites the default summary table lists
// (all with -v).
const maxDefaultSites = 20

// NewText returns a text renderer at the default detail (quiet: the
// verdict only). colored forces colour on or off (the CLI decides from
// --color, NO_COLOR and whether w is a terminal).
func NewText(w io.Writer, colored, quiet bool) *Text {
	d := Default
	if quiet {
		d = Quiet
	}
	return NewTextOptions(w, TextOptions{Color: colored, Detail: d})
}

// NewTextOptions returns a text renderer configured by o.
func NewTextOptions(w io.Writer, o TextOptions) *Text {
	mk := func(attrs ...color.Attribute) *color.Color {
		c := color.New(attrs...)
		if o.Color {
			c.EnableColor()
		} else {
			c.DisableColor()
		}
		return c
	}
	r := &Text{out: w, opts: o, shown: map[*Site]*siteShown{},
		bad: mk(color.FgRed, color.Bold), warn: mk(color.FgYellow, color.Bold), good: mk(color.FgGreen, color.Bold),
		dim: mk(color.Faint), bold: mk(color.Bold), addr: mk(color.FgCyan), sym: mk(color.FgMagenta)}
	r.w = &r.buf
	if o.Width > 0 {
		r.ww = &wrapWriter{w: &r.buf, width: o.Width}
		r.w = r.ww
	}
	if o.Detail == Default {
		r.sum.OnStory = r.story
	}
	return r
}

func (r *Text) printf(format string, args ...any) { fmt.Fprintf(r.w, format, args...) }

// flushOut writes what Emit or Finish printed.
func (r *Text) flushOut() {
	if r.buf.Len() > 0 {
		_, _ = r.out.Write(r.buf.Bytes())
		r.buf.Reset()
	}
}

func (r *Text) a(a event.Addr) string { return r.addr.Sprint(a.String()) }

// fn names the function of a frame: "createproc()" rather than the
// offset of its call site.
func (r *Text) fn(y *event.Sym) string {
	if y == nil || y.Sym == "" {
		return r.s(y)
	}
	return r.sym.Sprint(Printable(y.Sym) + "()")
}

func (r *Text) s(y *event.Sym) string {
	if y == nil {
		return r.dim.Sprint("?")
	}
	out := r.sym.Sprint(Printable(y.String()))
	if y.Module != "" && y.Sym != "" && !strings.HasPrefix(y.Sym, y.Module) && isLib(y.Module) {
		out += r.dim.Sprintf(" (%s)", Printable(y.Module))
	}
	return out
}

func isLib(module string) bool { return strings.Contains(module, ".so") }

// as renders a value that may be a code address: "main+18" or the hex.
func (r *Text) as(a event.Addr, y *event.Sym) string {
	if y != nil && y.Sym != "" {
		return r.sym.Sprint(Printable(y.String()))
	}
	return r.a(a)
}

func (r *Text) in(i *event.Insn) string {
	if i == nil {
		return ""
	}
	s := r.s(i.Sym)
	if i.Insn != "" {
		s += " " + r.dim.Sprint("`"+Printable(Squeeze(i.Insn))+"`")
	}
	if i.Sym != nil && i.Sym.File != "" {
		s += r.dim.Sprintf(" [%s:%d]", Printable(i.Sym.File), i.Sym.Line)
	}
	return s
}

func (r *Text) verdictWord(v event.Judgement) string {
	switch v {
	case event.Violation:
		return r.bad.Sprint("VIOLATION")
	case event.Warning:
		return r.warn.Sprint("WARNING")
	case event.Unchecked:
		return r.warn.Sprint("UNCHECKED")
	}
	return r.good.Sprint("CLEAN")
}

// Emit renders one event.
func (r *Text) Emit(ev event.Event) error {
	defer r.flushOut()
	_ = r.sum.Emit(ev) // Default: tells finished stories (r.story)
	switch r.opts.Detail {
	case Quiet:
		if v, ok := ev.(*event.Verdict); ok {
			if v.Incomplete != "" {
				r.printf("%s (incomplete: %s)\n", v.Verdict, v.Incomplete)
			} else {
				r.printf("%s\n", v.Verdict)
			}
		}
	case Verbose:
		r.render(ev)
	default:
		switch e := ev.(type) {
		case *event.Start, *event.Attach, *event.Detach, *event.Budget, *event.Error, *event.Verdict:
			r.render(ev)
		case *event.Exit:
			if e.Main {
				r.render(ev)
			}
		case *event.Note:
			if e.Vfork == 0 {
				r.render(ev)
			}
		}
	}
	if _, ok := ev.(*event.Verdict); ok && r.ww != nil {
		_ = r.ww.Flush()
	}
	return nil
}

// Finish ends a text whose log stopped before the run's verdict (a run
// killed while vtrace wrote it): at the default detail, the stories still
// open are told in full, as far as they go (the verbose detail told them as
// they came).
func (r *Text) Finish() {
	defer r.flushOut()
	if r.opts.Detail == Default && r.sum.Run.Verdict == nil {
		for _, st := range r.sum.Open() {
			r.storyFolded(st)
		}
	}
	if r.ww != nil {
		_ = r.ww.Flush()
	}
}

// story decides, at the default detail, how a finished story is told: a
// clean one only counts in the summary; the first warning or violation at
// a call site (or one worse than any told there) in full; later ones at
// that site in one line, then only counted.
func (r *Text) story(st *Story, site *Site) {
	v := st.Judgement()
	if v == event.Clean {
		return
	}
	sh := r.shown[site]
	if sh == nil {
		sh = &siteShown{rank: event.Clean.Rank()}
		r.shown[site] = sh
	}
	switch {
	case v.Rank() > sh.rank:
		sh.rank = v.Rank()
		r.storyFolded(st)
	case sh.lines < maxSiteLines:
		sh.lines++
		r.printf("%s %s at %s: %s\n", r.bold.Sprintf("━━ vfork #%d", st.ID()), r.verdictWord(v),
			Printable(siteName(site)), Printable(Headline(st)))
	case !sh.folded:
		sh.folded = true
		r.printf("%s\n", r.dim.Sprintf("   (more stories at %s are only counted in the summary below; -v tells each)", Printable(siteName(site))))
	}
}

// storyFolded tells a whole story, libc's bookkeeping of one variable in
// a row folded in one line (the default detail, and markdown's details).
func (r *Text) storyFolded(st *Story) {
	evs := StoryEvents(st)
	for i := 0; i < len(evs); {
		if n := libcRun(evs[i:]); n >= minLibcFold {
			r.libcFolded(evs[i : i+n])
			i += n
			continue
		}
		if n := writerRun(evs[i:]); n > 1 {
			// One writer for them all: said once, under the group.
			for _, ev := range evs[i : i+n] {
				r.globalLine(ev.(*event.GlobalWrite))
			}
			w := evs[i].(*event.GlobalWrite)
			r.byOf("the "+strconv.Itoa(n)+" words above: ", w.By, w.During)
			i += n
			continue
		}
		r.render(evs[i])
		i++
	}
}

// writerRun is how many global_write events at the head of evs, not libc's
// bookkeeping, have the same writer (by, during) in a row.
func writerRun(evs []event.Event) int {
	return globalRun(evs, func(first, w *event.GlobalWrite) bool {
		return w.Libc == "" && sameInsn(w.By, first.By) && sameInsn(w.During, first.During)
	})
}

// globalRun is how many global_write events at the head of evs go with
// the first as same says (0 when the head is none, or same rejects the
// first itself).
func globalRun(evs []event.Event, same func(first, w *event.GlobalWrite) bool) int {
	first, ok := evs[0].(*event.GlobalWrite)
	if !ok || !same(first, first) {
		return 0
	}
	n := 1
	for _, ev := range evs[1:] {
		if w, ok := ev.(*event.GlobalWrite); !ok || !same(first, w) {
			break
		}
		n++
	}
	return n
}

// sameInsn reports whether two optional instructions are the same one.
func sameInsn(a, b *event.Insn) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.PID == b.PID && a.PC == b.PC && a.Insn == b.Insn
}

// minLibcFold is how many words of one libc variable, in a row, the
// default detail tells in one line: the seed's child, in its first
// printf, fills 257 words of malloc's main_arena (257 lines of a 411-line
// report, each libc's bookkeeping and no warning); -v lists each.
const minLibcFold = 3

// libcRun is how many global_write events at the head of evs are libc's
// bookkeeping of one variable, of one kind, in a row.
func libcRun(evs []event.Event) int {
	return globalRun(evs, func(first, w *event.GlobalWrite) bool {
		return w.Libc != "" && w.Libc == first.Libc && w.Area == first.Area && w.Sym != nil && w.Sym.Sym != "" &&
			w.Sym.Sym == first.Sym.Sym && w.Sym.Module == first.Sym.Module
	})
}

// libcFolded tells a run of libcRun in one line: the variable, the
// addresses of its first and last changed words, how many.
func (r *Text) libcFolded(evs []event.Event) {
	first, last := evs[0].(*event.GlobalWrite), evs[len(evs)-1].(*event.GlobalWrite)
	y := *first.Sym
	y.Off = 0
	name := GlobalName(first.Area, first.Mapping, &y, first.Addr)
	line := "· libc " + first.Addr.String() + "–" + last.Addr.String() + " " + Printable(name) + ": " +
		strconv.Itoa(len(evs)) + " words changed (" + LibcWhat(first.Libc) + "; -v lists each)"
	r.printf("    %s\n", r.dim.Sprint(line))
}

// quoteArg quotes an argument the way a shell would need it, when it
// holds a space or a character a shell treats specially, so that the
// start line shows where each argument begins and ends.
func quoteArg(a string) string {
	if a != "" && !strings.ContainsAny(a, " \t'\"\\$`;&|<>()*?[]{}~#!") {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}

// siteName is "createproc (badvfork.c:28)", or the site's symbol.
func siteName(s *Site) string {
	fn := siteFunc(s)
	if w := s.Where(); w != s.Key && fn != "" {
		return fn + " (" + w + ")"
	}
	return s.Where()
}

// siteFunc is the function that made the vfork-like call of a site.
func siteFunc(s *Site) string {
	if s.Call.Sym != nil && s.Call.Sym.Sym != "" {
		return s.Call.Sym.Sym
	}
	return ""
}

// render prints one event in full.
func (r *Text) render(ev event.Event) {
	switch e := ev.(type) {
	case *event.Start:
		argv := make([]string, len(e.Argv))
		for i, a := range e.Argv {
			argv[i] = quoteArg(Printable(a))
		}
		r.printf("%s %s — %s, %s mode, watchpoints %s", r.bold.Sprint("vtrace"), Printable(e.Version),
			strings.Join(argv, " "), e.Mode, e.Watchpoints)
		if e.WatchpointProbe != "" && r.opts.Detail == Verbose {
			r.printf(" %s", r.dim.Sprintf("(probe: %s)", Printable(e.WatchpointProbe)))
		}
		r.printf("\n")
	case *event.Exec:
		r.printf("%s exec %s (%s)\n", r.dim.Sprintf("[%d]", e.PID), Printable(e.Path), e.Arch)
	case *event.Vfork:
		r.vfork(e)
	case *event.ChildStep:
		r.printf("      %s %s %s %s\n", r.dim.Sprintf("%6d", e.N), r.a(e.PC), r.s(e.Sym), r.dim.Sprint(Printable(e.Insn)))
	case *event.ChildCall:
		r.printf("    call  %s → %s\n", r.in(&e.By), r.as(e.Target, e.TargetSym))
	case *event.ChildReturnPastFrame:
		if e.How == event.LeaveSP || e.How == event.LeaveJump {
			r.printf("    %s  %s — left frame #%d %s without a ret (stack pointer above its return slot), at %s\n", r.bad.Sprint("left ✗"), r.in(&e.By),
				e.Frame, r.fn(e.FrameFn), r.as(e.To, e.ToSym))
			r.by(nil, e.During)
			break
		}
		r.printf("    %s  %s — returned from frame #%d %s into %s\n", r.bad.Sprint("ret ✗"), r.in(&e.By),
			e.Frame, r.fn(e.FrameFn), r.as(e.To, e.ToSym))
	case *event.SlotWrite:
		what := "return address of"
		if e.Kind == event.SlotSavedReg {
			what = "saved %" + e.Reg + " of"
		}
		r.printf("    %s %s %s #%d %s: %s → %s\n", r.bad.Sprint("✗ slot"), r.a(e.Slot), what, e.Frame, r.fn(e.FrameFn),
			r.as(e.Old, e.OldSym), r.bad.Sprint(plain(e.New, e.NewSym)))
		r.by(e.By, e.During)
		if len(e.Backtrace) > 0 {
			var bt []string
			for _, y := range e.Backtrace {
				bt = append(bt, Printable(y.String()))
			}
			r.printf("          %s\n", r.dim.Sprint("child backtrace: "+strings.Join(bt, " ← ")))
		}
	case *event.StackWrite:
		r.printf("    %s %s in frame #%d %s: %s → %s\n", r.warn.Sprint("• stack"), r.a(e.Addr), e.Frame, r.fn(e.FrameFn),
			r.a(e.Old), r.a(e.New))
		r.by(e.By, e.During)
	case *event.GlobalWrite:
		if e.Libc != "" {
			name := GlobalName(e.Area, e.Mapping, e.Sym, e.Addr)
			// The most frequent line of a -v report (the seed's child
			// fills malloc's arena: 257 of its 411 lines; the default
			// detail folds them, storyFolded), so built by concatenation
			// rather than fmt.
			line := "· libc " + e.Addr.String() + " " + Printable(name) + ": " + e.Old.String() + " → " + e.New.String() + " (" + LibcWhat(e.Libc) + ")"
			_, _ = io.WriteString(r.w, "    "+r.dim.Sprint(line)+"\n")
			break
		}
		r.globalLine(e)
		r.by(e.By, e.During)
	case *event.GlobalDiff:
		libc := 0
		for _, c := range e.Changed {
			if c.Libc != "" {
				libc++
			}
		}
		r.printf("  %d word(s) outside the stack changed (%d of them libc's bookkeeping; %d bytes compared)\n",
			len(e.Changed)+e.More, libc, e.Watched)
	case *event.GlobalRead:
		r.printf("    %s %s %s = %s (was %s) at %s\n", r.warn.Sprint("• reads global"),
			Printable(GlobalName(e.Area, e.Mapping, e.Sym, e.Addr)), r.a(e.Addr), r.a(e.Value), r.a(e.Was), r.in(&e.By))
	case *event.ChildEnd:
		r.childEnd(e)
	case *event.SlotDiff:
		r.slotDiff(e)
	case *event.ParentResume:
		r.printf("  %s %d resumes at %s\n", r.bold.Sprint("parent"), e.PID, r.as(e.PC, e.Sym))
	case *event.ParentConsume:
		mark := r.bad.Sprint("✗ uses")
		if e.Kind == event.SlotLocal {
			mark = r.warn.Sprint("• reads")
		}
		what := "a local"
		switch e.Kind {
		case event.SlotRet:
			what = "return slot"
		case event.SlotSavedReg:
			what = "saved %" + e.Reg
		}
		r.printf("    %s %s %s = %s (was %s) at %s\n", mark, what, r.a(e.Addr), r.a(e.Value), r.a(e.Was), r.in(&e.By))
		if e.During != nil {
			r.printf("          %s\n", r.dim.Sprintf("inside the call at %s (found by %s)", Printable(At(*e.During)), e.FoundBy))
		}
	case *event.LibcChannel:
		r.printf("    %s %s %s = %s (was %s): written by the child in %s, read at %s\n", r.good.Sprint("✓ libc channel"),
			e.Kind, r.a(e.Addr), r.a(e.Value), r.a(e.Was), r.fn(&e.WriterFn), r.in(&e.Reader))
	case *event.ParentLanding:
		r.landing(e)
	case *event.VforkVerdict:
		r.printf("  %s %s", r.verdictWord(e.Verdict), r.dim.Sprint(joinReasons(e.Reasons)))
		if e.Incomplete != "" {
			r.printf(" %s", r.warn.Sprintf("(cut short: %s)", e.Incomplete))
		}
		r.printf("\n")
		if e.Explanation != "" {
			width := 100 // a paragraph reads best at most this wide
			if w := r.opts.Width - 2; w > 20 && w < width {
				width = w // a narrower terminal: wrapped here, not twice
			}
			r.printf("  %s\n", wrap(Printable(e.Explanation), width, "  "))
		}
		r.printf("\n")
	case *event.Exit:
		r.exit(e)
	case *event.Attach:
		r.printf("%s attached to pid %d, %s (%s)", r.bold.Sprint("●"), e.PID, Printable(e.Exe), threads(e.Threads))
		if e.Stopped {
			r.printf(", stopped (job control): left stopped")
		}
		r.printf("\n")
	case *event.Detach:
		if e.Why == "program_exit" {
			r.printf("%s the program ended: what it left running (%s) runs on untraced; --after-exit follow traces it to its end\n",
				r.dim.Sprint("●"), threads(e.Threads))
			break
		}
		why := e.Why
		if e.Signal != "" {
			why = e.Signal
		}
		r.printf("%s detached from pid %d (%s) on %s: every breakpoint removed, it runs on untraced\n",
			r.warn.Sprint("●"), e.PID, threads(e.Threads), why)
	case *event.Budget:
		if r.sum.Run.Detach != nil {
			return // the detach line said it
		}
		r.printf("%s budget %s (%s) reached: stopping every traced process\n", r.warn.Sprint("!"), e.Budget, Printable(e.Limit))
	case *event.Note:
		r.printf("%s %s\n", r.dim.Sprint("note:"), Printable(e.Msg))
	case *event.Error:
		r.printf("%s %s\n", r.bad.Sprint("error:"), Printable(e.Msg))
	case *event.Verdict:
		r.table()
		r.printf("%s %s — %d vfork(s), %d violation(s), %d warning(s)", r.bold.Sprint("verdict:"), r.verdictWord(e.Verdict),
			e.Vforks, e.Violations, e.Warnings)
		if e.Unchecked > 0 {
			r.printf(", %s", r.warn.Sprintf("%d unchecked", e.Unchecked))
		}
		// (An unchecked story is cut short too, and counted as unchecked.)
		if n := r.cutShort() - e.Unchecked; n > 0 && e.Incomplete == "" {
			// Stories cut short while the run went on (their own step
			// budget, a tracing error, giving way to held tasks): their
			// verdicts judge only what was seen.
			r.printf(", %s", r.warn.Sprintf("%d cut short", n))
		}
		if e.Incomplete != "" {
			r.printf(" %s", r.warn.Sprintf("(run stopped: %s)", e.Incomplete))
		}
		r.printf("\n")
	}
}

// table prints the stories counted per vfork call site, worst first, like
// strace -c: count, verdict, the function that made the call, its source
// line, and the worst finding there.
func (r *Text) table() {
	sites := r.sum.Sites.List()
	if len(sites) == 0 {
		return
	}
	more := 0
	if r.opts.Detail != Verbose && len(sites) > maxDefaultSites {
		more = len(sites) - maxDefaultSites
		sites = sites[:maxDefaultSites]
	}
	rows := [][]string{{"count", "verdict", "function", "source", "worst finding"}}
	for _, s := range sites {
		verdict := string(s.Verdict)
		if n := worstCount(s); n < s.Count {
			verdict += fmt.Sprintf(" (%d of %d)", n, s.Count)
		}
		if s.Incomplete > 0 {
			verdict += "*"
		}
		fn := siteFunc(s)
		if fn == "" {
			fn = "?"
		}
		finding := ""
		if s.Worst != nil {
			finding = Headline(s.Worst)
		}
		rows = append(rows, []string{fmt.Sprint(s.Count), verdict, Printable(fn), Printable(s.Where()), Printable(finding)})
	}
	widths := make([]int, len(rows[0])-1)
	for _, row := range rows {
		for i := range widths {
			widths[i] = max(widths[i], visibleWidth(row[i]))
		}
	}
	r.printf("%s\n", r.bold.Sprint("vfork call sites:"))
	for i, row := range rows {
		var b strings.Builder
		b.WriteString(" ")
		for c, cell := range row {
			pad := 0
			if c < len(widths) {
				pad = widths[c] - visibleWidth(cell)
			}
			switch {
			case i == 0:
				cell = r.dim.Sprint(strings.ToUpper(cell))
			case c == 1:
				cell = r.colorVerdict(sites[i-1].Verdict, cell)
			}
			if c == 0 {
				b.WriteString(" " + strings.Repeat(" ", pad) + cell) // numbers to the right
			} else {
				b.WriteString("  " + cell)
				if c < len(widths) {
					b.WriteString(strings.Repeat(" ", pad))
				}
			}
		}
		r.printf("%s\n", strings.TrimRight(b.String(), " "))
	}
	if more > 0 {
		r.printf("  %s\n", r.dim.Sprintf("… %d more call sites (-v lists every one)", more))
	}
	for _, s := range sites {
		if s.Incomplete > 0 {
			r.printf("  %s\n", r.dim.Sprint("* some stories there were cut short: by a budget, the end of the run, a tracing error, or to let tasks vtrace held run"))
			break
		}
	}
}

func (r *Text) colorVerdict(v event.Judgement, s string) string {
	switch v {
	case event.Violation:
		return r.bad.Sprint(s)
	case event.Warning:
		return r.warn.Sprint(s)
	}
	return r.good.Sprint(s)
}

// worstCount is how many of the site's stories have its worst verdict.
func worstCount(s *Site) int {
	switch s.Verdict {
	case event.Violation:
		return s.Violations
	case event.Warning:
		return s.Warnings
	}
	return s.Count - s.Violations - s.Warnings
}

func joinReasons(rs []event.Reason) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

func plain(a event.Addr, y *event.Sym) string {
	if y != nil && y.Sym != "" {
		return Printable(y.String())
	}
	return a.String()
}

func (r *Text) by(by, during *event.Insn) { r.byOf("", by, during) }

// byOf is by for the words a group of lines above it changed (of: "the
// 10 words above: "), or one ("").
func (r *Text) byOf(of string, by, during *event.Insn) {
	switch {
	case by != nil && during != nil:
		r.printf("          %sby %s %s\n", of, r.in(by), r.dim.Sprint("(watchpoint)"))
		r.printf("          inside the call at %s\n", r.in(during))
	case by != nil:
		r.printf("          %sby %s\n", of, r.in(by))
	case during != nil:
		r.printf("          %sduring the call at %s\n", of, r.in(during))
	default:
		r.printf("          %s\n", r.dim.Sprint(of+"found when the child ended"))
	}
}

// globalLine is a global_write's line that is not libc's bookkeeping,
// without who wrote it.
func (r *Text) globalLine(e *event.GlobalWrite) {
	r.printf("    %s %s %s: %s → %s\n", r.warn.Sprint("• global"), r.a(e.Addr),
		Printable(GlobalName(e.Area, e.Mapping, e.Sym, e.Addr)), r.a(e.Old), r.a(e.New))
}

func (r *Text) vfork(e *event.Vfork) {
	r.printf("\n%s pid %d → child %d, %s", r.bold.Sprintf("━━ vfork #%d ━━", e.Vfork), e.PID, e.Child, e.Syscall)
	if e.Flags != "" {
		r.printf("(%s)", e.Flags)
	}
	r.printf("\n")
	if e.Call != nil {
		r.printf("  called from %s\n", r.in(e.Call))
	}
	r.printf("  syscall at %s; ", r.in(&e.Site))
	switch {
	case e.Mechanism == event.MechCopy:
		r.printf("no CLONE_VM: the child has its own copy of the parent's memory\n")
	case e.SharedStack:
		r.printf("the child runs on the parent's stack\n")
	case e.ChildStack != nil:
		r.printf("the child has its own stack at %s\n", r.a(*e.ChildStack))
	default: // a log written by hand or damaged: no address to give
		r.printf("the child has its own stack\n")
	}
	r.printf("  parent frames at the vfork:\n")
	for _, f := range e.Frames {
		where := "?"
		if f.RetSlot != nil {
			where = "slot " + r.a(*f.RetSlot)
		} else if f.RetReg != "" {
			where = "in %" + f.RetReg
		}
		if f.RetStoredBy != nil {
			r.printf("    #%-2d %-28s return address overwritten before the vfork: %s holds %s, stored by %s; callers unknown%s\n",
				f.Index, r.s(f.Sym), where, r.a(f.Ret), r.in(f.RetStoredBy), r.dim.Sprintf(" %s", f.Method))
		} else {
			r.printf("    #%-2d %-28s returns to %-28s (%s)%s\n", f.Index, r.s(f.Sym), r.as(f.Ret, f.RetSym), where,
				r.dim.Sprintf(" %s", f.Method))
		}
		for _, sv := range f.Saved {
			r.printf("         %s\n", r.dim.Sprintf("saved %%%s at %s = %s", sv.Reg, sv.Slot, sv.Value))
		}
	}
	if e.Mechanism == event.MechCopy {
		r.printf("  nothing the child does can reach the parent: it runs free; the parent's live stack [%s, %s) is compared at its end\n",
			r.a(e.Live.Lo), r.a(e.Live.Hi))
	} else {
		r.printf("  watching the parent's live stack [%s, %s) (%d bytes), mechanism: %s\n", r.a(e.Live.Lo), r.a(e.Live.Hi),
			uint64(e.Live.Hi-e.Live.Lo), e.Mechanism)
	}
	if m := e.Memory; m != nil {
		capped := ""
		if m.Capped {
			capped = ", capped (see the note)"
		}
		how := string(m.Method)
		if m.Method == event.MemLibcSpawn {
			how += ": glibc's own posix_spawn child runs none of the program's code, so only the parent thread's TLS block (errno's) is watched; --full-watch watches all"
		}
		r.printf("  and its memory outside the stack: %d bytes in %d range(s), %s%s\n", m.Bytes, m.Ranges, how, capped)
	}
	r.printf("  %s %d:\n", r.bold.Sprint("child"), e.Child)
}

func (r *Text) childEnd(e *event.ChildEnd) {
	var how string
	switch e.How {
	case event.EndExec:
		how = "exec'd " + Printable(e.Path)
	case event.EndExit:
		how = "exited"
		if e.Code != nil { // always, in a log vtrace wrote; an edited one may lack it
			how = fmt.Sprintf("exited with status %d", *e.Code)
		}
	case event.EndSignal:
		how = "killed by " + e.Signal
		if e.SiCode != "" {
			how += " (" + e.SiCode + ")"
		}
		if e.PC != nil {
			how += " at " + plain(*e.PC, e.Sym)
		}
		if e.Addr != nil {
			how += ", fault address " + e.Addr.String()
		}
	default:
		how = "was killed"
	}
	if e.Via != "" {
		how += " via " + r.warn.Sprint(e.Via)
	}
	r.printf("    child %s after %d single-steps and %d breakpoint hits\n", how, e.Steps, e.Hits)
}

func (r *Text) slotDiff(e *event.SlotDiff) {
	r.printf("  slots before → after the child:\n")
	for _, s := range e.Slots {
		name := "ret"
		if s.Kind == event.SlotSavedReg {
			name = "%" + s.Reg
		}
		line := fmt.Sprintf("    #%-2d %-5s %s  %s → %s", s.Frame, name, r.a(s.Slot), r.as(s.Before, s.BeforeSym), r.as(s.After, s.AfterSym))
		if s.Changed {
			line += "  " + r.bad.Sprint("CHANGED")
		}
		r.printf("%s\n", line)
	}
	if n := len(e.Changed); n > 0 {
		r.printf("  %d word(s) of the live stack changed:", n)
		for i, c := range e.Changed {
			if i == 8 {
				r.printf(" …")
				break
			}
			r.printf(" %s", r.dim.Sprintf("%s(#%d) %s→%s", c.Addr, c.Frame, c.Before, c.After))
		}
		r.printf("\n")
	} else {
		r.printf("  no word of the live stack changed\n")
	}
}

func (r *Text) landing(e *event.ParentLanding) {
	switch e.How {
	case event.LandRetClobbered:
		slot, exp := "", "where it was called from"
		if e.Slot != nil {
			slot = " " + r.a(*e.Slot)
		}
		if e.Expected != nil {
			exp = r.as(*e.Expected, e.ExpectedSym)
		}
		r.printf("    %s at %s (%s) through the clobbered slot%s — it should have returned to %s (%d steps)\n",
			r.bad.Sprint("✗ lands"), r.as(e.PC, e.Sym), r.a(e.PC), slot, exp, e.Steps)
	case event.LandReturned:
		r.printf("    %s at %s, above every word the child changed (%d steps)\n", r.good.Sprint("✓ returns"),
			r.as(e.PC, e.Sym), e.Steps)
	case event.LandOverwritten:
		r.printf("    %s at %s: every word the child changed was rewritten or left behind (%d steps)\n", r.good.Sprint("✓ done"),
			r.as(e.PC, e.Sym), e.Steps)
	case event.LandUntouched:
		r.printf("    %s: the child changed no word of its live stack\n", r.good.Sprint("✓ not followed"))
	case event.LandVfork:
		r.printf("    parent vforked again at %s: this story ends there (%d steps)\n", r.as(e.PC, e.Sym), e.Steps)
	default:
		r.printf("    parent stopped following at %s: %s (%d steps)\n", r.as(e.PC, e.Sym), e.How, e.Steps)
	}
}

func (r *Text) exit(e *event.Exit) {
	who := fmt.Sprintf("process %d", e.PID)
	if e.Main {
		who = fmt.Sprintf("program (pid %d)", e.PID)
	}
	if e.Status == "exited" && e.Code != nil {
		r.printf("%s %s exited with status %d\n", r.dim.Sprint("●"), who, *e.Code)
		return
	}
	line := fmt.Sprintf("%s killed by %s", who, e.Signal)
	if e.SiCode != "" {
		line += " (" + e.SiCode + ")"
	}
	if e.PC != nil {
		line += " at " + plain(*e.PC, e.Sym) + " (" + e.PC.String() + ")"
	}
	if e.Addr != nil {
		line += ", fault address " + e.Addr.String()
	}
	r.printf("%s %s\n", r.bad.Sprint("●"), line)
}

// wrap breaks text into lines of at most width runes, indenting the rest.
func wrap(text string, width int, indent string) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(text) {
		l := len([]rune(word))
		if i > 0 && n+1+l > width {
			b.WriteString("\n" + indent)
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += l
	}
	return b.String()
}

// threads counts a list of thread ids and, up to 8, names them.
func threads(tids []int) string {
	if len(tids) == 1 {
		return fmt.Sprintf("1 thread: %d", tids[0])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d threads", len(tids))
	for i, t := range tids {
		if i == 8 {
			b.WriteString(" …")
			break
		}
		if i == 0 {
			b.WriteString(":")
		}
		fmt.Fprintf(&b, " %d", t)
	}
	return b.String()
}

// cutShort counts the stories whose verdict says they were cut short.
func (r *Text) cutShort() int {
	n := 0
	for _, s := range r.sum.Sites.List() {
		n += s.Incomplete
	}
	return n
}
