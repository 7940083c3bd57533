package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

var update = flag.Bool("update", false, "rewrite the golden outputs in testdata/ from the logs there")

// The logs in testdata/ are real runs of vtrace on real programs
// (testdata/gen.sh says which and how); the golden files beside them are
// what the renderers make of them. `go test ./tracer/report -update`
// rewrites the golden files: read the diff before committing it.
var goldenLogs = []string{"seed-gcc-O0", "seed-gcc-O2-budget", "spawnloop-5", "writelocal", "escsym", "unchecked"}

func readLog(t *testing.T, name string) []event.Event {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := event.ReadLog(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return evs
}

func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs from line %d:\n got: %q\nwant: %q\n(go test -update rewrites it; read the diff)", file, i+1, g, w)
			}
		}
	}
}

func renderText(evs []event.Event, o TextOptions) []byte {
	var b bytes.Buffer
	r := NewTextOptions(&b, o)
	for _, ev := range evs {
		_ = r.Emit(ev)
	}
	return b.Bytes()
}

// TestTextGolden renders every log at the three details, uncoloured and
// unwrapped (what a CI log gets).
func TestTextGolden(t *testing.T) {
	for _, name := range goldenLogs {
		evs := readLog(t, name)
		for _, d := range []struct {
			ext    string
			detail Detail
		}{{"default", Default}, {"v", Verbose}, {"q", Quiet}} {
			t.Run(name+"/"+d.ext, func(t *testing.T) {
				out := renderText(evs, TextOptions{Detail: d.detail})
				golden(t, name+"."+d.ext+".txt", out)
				// Nothing from the program reaches the terminal raw: the
				// uncoloured report has no control byte but newlines.
				if i := bytes.IndexFunc(out, func(r rune) bool { return r < 0x20 && r != '\n' || r == 0x7f }); i >= 0 {
					t.Errorf("control byte %q at %d: %q", out[i], i, out[max(0, i-40):min(len(out), i+40)])
				}
			})
		}
	}
}

// The default detail: clean stories are only counted; the first violation
// at a site is told in full, the next ten in a line each, the rest only
// counted; every run ends with the table and the verdict.
func TestTextDefaultSizes(t *testing.T) {
	lines := func(b []byte) []string { return strings.Split(strings.TrimRight(string(b), "\n"), "\n") }
	clean := lines(renderText(readLog(t, "spawnloop-5"), TextOptions{}))
	if len(clean) > 6 || !strings.HasPrefix(clean[len(clean)-1], "verdict: CLEAN — 5 vfork(s)") {
		t.Errorf("5 clean spawns: %d lines, want the start, the exit, the table (2 lines), the verdict:\n%s", len(clean), strings.Join(clean, "\n"))
	}
	budget := string(renderText(readLog(t, "seed-gcc-O2-budget"), TextOptions{}))
	if n := strings.Count(budget, "━━ vfork #"); n != 1+maxSiteLines {
		t.Errorf("%d stories told (in full or in a line), want 1 + %d", n, maxSiteLines)
	}
	if !strings.Contains(budget, "are only counted in the summary below") {
		t.Errorf("no line says the later stories are only counted")
	}
	if !regexp.MustCompile(`(?m)^ +12 +violation +createproc +badvfork\.c:28 `).MatchString(budget) {
		t.Errorf("no table row with the 12 violations at createproc:\n%s", budget)
	}
	// The seed's child fills 257 words of malloc's main_arena in its
	// first printf: libc's bookkeeping, one line by default, each with -v.
	seed := readLog(t, "seed-gcc-O0")
	fold := regexp.MustCompile(`(?m)^    · libc 0x[0-9a-f]+–0x[0-9a-f]+ main_arena \(libc\.so\.6\): 257 words changed \(malloc's state; -v lists each\)$`)
	if def := string(renderText(seed, TextOptions{})); strings.Count(def, "main_arena") != 1 || !fold.MatchString(def) {
		t.Errorf("the seed by default: %d lines name main_arena, want one that folds the 257 words", strings.Count(def, "main_arena"))
	}
	if n := strings.Count(string(renderText(seed, TextOptions{Detail: Verbose})), "main_arena+"); n != 257 {
		t.Errorf("the seed with -v: %d main_arena words, want 257", n)
	}
	q := lines(renderText(readLog(t, "seed-gcc-O2-budget"), TextOptions{Detail: Quiet}))
	if len(q) != 1 || q[0] != "violation (incomplete: max_vforks)" {
		t.Errorf("-q: %q, want one verdict line", q)
	}
}

// Wrapped to a terminal's width, coloured: no line is wider than the
// width unless it is one word, and every escape sequence is whole.
func TestTextWrapKeepsEscapes(t *testing.T) {
	for _, width := range []int{40, 60, 100} {
		out := string(renderText(readLog(t, "escsym"), TextOptions{Color: true, Width: width, Detail: Verbose}))
		for _, line := range strings.Split(out, "\n") {
			if w := visibleWidth(line); w > width && len(tokenize(strings.TrimLeft(line, " "))) > 1 {
				t.Errorf("width %d: line of %d columns: %q", width, w, line)
			}
			// Every ESC starts a complete SGR sequence (the report's own
			// colours); the program's ESC bytes are escaped as text.
			for i := strings.IndexByte(line, 0x1b); i >= 0; {
				if !regexp.MustCompile(`^\x1b\[[0-9;]*m`).MatchString(line[i:]) {
					t.Fatalf("width %d: broken escape sequence at %d in %q", width, i, line)
				}
				j := strings.IndexByte(line[i+1:], 0x1b)
				if j < 0 {
					break
				}
				i += 1 + j
			}
		}
		if !strings.Contains(out, `spawn\x1b[31m\x07`) {
			t.Errorf("width %d: the symbol is not shown escaped", width)
		}
	}
	// "  aaa bbb" is 9 columns; the continuation indent is 2+4, at most
	// half the width (4 here).
	if got := wrapLine("  aaa \x1b[1mbbb\x1b[0m ccc ddd", 9); got != "  aaa \x1b[1mbbb\x1b[0m\n    ccc\n    ddd" {
		t.Errorf("wrapLine: %q", got)
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"createproc":          "createproc",
		"spawn\x1b[31m\x07":   `spawn\x1b[31m\x07`,
		"a\nb\rc\td":          `a\x0ab\x0dc\x09d`,
		"\x7f":                `\x7f`,
		"caf\xc3\xa9":         "café",
		"bad\xffutf8":         `bad\xffutf8`,
		"evil\u202egnp.exe":   `evil\u202egnp.exe`,
		"c1\u009b31m":         `c1\u009b31m`,
		"日本語 symbol_name+0x1": "日本語 symbol_name+0x1",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// An unchecked story (vtrace could not follow it) is never shown as
// clean: it says UNCHECKED and why (its story_abandoned note), at every
// detail that tells stories.
func TestTextUncheckedStory(t *testing.T) {
	evs := readLog(t, "unchecked")
	var why string
	for _, ev := range evs {
		if n, ok := ev.(*event.Note); ok && n.Code == event.NoteStoryAbandoned {
			why = n.Msg
		}
	}
	if why == "" {
		t.Fatal("testdata/unchecked.jsonl has no story_abandoned note")
	}
	for _, d := range []Detail{Default, Verbose} {
		out := string(renderText(evs, TextOptions{Detail: d}))
		if !strings.Contains(out, "UNCHECKED") || !strings.Contains(out, why) {
			t.Errorf("detail %v: no UNCHECKED with the reason %q:\n%s", d, why, out)
		}
		if strings.Contains(out, "vfork #1 CLEAN") || strings.Contains(out, "  CLEAN ") {
			t.Errorf("detail %v: the unchecked story is shown as clean:\n%s", d, out)
		}
	}
}
