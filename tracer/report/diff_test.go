package report

import (
	"os"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

func meaningOf(t *testing.T, name string, edit func(event.Event)) *Meaning {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := event.ReadLog(f)
	if err != nil {
		t.Fatal(err)
	}
	mc := NewMeaningCollector()
	for _, ev := range evs {
		if edit != nil {
			edit(ev)
		}
		_ = mc.Emit(ev)
	}
	return mc.Meaning()
}

// The seed's log (testdata/badvfork.jsonl, gcc -O0, --no-aslr) means what
// the run showed: one call site at badvfork.c:28, two stories, the return
// slot and saved %rbp of createproc written by main's calls and exit's PLT
// stub, the parent landing at createproc instead of main+18.
func TestMeaningOfSeed(t *testing.T) {
	m := meaningOf(t, "badvfork.jsonl", nil)
	if m.Verdict != "violation" || m.Vforks != 2 || len(m.Sites) != 1 {
		t.Fatalf("meaning: %+v", m)
	}
	s := m.Sites[0]
	for what, got := range map[string][]string{
		"slots":    s.Slots,
		"writers":  s.Writers,
		"landings": s.Landings,
		"verdicts": s.Verdicts,
	} {
		want := map[string]string{
			"slots":    "createproc() ret; createproc() saved %rbp",
			"writers":  "createproc() ret ← main+41; createproc() ret ← main+51; createproc() saved %rbp ← exit@plt+6",
			"landings": "ret_clobbered at createproc, expected main+18; returned at createproc+13",
			"verdicts": "clean ×1; violation ×1",
		}[what]
		if strings.Join(got, "; ") != want {
			t.Errorf("%s: %q, want %q", what, strings.Join(got, "; "), want)
		}
	}
	if s.Match != "badvfork.c:28" || s.Key != "createproc+8" {
		t.Errorf("site %q %q", s.Match, s.Key)
	}
}

// Pids, addresses and times do not change the meaning; a writer does.
func TestDiffMeanings(t *testing.T) {
	a := meaningOf(t, "badvfork.jsonl", nil)
	moved := meaningOf(t, "badvfork.jsonl", func(ev event.Event) {
		h := ev.Head()
		h.PID += 1000
		h.T *= 3
		switch e := ev.(type) {
		case *event.Vfork:
			e.SP += 0x1000
			e.Child += 1000
		case *event.SlotWrite:
			e.Slot += 0x1000
			e.New += 0x10
		}
	})
	if d := DiffMeanings(a, moved); len(d) != 0 {
		t.Errorf("pids, addresses, values and times changed the meaning: %+v", d)
	}
	other := meaningOf(t, "badvfork.jsonl", func(ev event.Event) {
		if w, ok := ev.(*event.SlotWrite); ok && w.By != nil && w.By.Sym != nil && w.By.Sym.Off == 41 {
			w.By.Sym = &event.Sym{Sym: "main", Off: 40}
		}
	})
	d := DiffMeanings(a, other)
	if len(d) != 1 || d[0].What != "writers" || !strings.Contains(d[0].B, "main+40") {
		t.Errorf("a different writer: %+v", d)
	}
}
