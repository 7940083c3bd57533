package report

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"strings"

	"github.com/vtrace/vtrace/tracer/event"
)

// MaxStepSummary is the most GitHub Actions shows of one step's summary
// ($GITHUB_STEP_SUMMARY: 1 MiB; a bigger one is refused with an error).
const MaxStepSummary = 1 << 20

// Markdown writes a run's summary as GitHub-flavoured markdown, for a CI
// job summary or a pull-request comment: a heading with the verdict and
// the program, one line of counts, the table of vfork call sites (worst
// first), then the worst story of each site that is not clean in a
// collapsed <details> block (its explanation and the full text story).
// sites may be nil: the run's stories are then grouped here (a Run from
// Collect keeps them all). At most maxBytes are written (0: no limit): the
// table's rows come first, details only while they fit, and a line says
// what was left out. Everything that came from the program is escaped.
func Markdown(w io.Writer, run *Run, sites *Sites, maxBytes int) error {
	if sites == nil {
		sites = &Sites{}
		for _, st := range run.Stories {
			if st.Verdict != nil {
				sites.Add(st)
			}
		}
	}
	list := sites.List()
	var head bytes.Buffer
	verdict, vforks, violations, warnings := runCounts(run, list)
	icon := verdictIcon(verdict)
	prog := "the program"
	if run.Start != nil && len(run.Start.Argv) > 0 {
		prog = mdCode(strings.Join(run.Start.Argv, " "))
	}
	fmt.Fprintf(&head, "### vtrace: %s %s — %s\n\n", icon, strings.ToUpper(string(verdict)), prog)
	fmt.Fprintf(&head, "%d vfork(s) traced: %d violation(s), %d warning(s).", vforks, violations, warnings)
	if e := run.MainExit(); e != nil {
		if e.Status == "exited" && e.Code != nil {
			fmt.Fprintf(&head, " The program exited with status %d.", *e.Code)
		} else {
			fmt.Fprintf(&head, " The program was killed by %s.", e.Signal)
		}
	}
	if run.Verdict != nil && run.Verdict.Incomplete != "" {
		fmt.Fprintf(&head, " **The run was stopped (%s)**: only what was seen before counts.", mdText(run.Verdict.Incomplete))
	}
	head.WriteString("\n\n")
	if len(list) > 0 {
		head.WriteString("| verdict | vforks | function | source | worst finding |\n|---|--:|---|---|---|\n")
	}
	limit := maxBytes
	if limit <= 0 {
		limit = int(^uint(0) >> 1)
	}
	const reserve = 200 // for the line saying what was left out
	var out bytes.Buffer
	out.Write(head.Bytes())
	rows := 0
	for _, s := range list {
		row := fmt.Sprintf("| %s %s | %d | %s | %s | %s |\n", verdictIcon(s.Verdict), s.Verdict, s.Count,
			mdCode(orQ(siteFunc(s))), mdCode(s.Where()), mdText(headline(s)))
		if out.Len()+len(row)+reserve > limit {
			break
		}
		out.WriteString(row)
		rows++
	}
	if rows < len(list) {
		fmt.Fprintf(&out, "\n*%d more call site(s) left out to stay under %d bytes; the JSON Lines log has them all.*\n", len(list)-rows, maxBytes)
	}
	for _, s := range list[:rows] {
		if s.Verdict == event.Clean || s.Worst == nil {
			continue
		}
		d := mdDetails(s)
		if out.Len()+len(d)+reserve > limit {
			fmt.Fprintf(&out, "\n*Details of further call sites left out to stay under %d bytes; the JSON Lines log has every story.*\n", maxBytes)
			break
		}
		out.WriteString(d)
	}
	out.WriteString("\n")
	_, err := w.Write(out.Bytes())
	return err
}

func runCounts(run *Run, list []*Site) (event.Judgement, int, int, int) {
	if v := run.Verdict; v != nil {
		return v.Verdict, v.Vforks, v.Violations, v.Warnings
	}
	verdict, n, viol, warn := event.Clean, 0, 0, 0
	for _, s := range list {
		n += s.Count
		viol += s.Violations
		warn += s.Warnings
		if s.Verdict.Rank() > verdict.Rank() {
			verdict = s.Verdict
		}
	}
	return verdict, n, viol, warn
}

func verdictIcon(v event.Judgement) string {
	switch v {
	case event.Violation:
		return "❌"
	case event.Warning:
		return "⚠️"
	case event.Unchecked:
		return "❔" // vtrace could not follow it: not clean
	}
	return "✅"
}

func headline(s *Site) string {
	if s.Worst == nil {
		return ""
	}
	return Headline(s.Worst)
}

func orQ(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// mdDetails tells a site's worst story: its explanation, then the full
// text story, collapsed.
func mdDetails(s *Site) string {
	st := s.Worst
	var b strings.Builder
	fmt.Fprintf(&b, "\n<details><summary>%s at %s: vfork #%d, %s</summary>\n\n", verdictIcon(st.Judgement()),
		mdCode(siteName(s)), st.ID(), st.Judgement())
	b.WriteString(mdText(Explain(st)))
	b.WriteString("\n\n")
	var story bytes.Buffer
	t := NewTextOptions(&story, TextOptions{Detail: Verbose})
	t.storyFolded(st)
	t.flushOut()
	text := strings.TrimSpace(story.String())
	fence := "```"
	for strings.Contains(text, fence) {
		fence += "`"
	}
	fmt.Fprintf(&b, "%stext\n%s\n%s\n\n</details>\n", fence, text, fence)
	return b.String()
}

// mdText escapes text from the program (or quoting it) for a markdown
// paragraph or table cell: HTML-escaped, pipes and backslashes neutral,
// control characters as escapes.
func mdText(s string) string {
	s = html.EscapeString(Printable(s))
	s = strings.NewReplacer("|", "&#124;", `\`, "&#92;", "`", "&#96;", "*", "&#42;", "_", "&#95;", "[", "&#91;", "]", "&#93;").Replace(s)
	return s
}

// mdCode quotes text from the program as inline code that no character of
// it can end: an HTML <code> element with the text escaped.
func mdCode(s string) string {
	return "<code>" + strings.ReplaceAll(html.EscapeString(Printable(s)), "|", "&#124;") + "</code>"
}
