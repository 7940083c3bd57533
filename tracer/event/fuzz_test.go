package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/event/logcheck"
	"github.com/vtrace/vtrace/tracer/report"
)

// FuzzLogReader: whatever a log file holds (cut short, edited, garbage),
// reading it — LogReader, ReadLog, the contract checker, the text report
// that `vtrace report` renders from it — returns an error or events, and
// never panics. An event that decodes encodes again to a line that
// decodes to the same event.
func FuzzLogReader(f *testing.F) {
	logs, _ := filepath.Glob("../report/testdata/*.jsonl")
	for _, p := range logs {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if len(data) > 20<<10 {
			data = data[:20<<10] // a cut log is a case too; the fuzzer works best on small inputs
		}
		f.Add(data)
	}
	f.Add([]byte(`{"v":1,"event":"verdict","t":0,"pid":0,"verdict":"clean","vforks":0,"violations":0,"warnings":0}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lr := event.NewLogReader(bytes.NewReader(data))
		var evs []event.Event
		for {
			ev, err := lr.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && lr.Truncated != "" {
					t.Fatalf("an error (%v) after a truncated line", err)
				}
				break
			}
			evs = append(evs, ev)
			line, err := json.Marshal(ev)
			if err != nil {
				t.Fatalf("event %#v decoded but does not encode: %v", ev, err)
			}
			back, err := event.Decode(line)
			if err != nil {
				t.Fatalf("event re-encoded as %s does not decode: %v", line, err)
			}
			again, _ := json.Marshal(back)
			if !bytes.Equal(line, again) {
				t.Fatalf("round trip changed the event:\n%s\n%s", line, again)
			}
		}
		_, _ = event.ReadLog(bytes.NewReader(data))
		_, _ = logcheck.Check(bytes.NewReader(data))
		txt := report.NewText(io.Discard, false, false)
		for _, ev := range evs {
			_ = txt.Emit(ev)
		}
	})
}
