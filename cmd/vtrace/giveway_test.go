package main

import (
	"cmp"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
)

// Who waits for whom across stories (docs/reliability.md; tracer/giveway.go).
// A vfork made while another story is in progress runs its story at once,
// nested, or is held until that story ends; each choice deadlocks one
// direction, and vtrace hung until --timeout on nestwait and threadjoin.
// Now, when the task a story waits for sleeps while vtrace holds others,
// the held vforks whose memory has no child running get their turn,
// nested (threadjoin: no story cut, main()'s warning seen); failing that,
// the story that blocks gives way: it is cut short ("blocked", a
// story_gave_way note) and the held tasks run (nestwait: the nested story;
// threadfirst: main()'s, nested in the thread's, which goes on to its
// warning). The program ends as natively. Each run has --timeout 30s, so
// a regression fails (the run stopped by its timeout) instead of hanging
// the suite.
func TestStoriesGiveWay(t *testing.T) {
	requirePtrace(t)
	const mainStory, otherStory = "main", "other"
	cases := []struct {
		src   string
		flags []string
		// cut is whose story is cut short ("blocked"), warn whose
		// parent is seen reading what its child changed ("": none);
		// every other story runs to its end, clean.
		cut, warn string
		// stdin: the program reads a byte of stdin that comes late, from
		// a pipe or a socket (lateStdin)
		stdin string
		// name is the subtests' name when it is not src's
		name string
	}{
		{"nestwait.c", nil, otherStory, "", "", ""},
		{"threadjoin.c", []string{"-pthread"}, "", mainStory, "", ""},
		{"threadfirst.c", []string{"-pthread"}, mainStory, otherStory, "", ""},
		// the thread's child sleeps 400 ms, timed, while main()'s vfork
		// is held: no deadlock, no cut
		{"sleepheld.c", []string{"-pthread"}, "", otherStory, "", ""},
		// the same child waits for a process of its own that sleeps
		{"sleepgrand.c", []string{"-pthread"}, "", otherStory, "", ""},
		// the same child reads a byte of stdin, which the test (not
		// traced) writes 600 ms later
		{"stdinheld.c", []string{"-pthread"}, "", otherStory, "pipe", ""},
		// ... a socket's other end, which the test holds
		{"stdinheld.c", []string{"-pthread"}, "", otherStory, "socket", "stdinsocket"},
		// ... after waiting for it with poll, select or epoll_wait
		{"stdinheld.c", []string{"-pthread", "-DWAIT_POLL"}, "", otherStory, "pipe", "stdinpoll"},
		{"stdinheld.c", []string{"-pthread", "-DWAIT_SELECT"}, "", otherStory, "socket", "stdinselect"},
		{"stdinheld.c", []string{"-pthread", "-DWAIT_EPOLL"}, "", otherStory, "pipe", "stdinepoll"},
		// the inner program's story follows its parent into a 3 s
		// waitpid while main() is kept at a trap of its own story: the
		// inner story gives way (main() runs on, as natively: exit 0)
		{"heldrunnable.c", nil, otherStory, "", "", ""},
	}
	type run struct {
		name  string
		flags []string
	}
	modes := map[string][]run{
		"": {{"fast", nil}, {"step", []string{"--step"}}, {"fast-nohw", []string{"--watchpoints", "off"}}},
		// i386 (the matrix builds -m32 targets with the same compiler)
		"-m32": {{"i386-fast", nil}, {"i386-step", []string{"--step"}}},
	}
	for _, c := range cases {
		for _, arch := range []string{"", "-m32"} {
			flags := c.flags
			if arch != "" {
				flags = append([]string{arch}, flags...)
			}
			prog := buildC(t, c.src, flags...)
			native := runNativeIn(t, lateStdin(t, c.stdin), prog)
			if native.status != 0 || native.out == "" {
				t.Fatalf("%s %s natively: status %d, output %q: the program does not do what it is for", c.src, arch, native.status, native.out)
			}
			for _, m := range modes[arch] {
				mode := m.flags
				name := cmp.Or(c.name, strings.TrimSuffix(c.src, ".c"))
				t.Run(name+"/"+m.name, func(t *testing.T) {
					start := time.Now()
					r := traceIn(t, lateStdin(t, c.stdin), append(append([]string{"-q", "--timeout", "30s"}, mode...), prog)...)
					took := time.Since(start)
					v := r.verdict()
					if v.Incomplete != "" {
						t.Fatalf("the run was stopped (%s) after %v: vtrace waited for a story that could not go on", v.Incomplete, took)
					}
					if took > 20*time.Second {
						t.Errorf("the run took %v", took)
					}
					if r.exit != native.status || r.stdout != native.out {
						t.Errorf("exit %d, output %q; natively %d, %q\nstderr: %s", r.exit, r.stdout, native.status, native.out, r.stderr)
					}
					if v.Vforks != 2 {
						t.Errorf("%d vforks, want 2", v.Vforks)
					}
					mainPID := r.mainExit(t).PID
					whose := map[int]string{}
					for _, vf := range all[*event.Vfork](r) {
						whose[vf.Vfork] = otherStory
						if vf.PID == mainPID {
							whose[vf.Vfork] = mainStory
						}
					}
					for _, vv := range all[*event.VforkVerdict](r) {
						who := whose[vv.Vfork]
						wantCut := who == c.cut
						wantVerdict, wantReasons := event.Clean, []event.Reason{}
						if who == c.warn {
							wantVerdict, wantReasons = event.Warning, []event.Reason{event.ReasonReadChildWrite}
						}
						if wantCut {
							wantVerdict, wantReasons = event.Clean, []event.Reason{} // judged on what was seen: the parent's read is not
						}
						if got := vv.Incomplete == "blocked"; got != wantCut || (!wantCut && vv.Incomplete != "") {
							var why []string
							for _, n := range ofVfork[*event.Note](r, vv.Vfork) {
								why = append(why, string(n.Code)+": "+n.Msg)
							}
							t.Errorf("%s's story %d: incomplete %q, cut short as blocked: want %v (took %v; notes: %q)", who, vv.Vfork, vv.Incomplete, wantCut, took, why)
						}
						if vv.Verdict != wantVerdict || !slices.Equal(vv.Reasons, wantReasons) {
							t.Errorf("%s's story %d: %s %v, want %s %v", who, vv.Vfork, vv.Verdict, vv.Reasons, wantVerdict, wantReasons)
						}
						noted := slices.ContainsFunc(all[*event.Note](r), func(n *event.Note) bool {
							return n.Code == event.NoteStoryGaveWay && n.Vfork == vv.Vfork && strings.Contains(n.Msg, "slept in the kernel")
						})
						if noted != wantCut {
							t.Errorf("%s's story %d: story_gave_way note %v, want %v", who, vv.Vfork, noted, wantCut)
						}
						if wantCut && who == mainStory {
							// main() was followed into pthread_join with its
							// child's `x` live: that word is reported
							// unchecked, not read.
							ls := ofVfork[*event.ParentLanding](r, vv.Vfork)
							if len(ls) != 1 || ls[0].How != event.LandUnchecked ||
								!slices.ContainsFunc(ls[0].Words, func(w event.WordFate) bool { return w.Fate == event.FateUnchecked }) {
								t.Errorf("story %d: landing %+v, want unchecked with the live words unchecked", vv.Vfork, ls)
							}
						}
					}
					r.assertNoneLeft(t)
				})
			}
		}
	}
}

// lateStdin is the stdin of stdinheld.c: one byte, 600 ms after the
// program starts, through a pipe or a socket (nil when the program reads
// none). The test process writes it: a writer vtrace does not trace.
func lateStdin(t *testing.T, kind string) io.Reader {
	const after = 600 * time.Millisecond
	switch kind {
	case "pipe":
		return &lateReader{data: []byte("x\n"), after: after}
	case "socket":
		// A socketpair: the program's stdin is one end; the test holds
		// the other and writes to it.
		sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		in, out := os.NewFile(uintptr(sp[0]), "stdin"), os.NewFile(uintptr(sp[1]), "writer")
		t.Cleanup(func() { in.Close(); out.Close() })
		go func() {
			time.Sleep(after)
			_, _ = out.Write([]byte("x\n"))
		}()
		return in
	}
	return nil
}

// lateReader gives its data after a delay, then EOF.
type lateReader struct {
	data  []byte
	after time.Duration
	given bool
}

func (l *lateReader) Read(p []byte) (int, error) {
	if l.given {
		return 0, io.EOF
	}
	time.Sleep(l.after)
	l.given = true
	return copy(p, l.data), nil
}
