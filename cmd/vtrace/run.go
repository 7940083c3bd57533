package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/vtrace/vtrace/tracer"
	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/report"
)

// version is set at build time (-ldflags "-X main.version=…").
var version = "0.1.0-dev"

// Exit statuses of vtrace itself (README.md "Exit status"). With no
// violation vtrace exits with the traced program's own status, so its own
// codes sit where programs rarely exit: 124-127 follow timeout(1) and
// env(1) (124 timed out, 125 the wrapper failed, 126 found but cannot be
// run, 127 not found), 74 is sysexits.h's EX_IOERR, 128+N a death by (or
// an interrupt with) signal N as a shell reports it.
const (
	exitOK        = 0   // no violation and the program exited 0
	exitViolation = 1   // at least one violation (--error-exitcode changes it)
	exitLogWrite  = 74  // the log could not be created or written (EX_IOERR)
	exitBudget    = 124 // no violation seen, but a budget stopped the run
	exitUsage     = 125 // bad command line
	exitCannotRun = 126 // could not trace: ptrace refused, not an executable, i386 unsupported, internal error
	exitNotFound  = 127 // the program was not found
	exitSignal    = 128 // + N: the program died of signal N, or signal N interrupted the run
)

// exitTable is the exit status contract, shown by `vtrace run --help` and
// in README.md (keep both in step).
const exitTable = `Exit status:
  0-255  no violation: the program's own exit status, or 128+N if it was
         killed by signal N (as a shell reports it: SIGSEGV gives 139)
  1      at least one violation (--error-exitcode N: N instead)
  124    no violation seen, but a budget (--max-steps, --max-vforks,
         --timeout) stopped the run and vtrace killed the program
  128+N  no violation seen, but signal N interrupted the run (SIGINT 130,
         SIGTERM 143, SIGHUP 129); vtrace killed the program
  74     the log could not be created or written (disk full, closed pipe);
         the program ran to its end, the verdict is on stderr
  125    usage error (nothing was run)
  126    could not trace: ptrace not permitted, not an executable, the
         kernel cannot run it (i386), an internal error (vtrace still not
         finished 2 s after --timeout or a signal: the run was ended
         without it, the traced processes killed)
  127    the program was not found`

// usageError is a command-line mistake (exit 125).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// traceError is a run that could not start, or that vtrace gave up (exit
// 126, or 127 when the program was not found).
type traceError struct {
	err      error
	notFound bool
}

func (e traceError) Error() string { return e.err.Error() }
func (e traceError) Unwrap() error { return e.err }

// logError is a log that could not be created or written (exit 74).
type logError struct{ err error }

func (e logError) Error() string { return "log write failed: " + e.err.Error() }
func (e logError) Unwrap() error { return e.err }

// exitStatus ends vtrace with a status it has already explained (the
// report and the verdict say why): the program's own, a violation's, a
// stopped run's. main prints nothing more for it.
type exitStatus int

func (e exitStatus) Error() string { return "exit status " + strconv.Itoa(int(e)) }

// interrupted is the cause of a run's context cancelled by a signal (main).
type interrupted struct{ sig unix.Signal }

func (e interrupted) Error() string { return "interrupted by " + unix.SignalName(e.sig) }

// exitCode maps run's error to vtrace's exit status. An error that is none
// of the above came from the command line parser (an unknown command, a
// missing argument): a usage error.
func exitCode(err error) int {
	var (
		st exitStatus
		te traceError
		le logError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &st):
		return int(st)
	case errors.As(err, &le):
		return exitLogWrite
	case errors.Is(err, errBadLog):
		return exitCannotRun
	case errors.As(err, &te):
		if te.notFound {
			return exitNotFound
		}
		return exitCannotRun
	}
	return exitUsage
}

// silent reports whether main should print nothing more for err.
func silent(err error) bool {
	var st exitStatus
	return err == nil || errors.As(err, &st)
}

// runOptions are the flags of `vtrace run`.
type runOptions struct {
	outFile, colorMode, cpu, watch string
	jsonOut, step, traceInsns      bool
	noASLR, quiet, verbose, github bool
	fullWatch                      bool
	maxSteps, maxStorySteps        int64
	maxVforks, maxViolations       int
	timeout                        time.Duration
	onBudget                       string
	afterExit                      string
	errorExitcode                  int
	evidence                       evidenceFiles // --sarif, --junit, --html (report.go)
}

// run is the whole CLI: it parses args (without the program name) and runs
// the command, writing to stdout and stderr. main maps its error to the exit
// code; tests call it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRootCmd(stdout, stderr, args)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// newRootCmd builds the command tree for args. A run (`vtrace run ...`,
// the command that counts for speed) gets the run command alone: building
// the others, their flags and cobra's completion commands cost a run 1% of
// its CPU (issue 15), and nothing of them shows in a run, its help or its
// errors. Every other command line gets the whole tree.
func newRootCmd(stdout, stderr io.Writer, args []string) *cobra.Command {
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
	if len(args) > 0 && args[0] == "run" {
		root.CompletionOptions.DisableDefaultCmd = true
		root.AddCommand(newRunCmd(stdout, stderr))
		return root
	}
	root.AddCommand(newRunCmd(stdout, stderr), newVersionCmd(stdout))
	root.AddCommand(newReportCmd(stdout, stderr))
	root.AddCommand(newDiffCmd(stdout, stderr))
	root.AddCommand(newAttachCmd(stdout, stderr))
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
	o := runOptions{timeout: tracer.DefaultTimeout}
	cmd := &cobra.Command{
		Use:   "run [flags] [--] PROGRAM [ARGS...]",
		Short: "trace a program from exec, following every vfork",
		Long: `Trace PROGRAM from its exec, following every vfork of it and of the programs it
starts, and tell each vfork's story on stderr: a warning or a violation in
full, clean vforks counted per call site; the run ends with a table per vfork
call site and the verdict. The program's own output is left alone, except
that with the log on stdout (--json, -o -) the program's stdout goes to
vtrace's stderr, so that stdout holds only JSON Lines.

Under GitHub Actions (GITHUB_ACTIONS=true, or --github) vtrace also appends
a markdown summary to $GITHUB_STEP_SUMMARY and prints up to 10 ::error /
::warning workflow commands at the vfork calls' source lines.

` + exitTable,
		Example: `  vtrace run ./badvfork                 # the story on stderr, exit 1 on a violation
  vtrace run -q -- make -j8 test        # only the verdict; make's status when clean
  vtrace run -o vtrace.jsonl -- pytest  # the JSON Lines log to a file (docs/log-format.md)
  vtrace run --json ./prog | jq .       # the log on stdout; prog's stdout goes to stderr`,
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
	o.addFlags(f, false)
	return cmd
}

// addFlags registers the flags of run; attach shares them all but those
// about starting the program (--no-aslr, --cpu) and --on-budget (an
// attached process is always let go).
func (o *runOptions) addFlags(f *pflag.FlagSet, attach bool) {
	f.StringVarP(&o.outFile, "output", "o", "", "write the JSON Lines log to `FILE` (- for stdout)")
	jsonHelp := "write the JSON Lines log to stdout (the program's stdout then goes to stderr); with -o, to FILE"
	if attach {
		jsonHelp = "write the JSON Lines log to stdout; with -o, to FILE"
	}
	f.BoolVar(&o.jsonOut, "json", false, jsonHelp)
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only the verdict line")
	o.evidence.addFlags(f)
	f.BoolVarP(&o.verbose, "verbose", "v", false, "tell every vfork story in full, with every exec and exit")
	f.IntVar(&o.errorExitcode, "error-exitcode", exitViolation, "exit with `N` (1-255) when a violation is found; 0: the program's status regardless")
	f.BoolVar(&o.github, "github", false, "write the GitHub Actions step summary and annotations (default: when GITHUB_ACTIONS=true)")
	f.StringVar(&o.colorMode, "color", "auto", "colour the text story: auto|always|never (auto honours NO_COLOR and needs a terminal)")
	f.BoolVar(&o.step, "step", false, "single-step every instruction of each vfork child (default: fast, depth-guided stepping)")
	f.BoolVar(&o.traceInsns, "trace-insns", false, "with --step, log every child instruction (child_step events)")
	f.Int64Var(&o.maxSteps, "max-steps", tracer.DefaultMaxSteps, "stop the run after `N` single-steps in all (0 = no limit)")
	f.IntVar(&o.maxVforks, "max-vforks", tracer.DefaultMaxVforks, "stop the run at the `N`+1th vfork (0 = no limit)")
	f.IntVar(&o.maxViolations, "max-violations", tracer.DefaultMaxViolations, "stop the run after `N` violating stories (0 = no limit): a program that keeps violating (restarting through a clobbered return address) ends")
	f.Int64Var(&o.maxStorySteps, "max-story-steps", tracer.DefaultMaxStorySteps, "cut one story short after `N` single-steps; its tasks run on and the run goes on (0 = no limit)")
	f.StringVar(&o.afterExit, "after-exit", "release", "processes the program leaves running when it ends: `release` them to run on untraced, so that vtrace ends with the program, or follow them to their end (as strace -f)")
	f.Var(durationFlag{&o.timeout}, "timeout", "stop the run after this `duration`, e.g. 90s or 10m (0 = none)")
	if !attach {
		f.StringVar(&o.onBudget, "on-budget", "kill", "when a budget stops the run: `kill` the traced processes, or detach and let them run on untraced")
		f.BoolVar(&o.noASLR, "no-aslr", false, "disable address space randomisation for reproducible addresses")
		f.StringVar(&o.cpu, "cpu", "", "pin vtrace and the traced program to `CPU` (a number), auto (one CPU of the allowed set) or none (default: none; with --step, auto: a measurement mode)")
	}
	f.BoolVar(&o.fullWatch, "full-watch", false, "in fast mode, watch all of the parent's memory outside the stack (up to 1 MiB) in glibc's posix_spawn children too; by default only their TLS block (errno) is, as no code of the program runs there (--step always watches all)")
	f.StringVar(&o.watch, "watchpoints", "auto", "hardware watchpoints: auto (probe; where they fire, fast mode arms DR0-DR3 in each vfork child to name writers inside callees) or off")
}

// durationFlag is --timeout: a duration with a unit. A bare number is
// refused ("5" could mean seconds or nanoseconds), except 0.
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string { return f.d.String() }
func (f durationFlag) Type() string   { return "duration" }
func (f durationFlag) Set(s string) error {
	if _, err := strconv.ParseFloat(s, 64); err == nil && strings.Trim(s, "0.+-") != "" {
		return fmt.Errorf("use a unit, e.g. %ss", s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration with a unit, e.g. 5s, 90s, 10m")
	}
	if d < 0 {
		return errors.New("must not be negative (0: no time limit)")
	}
	*f.d = d
	return nil
}

// check refuses flag combinations and values that cannot mean anything.
func (o *runOptions) check() error {
	switch {
	case o.traceInsns && !o.step:
		return usageError{"--trace-insns needs --step"}
	case o.watch != "auto" && o.watch != "off":
		return usageError{fmt.Sprintf("--watchpoints %q: want auto or off", o.watch)}
	case o.quiet && o.verbose:
		return usageError{"-q and -v together: choose one"}
	case o.maxSteps < 0:
		return usageError{fmt.Sprintf("--max-steps %d: must not be negative (0: no limit)", o.maxSteps)}
	case o.maxVforks < 0:
		return usageError{fmt.Sprintf("--max-vforks %d: must not be negative (0: no limit)", o.maxVforks)}
	case o.maxViolations < 0:
		return usageError{fmt.Sprintf("--max-violations %d: must not be negative (0: no limit)", o.maxViolations)}
	case o.maxStorySteps < 0:
		return usageError{fmt.Sprintf("--max-story-steps %d: must not be negative (0: no limit)", o.maxStorySteps)}
	case o.afterExit != "release" && o.afterExit != "follow":
		return usageError{fmt.Sprintf("--after-exit %q: want release or follow", o.afterExit)}
	case o.onBudget != "kill" && o.onBudget != "detach":
		return usageError{fmt.Sprintf("--on-budget %q: want kill or detach", o.onBudget)}
	case o.errorExitcode < 0 || o.errorExitcode > 255:
		return usageError{fmt.Sprintf("--error-exitcode %d: want 1-255 (or 0: violations do not change the exit status)", o.errorExitcode)}
	}
	return nil
}

func runTrace(ctx context.Context, o *runOptions, args []string, stdout, stderr io.Writer) (err error) {
	if err := o.check(); err != nil {
		return err
	}
	// Writers that are not files (tests) get the program's output through
	// pipes copied by goroutines, while the report writes to them too.
	stdout, stderr = lockedWriter(stdout), lockedWriter(stderr)
	colored, err := wantColor(o.colorMode, stderr)
	if err != nil {
		return err
	}
	pin, err := parseCPU(o.cpu, o.step)
	if err != nil {
		return err
	}
	prog := args[0]
	path, lookErr := exec.LookPath(prog)
	log, err := openLog(o, path, lookErr == nil, stdout)
	if err != nil {
		return err
	}
	if lookErr != nil {
		notFound := errors.Is(lookErr, exec.ErrNotFound) || errors.Is(lookErr, fs.ErrNotExist)
		err := traceError{fmt.Errorf("%w: %s: %v", tracer.ErrCannotTrace, prog, unwrapExecErr(lookErr)), notFound}
		return log.fail(err, nil)
	}

	ts := o.newSinks(log, colored, stderr)
	// A bug in vtrace (a renderer, a sink) must still end the log with
	// its error event and a verdict, and exit with the documented code
	// (126, an internal error), not Go's crash status 2 (usage).
	defer func() {
		if r := recover(); r != nil {
			err = log.fail(traceError{err: fmt.Errorf("internal error: %v", r)}, ts.sum)
		}
	}()

	// The program's stdout is vtrace's, unless the log takes it.
	progOut := stdout
	if log != nil && log.f == nil {
		progOut = stderr
	}
	if ctx.Err() != nil { // interrupted before the program started
		_ = log.fail(fmt.Errorf("before the program started: %w", context.Cause(ctx)), ts.sum)
		return exitStatus(exitSignal + interruptSignal(ctx, nil))
	}
	files, closeFiles, err := targetFiles(progOut, stderr)
	if err != nil {
		return log.fail(traceError{err: err}, ts.sum)
	}
	cfg := o.engineConfig(ts, pin)
	cfg.Path, cfg.Argv, cfg.Env, cfg.Files, cfg.NoASLR = path, args, os.Environ(), files, o.noASLR
	// The program's output copied through a pipe (writers that are not
	// files) is all in before the report's last words: the run's verdict
	// comes after the program has ended.
	cfg.Sink = report.Multi{drainAtVerdict(closeFiles), cfg.Sink}
	guardSinks(&cfg, ts, log, stderr) // watchdog.go
	res, err := tracer.Run(ctx, cfg)
	closeFiles()
	return o.end(ctx, ts, log, res, err, stderr)
}

// traceSinks are the sinks of a run's events: the story narrator, the
// summary (what is said at the end: the exit status, the GitHub summary),
// the evidence files, the log, the text report, the GitHub output.
type traceSinks struct {
	sum   *report.Summary
	sinks report.Multi
	gh    *githubOut
}

// newSinks sets up the sinks the options ask for (run and attach alike).
func (o *runOptions) newSinks(log *runLog, colored bool, stderr io.Writer) traceSinks {
	ts := traceSinks{sum: &report.Summary{}}
	ts.sinks = report.Multi{storyNarrator{&report.Narrator{}}, ts.sum}
	ts.sinks = append(ts.sinks, o.evidence.sinks()...)
	if log != nil {
		ts.sinks = append(ts.sinks, log.jsonl)
	}
	detail := report.Default
	switch {
	case o.quiet:
		detail = report.Quiet
	case o.verbose:
		detail = report.Verbose
	}
	ts.sinks = append(ts.sinks, report.NewTextOptions(stderr, report.TextOptions{Color: colored, Detail: detail, Width: termWidth(stderr)}))
	if o.github || os.Getenv("GITHUB_ACTIONS") == "true" {
		ts.gh = &githubOut{}
		ts.sinks = append(ts.sinks, ts.gh)
	}
	return ts
}

// engineConfig is the engine's configuration from the options run and
// attach share; the caller adds what to trace.
func (o *runOptions) engineConfig(ts traceSinks, pin int) tracer.Config {
	return tracer.Config{
		Mode: map[bool]tracer.Mode{false: tracer.Fast, true: tracer.Step}[o.step], TraceInsns: o.traceInsns,
		CPU: pin, Watchpoints: o.watch, FullWatch: o.fullWatch,
		MaxSteps: o.maxSteps, MaxVforks: o.maxVforks, Timeout: o.timeout,
		MaxViolations: o.maxViolations, MaxStorySteps: o.maxStorySteps, OnBudget: o.onBudget, AfterExit: o.afterExit,
		Version: version, Sink: ts.sinks, WakeCommand: wakeCommand(), Debug: os.Getenv("VTRACE_DEBUG") != "",
		// Symbols are read ahead on another CPU; with one, that would
		// only slow the program down.
		Prefetch: runtime.NumCPU() > 1,
	}
}

// end finishes a traced run (run and attach): the GitHub output, the log,
// the evidence files, and vtrace's exit status.
func (o *runOptions) end(ctx context.Context, ts traceSinks, log *runLog, res tracer.Result, err error, stderr io.Writer) error {
	if err != nil {
		return log.fail(traceError{err: err, notFound: errors.Is(err, tracer.ErrNoProcess)}, ts.sum)
	}
	if ts.gh != nil {
		ts.gh.finish(ts.sum, stderr)
	}
	if err := log.close(); err != nil {
		return err
	}
	if err := o.evidence.write(); err != nil {
		return err
	}
	return runStatus(ctx, ts.sum, res, o.errorExitcode)
}

// storyNarrator passes a Narrator only what it narrates from: the events
// of stories and the run's verdict. Its Collector would otherwise keep
// every exec and exit event of the run (two per spawned process: 6 MB
// over 20,000 spawns), and vtrace's memory must stay flat however many
// processes a build starts.
type storyNarrator struct{ n *report.Narrator }

func (s storyNarrator) Emit(ev event.Event) error {
	if _, ok := ev.(*event.Verdict); ok || report.StoryOf(ev) != 0 {
		return s.n.Emit(ev)
	}
	return nil
}

// runStatus is vtrace's exit status for a run that went to its end
// (README.md "Exit status").
func runStatus(ctx context.Context, sum *report.Summary, res tracer.Result, errorExitcode int) error {
	if res.Verdict == event.Violation && errorExitcode != 0 {
		return exitStatus(errorExitcode)
	}
	switch res.Incomplete {
	case "":
	case "interrupt", "timeout":
		if sum.Run.Attach != nil {
			return nil // attach: let go, with no violation: the process runs on (attach.go)
		}
		if res.Incomplete == "timeout" {
			return exitStatus(exitBudget)
		}
		return exitStatus(exitSignal + interruptSignal(ctx, sum.Run.Budget))
	default:
		return exitStatus(exitBudget)
	}
	e := sum.Run.MainExit()
	switch {
	case e == nil:
		return traceError{err: errors.New("the program's end was not seen")}
	case e.Status == "exited" && e.Code != nil:
		if *e.Code == 0 {
			return nil
		}
		return exitStatus(*e.Code)
	}
	// A real-time signal is named SIGRTMIN+N in the log (event.SignalName).
	return exitStatus(exitSignal + event.SignalNum(e.Signal))
}

// interruptSignal is the number of the signal that interrupted the run:
// the cause of the context's end (main), else the budget event's limit
// (the engine writes the signal's description there); SIGINT when the run
// was cancelled otherwise.
func interruptSignal(ctx context.Context, b *event.Budget) int {
	var in interrupted
	if errors.As(context.Cause(ctx), &in) {
		return int(in.sig)
	}
	if b != nil {
		for _, sig := range []unix.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP} {
			if b.Limit == sig.String() {
				return int(sig)
			}
		}
	}
	return int(unix.SIGINT)
}

// runLog is the JSON Lines log of a run: a file, or stdout.
type runLog struct {
	jsonl *report.JSONL
	f     *os.File // nil: stdout
	name  string
}

// openLog opens the log -o and --json ask for (nil if none). It refuses to
// write over the program itself (-o PROG), checked before anything is
// created or truncated.
func openLog(o *runOptions, progPath string, progFound bool, stdout io.Writer) (*runLog, error) {
	name := o.outFile
	if name == "" && o.jsonOut {
		name = "-"
	}
	switch name {
	case "":
		return nil, nil
	case "-":
		return &runLog{jsonl: report.NewJSONL(stdout), name: "stdout"}, nil
	}
	if progFound {
		if fi, err := os.Stat(name); err == nil {
			if pi, err := os.Stat(progPath); err == nil && os.SameFile(fi, pi) {
				return nil, usageError{fmt.Sprintf("-o %s is the program itself: refusing to write the log over it", name)}
			}
		}
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return nil, logError{err}
	}
	return &runLog{jsonl: report.NewJSONL(f), f: f, name: name}, nil
}

// fail ends the log of a run that could not start, or that vtrace gave up
// on, with an error event and a verdict (incomplete "error"), so that a log
// that was asked for always exists and ends with a verdict; then returns
// err (or the log's own failure).
func (l *runLog) fail(err error, sum *report.Summary) error {
	if l == nil {
		return err
	}
	kind := "cannot_trace"
	var (
		te traceError
		in interrupted
	)
	switch {
	case errors.As(err, &te) && te.notFound:
		kind = "not_found"
	case errors.As(err, &in):
		kind = "interrupted"
	case !errors.Is(err, tracer.ErrCannotTrace):
		kind = "internal"
	}
	v := &event.Verdict{Header: event.Header{V: event.Version, Event: "verdict"}, Verdict: event.Clean, Incomplete: "error",
		Explanation: "vtrace could not trace the program: " + err.Error()}
	pid := 0 // a run that could not start
	if sum != nil {
		v.Verdict, v.Vforks, v.Violations, v.Warnings = sum.Judgement(), sum.Vforks, sum.Violations, sum.Warnings
		if sum.Run.Start != nil {
			pid = sum.Run.Start.PID // a run given up on: its program
		}
	}
	v.PID = pid
	_ = l.jsonl.Emit(&event.Error{Header: event.Header{V: event.Version, Event: "error", PID: pid}, Kind: kind, Msg: err.Error()})
	_ = l.jsonl.Emit(v)
	if lerr := l.close(); lerr != nil {
		return fmt.Errorf("%w; and %w", err, lerr)
	}
	return err
}

// close flushes and closes the log, and says if any write failed. A log
// file left empty by a failed write is removed: no empty log is left
// behind.
func (l *runLog) close() error {
	if l == nil {
		return nil
	}
	err := l.jsonl.Flush()
	if l.f != nil {
		if cerr := l.f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			if fi, serr := os.Stat(l.name); serr == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
				_ = os.Remove(l.name)
			}
		}
	}
	if err != nil {
		return logError{fmt.Errorf("%w (the trace went on to its end; the log stopped there)", err)}
	}
	return nil
}

// termWidth is the width of w if it is a terminal, else 0 (no wrapping).
func termWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return width
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

// parseCPU turns --cpu into a CPU number or -1 (no pinning). Unset, a run
// is not pinned (a traced `make -j8` keeps its cores), except with --step:
// a measurement mode, steadier on one CPU.
func parseCPU(s string, step bool) (int, error) {
	if s == "" {
		s = "none"
		if step {
			s = "auto"
		}
	}
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

// syncWriter serialises the writes of several goroutines to one writer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// lockedWriter returns w itself if it is a file (the kernel orders the
// writes), else w behind a lock.
func lockedWriter(w io.Writer) io.Writer {
	if _, ok := w.(*os.File); ok {
		return w
	}
	return &syncWriter{w: w}
}

// targetFiles gives the traced program real file descriptors for stdin,
// stdout and stderr: the writers themselves when they are files, otherwise
// pipes copied into them (tests).
func targetFiles(stdout, stderr io.Writer) ([]*os.File, func(), error) {
	files := []*os.File{os.Stdin, nil, nil}
	var closers []func()
	pipes := map[io.Writer]*os.File{}
	for i, w := range []io.Writer{stdout, stderr} {
		if f, ok := w.(*os.File); ok {
			files[i+1] = f
			continue
		}
		if pw := pipes[w]; pw != nil { // stdout and stderr to one writer: one pipe, one order
			files[i+1] = pw
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
		files[i+1], pipes[w] = pw, pw
		var once sync.Once
		closers = append(closers, func() {
			once.Do(func() {
				pw.Close()
				// Grandchildren may still hold the pipe: do not wait forever.
				select {
				case <-done:
				case <-time.After(2 * time.Second):
				}
				r.Close()
			})
		})
	}
	return files, func() {
		for _, c := range closers {
			c()
		}
	}, nil
}

// drainAtVerdict is a sink that, at the run's verdict (the program has
// ended), closes vtrace's ends of the program's output pipes and waits for
// their copies: the sinks after it then write below the program's output.
type drainAtVerdict func()

func (d drainAtVerdict) Emit(ev event.Event) error {
	if _, ok := ev.(*event.Verdict); ok {
		d()
	}
	return nil
}

func unwrapExecErr(err error) string {
	var ee *exec.Error
	if errors.As(err, &ee) {
		if errors.Is(ee.Err, exec.ErrNotFound) {
			return "not found in PATH"
		}
		return strings.TrimPrefix(ee.Err.Error(), "exec: ")
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
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
