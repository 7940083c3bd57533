// Package logcheck checks a vtrace log against its contract: every line
// against the JSON Schema users read (docs/log.schema.json), and what a
// schema cannot say line by line — the order of a story's events
// (docs/log-format.md), story numbering, nesting, and a run verdict that
// adds up its stories. The test suite runs it on every log it writes, and
// `make matrix` on every row's, so that the schema is checked against
// every target, build and mode rather than against examples.
package logcheck

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vtrace/vtrace/docs"
	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/report"
)

// SchemaURL is the schema's $id.
const SchemaURL = "urn:vtrace:log:v1"

var (
	schemaOnce sync.Once
	schema     *jsonschema.Schema
	schemaErr  error
)

// Schema compiles docs/log.schema.json once.
func Schema() (*jsonschema.Schema, error) {
	schemaOnce.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(docs.LogSchema))
		if err != nil {
			schemaErr = fmt.Errorf("log.schema.json: %w", err)
			return
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		if err := c.AddResource(SchemaURL, doc); err != nil {
			schemaErr = fmt.Errorf("log.schema.json: %w", err)
			return
		}
		schema, schemaErr = c.Compile(SchemaURL)
	})
	return schema, schemaErr
}

// Problem is one way a log breaks its contract.
type Problem struct {
	Line  int    // 1-based; 0 for the log as a whole
	Event string // the line's event kind, if it has one
	Msg   string
}

func (p Problem) String() string {
	s := p.Msg
	if p.Event != "" {
		s = p.Event + ": " + s
	}
	if p.Line > 0 {
		s = fmt.Sprintf("line %d: %s", p.Line, s)
	}
	return s
}

// Checker checks a log one line at a time.
type Checker struct {
	line     int
	problems []Problem

	started    bool
	errored    bool // an error event: vtrace failed (a run that could not start has no start event)
	verdict    *event.Verdict
	budget     *event.Budget
	attach     *event.Attach
	detach     *event.Detach
	mainExits  int
	vforks     int
	stories    map[int]*storyState
	open       []int // stories opened and not yet closed, innermost last
	tally      map[event.Judgement]int
	worst      event.Judgement
	afterFinal bool // a line came after the verdict
}

// storyState is how far a story has got.
type storyState struct {
	phase  int
	seen   map[string]bool
	closed bool
}

// The phases of a story, in the documented order. Notes may come at any
// point after the vfork event and before the story's verdict.
var phases = map[string]int{
	"vfork":                   0,
	"child_step":              1,
	"child_call":              1,
	"slot_write":              1,
	"stack_write":             1,
	"global_write":            1,
	"child_return_past_frame": 1,
	"child_end":               2,
	"slot_diff":               3,
	"global_diff":             3,
	"parent_resume":           4,
	"parent_consume":          5,
	"libc_channel":            5,
	"parent_landing":          6,
	"vfork_verdict":           7,
}

// once lists the story events that come at most once per story.
var once = map[string]bool{"child_end": true, "slot_diff": true, "global_diff": true, "parent_resume": true, "parent_landing": true, "vfork_verdict": true}

// afterResume lists the story events that come after parent_resume, before
// or after parent_landing (the parent is followed on for its reads of
// globals after it landed): they check the order, and do not advance it.
var afterResume = map[string]bool{"global_read": true}

// NewChecker returns a checker for one log.
func NewChecker() *Checker {
	return &Checker{stories: map[int]*storyState{}, tally: map[event.Judgement]int{}, worst: event.Clean}
}

func (c *Checker) add(ev, format string, args ...any) {
	c.problems = append(c.problems, Problem{Line: c.line, Event: ev, Msg: fmt.Sprintf(format, args...)})
}

// Line checks the next line of the log (without its newline).
func (c *Checker) Line(b []byte) {
	c.line++
	sch, err := Schema()
	if err != nil {
		c.add("", "%v", err)
		return
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		c.add("", "not JSON: %v", err)
		return
	}
	var h event.Header
	_ = json.Unmarshal(b, &h)
	if err := sch.Validate(inst); err != nil {
		c.add(h.Event, "does not match log.schema.json: %s", oneLine(err))
	}
	ev, err := event.Decode(b)
	if err != nil {
		c.add(h.Event, "%v", err)
		return
	}
	c.order(ev)
}

// oneLine flattens the validator's indented error tree.
func oneLine(err error) string {
	var parts []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}

// order checks where ev may come.
func (c *Checker) order(ev event.Event) {
	name := ev.Head().Event
	if c.verdict != nil && !c.afterFinal {
		c.afterFinal = true
		c.add(name, "comes after the run's verdict, which must be the last line")
	}
	if c.line == 1 && name != "start" && name != "error" {
		c.add(name, "the first line must be the start event (or, for a run that could not start, the error event)")
	}
	switch e := ev.(type) {
	case *event.Error:
		c.errored = true
		return
	case *event.Start:
		if c.started {
			c.add(name, "a second start event")
		}
		c.started = true
		return
	case *event.Budget:
		if c.budget != nil {
			c.add(name, "a second budget event")
		}
		if c.detach != nil && c.detach.Why == "program_exit" {
			c.add(name, "a budget event after the program's end let what it left running go")
		} else if c.detach != nil && c.detach.Why != e.Budget {
			c.add(name, "budget %q, but the detach event says why %q", e.Budget, c.detach.Why)
		}
		c.budget = e
		return
	case *event.Attach:
		if c.line != 2 {
			c.add(name, "the attach event must come right after the start event")
		}
		c.attach = e
		return
	case *event.Detach:
		switch {
		case e.Why == "program_exit" && c.mainExits == 0:
			c.add(name, "a detach event (why program_exit) before the main program's exit")
		case e.Why != "program_exit" && c.attach == nil:
			c.add(name, "a detach event without an attach event")
		case c.detach != nil:
			c.add(name, "a second detach event")
		case c.budget != nil:
			c.add(name, "the detach event comes after the budget event")
		case len(c.open) > 0:
			c.add(name, "the detach event comes while story %d is open", c.open[len(c.open)-1])
		}
		c.detach = e
		return
	case *event.Exit:
		if e.Main {
			c.mainExits++
			if c.mainExits == 2 {
				c.add(name, "a second exit of the main program")
			}
		}
		return
	case *event.Verdict:
		c.verdict = e
		c.runVerdict(e)
		return
	case *event.Note:
		if e.Vfork == 0 {
			return
		}
		st := c.stories[e.Vfork]
		switch {
		case st == nil:
			c.add(name, "note %q of story %d comes before the story's vfork event", e.Msg, e.Vfork)
		case st.closed:
			c.add(name, "note %q of story %d comes after the story's vfork_verdict", e.Msg, e.Vfork)
		}
		return
	case *event.Vfork:
		c.vforks++
		if e.Vfork != c.vforks {
			c.add(name, "story number %d, want %d (stories are numbered 1, 2, … in the order of their vfork events)", e.Vfork, c.vforks)
		}
		if c.stories[e.Vfork] != nil {
			c.add(name, "story %d opened twice", e.Vfork)
		}
		c.stories[e.Vfork] = &storyState{seen: map[string]bool{"vfork": true}}
		c.open = append(c.open, e.Vfork)
		return
	}
	id := report.StoryOf(ev)
	if id == 0 {
		return // exec: any time
	}
	st := c.stories[id]
	switch {
	case st == nil:
		c.add(name, "event of story %d before the story's vfork event", id)
		return
	case st.closed:
		c.add(name, "event of story %d after the story's vfork_verdict", id)
		return
	}
	if afterResume[name] {
		if st.phase < phases["parent_resume"] {
			c.add(name, "in story %d before its parent_resume", id)
		}
		return
	}
	p := phases[name]
	if p < st.phase {
		c.add(name, "in story %d after a later step of the story (order: vfork; child_step, child_call, slot_write, stack_write, global_write, child_return_past_frame; child_end; slot_diff, global_diff; parent_resume; parent_consume, libc_channel; parent_landing; vfork_verdict; global_read after parent_resume)", id)
	}
	if once[name] && st.seen[name] {
		c.add(name, "a second %s in story %d", name, id)
	}
	st.seen[name] = true
	st.phase = max(st.phase, p)
	if vv, ok := ev.(*event.VforkVerdict); ok {
		c.closeStory(id, st, vv)
	}
}

// closeStory checks a story's verdict: a nested story (made by a vfork
// child) closes before the story around it, and a story not cut short has
// every step.
func (c *Checker) closeStory(id int, st *storyState, vv *event.VforkVerdict) {
	st.closed = true
	if n := len(c.open); n > 0 && c.open[n-1] != id {
		c.add("vfork_verdict", "story %d closes while story %d, opened after it, is still open: a nested story must appear in full between its parent's events", id, c.open[n-1])
	}
	for i, o := range c.open {
		if o == id {
			c.open = append(c.open[:i], c.open[i+1:]...)
			break
		}
	}
	if vv.Incomplete == "" {
		for _, need := range []string{"child_end", "slot_diff", "parent_resume", "parent_landing"} {
			if !st.seen[need] {
				c.add("vfork_verdict", "story %d was not cut short but has no %s", id, need)
			}
		}
	}
	c.tally[vv.Verdict]++
	if vv.Verdict.Rank() > c.worst.Rank() {
		c.worst = vv.Verdict
	}
}

// runVerdict checks that the run's verdict adds up its stories.
func (c *Checker) runVerdict(v *event.Verdict) {
	for _, id := range c.open {
		c.add("verdict", "story %d has no vfork_verdict", id)
	}
	closed := c.tally[event.Violation] + c.tally[event.Warning] + c.tally[event.Clean] + c.tally[event.Unchecked]
	if v.Vforks != closed || v.Violations != c.tally[event.Violation] || v.Warnings != c.tally[event.Warning] || v.Unchecked != c.tally[event.Unchecked] {
		c.add("verdict", "counts %d vfork(s), %d violation(s), %d warning(s), %d unchecked; the stories say %d, %d, %d, %d",
			v.Vforks, v.Violations, v.Warnings, v.Unchecked, closed, c.tally[event.Violation], c.tally[event.Warning], c.tally[event.Unchecked])
	}
	if v.Verdict != c.worst {
		c.add("verdict", "verdict %s; the worst story is %s", v.Verdict, c.worst)
	}
	if c.detach != nil && c.budget == nil && c.detach.Why != "program_exit" {
		c.add("verdict", "a detach event (why %q) without a budget event", c.detach.Why)
	}
	switch {
	case c.budget != nil && v.Incomplete != c.budget.Budget:
		c.add("verdict", "incomplete %q, but the budget event says %q", v.Incomplete, c.budget.Budget)
	case c.budget == nil && c.errored && v.Incomplete != "error":
		c.add("verdict", "incomplete %q after an error event, want \"error\"", v.Incomplete)
	case c.budget == nil && !c.errored && v.Incomplete != "":
		c.add("verdict", "incomplete %q without a budget event", v.Incomplete)
	}
}

// End finishes the log and returns every problem found.
func (c *Checker) End() []Problem {
	if c.line == 0 {
		c.problems = append(c.problems, Problem{Msg: "empty log"})
	} else if c.verdict == nil {
		c.problems = append(c.problems, Problem{Msg: "the log does not end with a verdict"})
	}
	return c.problems
}

// Check reads a whole log and returns every way it breaks its contract.
// The error is for a log that cannot be read at all.
func Check(r io.Reader) ([]Problem, error) {
	c := NewChecker()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			c.Line(bytes.TrimSuffix(line, []byte("\n")))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return c.problems, fmt.Errorf("read log: %w", err)
		}
	}
	return c.End(), nil
}
