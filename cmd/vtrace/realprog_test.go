package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// Zero false positives on real, unmodified programs that use vfork-like
// primitives correctly (issue 5). Each program is traced as a user would
// trace it (`vtrace run PROGRAM…`, then again with --step) and must come out
// clean, exit as it exits without vtrace, and leave nothing behind. So that
// "clean" cannot come from vtrace missing the vforks, every program is also
// run once under `strace -f`, and vtrace must report exactly the vfork-like
// calls (vfork, or clone/clone3 with CLONE_VFORK) and execs strace shows.

// stackKind is where a program's vfork child runs.
type stackKind int

const (
	stackAny    stackKind = iota // no vfork expected
	stackShared                  // on the parent's stack (vfork, Go's clone)
	stackOwn                     // on a stack of its own outside the parent's (glibc posix_spawn)
	stackInside                  // on a stack of its own inside the parent's stack (musl posix_spawn)
)

func (k stackKind) String() string {
	return [...]string{"any", "shared", "own", "inside the parent's stack"}[k]
}

// realProg is one real program to trace.
type realProg struct {
	name string
	// argv resolves the command line (building what needs building).
	argv func(t *testing.T) []string
	// code is the program's exit status.
	code int
	// vforks is how many vfork-like calls `strace -f` shows for it on the
	// reference machine (Debian 12, glibc 2.36, musl 1.2.3, dash 0.5.12,
	// BusyBox 1.35, Python 3.11); when atLeast, a floor.
	vforks  int
	atLeast bool
	// syscall is how the vfork is made: vfork, clone or clone3.
	syscall string
	stack   stackKind
}

// Builds of the C targets in which libc's own spawn functions are traced:
// glibc dynamic and static, gcc and clang, and static musl (whose
// posix_spawn gives the child a stack inside its own frame).
var realProgBuilds = []string{"gcc-O0", "gcc-O2", "clang-O2", "gcc-O2-static", "musl-O0", "musl-O2"}

// buildCompiler is the compiler a build needs when its target is not built yet.
var buildCompiler = map[string]string{"gcc": "gcc", "clang": "clang", "musl": "musl-gcc"}

func realPrograms(goexec *lazyGoBuild) []realProg {
	var progs []realProg
	for _, build := range realProgBuilds {
		syscall, stack := "clone3", stackOwn // glibc 2.36: clone3(CLONE_VM|CLONE_VFORK), mmap'd stack
		if strings.HasPrefix(build, "musl") {
			syscall, stack = "clone", stackInside // musl: clone(CLONE_VM|CLONE_VFORK), stack in its frame
		}
		for _, c := range []struct{ name, target string }{
			{"posix_spawn", "spawn"}, // posix_spawn("/bin/true")
			{"system", "system"},     // system("true"): sh -c true, a builtin
			{"popen", "popen"},       // popen("echo hi"): sh -c 'echo hi', a builtin
		} {
			build, target := build, c.target
			progs = append(progs, realProg{
				name:    c.name + "/" + build,
				argv:    func(t *testing.T) []string { return []string{realTarget(t, build, target)} },
				vforks:  1,
				syscall: syscall,
				stack:   stack,
			})
		}
	}
	bin := func(path string, args ...string) func(t *testing.T) []string {
		return func(t *testing.T) []string {
			requireProgram(t, path)
			return append([]string{path}, args...)
		}
	}
	progs = append(progs,
		// os/exec: one clone(CLONE_VM|CLONE_VFORK) per child, on the
		// parent's stack, plus (Go ≥ 1.23) one to probe CLONE_PIDFD.
		realProg{
			name:    "go-os-exec",
			argv:    func(t *testing.T) []string { return []string{goexec.path(t)} },
			vforks:  goexecRuns,
			atLeast: true,
			syscall: "clone",
			stack:   stackShared,
		},
		// Debian's Python 3.11 _posixsubprocess: one vfork(). (Not the
		// python3 first on PATH: that may be a pyenv shell shim.)
		realProg{
			name:    "python3-subprocess.run",
			argv:    bin("/usr/bin/python3", "-c", `import subprocess; subprocess.run(["true"])`),
			vforks:  1,
			syscall: "vfork",
			stack:   stackShared,
		},
		// The command: `true` is a builtin, dash makes no fork at all.
		realProg{name: "dash/builtin-true", argv: bin("/bin/dash", "-c", "true; true")},
		// External commands: dash runs each with a real vfork().
		realProg{
			name:    "dash/bin-true",
			argv:    bin("/bin/dash", "-c", "/bin/true; /bin/true"),
			vforks:  2,
			syscall: "vfork",
			stack:   stackShared,
		},
		// A failing command: the program's status (1) is not vtrace's (0).
		realProg{
			name:    "dash/bin-false",
			argv:    bin("/bin/dash", "-c", "/bin/true; /bin/false"),
			code:    1,
			vforks:  2,
			syscall: "vfork",
			stack:   stackShared,
		},
		// Nested shells, as make and CI scripts run them: the outer
		// dash waits for the inner one while its own story still
		// follows it (the child wrote the parent's globals); the inner
		// one's three vforks must run then, not be held until the
		// outer story ends (vtrace waited for ever).
		realProg{
			name:    "dash/nested",
			argv:    bin("/bin/dash", "-c", "dash -c '/bin/true; /bin/true; /bin/true'"),
			vforks:  4,
			syscall: "vfork",
			stack:   stackShared,
		},
		// The command: builtins again, no fork at all.
		realProg{name: "busybox-sh/builtin-true", argv: bin("/bin/busybox", "sh", "-c", "true; true")},
		// busybox sh runs an external command with a plain fork() (and
		// execs the last one itself): no vfork, and vtrace must say so.
		realProg{name: "busybox-sh/bin-true", argv: bin("/bin/busybox", "sh", "-c", "/bin/true; /bin/true")},
		// busybox's xargs applet (run in the forked pipeline child, no
		// exec) spawns each command with vfork(): 3 vforks, made by a
		// process that is itself a fork child of the program.
		realProg{
			name:    "busybox-sh/xargs",
			argv:    bin("/bin/busybox", "sh", "-c", "echo a b c | xargs -n1 /bin/true"),
			vforks:  3,
			syscall: "vfork",
			stack:   stackShared,
		},
	)
	return progs
}

func TestRealProgram(t *testing.T) {
	requirePtrace(t)
	vtraceBin(t)
	goexec := &lazyGoBuild{dir: t.TempDir()}
	for _, p := range realPrograms(goexec) {
		t.Run(p.name, func(t *testing.T) {
			argv := p.argv(t)
			ref := straceRef(t, argv)
			if ref.code != p.code {
				t.Fatalf("%q exits with %d without vtrace (strace -f), want %d", argv, ref.code, p.code)
			}
			if n := ref.vforkCount(); n != p.vforks && !(p.atLeast && n >= p.vforks) {
				t.Fatalf("strace -f shows %d vfork-like calls for %q (%v), the test expects %d: the program changed; re-check it by hand",
					n, argv, ref.vforks, p.vforks)
			}
			if p.vforks > 0 && (len(ref.vforks) != 1 || ref.vforks[p.syscall] == 0) {
				t.Fatalf("strace -f shows the vfork-like calls %v for %q, want %s only", ref.vforks, argv, p.syscall)
			}
			for _, mode := range []string{"fast", "step"} {
				t.Run(mode, func(t *testing.T) {
					args := append([]string{"--"}, argv...)
					if mode == "step" {
						args = append([]string{"--step"}, args...)
					}
					r := trace(t, args...)
					checkRealRun(t, r, p, ref, mode)
				})
			}
		})
	}
}

// checkRealRun asserts that one traced run of a real program is clean,
// complete and faithful to what strace saw.
func checkRealRun(t *testing.T, r *traced, p realProg, ref *straceRun, mode string) {
	if st := all[*event.Start](r); len(st) != 1 || st[0].Mode != mode {
		t.Errorf("start events %+v, want one in %s mode", st, mode)
	}

	// Clean, and vtrace says so with its exit code: the program's own
	// status (README "Exit status"), the one strace's reference run saw.
	v := r.verdict()
	if v.Verdict != "clean" || v.Violations != 0 || v.Warnings != 0 || v.Incomplete != "" {
		t.Errorf("verdict %s (%d violation(s), %d warning(s), incomplete %q): %s\n%s",
			v.Verdict, v.Violations, v.Warnings, v.Incomplete, v.Explanation, whyNotClean(r))
	}
	if r.exit != p.code {
		t.Errorf("vtrace exit code %d, want the program's %d\nstderr: %s", r.exit, p.code, r.stderr)
	}
	for _, b := range all[*event.Budget](r) {
		t.Errorf("a budget stopped the run: %s (limit %s)", b.Budget, b.Limit)
	}

	// vtrace saw every vfork-like call and every exec strace saw.
	vforks := all[*event.Vfork](r)
	got := map[string]int{}
	for _, vf := range vforks {
		got[vf.Syscall]++
	}
	if len(vforks) != ref.vforkCount() || v.Vforks != len(vforks) || fmt.Sprint(got) != fmt.Sprint(ref.vforks) {
		t.Errorf("vtrace saw %d vfork-like calls %v (verdict counts %d); strace -f saw %d %v",
			len(vforks), got, v.Vforks, ref.vforkCount(), ref.vforks)
	}
	if n := len(all[*event.Exec](r)); n != ref.execs {
		t.Errorf("vtrace saw %d execs; strace -f saw %d", n, ref.execs)
	}

	// Each story: the expected primitive and stack, one normal child end,
	// the parent back on its feet, judged clean.
	for _, vf := range vforks {
		n := vf.Vfork
		if vf.Syscall != "vfork" && !(strings.Contains(vf.Flags, "CLONE_VM") && strings.Contains(vf.Flags, "CLONE_VFORK")) {
			t.Errorf("vfork #%d: %s with flags %q, want CLONE_VM|CLONE_VFORK", n, vf.Syscall, vf.Flags)
		}
		if msg := checkStack(vf, p.stack); msg != "" {
			t.Errorf("vfork #%d (%s by pid %d): %s", n, vf.Syscall, vf.PID, msg)
		}
		ends := ofVfork[*event.ChildEnd](r, n)
		if len(ends) != 1 || (ends[0].How != "exec" && ends[0].How != "exit") {
			t.Errorf("vfork #%d: child_end %s, want one exec or exit", n, jsonOf(ends))
		}
		lands := ofVfork[*event.ParentLanding](r, n)
		if len(lands) != 1 || lands[0].How == "ret_clobbered" || lands[0].How == "signal" || lands[0].How == "budget" {
			t.Errorf("vfork #%d: parent_landing %s, want one, the parent unharmed", n, jsonOf(lands))
		}
		if vv := ofVfork[*event.VforkVerdict](r, n); len(vv) != 1 || vv[0].Verdict != "clean" {
			t.Errorf("vfork #%d: vfork_verdict %s, want one, clean", n, jsonOf(vv))
		}
	}

	// Every process ended normally: no signal deaths, every exec'd process
	// accounted for, the program with its real status.
	exited := map[int]bool{}
	for _, ex := range all[*event.Exit](r) {
		exited[ex.PID] = true
		if ex.Status != "exited" {
			t.Errorf("process %d %s by %s (%s) at %v: vtrace must not disturb the programs it traces",
				ex.PID, ex.Status, ex.Signal, ex.SiCode, ex.Sym)
		}
	}
	for _, ex := range all[*event.Exec](r) {
		if !exited[ex.PID] {
			t.Errorf("process %d exec'd %s but the log has no exit for it", ex.PID, ex.Path)
		}
	}
	if ex := r.mainExit(t); ex.Status != "exited" || ex.Code == nil || *ex.Code != p.code {
		t.Errorf("program exit %s, want exited with status %d", jsonOf(ex), p.code)
	}
	r.assertNoneLeft(t)
}

// checkStack says what is wrong with where a vfork child ran, if anything.
func checkStack(vf *event.Vfork, want stackKind) string {
	var cs event.Addr
	if vf.ChildStack != nil {
		cs = *vf.ChildStack
	}
	inside := cs > vf.SP && cs < vf.Live.Hi
	switch {
	case want == stackShared && (!vf.SharedStack || vf.ChildStack != nil):
	case want == stackOwn && (vf.SharedStack || vf.ChildStack == nil || inside || cs == vf.SP):
	case want == stackInside && (vf.SharedStack || vf.ChildStack == nil || !inside):
	default:
		return ""
	}
	return fmt.Sprintf("shared_stack %v, child_stack %v, sp %v, live [%v, %v): want the child's stack %v",
		vf.SharedStack, vf.ChildStack, vf.SP, vf.Live.Lo, vf.Live.Hi, want)
}

// whyNotClean lists the events that make a run other than clean.
func whyNotClean(r *traced) string {
	var b strings.Builder
	for _, ev := range r.events {
		switch e := ev.(type) {
		case *event.SlotWrite, *event.ChildReturnPastFrame, *event.ParentConsume, *event.Note, *event.Budget:
			fmt.Fprintf(&b, "  %s\n", jsonOf(e))
		case *event.VforkVerdict:
			if e.Verdict != "clean" {
				fmt.Fprintf(&b, "  %s\n", jsonOf(e))
			}
		case *event.ParentLanding:
			if e.How != "returned" {
				fmt.Fprintf(&b, "  %s\n", jsonOf(e))
			}
		case *event.ChildEnd:
			if e.How != "exec" || e.Via != "" {
				fmt.Fprintf(&b, "  %s\n", jsonOf(e))
			}
		}
	}
	return b.String()
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

// requireProgram fails (never skips) when a program the tests need is
// missing: scripts/install-deps.sh installs all of them.
func requireProgram(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath(path); err != nil {
		t.Fatalf("%s is missing (%v): run scripts/install-deps.sh", path, err)
	}
}

// realTarget is targetPath, failing with a clear message when the target is
// not built and the build's compiler is missing.
func realTarget(t *testing.T, build, name string) string {
	t.Helper()
	dir := os.Getenv("VTRACE_TARGETS")
	if dir == "" {
		dir = filepath.Join(repoRoot(), "build", "targets")
	}
	if _, err := os.Stat(filepath.Join(dir, build, name)); err != nil {
		requireProgram(t, buildCompiler[strings.SplitN(build, "-", 2)[0]])
	}
	return targetPath(t, build, name)
}

// goexecRuns is how many children testdata/goexec starts (its `runs`).
const goexecRuns = 3

// lazyGoBuild builds testdata/goexec at most once per TestRealProgram run.
type lazyGoBuild struct {
	dir  string
	once sync.Once
	bin  string
	err  error
}

func (g *lazyGoBuild) path(t *testing.T) string {
	t.Helper()
	g.once.Do(func() {
		gobin, err := exec.LookPath("go")
		if err != nil {
			g.err = fmt.Errorf("the go command is missing (%v): install Go (see go.mod)", err)
			return
		}
		g.bin = filepath.Join(g.dir, "goexec")
		// -buildvcs=false: the program needs no version stamp, and git
		// refuses to read a checkout another user owns (its
		// safe.directory), which failed this build for a user other than
		// the checkout's.
		cmd := exec.Command(gobin, "build", "-buildvcs=false", "-o", g.bin, ".")
		cmd.Dir = filepath.Join(repoRoot(), "cmd", "vtrace", "testdata", "goexec")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			g.err = fmt.Errorf("go build testdata/goexec: %v\n%s", err, out)
		}
	})
	if g.err != nil {
		t.Fatal(g.err)
	}
	return g.bin
}

// straceRun is what `strace -f` saw of one run of a program.
type straceRun struct {
	vforks map[string]int // successful vfork-like calls by syscall name
	execs  int            // successful execve calls, the first one included
	code   int            // the program's exit status
}

func (s *straceRun) vforkCount() int {
	n := 0
	for _, c := range s.vforks {
		n += c
	}
	return n
}

// straceCall is one completed system call in `strace -f -o FILE` output:
// name, arguments, return value.
var straceCall = regexp.MustCompile(`^(\w+)\((.*)\)\s+=\s+(-?\d+)`)

// straceRef runs argv under `strace -f` and counts its vfork-like calls
// (vfork, and clone/clone3 with CLONE_VFORK) and its execs.
func straceRef(t *testing.T, argv []string) *straceRun {
	t.Helper()
	requireProgram(t, "strace")
	out := filepath.Join(t.TempDir(), "strace.txt")
	cmd := exec.Command("strace", append([]string{"-f", "-qq", "-o", out,
		"-e", "trace=vfork,clone,clone3,execve", "-e", "signal=none", "--"}, argv...)...)
	ref := &straceRun{vforks: map[string]int{}}
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.Exited():
		ref.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("strace -f %q: %v", argv, err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pending := map[string]string{} // pid → the start of an unfinished call
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		pid, line, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "<... ") {
			_, rest, ok := strings.Cut(line, " resumed>")
			if !ok {
				continue
			}
			line = pending[pid] + rest
			delete(pending, pid)
		}
		if strings.HasSuffix(line, "<unfinished ...>") {
			pending[pid] = strings.TrimSpace(strings.TrimSuffix(line, "<unfinished ...>"))
			continue
		}
		m := straceCall.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ret, _ := strconv.Atoi(m[3])
		switch {
		case m[1] == "execve" && ret == 0:
			ref.execs++
		case ret > 0 && (m[1] == "vfork" || (m[1] == "clone" || m[1] == "clone3") && strings.Contains(m[2], "CLONE_VFORK")):
			ref.vforks[m[1]]++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if ref.execs == 0 {
		t.Fatalf("strace -f %q saw no execve at all: cannot use it as a reference", argv)
	}
	t.Logf("strace -f: %d vfork-like call(s) %v, %d exec(s), exit %d", ref.vforkCount(), ref.vforks, ref.execs, ref.code)
	return ref
}
