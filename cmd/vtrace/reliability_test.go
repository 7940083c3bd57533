package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/elfpatch"
	"github.com/vtrace/vtrace/tracer/event"
)

// Hostile inputs (issue 13, docs/reliability.md): crafted binaries,
// hostile targets, a log that cannot be written. Each test is a row of
// the table in docs/reliability.md.

// crafted writes a patched copy of a target binary.
func crafted(t *testing.T, build, name string, patch func([]byte) ([]byte, error)) string {
	t.Helper()
	orig, err := os.ReadFile(targetPath(t, build, name))
	if err != nil {
		t.Fatal(err)
	}
	data, err := patch(orig)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// A malformed FDE (its augmentation length changed: the program still
// runs natively) was an internal error, exit 126, in delve's parser. Now
// the frame is unwound from its code, a note says so, and the run ends as
// natively.
func TestCraftedFDE(t *testing.T) {
	prog := crafted(t, "gcc-O0", "goodvfork_exec", func(d []byte) ([]byte, error) { return elfpatch.BreakFDEAugmentation(d, 0x7f) })
	native := shellStatus(t, prog)
	r := trace(t, "-q", prog)
	if r.exit != native {
		t.Errorf("exit %d, want the program's own %d\nstderr: %s", r.exit, native, r.stderr)
	}
	var noted bool
	for _, n := range all[*event.Note](r) {
		if n.Code == event.NoteCFIUnreadable && strings.Contains(n.Msg, "CFI unreadable for main(), using ") {
			noted = true
		}
	}
	if !noted {
		t.Errorf("no cfi_unreadable note for main: %v", all[*event.Note](r))
	}
	if v := r.verdict(); v.Verdict != event.Clean || v.Vforks != 1 {
		t.Errorf("verdict %s with %d vforks, want clean with 1", v.Verdict, v.Vforks)
	}
	r.assertNoneLeft(t)
}

// A .symtab with a bogus sh_size: 0x7fffffffffffff00 crashed the prefetch
// goroutine (a goroutine dump, exit 2), 1 GiB cost 1 GB of RSS. Now the
// table is read as far as the file holds it.
func TestCraftedSymtabSize(t *testing.T) {
	for _, size := range []uint64{0x7fffffffffffff00, 1 << 30} {
		prog := crafted(t, "gcc-O0", "goodvfork_exec", func(d []byte) ([]byte, error) { return elfpatch.SetSectionSize(d, ".symtab", size) })
		bin := vtraceBin(t)
		cmd := exec.Command(bin, "run", "-q", prog)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf(".symtab sh_size %#x: %v\n%s", size, err, out)
			continue
		}
		if kb := maxRSSKB(cmd.ProcessState); kb > 100<<10 {
			t.Errorf(".symtab sh_size %#x: vtrace's max RSS %d MB", size, kb>>10)
		}
	}
}

// maxRSSKB is a finished process's peak resident set, in KiB (getrusage:
// of vtrace itself; the program's is not counted, it is vtrace's child's).
func maxRSSKB(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}

// An ELF header byte the kernel ignores (EI_DATA says big-endian) but
// vtrace reads: the program runs natively; vtrace cannot read it and says
// so (126, cannot_trace). Found by the mutation test: vtrace killed the
// program at its exec stop and waited for it forever, the program held in
// the exit stop that PTRACE_O_TRACEEXIT adds after a SIGKILL.
func TestCraftedUnreadableHeader(t *testing.T) {
	prog := crafted(t, "musl-O0", "goodvfork_exec", func(d []byte) ([]byte, error) {
		d = bytes.Clone(d)
		d[5] = 2 // EI_DATA: ELFDATA2MSB
		return d, nil
	})
	if got := shellStatus(t, prog); got != 0 {
		t.Skipf("the kernel refuses the crafted file here (status %d)", got)
	}
	bin := vtraceBin(t)
	log := filepath.Join(t.TempDir(), "log.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "run", "-q", "-o", log, prog).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("vtrace hung on a program it cannot read\n%s", out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitCannotRun {
		t.Errorf("vtrace: %v, want exit %d\n%s", err, exitCannotRun, out)
	}
	evs := readLogFile(t, log)
	if e, ok := evs[0].(*event.Error); !ok || e.Kind != "cannot_trace" {
		t.Errorf("log starts with %#v, want a cannot_trace error", evs[0])
	}
}

// buildC compiles a test program of testdata with the system's C compiler.
func buildC(t *testing.T, src string, flags ...string) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler (cc) on PATH")
	}
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(src), ".c"))
	args := append(append([]string{"-O0", "-o", out}, flags...), filepath.Join("testdata", src))
	if b, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("cc %v: %v\n%s", args, err, b)
	}
	return out
}

// A vfork made with %rsp in unmapped memory: vtrace cannot read the
// parent's stack. The story is reported unchecked with the reason, both
// tasks are let go (the issue saw them held until --timeout, forever with
// none), and the run ends as natively — in both modes.
func TestAbandonedStoryBadRSP(t *testing.T) {
	prog := buildC(t, "badrsp.c")
	want, err := exec.Command(prog).Output()
	if err != nil {
		t.Fatalf("natively: %v", err)
	}
	for _, mode := range [][]string{nil, {"--step"}} {
		start := time.Now()
		r := trace(t, append(append([]string{"-q"}, mode...), prog)...)
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("%v: the run took %v", mode, d)
		}
		if r.exit != 0 || r.stdout != string(want) {
			t.Errorf("%v: exit %d, output %q; natively 0, %q\n%s", mode, r.exit, r.stdout, want, r.stderr)
		}
		vv := all[*event.VforkVerdict](r)
		if len(vv) != 1 || vv[0].Verdict != event.Unchecked {
			t.Fatalf("%v: story verdicts %v, want one unchecked", mode, vv)
		}
		var why string
		for _, n := range all[*event.Note](r) {
			if n.Code == event.NoteStoryAbandoned {
				why = n.Msg
			}
		}
		if !strings.Contains(why, "bad address") {
			t.Errorf("%v: no story_abandoned note giving the reason (%q)", mode, why)
		}
		if v := r.verdict(); v.Unchecked != 1 || v.Incomplete != "" {
			t.Errorf("%v: run verdict %+v, want 1 unchecked story and a complete run", mode, v)
		}
		if len(all[*event.Exit](r)) != 2 {
			t.Errorf("%v: %d exit events, want the parent's and the child's", mode, len(all[*event.Exit](r)))
		}
		r.assertNoneLeft(t)
	}
}

// A program killed by a real-time signal: the exit event names it
// SIGRTMIN+N (the C library has no name for it) and vtrace exits 128+N as
// a shell reports it. Before, the name was empty and the status 128.
func TestRealtimeSignalExit(t *testing.T) {
	argv := []string{"bash", "-c", "kill -s RTMIN+2 $$"}
	native := shellStatus(t, argv...)
	if native != 128+36 {
		t.Fatalf("bash killing itself with SIGRTMIN+2: status %d, want %d", native, 128+36)
	}
	r := trace(t, append([]string{"-q", "--"}, argv...)...)
	if ex := r.mainExit(t); ex.Signal != "SIGRTMIN+2" {
		t.Errorf("exit event signal %q, want SIGRTMIN+2", ex.Signal)
	}
	if r.exit != native {
		t.Errorf("vtrace exit %d, want %d as natively", r.exit, native)
	}
}
