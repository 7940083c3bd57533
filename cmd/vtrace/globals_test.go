package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// Memory outside the stack (issue 11, "beyond the stack"; tracer/memory.go).

// Correct real programs come out clean although their vfork children touch
// the parent's memory outside the stack: libc's bookkeeping (errno of a
// failing exec of one PATH entry, a GOT slot bound lazily) is reported
// with what it was and raises no warning, and dash's child, which
// allocates from the shell's own allocator, is not seen having the parent
// read what it changed. Each run must have watched memory (method not
// none), so that "clean" cannot come from watching nothing.
func TestGlobalsRealPrograms(t *testing.T) {
	requirePtrace(t)
	mk := t.TempDir()
	if err := os.WriteFile(filepath.Join(mk, "Makefile"), []byte("all: a b\na:\n\t@true\nb:\n\t@ls >/dev/null\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		argv []string
	}{
		{"make", []string{"/usr/bin/make", "-s", "-C", mk}},
		{"python3-subprocess", []string{"/usr/bin/python3", "-c", `import subprocess; subprocess.run(["true"])`}},
		{"dash", []string{"/bin/dash", "-c", "ls >/dev/null; true"}},
		{"busybox-sh", []string{"/bin/busybox", "sh", "-c", "ls >/dev/null; true"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			requireProgram(t, c.argv[0])
			for _, mode := range []string{"fast", "step"} {
				args := []string{"--"}
				if mode == "step" {
					args = []string{"--step", "--"}
				}
				r := trace(t, append(args, c.argv...)...)
				v := r.verdict()
				if v.Verdict != event.Clean {
					t.Errorf("%s: verdict %s, want clean: %s", mode, v.Verdict, whyNotClean(r))
				}
				for _, vf := range all[*event.Vfork](r) {
					if vf.Memory == nil || vf.Memory.Method == event.MemNone || vf.Memory.Bytes == 0 {
						t.Errorf("%s: vfork #%d watched no memory outside the stack: %+v", mode, vf.Vfork, vf.Memory)
					}
				}
				for _, w := range all[*event.GlobalWrite](r) {
					t.Logf("%s: vfork #%d global_write %s %s %s %s→%s libc=%s", mode, w.Vfork, w.Area, filepath.Base(w.Mapping),
						symStr(w.Sym), w.Old, w.New, w.Libc)
				}
				if n := len(all[*event.GlobalRead](r)); n > 0 {
					t.Errorf("%s: %d global_read event(s) in a correct program", mode, n)
				}
			}
		})
	}
}

// The catalogue's global bugs, in the facts the matrix does not check: the
// writer in --step mode is the store itself (restore_mount_namespace's
// movl, the handler on_usr1's add), in fast mode the call it ran in; the
// parent's read is in main; the lazy binding of execl's GOT slot is told
// as libc's bookkeeping; and the program's own global is named.
func TestGlobalsCatalogueFacts(t *testing.T) {
	requirePtrace(t)
	for _, c := range []struct {
		target, global, stepBy, fastDuring string
	}{
		{"nix16119_global", "have_private_mount_ns", "restore_mount_namespace", "restore_mount_namespace"},
		{"go20427_signal", "signals_seen", "on_usr1", "kill"},
	} {
		for _, build := range []string{"gcc-O0", "clang-O2", "gcc-O2-static", "musl-O0", "gcc-O0-m32"} {
			t.Run(c.target+"/"+build, func(t *testing.T) {
				prog := realTarget(t, build, c.target)
				if strings.Contains(build, "m32") {
					requireI386(t)
				}
				for _, mode := range []string{"fast", "step"} {
					args := []string{prog}
					if mode == "step" {
						args = []string{"--step", prog}
					}
					r := trace(t, args...)
					var mine *event.GlobalWrite
					bound := false
					for _, w := range all[*event.GlobalWrite](r) {
						if w.Sym != nil && w.Sym.Sym == c.global && mine == nil {
							mine = w
						}
						if w.Sym != nil && w.Sym.Sym == "execl@got" {
							bound = true
							if w.Libc != event.LibcBinding {
								t.Errorf("%s: execl@got written with libc %q, want plt_binding", mode, w.Libc)
							}
						}
					}
					if mine == nil {
						t.Fatalf("%s: no global_write of %s", mode, c.global)
					}
					if mine.Libc != "" || mine.Area != event.AreaData || filepath.Base(mine.Mapping) != c.target {
						t.Errorf("%s: %s written as %+v", mode, c.global, mine)
					}
					switch mode {
					case "step":
						if mine.By == nil || mine.By.Sym == nil || mine.By.Sym.Sym != c.stepBy {
							t.Errorf("step: %s written by %v, want a store in %s", c.global, writerText(mine.By), c.stepBy)
						}
					default:
						if mine.During == nil || !strings.Contains(mine.During.Insn, c.fastDuring) {
							t.Errorf("fast: %s written during %v, want the call to %s", c.global, writerText(mine.During), c.fastDuring)
						}
					}
					reads := all[*event.GlobalRead](r)
					if len(reads) == 0 || reads[0].By.Sym == nil || reads[0].By.Sym.Sym != "main" || reads[0].Sym == nil || reads[0].Sym.Sym != c.global {
						t.Errorf("%s: global reads %v, want main reading %s", mode, reads, c.global)
					}
					vv := all[*event.VforkVerdict](r)
					if len(vv) != 1 || !slices.Contains(vv[0].Reasons, event.ReasonWroteGlobal) || !slices.Contains(vv[0].Reasons, event.ReasonReadGlobal) {
						t.Errorf("%s: verdicts %v", mode, vv)
					}
					dynamic := !strings.Contains(build, "static") && !strings.HasPrefix(build, "musl")
					if dynamic && !bound && !strings.Contains(build, "clang-O2") {
						// (clang -O2 may bind execl at the first call in main.)
						t.Errorf("%s: no lazy binding of execl@got seen in a dynamic build", mode)
					}
				}
			})
		}
	}
}

func writerText(in *event.Insn) string {
	if in == nil {
		return "nothing"
	}
	return symStr(in.Sym) + " `" + in.Insn + "`"
}

// The engine's memory stays flat in the number of vforks: the snapshot
// buffers are pooled. vtrace's peak RSS tracing 1,000 posix_spawns is
// within 8 MiB of its peak tracing 100 (a story keeping its ~1 MiB of
// buffers would add gigabytes).
func TestGlobalsMemoryFlat(t *testing.T) {
	requirePtrace(t)
	prog := realTarget(t, "gcc-O2", "spawnloop")
	rss := func(n int) int64 {
		cmd := exec.Command(vtraceBin(t), "run", "-q", "-o", os.DevNull, "--", prog, strconv.Itoa(n))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("vtrace spawnloop %d: %v\n%s", n, err, out)
		}
		return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB
	}
	small, large := rss(100), rss(1000)
	t.Logf("peak RSS: %d KiB at 100 spawns, %d KiB at 1,000", small, large)
	if large-small > 8<<10 {
		t.Errorf("peak RSS grew by %d KiB from 100 to 1,000 vforks", large-small)
	}
}

// The parent reads the global its child changed in main, after spawn()
// and middle() have returned and called touch() on the way
// (testdata/readafter.c): fast mode runs those calls and returns at full
// speed (tracer/parentblock.go) and must stop at main's read as --step
// does — a warning with main's read; and no warning when middle() stores
// the global first.
func TestGlobalReadAfterReturns(t *testing.T) {
	for _, opt := range []string{"-O0", "-O2"} {
		prog := buildC(t, "readafter.c", opt)
		for _, c := range []struct{ arg, out, verdict string }{{"read", "42\n", "warning"}, {"rewrite", "9\n", "clean"}} {
			for _, mode := range [][]string{nil, {"--step"}} {
				name := fmt.Sprintf("%s %s %v", opt, c.arg, mode)
				r := trace(t, append(append([]string{"-q"}, mode...), prog, c.arg)...)
				if v := r.verdict(); v == nil || string(v.Verdict) != c.verdict || r.stdout != c.out || r.exit != 0 {
					t.Errorf("%s: verdict %+v, output %q, exit %d; want %s, %q, 0\n%s", name, v, r.stdout, r.exit, c.verdict, c.out, r.stderr)
					continue
				}
				reads := all[*event.GlobalRead](r)
				if c.verdict == "clean" {
					if len(reads) != 0 {
						t.Errorf("%s: global_reads %+v, want none (middle() stored it)", name, reads)
					}
					continue
				}
				if len(reads) != 1 || reads[0].By.Sym == nil || reads[0].By.Sym.Sym != "main" || reads[0].Value != 42 {
					t.Errorf("%s: global_reads %+v, want one, of 42, by main", name, reads)
				}
			}
		}
	}
}

// The edges of fast mode's parent blocks (testdata/blockedges.c: a signal
// where a block stands at a call, a callee at the stack pointer of a frame
// left, recursion, a thread made in a callee that runs the parent's own
// code, a callee that rewrites its caller's return slot, a call to the
// next instruction): each mode's verdict, output and exit status, in fast
// mode as in --step. The assembly is x86-64's.
func TestParentBlockEdges(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("blockedges.c is x86-64 assembly; this is %s", runtime.GOARCH)
	}
	prog := buildC(t, "blockedges.c", "-O2", "-pthread")
	for _, c := range []struct {
		mode, out, verdict string
		exit               int
	}{
		{"sigcall", "2\n", "clean", 0},
		{"samesp", "42\n", "clean", 0},
		{"recur", "42\n", "warning", 0},
		{"thread", "42 42\n", "warning", 0},
		{"hijack", "hijacked 42\n", "warning", 3},
		{"callnext", "42\n", "warning", 0},
	} {
		for _, step := range [][]string{nil, {"--step"}} {
			r := trace(t, append(append([]string{"-q"}, step...), prog, c.mode)...)
			if v := r.verdict(); v == nil || string(v.Verdict) != c.verdict || r.stdout != c.out || r.exit != c.exit {
				t.Errorf("%s %v: verdict %+v, output %q, exit %d; want %s, %q, %d\n%s", c.mode, step, v, r.stdout, r.exit, c.verdict, c.out, c.exit, r.stderr)
			}
		}
	}
}

// A process made by clone(CLONE_VM) without CLONE_THREAD (a fork event
// to the kernel) runs in its parent's memory: vtrace's int3s there are
// its too, and it must run as natively (testdata/sharedclone.c). Before,
// it was given a copy of the address space of its own, and an int3 of a
// story it ran into was delivered to it as a SIGTRAP: "clone status 0x5"
// and "42 1" for "42 42".
func TestSharedMemoryCloneRunsAsNatively(t *testing.T) {
	prog := buildC(t, "sharedclone.c", "-O2")
	for _, mode := range [][]string{nil, {"--step"}} {
		r := trace(t, append(append([]string{"-q"}, mode...), prog)...)
		if r.stdout != "42 42\n" || r.exit != 0 || r.verdict() == nil {
			t.Errorf("%v: output %q, exit %d, verdict %+v; want \"42 42\\n\", 0 and a verdict\n%s", mode, r.stdout, r.exit, r.verdict(), r.stderr)
		}
	}
}

// The vfork child's watchpoints after a story nested in one of its calls
// (testdata/nestedwatch.c): the child's store into its parent's return
// slot, undone before its callee returns, is seen by the watchpoint on
// that slot in fast mode as by --step, with or without the grandchild
// whose story used the child's debug registers (it left its own address
// in DR0: a clean verdict). x86-64 assembly.
func TestNestedStoryKeepsChildWatchpoints(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("nestedwatch.c is x86-64 assembly; this is %s", runtime.GOARCH)
	}
	prog := buildC(t, "nestedwatch.c", "-O2")
	for _, arg := range []string{"1", "0"} {
		for _, mode := range [][]string{nil, {"--step"}} {
			r := trace(t, append(append([]string{"-q"}, mode...), prog, arg)...)
			v := r.verdict()
			var writes []string
			for _, w := range all[*event.SlotWrite](r) {
				if w.Kind == event.SlotRet && w.FrameFn != nil && w.FrameFn.Sym == "F1" {
					writes = append(writes, w.New.String())
				}
			}
			if v == nil || v.Verdict != "warning" || len(writes) != 2 || writes[0] != "0x5555" || r.stdout != "child status 0\n" {
				t.Errorf("nested %s %v: verdict %+v, F1's return slot written %v, output %q; want warning, [0x5555, the return address], \"child status 0\\n\"\n%s",
					arg, mode, v, writes, r.stdout, r.stderr)
			}
		}
	}
}

// amd64: a %gs-relative access is %gs's own base plus its offset (the
// program sets one with arch_prctl), not thread-local storage, and the
// base is the one at the access (testdata/gsread.c). The parent's read
// through %gs of the global its child wrote is a warning in both modes,
// with the base set before the vfork or after it; read through a base
// moved elsewhere after the vfork, it is another word: clean. Before, the
// access was taken for a TLS word at the thread pointer plus the offset
// (clean for the first two); with the base read at the vfork only, the
// last was a false warning.
func TestGSRelativeRead(t *testing.T) {
	requirePtrace(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("arch_prctl(ARCH_SET_GS) is amd64's")
	}
	prog := buildC(t, "gsread.c")
	for _, c := range []struct {
		mode, out string
		verdict   event.Judgement
		reads     int
	}{{"", "7\n", event.Warning, 1}, {"after", "7\n", event.Warning, 1}, {"moved", "3\n", event.Clean, 0}} {
		for _, step := range [][]string{nil, {"--step"}} {
			r := trace(t, append(step, "--", prog, c.mode)...)
			reads := 0
			for _, g := range all[*event.GlobalRead](r) {
				if g.Sym != nil && g.Sym.Sym == "g" {
					reads++
				}
			}
			if v := r.verdict(); v.Verdict != c.verdict || reads != c.reads || r.stdout != c.out || r.exit != 0 {
				t.Errorf("gsread %q %v: verdict %s, %d reads of g, output %q, exit %d; want %s, %d, %q, 0\n%s",
					c.mode, step, v.Verdict, reads, r.stdout, r.exit, c.verdict, c.reads, c.out, r.stderr)
			}
		}
	}
}
