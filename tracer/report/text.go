package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/fatih/color"

	"github.com/vtrace/vtrace/tracer/event"
)

// Text renders the run as a readable story, one block per vfork.
type Text struct {
	w     io.Writer
	quiet bool // verdict only

	bad, warn, good, dim, bold, addr, sym *color.Color
	stories                               map[int]*event.Vfork
}

// NewText returns a text renderer. colored forces colour on or off (the
// CLI decides from --color, NO_COLOR and whether w is a terminal).
func NewText(w io.Writer, colored, quiet bool) *Text {
	mk := func(attrs ...color.Attribute) *color.Color {
		c := color.New(attrs...)
		if colored {
			c.EnableColor()
		} else {
			c.DisableColor()
		}
		return c
	}
	return &Text{w: w, quiet: quiet,
		bad: mk(color.FgRed, color.Bold), warn: mk(color.FgYellow, color.Bold), good: mk(color.FgGreen, color.Bold),
		dim: mk(color.Faint), bold: mk(color.Bold), addr: mk(color.FgCyan), sym: mk(color.FgMagenta),
		stories: map[int]*event.Vfork{}}
}

func (r *Text) printf(format string, args ...any) { fmt.Fprintf(r.w, format, args...) }

func (r *Text) a(a event.Addr) string { return r.addr.Sprint(a.String()) }

// fn names the function of a frame: "createproc()" rather than the
// offset of its call site.
func (r *Text) fn(y *event.Sym) string {
	if y == nil || y.Sym == "" {
		return r.s(y)
	}
	return r.sym.Sprint(y.Sym + "()")
}

func (r *Text) s(y *event.Sym) string {
	if y == nil {
		return r.dim.Sprint("?")
	}
	out := r.sym.Sprint(y.String())
	if y.Module != "" && y.Sym != "" && !strings.HasPrefix(y.Sym, y.Module) && isLib(y.Module) {
		out += r.dim.Sprintf(" (%s)", y.Module)
	}
	return out
}

func isLib(module string) bool { return strings.Contains(module, ".so") }

// as renders a value that may be a code address: "main+18" or the hex.
func (r *Text) as(a event.Addr, y *event.Sym) string {
	if y != nil && y.Sym != "" {
		return r.sym.Sprint(y.String())
	}
	return r.a(a)
}

func (r *Text) in(i *event.Insn) string {
	if i == nil {
		return ""
	}
	s := r.s(i.Sym)
	if i.Insn != "" {
		s += " " + r.dim.Sprint("`"+strings.Join(strings.Fields(i.Insn), " ")+"`")
	}
	if i.Sym != nil && i.Sym.File != "" {
		s += r.dim.Sprintf(" [%s:%d]", i.Sym.File, i.Sym.Line)
	}
	return s
}

func (r *Text) verdictWord(v event.Judgement) string {
	switch v {
	case "violation":
		return r.bad.Sprint("VIOLATION")
	case "warning":
		return r.warn.Sprint("WARNING")
	}
	return r.good.Sprint("CLEAN")
}

// Emit renders one event.
func (r *Text) Emit(ev event.Event) error {
	if r.quiet {
		if v, ok := ev.(*event.Verdict); ok {
			if v.Incomplete != "" {
				r.printf("%s (incomplete: %s)\n", v.Verdict, v.Incomplete)
			} else {
				r.printf("%s\n", v.Verdict)
			}
		}
		return nil
	}
	switch e := ev.(type) {
	case *event.Start:
		r.printf("%s %s — %s, %s mode, watchpoints %s", r.bold.Sprint("vtrace"), e.Version,
			strings.Join(e.Argv, " "), e.Mode, e.Watchpoints)
		if e.WatchpointProbe != "" {
			r.printf(" %s", r.dim.Sprintf("(probe: %s)", e.WatchpointProbe))
		}
		r.printf("\n")
	case *event.Exec:
		r.printf("%s exec %s (%s)\n", r.dim.Sprintf("[%d]", e.PID), e.Path, e.Arch)
	case *event.Vfork:
		r.vfork(e)
	case *event.ChildStep:
		r.printf("      %s %s %s %s\n", r.dim.Sprintf("%6d", e.N), r.a(e.PC), r.s(e.Sym), r.dim.Sprint(e.Insn))
	case *event.ChildCall:
		r.printf("    call  %s → %s\n", r.in(&e.By), r.as(e.Target, e.TargetSym))
	case *event.ChildReturnPastFrame:
		r.printf("    %s  %s — returned from frame #%d %s into %s\n", r.bad.Sprint("ret ✗"), r.in(&e.By),
			e.Frame, r.fn(e.FrameFn), r.as(e.To, e.ToSym))
	case *event.SlotWrite:
		what := "return address of"
		if e.Kind == "saved_reg" {
			what = "saved %" + e.Reg + " of"
		}
		r.printf("    %s %s %s #%d %s: %s → %s\n", r.bad.Sprint("✗ slot"), r.a(e.Slot), what, e.Frame, r.fn(e.FrameFn),
			r.as(e.Old, e.OldSym), r.bad.Sprint(plain(e.New, e.NewSym)))
		r.by(e.By, e.During)
		if len(e.Backtrace) > 0 {
			var bt []string
			for _, y := range e.Backtrace {
				bt = append(bt, y.String())
			}
			r.printf("          %s\n", r.dim.Sprint("child backtrace: "+strings.Join(bt, " ← ")))
		}
	case *event.StackWrite:
		r.printf("    %s %s in frame #%d %s: %s → %s\n", r.warn.Sprint("• stack"), r.a(e.Addr), e.Frame, r.fn(e.FrameFn),
			r.a(e.Old), r.a(e.New))
		r.by(e.By, e.During)
	case *event.ChildEnd:
		r.childEnd(e)
	case *event.SlotDiff:
		r.slotDiff(e)
	case *event.ParentResume:
		r.printf("  %s %d resumes at %s\n", r.bold.Sprint("parent"), e.PID, r.as(e.PC, e.Sym))
	case *event.ParentConsume:
		mark := r.bad.Sprint("✗ uses")
		if e.Kind == "local" {
			mark = r.warn.Sprint("• reads")
		}
		what := "a local"
		switch e.Kind {
		case "ret":
			what = "return slot"
		case "saved_reg":
			what = "saved %" + e.Reg
		}
		r.printf("    %s %s %s = %s (was %s) at %s\n", mark, what, r.a(e.Addr), r.a(e.Value), r.a(e.Was), r.in(&e.By))
	case *event.ParentLanding:
		r.landing(e)
	case *event.VforkVerdict:
		r.printf("  %s %s", r.verdictWord(e.Verdict), r.dim.Sprint(joinReasons(e.Reasons)))
		if e.Incomplete != "" {
			r.printf(" %s", r.warn.Sprintf("(cut short: %s)", e.Incomplete))
		}
		r.printf("\n")
		if e.Explanation != "" {
			r.printf("  %s\n", wrap(e.Explanation, 100, "  "))
		}
		r.printf("\n")
	case *event.Exit:
		r.exit(e)
	case *event.Budget:
		r.printf("%s budget %s (%s) reached: stopping every traced process\n", r.warn.Sprint("!"), e.Budget, e.Limit)
	case *event.Note:
		r.printf("%s %s\n", r.dim.Sprint("note:"), e.Msg)
	case *event.Verdict:
		r.printf("%s %s — %d vfork(s), %d violation(s), %d warning(s)", r.bold.Sprint("verdict:"), r.verdictWord(e.Verdict),
			e.Vforks, e.Violations, e.Warnings)
		if e.Incomplete != "" {
			r.printf(" %s", r.warn.Sprintf("(run stopped: %s)", e.Incomplete))
		}
		r.printf("\n")
	}
	return nil
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
		return y.String()
	}
	return a.String()
}

func (r *Text) by(by, during *event.Insn) {
	switch {
	case by != nil && during != nil:
		r.printf("          by %s %s\n", r.in(by), r.dim.Sprint("(watchpoint)"))
		r.printf("          inside the call at %s\n", r.in(during))
	case by != nil:
		r.printf("          by %s\n", r.in(by))
	case during != nil:
		r.printf("          during the call at %s\n", r.in(during))
	default:
		r.printf("          %s\n", r.dim.Sprint("found when the child ended"))
	}
}

func (r *Text) vfork(e *event.Vfork) {
	r.stories[e.Vfork] = e
	r.printf("\n%s pid %d → child %d, %s", r.bold.Sprintf("━━ vfork #%d ━━", e.Vfork), e.PID, e.Child, e.Syscall)
	if e.Flags != "" {
		r.printf("(%s)", e.Flags)
	}
	r.printf("\n")
	if e.Call != nil {
		r.printf("  called from %s\n", r.in(e.Call))
	}
	r.printf("  syscall at %s; ", r.in(&e.Site))
	if e.SharedStack {
		r.printf("the child runs on the parent's stack\n")
	} else {
		r.printf("the child has its own stack at %s\n", r.a(*e.ChildStack))
	}
	r.printf("  parent frames at the vfork:\n")
	for _, f := range e.Frames {
		where := "?"
		if f.RetSlot != nil {
			where = "slot " + r.a(*f.RetSlot)
		} else if f.RetReg != "" {
			where = "in %" + f.RetReg
		}
		r.printf("    #%-2d %-28s returns to %-28s (%s)%s\n", f.Index, r.s(f.Sym), r.as(f.Ret, f.RetSym), where,
			r.dim.Sprintf(" %s", f.Method))
		for _, sv := range f.Saved {
			r.printf("         %s\n", r.dim.Sprintf("saved %%%s at %s = %s", sv.Reg, sv.Slot, sv.Value))
		}
	}
	r.printf("  watching the parent's live stack [%s, %s) (%d bytes), mechanism: %s\n", r.a(e.Live.Lo), r.a(e.Live.Hi),
		uint64(e.Live.Hi-e.Live.Lo), e.Mechanism)
	r.printf("  %s %d:\n", r.bold.Sprint("child"), e.Child)
}

func (r *Text) childEnd(e *event.ChildEnd) {
	var how string
	switch e.How {
	case "exec":
		how = "exec'd " + e.Path
	case "exit":
		how = fmt.Sprintf("exited with status %d", *e.Code)
	case "signal":
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
		if s.Kind == "saved_reg" {
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
	case "ret_clobbered":
		r.printf("    %s at %s (%s) through the clobbered slot %s — it should have returned to %s (%d steps)\n",
			r.bad.Sprint("✗ lands"), r.as(e.PC, e.Sym), r.a(e.PC), r.a(*e.Slot), r.as(*e.Expected, e.ExpectedSym), e.Steps)
	case "returned":
		r.printf("    %s at %s, above every word the child changed (%d steps)\n", r.good.Sprint("✓ returns"),
			r.as(e.PC, e.Sym), e.Steps)
	default:
		r.printf("    parent stopped following at %s: %s (%d steps)\n", r.as(e.PC, e.Sym), e.How, e.Steps)
	}
}

func (r *Text) exit(e *event.Exit) {
	who := fmt.Sprintf("process %d", e.PID)
	if e.Main {
		who = fmt.Sprintf("program (pid %d)", e.PID)
	}
	if e.Status == "exited" {
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
