package logcheck

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The real log in tracer/report/testdata: the seed program (gcc -O0,
// --no-aslr: a violation, then a clean story).
func readLines(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile("../../report/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func check(t *testing.T, lines []string) []Problem {
	t.Helper()
	ps, err := Check(strings.NewReader(strings.Join(lines, "\n") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func TestRealLogPasses(t *testing.T) {
	if ps := check(t, readLines(t, "badvfork.jsonl")); len(ps) > 0 {
		t.Errorf("a real log has problems: %v", ps)
	}
}

// indexOf finds the first line of an event kind.
func indexOf(t *testing.T, lines []string, kind string) int {
	t.Helper()
	for i, l := range lines {
		if strings.Contains(l, `"event":"`+kind+`"`) {
			return i
		}
	}
	t.Fatalf("no %s line", kind)
	return -1
}

// Each way a log can break its contract is found, named and placed.
func TestProblemsFound(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(t *testing.T, l []string) []string
		want string // in the problem's text
	}{
		{"null list", func(t *testing.T, l []string) []string {
			i := indexOf(t, l, "vfork_verdict")
			l[i] = regexpReplace(l[i], `"reasons":\[[^]]*\]`, `"reasons":null`)
			l[i] = strings.Replace(l[i], `"verdict":"violation"`, `"verdict":"clean"`, 1)
			return l
		}, "vfork_verdict: does not match log.schema.json"},
		{"unknown field", func(t *testing.T, l []string) []string {
			i := indexOf(t, l, "child_end")
			l[i] = strings.Replace(l[i], `"how":`, `"howw":"x","how":`, 1)
			return l
		}, "child_end: does not match log.schema.json"},
		{"address not hex", func(t *testing.T, l []string) []string {
			i := indexOf(t, l, "parent_resume")
			l[i] = regexpReplace(l[i], `"pc":"0x[0-9a-f]+"`, `"pc":"12345"`)
			return l
		}, "parent_resume: does not match"},
		{"saved_reg slot without its register", func(t *testing.T, l []string) []string {
			i := indexOf(t, l, "parent_consume")
			l[i] = strings.Replace(l[i], `"reg":"rbp",`, ``, 1)
			return l
		}, "parent_consume: does not match"},
		{"landing before the child ended", func(t *testing.T, l []string) []string {
			i, j := indexOf(t, l, "child_end"), indexOf(t, l, "parent_landing")
			l[i], l[j] = l[j], l[i]
			return l
		}, "child_end: in story 1 after a later step"},
		{"story event before its vfork", func(t *testing.T, l []string) []string {
			i, j := indexOf(t, l, "vfork"), indexOf(t, l, "child_call")
			l[i], l[j] = l[j], l[i]
			return l
		}, "event of story 1 before the story's vfork event"},
		{"story numbers out of order", func(t *testing.T, l []string) []string {
			for i := range l {
				l[i] = strings.Replace(l[i], `"vfork":2,`, `"vfork":3,`, 1)
			}
			return l
		}, "story number 3, want 2"},
		{"verdict does not add up", func(t *testing.T, l []string) []string {
			i := len(l) - 1
			l[i] = strings.Replace(l[i], `"violations":1`, `"violations":2`, 1)
			return l
		}, "verdict: counts 2 vfork(s), 2 violation(s)"},
		{"story without a landing", func(t *testing.T, l []string) []string {
			i := indexOf(t, l, "parent_landing")
			return append(l[:i:i], l[i+1:]...)
		}, "story 1 was not cut short but has no parent_landing"},
		{"no verdict", func(t *testing.T, l []string) []string {
			return l[:len(l)-1]
		}, "the log does not end with a verdict"},
		{"a line after the verdict", func(t *testing.T, l []string) []string {
			return append(l, l[1])
		}, "comes after the run's verdict"},
		{"program_exit detach before the program's end", func(t *testing.T, l []string) []string {
			i := indexOf(t, l, "exit")
			return append(l[:i:i], append([]string{programExitDetach(l[i])}, l[i:]...)...)
		}, "a detach event (why program_exit) before the main program's exit"},
		{"program_exit detach, then a budget", func(t *testing.T, l []string) []string {
			i := len(l) - 1
			budget := `{"v":1,"t":1,"event":"budget","pid":1,"budget":"timeout","limit":"1s"}`
			l[i] = strings.Replace(l[i], `"verdict":"violation"`, `"verdict":"violation","incomplete":"timeout"`, 1)
			return append(l[:i:i], programExitDetach(l[i]), budget, l[i])
		}, "a budget event after the program's end let what it left running go"},
		{"not JSON", func(t *testing.T, l []string) []string {
			l[3] = l[3][:40]
			return l
		}, "line 4: not JSON"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ps := check(t, c.edit(t, readLines(t, "badvfork.jsonl")))
			var all []string
			found := false
			for _, p := range ps {
				all = append(all, p.String())
				found = found || strings.Contains(p.String(), c.want)
			}
			if !found {
				t.Errorf("want a problem containing %q, got:\n%s", c.want, strings.Join(all, "\n"))
			}
		})
	}
}

// programExitDetach is a detach event of what the program left running,
// with the pid of line (a log line of the run).
func programExitDetach(line string) string {
	pid := regexp.MustCompile(`"pid":\d+`).FindString(line)
	return `{"v":1,"t":1,"event":"detach",` + pid + `,"threads":[4242],"why":"program_exit"}`
}

// What the program left running, let go after its end (--after-exit
// release), is a detach event between its exit and the verdict, with no
// budget event and a complete verdict.
func TestProgramExitDetach(t *testing.T) {
	l := readLines(t, "badvfork.jsonl")
	i := len(l) - 1
	l = append(l[:i:i], programExitDetach(l[i]), l[i])
	if ps := check(t, l); len(ps) > 0 {
		t.Errorf("problems: %v", ps)
	}
}

// A story's note belongs after its vfork event: one moved before it is a
// problem (older vtraces wrote the "unwinding the parent" note there).
func TestNoteBeforeVfork(t *testing.T) {
	l := readLines(t, "badvfork.jsonl")
	v := indexOf(t, l, "vfork")
	note := `{"v":1,"event":"note","t":1,"pid":1,"vfork":1,"code":"unwind_failed","msg":"m"}`
	l = append(l[:v], append([]string{note}, l[v:]...)...)
	ps := check(t, l)
	if len(ps) != 1 || !strings.Contains(ps[0].Msg, "comes before the story's vfork event") {
		t.Errorf("want one problem, the note before its vfork, got %v", ps)
	}
}

func TestEmptyLog(t *testing.T) {
	ps, err := Check(bytes.NewReader(nil))
	if err != nil || len(ps) != 1 || ps[0].Msg != "empty log" {
		t.Errorf("empty log: %v %v", ps, err)
	}
}

func regexpReplace(s, re, with string) string {
	return regexp.MustCompile(re).ReplaceAllString(s, with)
}

// The log of a run that could not start: the error event, then the
// verdict with incomplete "error" (no start event, pid 0).
func TestCouldNotStartLog(t *testing.T) {
	good := `{"v":1,"event":"error","t":0,"pid":0,"kind":"not_found","msg":"cannot trace: /x: no such file"}
{"v":1,"event":"verdict","t":0,"pid":0,"verdict":"clean","vforks":0,"violations":0,"warnings":0,"explanation":"vtrace could not trace the program","incomplete":"error"}
`
	if ps, err := Check(strings.NewReader(good)); err != nil || len(ps) != 0 {
		t.Errorf("could-not-start log: %v %v", ps, err)
	}
	bad := strings.Replace(good, `"incomplete":"error"`, `"incomplete":"timeout"`, 1)
	if ps, _ := Check(strings.NewReader(bad)); len(ps) == 0 {
		t.Error("an error log whose verdict says timeout passed")
	}
}

// A vfork event whose child is not on the parent's stack gives the child's
// stack top, except for a copy (mechanism "copy": clone(CLONE_VFORK)
// without CLONE_VM), which has its own copy of the whole memory and need
// not have been given a stack.
func TestVforkChildStack(t *testing.T) {
	for _, c := range []struct {
		name, mechanism string
		ok              bool
	}{
		{"own stack, no address", "diff", false},
		{"a copy, no child stack", "copy", true},
	} {
		l := readLines(t, "badvfork.jsonl")
		i := indexOf(t, l, "vfork")
		l[i] = strings.Replace(l[i], `"shared_stack":true`, `"shared_stack":false`, 1)
		l[i] = regexpReplace(l[i], `"mechanism":"[^"]*"`, `"mechanism":"`+c.mechanism+`"`)
		var bad []string
		for _, p := range check(t, l) {
			if strings.Contains(p.String(), "vfork: does not match") {
				bad = append(bad, p.String())
			}
		}
		if ok := len(bad) == 0; ok != c.ok {
			t.Errorf("%s: valid %v, want %v (%v)", c.name, ok, c.ok, bad)
		}
	}
}
