package report

import (
	"io"
	"path"

	"github.com/vtrace/vtrace/tracer/event"
)

// Document is a renderer that writes one file for a whole run: SARIF,
// JUnit, the HTML picture. Like any sink it is fed the events as they come
// (live, or from a saved log by `vtrace report`), keeps only what it will
// show, and writes when the run is over.
type Document interface {
	Emit(event.Event) error
	Render(w io.Writer) error
}

// runDocument groups a run's events for a Document: run-level events stay
// in Run, and each finished story goes to onStory and is then forgotten,
// so that memory stays flat however many vforks the run makes.
type runDocument struct {
	c Collector
}

func newRunDocument(onStory func(*Story)) runDocument {
	return runDocument{c: Collector{Forget: true, OnStory: onStory}}
}

// Emit adds one event.
func (d *runDocument) Emit(ev event.Event) error {
	d.c.Add(ev)
	return nil
}

// run is the run so far.
func (d *runDocument) run() *Run { return &d.c.Run }

// unfinished returns the stories that never got their verdict (a log cut
// short): a Document shows them as they are.
func (d *runDocument) unfinished() []*Story { return d.c.Stories }

// Program names the traced program: the base name of its first argument.
func (r *Run) Program() string {
	if r.Start == nil || len(r.Start.Argv) == 0 {
		return "program"
	}
	return path.Base(r.Start.Argv[0])
}
