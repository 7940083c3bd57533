package event

import (
	"bufio"
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
	"parent_resume":           func() Event { return new(ParentResume) },
	"slot_diff":               func() Event { return new(SlotDiff) },
	"parent_consume":          func() Event { return new(ParentConsume) },
	"parent_landing":          func() Event { return new(ParentLanding) },
	"vfork_verdict":           func() Event { return new(VforkVerdict) },
	"exit":                    func() Event { return new(Exit) },
	"budget":                  func() Event { return new(Budget) },
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
