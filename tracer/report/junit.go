package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/vtrace/vtrace/tracer/event"
)

// JUnit renders a run as JUnit XML for CI test reports: one test case per
// vfork call site (a loop that vforks 10,000 times is one case), and one
// for the run itself.
//
//   - a site with a violation fails: <failure type="violation">, its message
//     the worst story's headline, its text the story told in full;
//   - a site with warnings only is <skipped message="warning: …">: vtrace
//     exits 0 on warnings, so a JUnit consumer must not fail the build on
//     them either, and <skipped> is JUnit's only status that does not fail
//     and still carries a message to show;
//   - a clean site passes;
//   - the run's own case has an <error type="incomplete"> when a budget
//     stopped the run (vtrace exits 4: not a pass), else it passes, and
//     says how the program ended.
//
// The output depends only on the events: no timestamps, durations or host
// names, so the same log always gives the same bytes.
type JUnit struct {
	runDocument
	sites Sites
}

// NewJUnit returns a JUnit renderer.
func NewJUnit() *JUnit {
	j := &JUnit{}
	j.runDocument = newRunDocument(func(st *Story) { j.sites.Add(st) })
	return j
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Classname string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Failure   *junitProblem `xml:"failure"`
	Error     *junitProblem `xml:"error"`
	Skipped   *junitProblem `xml:"skipped"`
	SystemOut *junitText    `xml:"system-out"`
}

// junitText is element text as CDATA: the story keeps its line breaks and
// its `<printf@plt>` readable in the file.
type junitText struct {
	Text string `xml:",cdata"`
}

type junitProblem struct {
	Type    string `xml:"type,attr,omitempty"`
	Message string `xml:"message,attr"`
	Text    string `xml:",cdata"`
}

// Render writes the XML document.
func (j *JUnit) Render(w io.Writer) error {
	run := j.run()
	for _, st := range j.unfinished() {
		if st.Vfork != nil {
			j.sites.Add(st)
		}
	}
	prog := run.Program()
	suite := junitSuite{Name: "vtrace " + prog}
	if s := run.Start; s != nil {
		suite.Properties = []junitProperty{
			{"argv", strings.Join(s.Argv, " ")}, {"mode", s.Mode}, {"vtrace", s.Version}, {"watchpoints", s.Watchpoints}}
	}
	if v := run.Verdict; v != nil {
		suite.Properties = append(suite.Properties, junitProperty{"verdict", string(v.Verdict)})
	}
	for _, site := range j.sites.InOrder() {
		c := junitCase{Classname: prog, Name: siteCaseName(site), File: site.File, Line: site.Line,
			SystemOut: &junitText{siteSummary(site)}}
		switch site.Verdict {
		case event.Violation:
			c.Failure = &junitProblem{Type: "violation", Message: Headline(site.Worst), Text: storyText(site.Worst)}
			suite.Failures++
		case event.Warning:
			c.Skipped = &junitProblem{Message: "warning: " + Headline(site.Worst), Text: storyText(site.Worst)}
			suite.Skipped++
		}
		suite.Cases = append(suite.Cases, c)
	}
	runCase := junitCase{Classname: prog, Name: "run", SystemOut: &junitText{runSummary(run)}}
	switch {
	case run.Verdict == nil:
		runCase.Error = &junitProblem{Type: "incomplete", Message: "the log ends before the run's verdict: the run did not finish"}
	case run.Verdict.Incomplete != "":
		runCase.Error = &junitProblem{Type: "incomplete",
			Message: fmt.Sprintf("the %s budget stopped the run before it ended: no verdict on what came after", run.Verdict.Incomplete)}
	}
	if runCase.Error != nil {
		suite.Errors++
	}
	suite.Cases = append(suite.Cases, runCase)
	suite.Tests = len(suite.Cases)
	doc := junitSuites{Name: "vtrace", Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors,
		Skipped: suite.Skipped, Suites: []junitSuite{suite}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// siteCaseName names a call site's test case: "vfork at badvfork.c:28
// (createproc+8)".
func siteCaseName(s *Site) string {
	name := "vfork at " + s.Where()
	if s.Where() != s.Key {
		name += " (" + s.Key + ")"
	}
	return name
}

// siteSummary counts a site's stories.
func siteSummary(s *Site) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d vfork(s) at this call site: %d violation(s), %d warning(s)", s.Count, s.Violations, s.Warnings)
	if s.Incomplete > 0 {
		fmt.Fprintf(&b, ", %d cut short", s.Incomplete)
	}
	if len(s.Reasons) > 0 {
		rs := make([]string, len(s.Reasons))
		for i, r := range s.Reasons {
			rs[i] = string(r)
		}
		fmt.Fprintf(&b, "; reasons: %s", strings.Join(rs, ", "))
	}
	b.WriteString(".")
	return b.String()
}

// storyText is a story told in full: the explanation and each finding.
func storyText(st *Story) string {
	var b strings.Builder
	fmt.Fprintf(&b, "vfork #%d: %s\n", st.ID(), Explain(st))
	if st.Verdict != nil {
		for _, r := range st.Verdict.Reasons {
			fmt.Fprintf(&b, "- %s (%s): %s\n", r, r.Severity(), Finding(st, r))
		}
	}
	return b.String()
}

// runSummary says how the run and the program ended.
func runSummary(r *Run) string {
	var b strings.Builder
	if v := r.Verdict; v != nil {
		fmt.Fprintf(&b, "verdict: %s — %d vfork(s), %d violation(s), %d warning(s)", v.Verdict, v.Vforks, v.Violations, v.Warnings)
		if v.Incomplete != "" {
			fmt.Fprintf(&b, " (run stopped: %s)", v.Incomplete)
		}
		b.WriteString("\n")
	}
	if e := r.MainExit(); e != nil {
		fmt.Fprintf(&b, "the program %s\n", Fate(e))
	}
	return b.String()
}

// Fate says how a process ended: "exited with status 0", "was killed by
// SIGSEGV (SEGV_MAPERR) at printf@plt+4, fault address 0x0".
func Fate(e *event.Exit) string {
	if e.Status == "exited" && e.Code != nil {
		return fmt.Sprintf("exited with status %d", *e.Code)
	}
	s := "was killed by " + e.Signal
	if e.SiCode != "" {
		s += " (" + e.SiCode + ")"
	}
	if e.PC != nil {
		s += " at " + Val(*e.PC, e.Sym)
	}
	if e.Addr != nil {
		s += ", fault address " + e.Addr.String()
	}
	return s
}
