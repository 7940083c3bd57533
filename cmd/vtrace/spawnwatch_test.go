package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// libc's own posix_spawn child (tracer/memory.go, libcSpawnChild): fast
// mode watches only its TLS block (method libc_spawn), --full-watch and
// --step all of the parent's memory outside the stack. glibc's and musl's
// sources say the child writes nothing else of the parent's but its own
// frame's argument block (the live region's diff) and errno; so the three
// must tell the same story: the same words changed (errno, when the exec
// fails), the same reads, verdicts and exit status. A child
// running the program's own code — a vfork, a raw clone on a stack of its
// own — is never narrowed.
func TestLibcSpawnChildWatch(t *testing.T) {
	requirePtrace(t)
	builds := []string{"gcc-O0", "gcc-O2", "clang-O2", "gcc-O2-static", "musl-O0", "musl-O2", "gcc-O0-m32-static"}
	cases := [][]string{{"spawnloop", "3"}, {"spawnfail"}, {"spawnfail", "addopen"}, {"spawnfail", "spawn2"}, {"system"}, {"popen"}, {"spawnattrs"}}
	for _, b := range builds {
		t.Run(b, func(t *testing.T) {
			if strings.Contains(b, "m32") {
				requireI386(t)
			}
			for _, c := range cases {
				prog := targetPath(t, b, c[0])
				args := append([]string{"--no-aslr", "--", prog}, c[1:]...)
				name := strings.Join(c, " ")
				fast := trace(t, args...)
				full := trace(t, append([]string{"--full-watch"}, args...)...)
				step := trace(t, append([]string{"--step"}, args...)...)
				narrowed := 0
				for _, vf := range all[*event.Vfork](fast) {
					if vf.Memory == nil || vf.Memory.Method != event.MemLibcSpawn {
						continue
					}
					narrowed++
					if vf.SharedStack || vf.Memory.Bytes == 0 || vf.Memory.Bytes > 4096 || vf.Memory.Ranges != 1 {
						t.Errorf("%s: vfork #%d: narrowed watch %+v shared_stack %v: want the TLS block alone (one range, ≤ 4 KiB), the child on its own stack",
							name, vf.Vfork, *vf.Memory, vf.SharedStack)
					}
				}
				if narrowed == 0 {
					t.Errorf("%s: no vfork watched as libc's posix_spawn child: %s", name, methods(fast))
				}
				for _, vf := range all[*event.Vfork](full) {
					if vf.Memory != nil && vf.Memory.Method != event.MemSnapshotDiff {
						t.Errorf("%s --full-watch: vfork #%d method %s, want snapshot_diff", name, vf.Vfork, vf.Memory.Method)
					}
				}
				want := spawnFacts(step)
				for mode, r := range map[string]*traced{"fast": fast, "--full-watch": full} {
					if got := spawnFacts(r); got != want {
						t.Errorf("%s: %s tells\n%s\n--step tells\n%s", name, mode, got, want)
					}
				}
				if !strings.Contains(want, "global_diff") && name == "spawnfail" {
					t.Errorf("%s: --step saw no word changed outside the stack; the failing exec's errno was expected:\n%s", name, want)
				}
			}
		})
	}
	// The program's own code in the child: never narrowed.
	for _, c := range [][]string{{"gcc-O0", "clonevfork"}, {"gcc-O2", "vforkloop"}, {"gcc-O0", "goodvfork_exec"}} {
		r := trace(t, "--no-aslr", "--", targetPath(t, c[0], c[1]))
		for _, vf := range all[*event.Vfork](r) {
			if vf.Memory != nil && vf.Memory.Method == event.MemLibcSpawn {
				t.Errorf("%s/%s: vfork #%d of the program's own code watched as libc's posix_spawn child", c[0], c[1], vf.Vfork)
			}
		}
	}
}

// methods lists each vfork's watch method, for a failure message.
func methods(r *traced) string {
	var out []string
	for _, vf := range all[*event.Vfork](r) {
		m := "no memory watch"
		if vf.Memory != nil {
			m = string(vf.Memory.Method)
		}
		out = append(out, fmt.Sprintf("#%d %s (frames %d)", vf.Vfork, m, len(vf.Frames)))
	}
	return strings.Join(out, ", ")
}

// spawnFacts is what a run says of the memory the children changed and of
// its outcome, without addresses: each story's changed words outside the
// stack, the parent's reads of them, each story's verdict, the run's
// verdict and exit status.
func spawnFacts(r *traced) string {
	var lines []string
	for _, d := range all[*event.GlobalDiff](r) {
		for _, c := range d.Changed {
			// The bits changed, not the word: musl's errno_val shares its
			// word with the thread id, which differs between runs.
			lines = append(lines, fmt.Sprintf("vfork #%d global_diff %s %s bits %#x libc=%s", d.Vfork, c.Area, symStr(c.Sym), uint64(c.Before^c.After), c.Libc))
		}
	}
	for _, g := range all[*event.GlobalRead](r) {
		lines = append(lines, fmt.Sprintf("vfork #%d global_read %s", g.Vfork, symStr(g.Sym)))
	}
	for _, v := range all[*event.VforkVerdict](r) {
		lines = append(lines, fmt.Sprintf("vfork #%d verdict %s", v.Vfork, v.Verdict))
	}
	slices.Sort(lines)
	return strings.Join(append(lines, fmt.Sprintf("run verdict %s, exit %d", r.verdict().Verdict, r.exit)), "\n")
}
