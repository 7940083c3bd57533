package report

import (
	"sort"

	"github.com/vtrace/vtrace/tracer/event"
)

// Summary follows a run for what is said at its end: the run's own events
// (start, the program's first exec, the main program's exit, the budget,
// the error, the verdict) and every finished story counted by call site.
// Stories are dropped once counted and only the main program's exit and
// the first exec are kept, so that memory stays flat however many vforks
// and execs a run makes (a build can make 100,000 of each). It is a Sink.
type Summary struct {
	// Run holds the run's events; Run.Stories stays empty and Run.Exits
	// holds at most the main program's exit.
	Run   Run
	Sites Sites
	Error *event.Error
	// OnStory, if set, sees each story when its verdict arrives, after it
	// was counted and before it is dropped.
	OnStory func(*Story, *Site)
	// Vforks, Violations and Warnings count finished stories.
	Vforks, Violations, Warnings int

	c Collector
}

// Emit adds one event.
func (s *Summary) Emit(ev event.Event) error {
	switch e := ev.(type) {
	case *event.Start:
		s.Run.Start = e
	case *event.Exec:
		if len(s.Run.Execs) == 0 {
			s.Run.Execs = append(s.Run.Execs, e)
		}
	case *event.Exit:
		if e.Main {
			s.Run.Exits = append(s.Run.Exits[:0], e)
		}
	case *event.Budget:
		s.Run.Budget = e
	case *event.Attach:
		s.Run.Attach = e
	case *event.Detach:
		s.Run.Detach = e
	case *event.Verdict:
		s.Run.Verdict = e
	case *event.Error:
		s.Error = e
	case *event.Note:
		if e.Vfork == 0 {
			if len(s.Run.Notes) < maxRunNotes {
				s.Run.Notes = append(s.Run.Notes, e)
			}
			return nil
		}
		s.add(ev)
	default:
		s.add(ev)
	}
	return nil
}

// maxRunNotes bounds the notes kept (a note per failed exec could
// otherwise grow with the run).
const maxRunNotes = 100

func (s *Summary) add(ev event.Event) {
	if s.c.OnStory == nil {
		s.c.Forget = true
		s.c.OnStory = func(st *Story) {
			site := s.Sites.Add(st)
			s.Vforks++
			switch st.Judgement() {
			case event.Violation:
				s.Violations++
			case event.Warning:
				s.Warnings++
			}
			if s.OnStory != nil {
				s.OnStory(st, site)
			}
		}
	}
	s.c.Add(ev)
}

// Open returns the stories begun and not yet judged (a log cut before
// their verdicts).
func (s *Summary) Open() []*Story { return s.c.Stories }

// Judgement is the worst verdict of the stories counted so far.
func (s *Summary) Judgement() event.Judgement {
	switch {
	case s.Violations > 0:
		return event.Violation
	case s.Warnings > 0:
		return event.Warning
	}
	return event.Clean
}

// StoryEvents returns a story's events in the order they happened (by
// their time, ties in the log's order of kinds): what a renderer replays to
// tell a story again from a Story, e.g. the worst story of a site. The
// child_step events are not kept by a Story and so are not among them.
func StoryEvents(st *Story) []event.Event {
	var evs []event.Event
	add := func(e event.Event) {
		if e != nil {
			evs = append(evs, e)
		}
	}
	if st.Vfork != nil {
		add(st.Vfork)
	}
	for _, e := range st.Notes {
		add(e)
	}
	for _, e := range st.Calls {
		add(e)
	}
	for _, e := range st.Returns {
		add(e)
	}
	for _, e := range st.SlotWrites {
		add(e)
	}
	for _, e := range st.StackWrites {
		add(e)
	}
	for _, e := range st.GlobalWrites {
		add(e)
	}
	if st.GlobalDiff != nil {
		add(st.GlobalDiff)
	}
	for _, e := range st.GlobalReads {
		add(e)
	}
	if st.End != nil {
		add(st.End)
	}
	if st.Diff != nil {
		add(st.Diff)
	}
	if st.Resume != nil {
		add(st.Resume)
	}
	for _, e := range st.Consumes {
		add(e)
	}
	if st.Landing != nil {
		add(st.Landing)
	}
	if st.Verdict != nil {
		add(st.Verdict)
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Head().T < evs[j].Head().T })
	return evs
}
