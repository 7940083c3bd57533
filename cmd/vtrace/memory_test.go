package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/report"
)

// What vtrace keeps about a run does not grow with the number of stories
// or processes: the sinks of `vtrace run` (narrator, summary, text report,
// GitHub outputs) are fed one real clean posix_spawn story, with the
// spawned program's exec and exit, 20,000 times over, and the live heap
// after 20,000 is within 512 KiB of the heap after 2,000 (a sink that kept
// every story or every exec event would add megabytes: a few hundred bytes
// each).
func TestMemoryFlatInStories(t *testing.T) {
	f, err := os.Open(filepath.Join(repoRoot(), "tracer", "report", "testdata", "spawnloop-5.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := event.ReadLog(f)
	if err != nil {
		t.Fatal(err)
	}
	// The first story, and the exec and exit of the process it spawned.
	var story []event.Event
	var child int
	for _, ev := range evs {
		if v, ok := ev.(*event.Vfork); ok && v.Vfork == 1 {
			child = v.Child
		}
		switch e := ev.(type) {
		case *event.Exec:
			if e.PID == child {
				story = append(story, ev)
			}
		case *event.Exit:
			if e.PID == child {
				story = append(story, ev)
			}
		default:
			if report.StoryOf(ev) == 1 {
				story = append(story, ev)
			}
		}
	}
	if len(story) < 5 {
		t.Fatalf("story 1 has %d events", len(story))
	}
	var sum report.Summary
	sinks := report.Multi{storyNarrator{&report.Narrator{}}, &sum,
		report.NewTextOptions(io.Discard, report.TextOptions{}), &githubOut{}}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	var at2k uint64
	for n := 1; n <= 20000; n++ {
		for _, ev := range story {
			_ = sinks.Emit(renumbered(ev, n))
		}
		if n == 2000 {
			at2k = heap()
		}
	}
	if sum.Vforks != 20000 {
		t.Fatalf("%d stories counted, want 20000", sum.Vforks)
	}
	at20k := heap()
	runtime.KeepAlive(sinks) // measured with the sinks alive, as in a run
	if at20k > at2k+512<<10 {
		t.Errorf("live heap %d KiB after 20,000 stories, %d KiB after 2,000: it grows with the stories", at20k>>10, at2k>>10)
	}
}

// renumbered is a fresh (shallow) copy of an event with story number n,
// as the engine makes a new event for every story.
func renumbered(ev event.Event, n int) event.Event {
	v := reflect.New(reflect.TypeOf(ev).Elem())
	v.Elem().Set(reflect.ValueOf(ev).Elem())
	if f := v.Elem().FieldByName("Vfork"); f.IsValid() && f.Kind() == reflect.Int {
		f.SetInt(int64(n))
	}
	return v.Interface().(event.Event)
}
