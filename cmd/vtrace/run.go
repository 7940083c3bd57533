package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer"
	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/report"
)

// version is set at build time (-ldflags "-X main.version=…").
var version = "0.1.0-dev"

// Exit codes (documented in README.md).
const (
	exitOK         = 0 // no violation (clean or warnings only)
	exitViolation  = 1 // at least one vfork violation
	exitUsage      = 2 // bad command line
	exitCannotRun  = 3 // could not trace: ptrace refused, not an executable, i386 unsupported, …
	exitIncomplete = 4 // no violation seen, but a budget stopped the run first
)

// usageError is a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// errViolation makes `run` exit 1 without printing anything more.
var errViolation = errors.New("violation found")

// errIncomplete makes `run` exit 4: no violation seen before a budget
// stopped the run.
var errIncomplete = errors.New("run stopped by a budget")

func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errViolation):
		return exitViolation
	case errors.Is(err, errIncomplete):
		return exitIncomplete
	case errors.As(err, &ue):
		return exitUsage
	}
	return exitCannotRun
}

// runOptions are the flags of `vtrace run`.
type runOptions struct {
	outFile, colorMode, cpu, watch string
	jsonOut, step, traceInsns      bool
	noASLR, quiet                  bool
	maxSteps, maxStorySteps        int64
	maxVforks, maxViolations       int
	timeout                        time.Duration
	onBudget                       string
	evidence                       evidenceFiles // --sarif, --junit, --html (report.go)
}

// run is the whole CLI: it parses args (without the program name) and runs
// the command, writing to stdout and stderr. main maps its error to the exit
// code; tests call it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "vtrace",
		Short: "watch a vfork child corrupt its parent, live",
		Long: `vtrace runs a compiled program under ptrace, follows every vfork (and clone/clone3
with CLONE_VFORK), and shows how a child that breaks vfork's rules corrupts its
parent: the parent's return-address and saved-register slots before and after,
the child instruction that overwrote each, and where the parent lands.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("vtrace {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err.Error()} })
	root.AddCommand(newRunCmd(stdout, stderr), newVersionCmd(stdout))
	root.AddCommand(newReportCmd(stdout, stderr))
	root.AddCommand(newDiffCmd(stdout, stderr))
	return root
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(stdout, "vtrace %s\n", version)
			return nil
		},
	}
}

func newRunCmd(stdout, stderr io.Writer) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run [flags] [--] PROGRAM [ARGS...]",
		Short: "trace a program from exec, following every vfork",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{"run: no program given"}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTrace(cmd.Context(), &o, args, stdout, stderr)
		},
	}
	f := cmd.Flags()
	// Flags stop at the program: `vtrace run ls -l` passes -l to ls.
	f.SetInterspersed(false)
	f.StringVarP(&o.outFile, "output", "o", "", "write the JSON Lines log to `FILE`")
	f.BoolVar(&o.jsonOut, "json", false, "write the JSON Lines log to stdout (the text story stays on stderr; with -o, to FILE)")
	f.StringVar(&o.colorMode, "color", "auto", "colour the text story: auto|always|never (auto honours NO_COLOR and needs a terminal)")
	f.BoolVar(&o.step, "step", false, "single-step every instruction of each vfork child (default: fast, depth-guided stepping)")
	f.BoolVar(&o.traceInsns, "trace-insns", false, "with --step, log every child instruction (child_step events)")
	f.Int64Var(&o.maxSteps, "max-steps", tracer.DefaultMaxSteps, "stop the run after `N` single-steps in all (0 = no limit)")
	f.IntVar(&o.maxVforks, "max-vforks", tracer.DefaultMaxVforks, "stop the run at the `N`+1th vfork (0 = no limit)")
	f.IntVar(&o.maxViolations, "max-violations", tracer.DefaultMaxViolations, "stop the run after `N` violating stories (0 = no limit)")
	f.Int64Var(&o.maxStorySteps, "max-story-steps", tracer.DefaultMaxStorySteps, "cut a story short after `N` single-steps; its tasks run on (0 = no limit)")
	f.StringVar(&o.onBudget, "on-budget", "kill", "when a budget stops the run: kill the traced processes, or detach and let them run")
	f.DurationVar(&o.timeout, "timeout", tracer.DefaultTimeout, "stop the run after this `duration` (0 = none)")
	f.BoolVar(&o.noASLR, "no-aslr", false, "disable address space randomisation for reproducible addresses")
	f.StringVar(&o.cpu, "cpu", "auto", "pin vtrace and the traced program to `CPU` (a number), auto (one CPU of the allowed set) or none")
	f.StringVar(&o.watch, "watchpoints", "auto", "hardware watchpoints: auto (probe; where they fire, fast mode arms DR0-DR3 in each vfork child to name writers inside callees) or off")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only the verdict")
	o.evidence.addFlags(f)
	return cmd
}

func runTrace(ctx context.Context, o *runOptions, args []string, stdout, stderr io.Writer) error {
	if o.traceInsns && !o.step {
		return usageError{"--trace-insns needs --step"}
	}
	if o.onBudget != "kill" && o.onBudget != "detach" {
		return usageError{fmt.Sprintf("--on-budget %q: want kill or detach", o.onBudget)}
	}
	if o.watch != "auto" && o.watch != "off" {
		return usageError{fmt.Sprintf("--watchpoints %q: want auto or off", o.watch)}
	}
	colored, err := wantColor(o.colorMode, stderr)
	if err != nil {
		return err
	}
	pin, err := parseCPU(o.cpu)
	if err != nil {
		return err
	}
	prog := args[0]
	path, err := exec.LookPath(prog)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", tracer.ErrCannotTrace, prog, unwrapExecErr(err))
	}

	sinks := report.Multi{&report.Narrator{}}
	sinks = append(sinks, o.evidence.sinks()...)
	var jsonl *report.JSONL
	if o.outFile != "" || o.jsonOut {
		w := stdout
		if o.outFile != "" {
			f, err := os.Create(o.outFile)
			if err != nil {
				return fmt.Errorf("%w: log file: %v", tracer.ErrCannotTrace, err)
			}
			defer f.Close()
			w = f
		}
		jsonl = report.NewJSONL(w)
		sinks = append(sinks, jsonl)
	}
	// The text story always goes to stderr (-q: the verdict only), also
	// when the JSON log takes stdout.
	sinks = append(sinks, report.NewText(stderr, colored, o.quiet))

	files, closeFiles, err := targetFiles(stdout, stderr)
	if err != nil {
		return err
	}
	res, err := tracer.Run(ctx, tracer.Config{
		Path: path, Argv: args, Env: os.Environ(), Files: files,
		Mode: map[bool]tracer.Mode{false: tracer.Fast, true: tracer.Step}[o.step], TraceInsns: o.traceInsns,
		NoASLR: o.noASLR, CPU: pin, Watchpoints: o.watch,
		MaxSteps: o.maxSteps, MaxVforks: o.maxVforks, Timeout: o.timeout,
		MaxViolations: o.maxViolations, MaxStorySteps: o.maxStorySteps, OnBudget: o.onBudget,
		Version: version, Sink: sinks, WakeCommand: wakeCommand(), Debug: os.Getenv("VTRACE_DEBUG") != "",
		// Symbols are read ahead on another CPU; with one, that would
		// only slow the program down.
		Prefetch: runtime.NumCPU() > 1,
	})
	closeFiles()
	if jsonl != nil {
		_ = jsonl.Flush()
	}
	if err != nil {
		return err
	}
	if err := o.evidence.write(); err != nil {
		return err
	}
	if res.Verdict == event.Violation {
		return errViolation
	}
	if res.Incomplete != "" {
		return errIncomplete
	}
	return nil
}

// wantColor decides whether the text story is coloured.
func wantColor(mode string, w io.Writer) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto":
		if _, set := os.LookupEnv("NO_COLOR"); set {
			return false, nil
		}
		f, ok := w.(*os.File)
		return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())), nil
	}
	return false, usageError{fmt.Sprintf("--color %q: want auto, always or never", mode)}
}

// parseCPU turns --cpu into a CPU number or -1 (no pinning).
func parseCPU(s string) (int, error) {
	switch s {
	case "none", "-1":
		return -1, nil
	case "auto":
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &set); err != nil {
			return -1, nil
		}
		for i := 0; i < 1024; i++ {
			if set.IsSet(i) {
				return i, nil
			}
		}
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, usageError{fmt.Sprintf("--cpu %q: want a CPU number, auto or none", s)}
	}
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) == nil && !set.IsSet(n) {
		return 0, usageError{fmt.Sprintf("--cpu %d: not a CPU this process may run on", n)}
	}
	return n, nil
}

// targetFiles gives the traced program real file descriptors for stdin,
// stdout and stderr: the writers themselves when they are files, otherwise
// pipes copied into them (tests).
func targetFiles(stdout, stderr io.Writer) ([]*os.File, func(), error) {
	files := []*os.File{os.Stdin, nil, nil}
	var closers []func()
	for i, w := range []io.Writer{stdout, stderr} {
		if f, ok := w.(*os.File); ok {
			files[i+1] = f
			continue
		}
		r, pw, err := os.Pipe()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", tracer.ErrCannotTrace, err)
		}
		done := make(chan struct{})
		go func(w io.Writer) {
			_, _ = io.Copy(w, r)
			close(done)
		}(w)
		files[i+1] = pw
		closers = append(closers, func() {
			pw.Close()
			// Grandchildren may still hold the pipe: do not wait forever.
			select {
			case <-done:
			case <-time.After(2 * time.Second):
			}
			r.Close()
		})
	}
	return files, func() {
		for _, c := range closers {
			c()
		}
	}, nil
}

func unwrapExecErr(err error) string {
	var ee *exec.Error
	if errors.As(err, &ee) {
		if errors.Is(ee.Err, exec.ErrNotFound) {
			return "not found in PATH"
		}
		return strings.TrimPrefix(ee.Err.Error(), "exec: ")
	}
	return err.Error()
}

// wakeCommand is vtrace itself run with VTRACE_WAKE set: it exits at once
// (main), which wakes the tracer's wait4 when a run is stopped from outside.
func wakeCommand() []string {
	if self, err := os.Executable(); err == nil {
		return []string{self}
	}
	return nil
}
