package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// summaryOf feeds a log through a Summary, as the CLI does during a run.
func summaryOf(t *testing.T, name string) *Summary {
	t.Helper()
	var s Summary
	for _, ev := range readLog(t, name) {
		_ = s.Emit(ev)
	}
	return &s
}

func TestMarkdownGolden(t *testing.T) {
	for _, name := range goldenLogs {
		t.Run(name, func(t *testing.T) {
			s := summaryOf(t, name)
			var b bytes.Buffer
			if err := Markdown(&b, &s.Run, &s.Sites, MaxStepSummary); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".md", b.Bytes())
			// From a whole log (vtrace report): the same table.
			var c bytes.Buffer
			if err := Markdown(&c, Collect(readLog(t, name)), nil, MaxStepSummary); err != nil {
				t.Fatal(err)
			}
			if table(b.String()) != table(c.String()) {
				t.Errorf("the table from a Run differs from the table of the Summary:\n%s\n---\n%s", table(c.String()), table(b.String()))
			}
		})
	}
}

func table(md string) string {
	var rows []string
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "|") {
			rows = append(rows, l)
		}
	}
	return strings.Join(rows, "\n")
}

// The summary stays under the byte limit: the table first, details while
// they fit, and a line says what was left out.
func TestMarkdownLimit(t *testing.T) {
	s := summaryOf(t, "seed-gcc-O0")
	var full bytes.Buffer
	_ = Markdown(&full, &s.Run, &s.Sites, 0)
	if !strings.Contains(full.String(), "<details>") {
		t.Fatalf("no details in the unlimited summary")
	}
	limit := strings.Index(full.String(), "<details>") + 300
	var cut bytes.Buffer
	_ = Markdown(&cut, &s.Run, &s.Sites, limit)
	if cut.Len() > limit || strings.Contains(cut.String(), "<details>") || !strings.Contains(cut.String(), "left out to stay under") {
		t.Errorf("limit %d: %d bytes, details %v:\n%s", limit, cut.Len(), strings.Contains(cut.String(), "<details>"), cut.String())
	}
	if table(cut.String()) != table(full.String()) {
		t.Errorf("the table was cut before the details")
	}
}

func TestWorkflowCommands(t *testing.T) {
	s := summaryOf(t, "seed-gcc-O0")
	cmds := WorkflowCommands(s.Sites.List(), 0, nil)
	// The seed's vfork call is on line 28 of badvfork.c (`pid = vfork();`
	// in createproc, targets/badvfork.c); ':' in the title is escaped.
	want := "::error file=badvfork.c,line=28,title=vtrace%3A vfork violation in createproc()::the vfork child returned from createproc() into main()"
	if len(cmds) != 1 || !strings.HasPrefix(cmds[0], want) {
		t.Errorf("commands %q, want one starting %q", cmds, want)
	}
	if c := WorkflowCommands(summaryOf(t, "writelocal").Sites.List(), 0, nil); len(c) != 1 || !strings.HasPrefix(c[0], "::warning file=writelocal.c,line=") {
		t.Errorf("writelocal: %q, want one ::warning", c)
	}
	if c := WorkflowCommands(summaryOf(t, "spawnloop-5").Sites.List(), 0, nil); len(c) != 0 {
		t.Errorf("clean run: %q, want no command", c)
	}
	esc := WorkflowCommands(summaryOf(t, "escsym").Sites.List(), 0, nil)
	if len(esc) != 1 || strings.ContainsAny(esc[0], "\x1b\x07\r\n") || !strings.Contains(esc[0], `spawn\x1b[31m\x07()`) {
		t.Errorf("escsym: %q, want the symbol escaped", esc)
	}

	// GitHub's escaping: % first, then CR and LF; also : and , in properties.
	if got := escapeData("100% a\r\nb"); got != "100%25 a%0D%0Ab" {
		t.Errorf("escapeData: %q", got)
	}
	if got := escapeProperty("a:b,c%\n"); got != "a%3Ab%2Cc%25%0A" {
		t.Errorf("escapeProperty: %q", got)
	}

	// At most MaxAnnotations, worst first.
	var sites Sites
	for i := 0; i < 15; i++ {
		st := &Story{
			Vfork:   &event.Vfork{Vfork: i + 1, Call: &event.Insn{PC: event.Addr(0x1000 + i), Sym: &event.Sym{Sym: "f", Off: uint64(i), Module: "prog", File: "f.c", Line: i + 1}}},
			Verdict: &event.VforkVerdict{Vfork: i + 1, Verdict: event.Warning},
		}
		if i == 14 {
			st.Verdict.Verdict = event.Violation
		}
		sites.Add(st)
	}
	c := WorkflowCommands(sites.List(), 0, func(*Site) string { return "src/f.c" })
	if len(c) != MaxAnnotations || !strings.HasPrefix(c[0], "::error file=src/f.c,line=15,") {
		t.Errorf("%d commands, first %q; want %d, the violation first", len(c), c[0], MaxAnnotations)
	}
}
