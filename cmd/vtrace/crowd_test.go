package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vtrace/vtrace/tracer/event"
)

// Processes that vfork at once (testdata/spawncrowd.c: 16 processes, 4
// vforks each): a story waiting for its vfork child's first stop
// dispatches another process's vfork event, whose story, nested, may take
// that first stop while it waits for its own child. The outer story must
// see it taken: it waited for ever, every tracee held (main at 6059c91:
// 20 processes hung 2 runs of 2, 12 one run of 3). Every story is told,
// the program's output is its native one, in both modes.
func TestCrowdOfSpawners(t *testing.T) {
	prog := buildC(t, "spawncrowd.c")
	native, err := exec.Command(prog).Output()
	if err != nil {
		t.Fatalf("natively: %v", err)
	}
	for _, mode := range [][]string{nil, nil, {"--step"}} {
		log := filepath.Join(t.TempDir(), "log.jsonl")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, vtraceBin(t), append(append([]string{"run", "-q", "-o", log}, mode...), prog)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		timedOut := ctx.Err() != nil
		cancel()
		if timedOut {
			t.Fatalf("%v: vtrace still running after 60 s (a story waits for a stop that came): killed\nstderr: %s", mode, stderr.String())
		}
		if err != nil {
			t.Fatalf("%v: vtrace: %v\nstderr: %s", mode, err, stderr.String())
		}
		if stdout.String() != string(native) {
			t.Errorf("%v: output %q, natively %q", mode, stdout.String(), native)
		}
		raw, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := event.ReadLog(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%v: log: %v", mode, err)
		}
		vforks, verdicts := 0, 0
		for _, e := range evs {
			switch e.(type) {
			case *event.Vfork:
				vforks++
			case *event.VforkVerdict:
				verdicts++
			}
		}
		v, _ := evs[len(evs)-1].(*event.Verdict)
		if vforks != 64 || verdicts != 64 || v == nil || v.Verdict != "warning" || v.Incomplete != "" {
			t.Errorf("%v: %d vforks, %d stories told, verdict %+v; want 64, 64, a complete warning (the odd-k children write their parent's local, which it returns)", mode, vforks, verdicts, v)
		}
	}
}
