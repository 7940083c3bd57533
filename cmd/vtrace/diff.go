package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/report"
)

// errDiffer makes `diff` exit 1 without printing more: the runs differ.
var errDiffer = exitStatus(1)

func newDiffCmd(stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "diff A.jsonl B.jsonl",
		Short: "compare two runs by meaning: per vfork call site, verdict, slots, writers, landing; the program's fate",
		Long: `diff compares two vtrace logs by what they mean, not by their bytes: for each
vfork call site (matched by source file:line, else by symbol+offset) the
verdicts, the reasons, the slots the child wrote (by frame function and
kind) and the instructions that wrote them (symbol+offset), how the child
ended, what the parent used and where it landed; and the run's verdict,
its number of vforks and the program's fate. Pids, addresses (ASLR),
timestamps and written values are left out. Exit 0 when the runs mean the
same, 1 when they differ (the differences on stdout), 125 usage, 126 a log
cannot be read.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usageError{"diff: want two log files"}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			a, err := meaningOf(args[0], stderr)
			if err != nil {
				return err
			}
			b, err := meaningOf(args[1], stderr)
			if err != nil {
				return err
			}
			diffs := report.DiffMeanings(a, b)
			report.WriteDiff(stdout, args[0], args[1], diffs)
			if len(diffs) > 0 {
				return errDiffer
			}
			return nil
		},
	}
}

// meaningOf reads a log (tolerating a last line cut short, as report does)
// into what it means.
func meaningOf(path string, stderr io.Writer) (*report.Meaning, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadLog, err)
	}
	defer f.Close()
	mc := report.NewMeaningCollector()
	sinks := report.Multi{&report.Narrator{}, mc}
	lr := event.NewLogReader(f)
	for {
		ev, err := lr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", errBadLog, path, err)
		}
		_ = sinks.Emit(ev)
	}
	if lr.Line() == 0 {
		return nil, fmt.Errorf("%w: %s: empty log", errBadLog, path)
	}
	if lr.Truncated != "" {
		fmt.Fprintf(stderr, "vtrace: warning: %s: the log ends in the middle of a line (%s): compared up to the line before\n", path, lr.Truncated)
	}
	return mc.Meaning(), nil
}
