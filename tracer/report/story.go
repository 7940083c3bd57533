package report

import (
	"github.com/vtrace/vtrace/tracer/event"
)

// Story is the events of one vfork, grouped: what every renderer reads.
// Events are kept in the order they came; child_step events are counted,
// not kept (a --trace-insns story can have millions).
type Story struct {
	Vfork       *event.Vfork
	Calls       []*event.ChildCall
	Steps       int64 // child_step events seen
	Returns     []*event.ChildReturnPastFrame
	SlotWrites  []*event.SlotWrite
	StackWrites []*event.StackWrite
	End         *event.ChildEnd
	Diff        *event.SlotDiff
	Resume      *event.ParentResume
	Consumes    []*event.ParentConsume
	Channels    []*event.LibcChannel
	// Memory outside the stack: the child's writes, the words it left
	// changed, the parent's reads of them.
	GlobalWrites []*event.GlobalWrite
	GlobalDiff   *event.GlobalDiff
	GlobalReads  []*event.GlobalRead
	Landing      *event.ParentLanding
	Verdict      *event.VforkVerdict
	Notes        []*event.Note
}

// ID is the story's number (its vfork).
func (s *Story) ID() int {
	if s.Vfork != nil {
		return s.Vfork.Vfork
	}
	if s.Verdict != nil {
		return s.Verdict.Vfork
	}
	return 0
}

// Judgement is the story's verdict, clean until its vfork_verdict says
// otherwise.
func (s *Story) Judgement() event.Judgement {
	if s.Verdict == nil {
		return event.Clean
	}
	return s.Verdict.Verdict
}

// CalledExit reports whether the child called exit() rather than _exit().
func (s *Story) CalledExit() bool { return s.End != nil && s.End.Via == "exit()" }

// Run is a whole log grouped into stories.
type Run struct {
	Start   *event.Start
	Execs   []*event.Exec
	Stories []*Story // in the order their vfork events came
	Exits   []*event.Exit
	Notes   []*event.Note // notes about no story
	Budget  *event.Budget
	Verdict *event.Verdict
	// Attach and Detach: the run attached to a running process (vtrace
	// attach), and let it go.
	Attach *event.Attach
	Detach *event.Detach
}

// MainExit is the exit event of the program vtrace started, if it came.
func (r *Run) MainExit() *event.Exit {
	for _, e := range r.Exits {
		if e.Main {
			return e
		}
	}
	return nil
}

// Collector groups events into a Run as they come; it is a Sink. With
// Forget set, a story is dropped once its verdict is in (after OnStory saw
// it), so that memory stays flat however many vforks a run makes.
type Collector struct {
	Run
	// OnStory, if set, is called with each story when its vfork_verdict
	// arrives, before Forget drops it.
	OnStory func(*Story)
	Forget  bool
	open    map[int]*Story
}

// Emit adds one event.
func (c *Collector) Emit(ev event.Event) error {
	c.Add(ev)
	return nil
}

// Add adds one event and returns the story it belongs to, or nil.
func (c *Collector) Add(ev event.Event) *Story {
	if c.open == nil {
		c.open = map[int]*Story{}
	}
	switch e := ev.(type) {
	case *event.Start:
		c.Start = e
		return nil
	case *event.Exec:
		c.Execs = append(c.Execs, e)
		return nil
	case *event.Exit:
		c.Exits = append(c.Exits, e)
		return nil
	case *event.Budget:
		c.Budget = e
		return nil
	case *event.Attach:
		c.Attach = e
		return nil
	case *event.Detach:
		c.Detach = e
		return nil
	case *event.Verdict:
		c.Verdict = e
		return nil
	case *event.Note:
		if e.Vfork == 0 {
			c.Notes = append(c.Notes, e)
			return nil
		}
		st := c.story(e.Vfork)
		st.Notes = append(st.Notes, e)
		return st
	case *event.Vfork:
		st := c.story(e.Vfork)
		st.Vfork = e
		return st
	}
	id := StoryOf(ev)
	if id == 0 {
		return nil
	}
	st := c.story(id)
	switch e := ev.(type) {
	case *event.ChildStep:
		st.Steps++
	case *event.ChildCall:
		st.Calls = append(st.Calls, e)
	case *event.ChildReturnPastFrame:
		st.Returns = append(st.Returns, e)
	case *event.SlotWrite:
		st.SlotWrites = append(st.SlotWrites, e)
	case *event.StackWrite:
		st.StackWrites = append(st.StackWrites, e)
	case *event.ChildEnd:
		st.End = e
	case *event.SlotDiff:
		st.Diff = e
	case *event.ParentResume:
		st.Resume = e
	case *event.ParentConsume:
		st.Consumes = append(st.Consumes, e)
	case *event.LibcChannel:
		st.Channels = append(st.Channels, e)
	case *event.GlobalWrite:
		st.GlobalWrites = append(st.GlobalWrites, e)
	case *event.GlobalDiff:
		st.GlobalDiff = e
	case *event.GlobalRead:
		st.GlobalReads = append(st.GlobalReads, e)
	case *event.ParentLanding:
		st.Landing = e
	case *event.VforkVerdict:
		st.Verdict = e
		if c.OnStory != nil {
			c.OnStory(st)
		}
		if c.Forget {
			delete(c.open, id)
			for i, s := range c.Stories {
				if s == st {
					c.Stories = append(c.Stories[:i], c.Stories[i+1:]...)
					break
				}
			}
		}
	}
	return st
}

func (c *Collector) story(id int) *Story {
	if st := c.open[id]; st != nil {
		return st
	}
	st := &Story{}
	c.open[id] = st
	c.Stories = append(c.Stories, st)
	return st
}

// StoryOf returns the vfork number an event belongs to, or 0.
func StoryOf(ev event.Event) int {
	switch e := ev.(type) {
	case *event.Vfork:
		return e.Vfork
	case *event.ChildStep:
		return e.Vfork
	case *event.ChildCall:
		return e.Vfork
	case *event.SlotWrite:
		return e.Vfork
	case *event.StackWrite:
		return e.Vfork
	case *event.ChildReturnPastFrame:
		return e.Vfork
	case *event.ChildEnd:
		return e.Vfork
	case *event.SlotDiff:
		return e.Vfork
	case *event.ParentResume:
		return e.Vfork
	case *event.ParentConsume:
		return e.Vfork
	case *event.LibcChannel:
		return e.Vfork
	case *event.GlobalWrite:
		return e.Vfork
	case *event.GlobalDiff:
		return e.Vfork
	case *event.GlobalRead:
		return e.Vfork
	case *event.ParentLanding:
		return e.Vfork
	case *event.VforkVerdict:
		return e.Vfork
	case *event.Note:
		return e.Vfork
	}
	return 0
}

// Collect groups a whole log (event.ReadLog's result).
func Collect(evs []event.Event) *Run {
	var c Collector
	for _, ev := range evs {
		c.Add(ev)
	}
	return &c.Run
}
