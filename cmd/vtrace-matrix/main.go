// Command vtrace-matrix traces every build of every target with vtrace and
// prints one table: target × build → slot before/after, writer, parent
// landing, the program's fate and the verdict, checked against what
// targets/expect says it must be, with every row's log validated against
// docs/log.schema.json and the documented event order. `make matrix` runs it.
//
//	vtrace-matrix [-vtrace build/vtrace] [-targets build/targets] [-j 2] [-build B] [-target T] [-i386 auto|native|vm]
//
// i386 (-m32) rows run natively where this kernel runs i386 programs, and
// otherwise inside the project's qemu VM (cmd/internal/vmharness, one boot
// for all of them); the WHERE column says which.
//
// Exit status: 0 when every row is as expected, 1 when one is not or could
// not be run, 2 on a usage error.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/cmd/internal/vmharness"
	"github.com/vtrace/vtrace/targets/expect"
	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/event/logcheck"
)

type row struct {
	c     expect.Case
	build string
	where string // "native", "vm", or "not run: why"
	sum   expect.Summary
	bad   []string
	err   error
}

// notRun reports whether the row could not be run here (where says why).
func (r *row) notRun() bool { return strings.HasPrefix(r.where, "not run") }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vtrace-matrix", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("vtrace", "build/vtrace", "the vtrace binary")
	dir := fs.String("targets", "build/targets", "directory of target builds (<dir>/<build>/<target>)")
	jobs := fs.Int("j", 2, "runs in parallel")
	onlyBuild := fs.String("build", "", "only this build")
	onlyTarget := fs.String("target", "", "only this target")
	i386Mode := fs.String("i386", "auto", "where i386 rows run: auto (natively if this kernel runs i386 programs, else in the VM), native, vm")
	root := fs.String("root", ".", "the repository (its scripts/vm/ boots the VM)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, err := os.Stat(*bin); err != nil {
		fmt.Fprintf(stderr, "vtrace-matrix: %v (run make build)\n", err)
		return 2
	}
	var rows []*row
	for _, c := range expect.Cases {
		for _, b := range expect.Builds {
			if !expect.Built(c.Target, b) {
				continue // targets.mk has no C++ compiler for this build
			}
			if (*onlyBuild == "" || b == *onlyBuild) && (*onlyTarget == "" || c.Target == *onlyTarget) {
				rows = append(rows, &row{c: c, build: b})
			}
		}
	}
	if len(rows) == 0 {
		fmt.Fprintln(stderr, "vtrace-matrix: no build/target matches")
		return 2
	}
	i386Where := *i386Mode
	switch *i386Mode {
	case "native", "vm":
	case "auto":
		i386Where = "native"
		if why := i386Refused(*dir); why != "" {
			fmt.Fprintf(stderr, "vtrace-matrix: this kernel cannot run i386 programs (%s): their rows run in the qemu VM\n", why)
			i386Where = "vm"
		}
	default:
		fmt.Fprintf(stderr, "vtrace-matrix: -i386 %q: want auto, native or vm\n", *i386Mode)
		return 2
	}
	var inVM []*row
	for _, r := range rows {
		r.where = "native"
		if expect.I386(r.build) {
			r.where = i386Where
		}
		if r.where == "vm" {
			inVM = append(inVM, r)
		}
	}
	start := time.Now()
	vmDone := make(chan struct{})
	go func() {
		defer close(vmDone)
		if len(inVM) > 0 {
			traceInVM(*root, *bin, *dir, inVM)
		}
	}()
	work := make(chan *row)
	var wg sync.WaitGroup
	for i := 0; i < max(*jobs, 1); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				r.trace(*bin, *dir)
			}
		}()
	}
	for _, r := range rows {
		if r.where == "native" {
			work <- r
		}
	}
	close(work)
	wg.Wait()
	<-vmDone
	return print(stdout, rows, time.Since(start))
}

// i386Refused returns "" when this kernel runs i386 programs, else why not:
// execve answers ENOEXEC (IA-32 emulation is off). Any other failure (the
// probe not built) is left to the rows themselves to report.
func i386Refused(dir string) string {
	p := filepath.Join(dir, "gcc-O0-m32-static", "goodvfork_exit")
	if err := exec.Command(p).Run(); errors.Is(err, syscall.ENOEXEC) {
		return err.Error()
	}
	return ""
}

// traceInVM runs rows in one boot of the qemu VM.
func traceInVM(root, bin, dir string, rows []*row) {
	var jobs []*vmharness.Job
	for _, r := range rows {
		jobs = append(jobs, &vmharness.Job{Build: r.build, Name: r.c.Target, Args: r.c.Args,
			Flags: append([]string{"-q"}, expect.RunFlags(r.c)...)})
	}
	boot := vmharness.Start(vmharness.Config{
		Root: root, Vtrace: bin,
		Target: func(build, name string) (string, error) {
			p := filepath.Join(dir, build, name)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("%s missing (run make targets)", p)
			}
			return p, nil
		},
	}, jobs)
	for i, r := range rows {
		switch {
		case boot.Skip != "":
			r.where = "not run: the VM cannot be used here: " + boot.Skip
			continue
		case boot.Fatal != "":
			r.err = fmt.Errorf("VM: %s", boot.Fatal)
			continue
		}
		run := boot.Runs[jobs[i].Key()]
		if run == nil || run.Err != "" {
			why := "no result"
			if run != nil {
				why = run.Err + "; vtrace said: " + strings.TrimSpace(run.Stderr)
			}
			if boot.QemuErr != nil {
				why += fmt.Sprintf(" (qemu: %v; run.sh exits 124 when its %d s limit killed it)", boot.QemuErr, vmharness.BootTimeout)
			}
			r.err = fmt.Errorf("VM: %s", why)
			continue
		}
		r.sum = expect.Summarize(run.Events)
		r.bad = expect.For(r.c, r.build).Check(r.sum)
		r.checkLog(run.Files["log.jsonl"])
		if want := wantExit(run.Events); run.Exit != want {
			r.bad = append(r.bad, fmt.Sprintf("vtrace exit status %d, want %d (README \"Exit status\", from the log)", run.Exit, want))
		}
		for _, l := range run.Leftovers {
			r.bad = append(r.bad, "left behind in the VM: "+l)
		}
	}
}

func (r *row) trace(bin, dir string) {
	prog := filepath.Join(dir, r.build, r.c.Target)
	if _, err := os.Stat(prog); err != nil {
		r.err = fmt.Errorf("%s missing (run make targets)", prog)
		return
	}
	logf, err := os.CreateTemp("", "vtrace-matrix-*.jsonl")
	if err != nil {
		r.err = err
		return
	}
	logf.Close()
	defer os.Remove(logf.Name())
	args := append(append(append([]string{"run", "-q", "-o", logf.Name()}, expect.RunFlags(r.c)...), "--", prog), r.c.Args...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr // the target's own output goes nowhere
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		r.err = err
		return
	}
	raw, err := os.ReadFile(logf.Name())
	if err != nil {
		r.err = err
		return
	}
	evs, err := event.ReadLog(bytes.NewReader(raw))
	if err != nil {
		r.err = fmt.Errorf("%v; vtrace said: %s", err, strings.TrimSpace(stderr.String()))
		return
	}
	r.sum = expect.Summarize(evs)
	r.bad = expect.For(r.c, r.build).Check(r.sum)
	r.checkLog(raw)
	code := 0
	if ee != nil {
		code = ee.ExitCode()
	}
	if want := wantExit(evs); code != want {
		r.bad = append(r.bad, fmt.Sprintf("vtrace exit status %d, want %d (README \"Exit status\", from the log)", code, want))
	}
}

// wantExit is vtrace's exit status by the README's contract for the run a
// complete log tells: 1 for a violation, 124 when a budget stopped the
// run, 128+N when signal N interrupted it, else the program's own status
// (128+N for a death by signal N).
func wantExit(evs []event.Event) int {
	v := evs[len(evs)-1].(*event.Verdict)
	switch {
	case v.Verdict == event.Violation:
		return 1
	case v.Incomplete == "interrupt":
		return 128 + int(unix.SIGINT)
	case v.Incomplete != "":
		return 124
	}
	for _, ev := range evs {
		if e, ok := ev.(*event.Exit); ok && e.Main {
			if e.Status == "exited" && e.Code != nil {
				return *e.Code
			}
			return 128 + event.SignalNum(e.Signal)
		}
	}
	return -1 // no exit of the program: no status vtrace could pass on
}

// checkLog validates the row's log against docs/log.schema.json and the
// documented event order: a log that breaks its contract fails the row.
func (r *row) checkLog(raw []byte) {
	problems, err := logcheck.Check(bytes.NewReader(raw))
	if err != nil {
		r.bad = append(r.bad, "log: "+err.Error())
	}
	for _, p := range problems {
		r.bad = append(r.bad, "log: "+p.String())
	}
}

func print(w io.Writer, rows []*row, took time.Duration) int {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tBUILD\tWHERE\tVFORKS\tSLOT (BEFORE → AFTER)\tWRITER\tPARENT LANDING\tFATE\tVERDICT\tOK")
	var failed, notRun, pending int
	type whyKey struct{ name, why string }
	whys := map[whyKey][]string{} // case and reason → builds
	var whyOrder []whyKey
	var notes []string
	for _, r := range rows {
		s := r.sum
		ok := "✓"
		e := expect.For(r.c, r.build)
		switch {
		case r.notRun():
			ok, notRun = "-", notRun+1
		case r.err == nil && len(r.bad) > 0 && e.Pending != "":
			// The true expectation, which today's engine does not meet
			// yet: reported, not failed (targets/expect, Pending).
			ok, pending = "…", pending+1
		case r.err != nil || len(r.bad) > 0:
			ok, failed = "✗", failed+1
		case e.Pending != "":
			ok, failed = "✗", failed+1
			r.bad = []string{"as expected although marked pending: remove Pending (" + e.Pending + ")"}
		}
		verdict := s.Verdict
		if s.Incomplete != "" {
			verdict += " (" + s.Incomplete + ")"
		}
		where := r.where
		if r.notRun() {
			where = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.c.Name(), r.build, where, dash(s.Vforks),
			or(s.Slot), or(s.Writer), or(s.Landing), or(s.Fate), or(verdict), ok)
		if r.err != nil {
			notes = append(notes, fmt.Sprintf("✗ %s %s: %v", r.c.Name(), r.build, r.err))
		}
		for _, b := range r.bad {
			notes = append(notes, fmt.Sprintf("%s %s %s: %s", ok, r.c.Name(), r.build, b))
		}
		if why := e.Why; why != "" {
			k := whyKey{r.c.Name(), why}
			if whys[k] == nil {
				whyOrder = append(whyOrder, k)
			}
			whys[k] = append(whys[k], r.build)
		}
	}
	tw.Flush()
	if notRun > 0 {
		for _, r := range rows {
			if r.notRun() {
				fmt.Fprintf(w, "\n%d i386 rows %s\n", notRun, r.where)
				break
			}
		}
	}
	if len(whys) > 0 {
		fmt.Fprintln(w, "\nWhere a build changes the story (targets/expect):")
		for _, k := range whyOrder {
			fmt.Fprintf(w, "  %s in %s: %s\n", k.name, strings.Join(whys[k], ", "), k.why)
		}
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	fmt.Fprintf(w, "\n%d rows, %d as expected, %d not, %d pending (… an engine fix they wait for, targets/expect), %d not run here (%s)\n", len(rows),
		len(rows)-failed-notRun-pending, failed, pending, notRun, took.Round(time.Second))
	if failed > 0 || notRun > 0 { // a table with holes is no pass either
		return 1
	}
	return 0
}

func or(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func dash(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}
