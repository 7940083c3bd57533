package expect

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

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

	// The facts below are read from each event's JSON, by name, so that
	// events and fields the engine adds later (global_write, libc_channel,
	// vfork_verdict's frames_unknown) are seen as soon as they are logged,
	// without this package knowing their Go types.

	Program     string   // base name of the program vtrace started (its first exec)
	Explanation string   // that story's vfork_verdict explanation
	StackWrites int      // its stack_write events
	Channels    []string // kinds of its libc_channel events ("spawn_error")
	Globals     []string // mappings of its global_write events, base names ("[heap]", the program's name, "libc.so.6")
	GlobalBy    string   // its first global_write: the sym and text of `by`, and of `during`
	// (Both leave out libc's bookkeeping: global_write events with a
	// "libc" field, such as a GOT slot filled by lazy binding.)
	PastBy string // its first child_return_past_frame: the sym and text of `by`, and of `during`
	// Its vfork event: clone flags, frame 0's unwind method and the
	// function frame 0 returns into.
	Flags         string
	Frame0Method  string
	Frame0Ret     string
	FrameRets     []string // every frame's ret_sym function ("" when unknown)
	FramesUnknown bool     // its vfork_verdict says the parent's frames were unknown (frames_unknown)
	// Across the whole run: stories cut short (incomplete), and stories
	// that began while another story of the same process was still open
	// (a process cannot vfork while it is suspended in a vfork: such
	// nesting is the tracer's, not the program's).
	IncompleteStories int
	Nested            int
}

// fields is an event as its JSON object.
func fields(ev event.Event) map[string]any {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// str is m[key] as a string ("" when absent or not a string).
func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// obj is m[key] as a JSON object (nil when absent).
func obj(m map[string]any, key string) map[string]any {
	o, _ := m[key].(map[string]any)
	return o
}

// insnText renders an insn object as "sym+off `text`".
func insnText(in map[string]any) string {
	if in == nil {
		return ""
	}
	where := str(obj(in, "sym"), "sym")
	if where == "" {
		where = str(obj(in, "sym"), "module")
	}
	return strings.TrimSpace(where + " `" + strings.Join(strings.Fields(str(in, "insn")), " ") + "`")
}

// Summarize reads a run's events.
func Summarize(evs []event.Event) Summary {
	var s Summary
	best := -1
	open := map[int]int{}  // pid → its stories not yet judged
	pidOf := map[int]int{} // story → the pid that made the vfork
	for _, ev := range evs {
		switch e := ev.(type) {
		case *event.Exec:
			if s.Program == "" {
				s.Program = path.Base(e.Path)
			}
		case *event.Vfork:
			if open[e.PID] > 0 {
				s.Nested++
			}
			open[e.PID]++
			pidOf[e.Vfork] = e.PID
		case *event.Verdict:
			s.Verdict, s.Incomplete, s.Vforks = string(e.Verdict), e.Incomplete, e.Vforks
		case *event.VforkVerdict:
			// Nested stories end first: the lowest-numbered worst one.
			if r := e.Verdict.Rank(); s.Story == 0 || r > best || r == best && e.Vfork < s.Story {
				s.Story, best, s.Reasons = e.Vfork, r, nil
				for _, x := range e.Reasons {
					s.Reasons = append(s.Reasons, string(x))
				}
				s.Explanation = e.Explanation
				s.FramesUnknown, _ = fields(e)["frames_unknown"].(bool)
			}
			if e.Incomplete != "" {
				s.IncompleteStories++
			}
			open[pidOf[e.Vfork]]--
		case *event.Exit:
			if e.Main {
				s.Fate, s.ExitCode = fate(e), e.Code
			}
		}
	}
	for _, ev := range evs {
		switch e := ev.(type) {
		case *event.Vfork:
			if e.Vfork != s.Story {
				continue
			}
			s.Flags = e.Flags
			for _, f := range e.Frames {
				fn := ""
				if f.RetSym != nil {
					fn = f.RetSym.Sym
				}
				s.FrameRets = append(s.FrameRets, fn)
			}
			if len(e.Frames) > 0 {
				s.Frame0Method = string(e.Frames[0].Method)
				if e.Frames[0].RetSym != nil {
					s.Frame0Ret = e.Frames[0].RetSym.Sym
				}
			}
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
		case *event.StackWrite:
			if e.Vfork == s.Story {
				s.StackWrites++
			}
		case *event.ChildReturnPastFrame:
			if e.Vfork == s.Story {
				s.ReturnsPast++
				if s.PastBy == "" {
					f := fields(e)
					s.PastBy = strings.TrimSpace(insnText(obj(f, "by")) + " " + insnText(obj(f, "during")))
				}
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
		// Events this package has no Go type for (yet): by name.
		switch ev.Head().Event {
		case "libc_channel", "global_write":
			f := fields(ev)
			if n, _ := f["vfork"].(float64); int(n) != s.Story {
				continue
			}
			if ev.Head().Event == "libc_channel" {
				s.Channels = append(s.Channels, str(f, "kind"))
			} else if str(f, "libc") == "" {
				if m := path.Base(str(f, "mapping")); !slices.Contains(s.Globals, m) {
					s.Globals = append(s.Globals, m)
				}
				if s.GlobalBy == "" {
					s.GlobalBy = strings.TrimSpace(insnText(obj(f, "by")) + " " + insnText(obj(f, "during")))
				}
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
