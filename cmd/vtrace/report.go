package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/report"
)

// `vtrace report` renders a saved log with the renderers a live run uses,
// and `vtrace run --sarif/--junit/--html` writes the same documents at the
// end of a live run: one set of renderers over events, whether the events
// come from the engine or from a file.

// errBadLog: the log cannot be read (exit 126, like a program vtrace cannot
// trace).
var errBadLog = errors.New("cannot read the log")

// documentFormats are the formats that are written once the run is over.
var documentFormats = map[string]func(opts report.SARIFOptions) report.Document{
	"sarif": func(o report.SARIFOptions) report.Document { return report.NewSARIF(o) },
	"junit": func(report.SARIFOptions) report.Document { return report.NewJUnit() },
	"html":  func(report.SARIFOptions) report.Document { return report.NewHTML() },
}

func newReportCmd(stdout, stderr io.Writer) *cobra.Command {
	var format, out, colorMode, srcRoot string
	var quiet, verbose bool
	cmd := &cobra.Command{
		Use:   "report [flags] LOG.jsonl",
		Short: "render a saved log: text (as the live run printed it), sarif, junit or html",
		Long: `report renders a JSON Lines log written by vtrace run -o/--json with the same
renderers the live run uses. The text is what the live run printed on stderr.
A log whose last line was cut short (a job killed while vtrace wrote it) is
rendered up to that line, with a warning. The exit status is the run's, as
vtrace run gave it: 1 for a violation, 124 when a budget stopped the run
(or the log ends before the run's verdict) with no violation seen, 128+N
when signal N interrupted it, else the program's own status; 125 usage,
126 the log cannot be read.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{"report: want one log file"}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			if quiet && verbose {
				return usageError{"-q and -v together: choose one"}
			}
			detail := report.Default
			switch {
			case quiet:
				detail = report.Quiet
			case verbose:
				detail = report.Verbose
			}
			return runReport(args[0], format, out, colorMode, srcRoot, detail, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "text", "text|markdown|sarif|junit|html")
	f.StringVarP(&out, "output", "o", "", "write to `FILE` instead of stdout")
	f.StringVar(&colorMode, "color", "auto", "colour the text: auto|always|never")
	f.BoolVarP(&quiet, "quiet", "q", false, "text: print only the verdict line")
	f.BoolVarP(&verbose, "verbose", "v", false, "text: tell every story in full, clean ones too")
	f.StringVar(&srcRoot, "source-root", "", "sarif: the repository `DIR` source paths are made relative to (default: the git work tree around the current directory)")
	return cmd
}

func runReport(logPath, format, out, colorMode, srcRoot string, detail report.Detail, stdout, stderr io.Writer) error {
	mk, document := documentFormats[format]
	if !document && format != "text" && format != "markdown" {
		return usageError{fmt.Sprintf("--format %q: want text, markdown, sarif, junit or html", format)}
	}
	in, err := os.Open(logPath)
	if err != nil {
		return fmt.Errorf("%w: %v", errBadLog, err)
	}
	defer in.Close()
	w := stdout
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return fmt.Errorf("%w: %v", errBadLog, err)
		}
		defer f.Close()
		w = f
	}
	// The Narrator tells each story again from its events, as in a live
	// run: the words are the current renderer's, whatever wrote the log.
	var sum report.Summary
	sinks := report.Multi{storyNarrator{&report.Narrator{}}, &sum}
	var doc report.Document
	var text *report.Text
	switch {
	case document:
		doc = mk(sarifOptions(srcRoot))
		sinks = append(sinks, doc)
	case format == "text":
		colored, err := wantColor(colorMode, w)
		if err != nil {
			return err
		}
		text = report.NewTextOptions(w, report.TextOptions{Color: colored, Detail: detail, Width: termWidth(w)})
		sinks = append(sinks, text)
	}
	var end outcome
	sinks = append(sinks, &end)
	lr := event.NewLogReader(in)
	for {
		ev, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %v", errBadLog, logPath, err)
		}
		_ = sinks.Emit(ev)
	}
	if text != nil {
		text.Finish()
	}
	if lr.Truncated != "" {
		fmt.Fprintf(stderr, "vtrace: warning: %s: the log ends in the middle of a line (%s): rendered up to the line before\n", logPath, lr.Truncated)
	}
	if lr.Line() == 0 {
		return fmt.Errorf("%w: %s: empty log", errBadLog, logPath)
	}
	if doc != nil {
		if err := doc.Render(w); err != nil {
			return logError{err}
		}
	}
	if format == "markdown" {
		if err := report.Markdown(w, &sum.Run, &sum.Sites, 0); err != nil {
			return logError{err}
		}
	}
	if end.verdict == nil {
		fmt.Fprintf(stderr, "vtrace: warning: %s: the log ends before the run's verdict: the run did not finish\n", logPath)
	}
	return end.status(&sum)
}

// outcome follows a run's events to its exit code.
type outcome struct {
	verdict   *event.Verdict
	violation bool // a story was judged a violation
}

func (o *outcome) Emit(ev event.Event) error {
	switch e := ev.(type) {
	case *event.VforkVerdict:
		o.violation = o.violation || e.Verdict == event.Violation
	case *event.Verdict:
		o.verdict = e
	}
	return nil
}

// status is the run's exit status as `vtrace run` gave it (README "Exit
// status"); a log without its verdict (the run did not finish) counts as
// stopped, unless a story was already a violation.
func (o *outcome) status(sum *report.Summary) error {
	switch {
	case o.violation || (o.verdict != nil && o.verdict.Verdict == event.Violation):
		return exitStatus(exitViolation)
	case o.verdict == nil:
		return exitStatus(exitBudget)
	case sum.Run.Attach != nil && (o.verdict.Incomplete == "interrupt" || o.verdict.Incomplete == "timeout"):
		return nil // vtrace attach let the process go, with no violation
	case o.verdict.Incomplete == "interrupt":
		return exitStatus(exitSignal + interruptSignal(context.Background(), sum.Run.Budget))
	case o.verdict.Incomplete != "":
		return exitStatus(exitBudget)
	}
	e := sum.Run.MainExit()
	switch {
	case e == nil:
		return traceError{err: fmt.Errorf("%w: the program's end is not in the log", errBadLog)}
	case e.Status == "exited" && e.Code != nil:
		if *e.Code == 0 {
			return nil
		}
		return exitStatus(*e.Code)
	}
	return exitStatus(exitSignal + event.SignalNum(e.Signal))
}

// sarifOptions place SARIF results in the repository: the source root is
// --source-root, else the git work tree around the current directory,
// else the current directory.
func sarifOptions(root string) report.SARIFOptions {
	if root == "" {
		root = gitRoot()
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return report.SARIFOptions{}
	}
	src := &sourceIndex{root: abs}
	return report.SARIFOptions{SourceRoot: abs, Source: src.find}
}

// gitRoot is the nearest directory above the current one that holds .git,
// else the current directory.
func gitRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// sourceIndex finds a source file under the repository: the log names it
// as DWARF's line table does after the engine's filepath.Base
// ("badvfork.c"); code scanning needs its path in the repository
// ("targets/badvfork.c"). A name found at exactly one place is that place;
// one found nowhere or in several places stays as it is.
type sourceIndex struct {
	root  string
	built bool
	paths map[string][]string // base name → repository-relative paths
}

func (s *sourceIndex) find(file string) string {
	if _, err := os.Stat(filepath.Join(s.root, file)); err == nil {
		return filepath.ToSlash(file)
	}
	if !s.built {
		s.built = true
		s.paths = map[string][]string{}
		_ = filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() {
				switch d.Name() {
				case ".git", "build", "node_modules", "vendor", "testdata":
					return filepath.SkipDir
				}
				return nil
			}
			if rel, err := filepath.Rel(s.root, p); err == nil {
				s.paths[d.Name()] = append(s.paths[d.Name()], filepath.ToSlash(rel))
			}
			return nil
		})
	}
	var found []string
	for _, p := range s.paths[filepath.Base(file)] {
		if p == file || strings.HasSuffix(p, "/"+filepath.ToSlash(file)) {
			found = append(found, p)
		}
	}
	sort.Strings(found)
	if len(found) == 1 {
		return found[0]
	}
	return ""
}

// evidenceFiles are what `vtrace run --sarif/--junit/--html` write when
// the run is over, rendered from the run's events as `vtrace report`
// renders a saved log.
type evidenceFiles struct {
	sarif, junit, html, srcRoot string
	docs                        []evidenceDoc
}

type evidenceDoc struct {
	path string
	doc  report.Document
}

// addFlags adds the flags to `vtrace run`.
func (e *evidenceFiles) addFlags(f *pflag.FlagSet) {
	f.StringVar(&e.sarif, "sarif", "", "at the end of the run, write a SARIF 2.1.0 log (code scanning) to `FILE`")
	f.StringVar(&e.junit, "junit", "", "at the end of the run, write JUnit XML (one test case per vfork call site) to `FILE`")
	f.StringVar(&e.html, "html", "", "at the end of the run, write a self-contained HTML picture of the parent's stack to `FILE`")
	f.StringVar(&e.srcRoot, "source-root", "", "with --sarif: the repository `DIR` source paths are made relative to (default: the git work tree around the current directory)")
}

// sinks returns the documents to feed with the run's events.
func (e *evidenceFiles) sinks() report.Multi {
	var out report.Multi
	for _, f := range []struct{ path, format string }{{e.sarif, "sarif"}, {e.junit, "junit"}, {e.html, "html"}} {
		if f.path == "" {
			continue
		}
		d := documentFormats[f.format](sarifOptions(e.srcRoot))
		e.docs = append(e.docs, evidenceDoc{f.path, d})
		out = append(out, d)
	}
	return out
}

// write writes every document.
func (e *evidenceFiles) write() error {
	for _, d := range e.docs {
		f, err := os.Create(d.path)
		if err != nil {
			return logError{fmt.Errorf("%w: %v", errWriteEvidence, err)}
		}
		err = d.doc.Render(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return logError{fmt.Errorf("%w: %s: %v", errWriteEvidence, d.path, err)}
		}
	}
	return nil
}

// errWriteEvidence: a --sarif/--junit/--html file could not be written.
var errWriteEvidence = errors.New("write report file")
