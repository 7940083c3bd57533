package main

import (
	"bytes"
	"debug/dwarf"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/report"
)

// githubOut is what vtrace adds to a run under GitHub Actions: a markdown
// summary appended to $GITHUB_STEP_SUMMARY and, on stderr (the runner reads
// workflow commands from both streams; stdout may be the log), up to
// report.MaxAnnotations ::error / ::warning commands at the source lines of
// the vfork calls. It is a sink only to learn where the exec'd programs
// are, to find each call site's source file as the repository names it.
type githubOut struct {
	execs map[string]string // module (file name) → path of an exec'd program
}

// maxExecPaths bounds the programs remembered (a build execs thousands of
// times, but few distinct programs make vfork calls of their own).
const maxExecPaths = 1000

func (g *githubOut) Emit(ev event.Event) error {
	if e, ok := ev.(*event.Exec); ok && len(g.execs) < maxExecPaths {
		if g.execs == nil {
			g.execs = map[string]string{}
		}
		g.execs[filepath.Base(e.Path)] = e.Path
	}
	return nil
}

// finish writes the step summary and the workflow commands.
func (g *githubOut) finish(sum *report.Summary, stderr io.Writer) {
	if path := os.Getenv("GITHUB_STEP_SUMMARY"); path != "" {
		if err := appendStepSummary(path, sum); err != nil {
			fmt.Fprintf(stderr, "vtrace: GitHub step summary: %v\n", err)
		}
	}
	ws := os.Getenv("GITHUB_WORKSPACE")
	if ws == "" {
		ws, _ = os.Getwd()
	}
	source := func(s *report.Site) string {
		if s.Call.Sym == nil {
			return ""
		}
		return sourceFile(g.execs[s.Call.Sym.Module], s.Call.Sym, ws)
	}
	for _, c := range report.WorkflowCommands(sum.Sites.List(), report.MaxAnnotations, source) {
		fmt.Fprintln(stderr, c)
	}
}

// appendStepSummary appends the run's markdown summary to the step summary
// file, keeping the whole file under GitHub's 1 MiB.
func appendStepSummary(path string, sum *report.Summary) error {
	var used int64
	if fi, err := os.Stat(path); err == nil {
		used = fi.Size()
	}
	room := report.MaxStepSummary - int(used) - 1024 // a margin for what later steps of the job add
	if room < 4096 {
		return fmt.Errorf("%s already holds %d bytes: no room left under GitHub's 1 MiB", path, used)
	}
	var buf bytes.Buffer
	if err := report.Markdown(&buf, &sum.Run, &sum.Sites, room); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o666)
	if err != nil {
		return err
	}
	_, err = f.Write(buf.Bytes())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// sourceFile names the source file of a code address the way the
// repository does ("targets/badvfork.c"), for an annotation to land on the
// file in a pull request: the debug information records only the file
// name in vtrace's events, but the program's DWARF line table has the full
// path, which is then made relative to the workspace. "" when the program
// or its line table is unavailable, or the file is outside the workspace.
func sourceFile(bin string, y *event.Sym, workspace string) string {
	if bin == "" || y == nil || y.Sym == "" || y.File == "" {
		return ""
	}
	full, err := lineFile(bin, y)
	if err != nil || filepath.Base(full) != y.File {
		return ""
	}
	if !filepath.IsAbs(full) || workspace == "" {
		return ""
	}
	rel, err := filepath.Rel(workspace, full)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return ""
	}
	return filepath.ToSlash(rel)
}

// lineFile is the full path of the source file of symbol+offset in the
// ELF file bin, from its DWARF line table.
func lineFile(bin string, y *event.Sym) (string, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return "", err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return "", err
	}
	var pc uint64
	for _, s := range syms {
		if s.Name == y.Sym && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			pc = s.Value + y.Off
			break
		}
	}
	if pc == 0 {
		return "", errors.New("symbol not found")
	}
	d, err := f.DWARF()
	if err != nil {
		return "", err
	}
	cu, err := d.Reader().SeekPC(pc)
	if err != nil {
		return "", err
	}
	lr, err := d.LineReader(cu)
	if err != nil || lr == nil {
		return "", fmt.Errorf("no line table: %v", err)
	}
	var le dwarf.LineEntry
	if err := lr.SeekPC(pc, &le); err != nil {
		return "", err
	}
	if le.File == nil {
		return "", errors.New("no file")
	}
	name := le.File.Name
	if dir, ok := cu.Val(dwarf.AttrCompDir).(string); ok && !filepath.IsAbs(name) {
		// DWARF 5 names files relative to the compilation directory.
		name = filepath.Join(dir, name)
	}
	return name, nil
}
