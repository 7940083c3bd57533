package report

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vtrace/vtrace/tracer/event"
)

// MaxAnnotations is how many workflow commands WorkflowCommands writes at
// most: GitHub shows 10 error and 10 warning annotations per step, and a
// CI log with more says nothing more.
const MaxAnnotations = 10

// WorkflowCommands returns GitHub Actions workflow commands
// (`::error file=…,line=…,title=…::message`, `::warning …`) for the call
// sites with a violation or a warning, worst first, at most max of them
// (MaxAnnotations when max <= 0). GitHub turns each into an annotation on
// the vfork call's source line. source names a site's file as the
// repository knows it (e.g. "targets/badvfork.c"); nil, or "", uses the
// file name from the debug information, and a site without one gets an
// annotation without a place. Everything is escaped as GitHub documents:
// %, CR and LF in the message; also : and , in the properties.
func WorkflowCommands(sites []*Site, max int, source func(*Site) string) []string {
	if max <= 0 {
		max = MaxAnnotations
	}
	var out []string
	for _, s := range sites {
		if len(out) == max {
			break
		}
		cmd := "error"
		switch s.Verdict {
		case event.Violation:
		case event.Warning:
			cmd = "warning"
		default:
			continue
		}
		var props []string
		file := ""
		if source != nil {
			file = source(s)
		}
		if file == "" {
			file = s.File
		}
		if file != "" && s.Line > 0 {
			props = append(props, "file="+escapeProperty(Printable(file)), "line="+strconv.Itoa(s.Line))
		}
		title := fmt.Sprintf("vtrace: vfork %s", s.Verdict)
		if fn := siteFunc(s); fn != "" {
			title += " in " + fn + "()"
		}
		props = append(props, "title="+escapeProperty(Printable(title)))
		n := worstCount(s)
		msg := fmt.Sprintf("%s (vfork #%d; %d of %d vfork(s) at %s: %s)", headline(s), s.Worst.ID(), n, s.Count, s.Where(), s.Verdict)
		out = append(out, fmt.Sprintf("::%s %s::%s", cmd, strings.Join(props, ","), escapeData(Printable(msg))))
	}
	return out
}

// escapeData escapes a workflow command's message (GitHub's escapeData).
func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// escapeProperty escapes a workflow command's property value (GitHub's
// escapeProperty).
func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
