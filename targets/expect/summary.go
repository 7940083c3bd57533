package expect

import (
	"fmt"
	"slices"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/report"
)

// Summary is one traced run in a line of the matrix: the run's verdict and
// the key facts of its first worst story.
type Summary struct {
	Verdict     string
	Incomplete  string
	Vforks      int
	Story       int      // the story summarised (the first with the worst verdict)
	Reasons     []string // that story's verdict reasons
	Slots       []string // kinds of its slot_writes: "ret", "saved_reg:rbx"
	Slot        string   // its first slot_write: "ret 0x7ffe…: main+18 → main+46"
	Writer      string   // who wrote it: "main+41 `call printf@plt`"
	ReturnsPast int
	ChildEnd    string // exec, exit, signal, killed
	LandingHow  string // parent_landing how
	Landing     string // "ret_clobbered at createproc+0"
	Fate        string // the program's end: "exit 0", "SIGSEGV at 0x0"
	ExitCode    *int
}

// Summarize reads a run's events.
func Summarize(evs []event.Event) Summary {
	var s Summary
	best := -1
	for _, ev := range evs {
		switch e := ev.(type) {
		case *event.Verdict:
			s.Verdict, s.Incomplete, s.Vforks = string(e.Verdict), e.Incomplete, e.Vforks
		case *event.VforkVerdict:
			// Nested stories end first: the lowest-numbered worst one.
			if r := e.Verdict.Rank(); s.Story == 0 || r > best || r == best && e.Vfork < s.Story {
				s.Story, best, s.Reasons = e.Vfork, r, nil
				for _, x := range e.Reasons {
					s.Reasons = append(s.Reasons, string(x))
				}
			}
		case *event.Exit:
			if e.Main {
				s.Fate, s.ExitCode = fate(e), e.Code
			}
		}
	}
	for _, ev := range evs {
		switch e := ev.(type) {
		case *event.SlotWrite:
			if e.Vfork != s.Story {
				continue
			}
			k := string(e.Kind)
			if e.Reg != "" {
				k += ":" + e.Reg
			}
			if !slices.Contains(s.Slots, k) {
				s.Slots = append(s.Slots, k)
			}
			if s.Slot == "" {
				s.Slot = fmt.Sprintf("%s %s: %s → %s", k, e.Slot, report.Val(e.Old, e.OldSym), report.Val(e.New, e.NewSym))
				switch {
				case e.By != nil:
					s.Writer = report.At(*e.By)
				case e.During != nil:
					s.Writer = "during " + report.At(*e.During)
				}
			}
		case *event.ChildReturnPastFrame:
			if e.Vfork == s.Story {
				s.ReturnsPast++
			}
		case *event.ChildEnd:
			if e.Vfork == s.Story {
				s.ChildEnd = string(e.How)
			}
		case *event.ParentLanding:
			if e.Vfork == s.Story {
				s.LandingHow = string(e.How)
				s.Landing = s.LandingHow + " at " + report.Val(e.PC, e.Sym)
			}
		}
	}
	return s
}

func fate(e *event.Exit) string {
	if e.Status == "exited" && e.Code != nil {
		return fmt.Sprintf("exit %d", *e.Code)
	}
	f := e.Signal
	if e.Addr != nil {
		f += " at " + e.Addr.String()
	}
	return f
}
