// Package report turns vtrace's event stream into what people and programs
// read: a coloured text story (Text), the JSON Lines log (JSONL), and a fan-
// out of several sinks (Multi). Renderers only format; every fact comes from
// the events.
package report

import (
	"bufio"
	"encoding/json"
	"io"

	"github.com/vtrace/vtrace/tracer/event"
)

// JSONL writes one JSON object per line. Every event is flushed as it is
// written, so a killed run leaves a valid prefix; only child_step lines
// (--trace-insns, one per instruction) are flushed in batches of up to
// stepBatch lines, and always before any other event. After the first
// write error (a full disk, a closed pipe) it writes nothing more and
// Err says what happened: the run goes on, only its log is lost.
type JSONL struct {
	w       *bufio.Writer
	enc     *json.Encoder
	pending int
	err     error
}

const stepBatch = 256

// NewJSONL returns a JSONL sink writing to w.
func NewJSONL(w io.Writer) *JSONL {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &JSONL{w: bw, enc: enc}
}

// Emit writes ev as one line.
func (j *JSONL) Emit(ev event.Event) error {
	if j.err != nil {
		return j.err
	}
	if err := j.enc.Encode(ev); err != nil {
		return j.fail(err)
	}
	if ev.Head().Event == "child_step" {
		j.pending++
		if j.pending < stepBatch {
			return nil
		}
	}
	j.pending = 0
	return j.fail(j.w.Flush())
}

// Flush writes any batched lines.
func (j *JSONL) Flush() error {
	if j.err != nil {
		return j.err
	}
	return j.fail(j.w.Flush())
}

// Err is the first write error, or nil.
func (j *JSONL) Err() error { return j.err }

func (j *JSONL) fail(err error) error {
	if err != nil && j.err == nil {
		j.err = err
	}
	return err
}

// Multi sends each event to several sinks.
type Multi []interface{ Emit(event.Event) error }

// Emit forwards ev to every sink and returns the first error.
func (m Multi) Emit(ev event.Event) error {
	var first error
	for _, s := range m {
		if err := s.Emit(ev); err != nil && first == nil {
			first = err
		}
	}
	return first
}
