package event

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// kinds maps each event name to a constructor of its type. The names are
// the "event" field of the log and part of its contract.
var kinds = map[string]func() Event{
	"start":                   func() Event { return new(Start) },
	"exec":                    func() Event { return new(Exec) },
	"vfork":                   func() Event { return new(Vfork) },
	"child_step":              func() Event { return new(ChildStep) },
	"child_call":              func() Event { return new(ChildCall) },
	"slot_write":              func() Event { return new(SlotWrite) },
	"stack_write":             func() Event { return new(StackWrite) },
	"child_return_past_frame": func() Event { return new(ChildReturnPastFrame) },
	"child_end":               func() Event { return new(ChildEnd) },
	"global_write":            func() Event { return new(GlobalWrite) },
	"global_diff":             func() Event { return new(GlobalDiff) },
	"global_read":             func() Event { return new(GlobalRead) },
	"parent_resume":           func() Event { return new(ParentResume) },
	"slot_diff":               func() Event { return new(SlotDiff) },
	"parent_consume":          func() Event { return new(ParentConsume) },
	"parent_landing":          func() Event { return new(ParentLanding) },
	"libc_channel":            func() Event { return new(LibcChannel) },
	"vfork_verdict":           func() Event { return new(VforkVerdict) },
	"exit":                    func() Event { return new(Exit) },
	"budget":                  func() Event { return new(Budget) },
	"attach":                  func() Event { return new(Attach) },
	"detach":                  func() Event { return new(Detach) },
	"note":                    func() Event { return new(Note) },
	"error":                   func() Event { return new(Error) },
	"verdict":                 func() Event { return new(Verdict) },
}

// Names lists every event name, for documentation and schema tests.
func Names() []string {
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	return names
}

// New returns a zero event of the named kind with its header filled in, or
// nil for an unknown name.
func New(name string) Event {
	mk, ok := kinds[name]
	if !ok {
		return nil
	}
	ev := mk()
	ev.Head().V = Version
	ev.Head().Event = name
	return ev
}

// Decode parses one JSON line into its typed event.
func Decode(line []byte) (Event, error) {
	var h Header
	if err := json.Unmarshal(line, &h); err != nil {
		return nil, fmt.Errorf("log line: %w", err)
	}
	mk, ok := kinds[h.Event]
	if !ok {
		return nil, fmt.Errorf("log line: unknown event %q", h.Event)
	}
	if h.V != Version {
		return nil, fmt.Errorf("log line: schema version %d, this vtrace reads %d", h.V, Version)
	}
	ev := mk()
	if err := json.Unmarshal(line, ev); err != nil {
		return nil, fmt.Errorf("log line (%s): %w", h.Event, err)
	}
	return ev, nil
}

// ReadLog decodes a whole JSON Lines log. A complete log ends with the
// run's verdict: an empty log, or one that ends otherwise, is an error
// (the events read so far are returned with it).
func ReadLog(r io.Reader) ([]Event, error) {
	var evs []Event
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		ev, err := Decode(sc.Bytes())
		if err != nil {
			return evs, fmt.Errorf("line %d: %w\n%s", len(evs)+1, err, sc.Text())
		}
		evs = append(evs, ev)
	}
	if err := sc.Err(); err != nil {
		return evs, err
	}
	if len(evs) == 0 {
		return nil, errors.New("empty log")
	}
	if _, ok := evs[len(evs)-1].(*Verdict); !ok {
		return evs, fmt.Errorf("log does not end with a verdict: last event %q", evs[len(evs)-1].Head().Event)
	}
	return evs, nil
}

// The log writes a list as [] when it is empty, never as null: readers
// (jq, JavaScript, the JSON Schema) can then take a list as a list. Go
// leaves a nil slice nil, so the events with a list field encode through
// a copy whose nil lists are made empty; the copy's type (plain) has no
// MarshalJSON of its own, so the encoding does not recurse.

// MarshalJSON writes argv as a list.
func (e *Start) MarshalJSON() ([]byte, error) {
	type plain Start
	p := plain(*e)
	p.Argv = list(p.Argv)
	return marshal(&p)
}

// MarshalJSON writes frames as a list.
func (e *Vfork) MarshalJSON() ([]byte, error) {
	type plain Vfork
	p := plain(*e)
	p.Frames = list(p.Frames)
	return marshal(&p)
}

// MarshalJSON writes saved as a list.
func (f Frame) MarshalJSON() ([]byte, error) {
	type plain Frame
	p := plain(f)
	p.Saved = list(p.Saved)
	return marshal(&p)
}

// MarshalJSON writes slots and changed as lists.
func (e *SlotDiff) MarshalJSON() ([]byte, error) {
	type plain SlotDiff
	p := plain(*e)
	p.Slots, p.Changed = list(p.Slots), list(p.Changed)
	return marshal(&p)
}

// MarshalJSON writes reasons as a list.
// MarshalJSON writes changed as a list.
func (e *GlobalDiff) MarshalJSON() ([]byte, error) {
	type plain GlobalDiff
	p := plain(*e)
	p.Changed = list(p.Changed)
	return marshal(&p)
}

func (e *VforkVerdict) MarshalJSON() ([]byte, error) {
	type plain VforkVerdict
	p := plain(*e)
	p.Reasons = list(p.Reasons)
	return marshal(&p)
}

// MarshalJSON writes threads as a list.
func (e *Attach) MarshalJSON() ([]byte, error) {
	type plain Attach
	p := plain(*e)
	p.Threads = list(p.Threads)
	return marshal(&p)
}

// MarshalJSON writes threads as a list.
func (e *Detach) MarshalJSON() ([]byte, error) {
	type plain Detach
	p := plain(*e)
	p.Threads = list(p.Threads)
	return marshal(&p)
}

func list[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// marshal encodes v as the log's encoder does, without HTML escaping (an
// instruction's `<printf@plt>` stays readable); the outer encoder keeps or
// escapes it according to its own setting.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// LogReader reads a log one event at a time, so that a log of any size
// (--trace-insns writes one line per child instruction) is rendered in
// constant memory, and so that a log cut short can still be read.
type LogReader struct {
	br   *bufio.Reader
	line int
	// Truncated describes the last line when the log ended in the middle
	// of it (a job killed while vtrace was writing): no newline and not a
	// whole JSON object. Next then returns io.EOF; the events before it
	// are all there.
	Truncated string
}

// NewLogReader reads the log r.
func NewLogReader(r io.Reader) *LogReader {
	return &LogReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// Line is the number of the last line read.
func (l *LogReader) Line() int { return l.line }

// Next returns the next event, or io.EOF at the end of the log. A line that
// does not decode is an error, unless it is the last one and has no
// newline: then the log was cut while it was being written (Truncated).
func (l *LogReader) Next() (Event, error) {
	for {
		b, err := l.br.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("read log: %w", err)
		}
		if len(b) == 0 && err == io.EOF {
			return nil, io.EOF
		}
		l.line++
		whole := len(b) > 0 && b[len(b)-1] == '\n'
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			if !whole {
				return nil, io.EOF
			}
			continue
		}
		ev, derr := Decode(b)
		switch {
		case derr == nil:
			return ev, nil
		case !whole:
			l.Truncated = fmt.Sprintf("line %d is cut short after %d bytes (%v)", l.line, len(b), derr)
			return nil, io.EOF
		}
		return nil, fmt.Errorf("line %d: %w", l.line, derr)
	}
}
