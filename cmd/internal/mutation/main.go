// Command mutation is vtrace's mutation test (make mutation;
// docs/reliability.md): it makes N byte-mutated copies of small target
// binaries, traces each with vtrace under a pids cap (a cgroup's
// pids.max, as scripts/pidlimit.sh makes) and a timeout, and counts what
// must never happen: an internal error (a panic vtrace caught, or one it
// did not: Go's exit 2 and a goroutine dump), a hang (vtrace still running
// well after its own --timeout), a log that does not end with its
// verdict, and a process left in the cgroup after vtrace ended. It exits
// 1 if any run did one of those; the inputs are kept in -keep.
package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vtrace/vtrace/tracer/event"
)

// options are the flags.
type options struct {
	vtrace         string
	n, jobs, pids  int
	seed           int64
	timeout, grace time.Duration
	keep           string
}

func main() {
	var o options
	flag.StringVar(&o.vtrace, "vtrace", "build/vtrace", "the vtrace binary")
	flag.IntVar(&o.n, "n", 10000, "mutated copies to trace")
	flag.Int64Var(&o.seed, "seed", 1, "random seed (the same seed makes the same copies)")
	flag.IntVar(&o.jobs, "j", 2, "runs at once")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Second, "vtrace's --timeout for each run")
	flag.DurationVar(&o.grace, "hang", 20*time.Second, "a run still going this long after its --timeout is a hang")
	flag.IntVar(&o.pids, "pids", 64, "pids.max of each run's cgroup")
	flag.StringVar(&o.keep, "keep", "build/mutation", "where the inputs of failed runs are kept")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: mutation [flags] TARGET...")
		os.Exit(2)
	}
	bad, err := runAll(o, flag.Args(), os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutation:", err)
		os.Exit(2)
	}
	if bad > 0 {
		os.Exit(1)
	}
}

// runAll traces o.n mutated copies of the target binaries at paths and
// prints the summary to out (progress to progress); it returns the number
// of runs that did what must never happen.
func runAll(o options, paths []string, out, progress io.Writer) (int, error) {
	if abs, err := filepath.Abs(o.vtrace); err == nil {
		o.vtrace = abs
	}
	var targets []target
	for _, p := range paths {
		t, err := loadTarget(p)
		if err != nil {
			return 0, err
		}
		targets = append(targets, t)
	}
	tmp, err := os.MkdirTemp("", "vtrace-mutation-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)

	r := rand.New(rand.NewSource(o.seed))
	type job struct {
		i    int
		name string
		data []byte
	}
	work := make(chan job)
	go func() {
		for i := 0; i < o.n; i++ {
			t := targets[i%len(targets)]
			work <- job{i, t.name, t.mutate(r)}
		}
		close(work)
	}()

	var (
		mu    sync.Mutex
		tally = map[string]int{}
		codes = map[int]int{}
		bad   []string
		done  int
		wg    sync.WaitGroup
	)
	start := time.Now()
	capped := true
	for w := 0; w < o.jobs; w++ {
		cg, err := newCgroup(fmt.Sprintf("vtrace-mutation.%d.%d", os.Getpid(), w), o.pids)
		if err != nil {
			capped = false
			fmt.Fprintf(progress, "mutation: no pids cap (%v): runs are only timed out\n", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cg.remove()
			for j := range work {
				dir := filepath.Join(tmp, strconv.Itoa(j.i))
				res := runOne(o.vtrace, dir, j.name, j.data, cg, o.timeout, o.grace)
				mu.Lock()
				codes[res.exit]++
				for _, k := range res.problems {
					tally[k]++
				}
				if len(res.problems) > 0 {
					name := fmt.Sprintf("%05d-%s-%s", j.i, j.name, strings.Join(res.problems, "+"))
					bad = append(bad, name+": "+res.detail)
					_ = os.MkdirAll(o.keep, 0o755)
					_ = os.WriteFile(filepath.Join(o.keep, name), j.data, 0o755)
				}
				if done++; done%1000 == 0 {
					fmt.Fprintf(progress, "mutation: %d/%d, %v\n", done, o.n, time.Since(start).Round(time.Second))
				}
				mu.Unlock()
				os.RemoveAll(dir)
			}
		}()
	}
	wg.Wait()

	cap := fmt.Sprintf("pids.max %d", o.pids)
	if !capped {
		cap = "no pids cap"
	}
	fmt.Fprintf(out, "mutation: %d mutated copies of %d targets (seed %d) traced in %v, %s, --timeout %v\n",
		o.n, len(targets), o.seed, time.Since(start).Round(time.Second), cap, o.timeout)
	var keys []int
	for k := range codes {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	fmt.Fprint(out, "vtrace exit codes:")
	for _, k := range keys {
		fmt.Fprintf(out, " %d×%d", k, codes[k])
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "internal errors: %d, hangs: %d, logs without a verdict: %d, processes left: %d\n",
		tally["panic"], tally["hang"], tally["badlog"], tally["left"])
	sort.Strings(bad)
	for _, b := range bad {
		fmt.Fprintln(out, "  "+b)
	}
	if len(bad) > 0 {
		fmt.Fprintf(out, "inputs kept in %s\n", o.keep)
	}
	return len(bad), nil
}

// target is a binary to mutate, with the byte ranges where a change
// reaches vtrace's parsers rather than only the program's code: the
// headers, and the sections vtrace reads.
type target struct {
	name   string
	data   []byte
	ranges [][2]int
}

func loadTarget(path string) (target, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return target{}, err
	}
	t := target{name: filepath.Base(filepath.Dir(path)) + "_" + filepath.Base(path), data: data}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return target{}, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	t.ranges = append(t.ranges, [2]int{0, 64 + 56*len(f.Progs)}) // ELF header and program headers
	for _, s := range f.Sections {
		switch {
		case s.Type == elf.SHT_NOBITS:
		case s.Name == ".eh_frame", s.Name == ".eh_frame_hdr", s.Name == ".symtab", s.Name == ".dynsym",
			s.Name == ".strtab", s.Name == ".dynstr", s.Name == ".rela.plt", s.Name == ".rel.plt", s.Name == ".plt",
			s.Name == ".note.gnu.build-id", strings.HasPrefix(s.Name, ".debug_"):
			t.ranges = append(t.ranges, [2]int{int(s.Offset), int(s.Offset + s.Size)})
		}
	}
	if sh := binaryShoff(data); sh > 0 && sh < len(data) {
		t.ranges = append(t.ranges, [2]int{sh, len(data)})
	}
	return t, nil
}

// binaryShoff is e_shoff of an ELF64 or ELF32 file.
func binaryShoff(d []byte) int {
	if len(d) < 0x40 {
		return 0
	}
	if d[4] == 2 {
		return int(uint64(d[0x28]) | uint64(d[0x29])<<8 | uint64(d[0x2a])<<16 | uint64(d[0x2b])<<24)
	}
	return int(uint32(d[0x20]) | uint32(d[0x21])<<8 | uint32(d[0x22])<<16 | uint32(d[0x23])<<24)
}

// mutate returns a copy with 1 to 8 bytes changed: half of the copies
// anywhere in the file, half in the parts vtrace parses; a byte is set at
// random, or to one of the values that break lengths (0, 0xff, 0x7f, 0x80).
func (t target) mutate(r *rand.Rand) []byte {
	d := bytes.Clone(t.data)
	focused := r.Intn(2) == 0
	for k := 1 + r.Intn(8); k > 0; k-- {
		off := r.Intn(len(d))
		if focused {
			rg := t.ranges[r.Intn(len(t.ranges))]
			if rg[1] > rg[0] && rg[1] <= len(d) {
				off = rg[0] + r.Intn(rg[1]-rg[0])
			}
		}
		if r.Intn(2) == 0 {
			d[off] = byte(r.Intn(256))
		} else {
			d[off] = []byte{0, 0xff, 0x7f, 0x80}[r.Intn(4)]
		}
	}
	return d
}

type result struct {
	exit     int // -1: killed (a hang)
	problems []string
	detail   string
}

func runOne(vtrace, dir, name string, data []byte, cg *cgroup, timeout, grace time.Duration) result {
	_ = os.MkdirAll(dir, 0o755)
	prog := filepath.Join(dir, name)
	log := filepath.Join(dir, "log.jsonl")
	if err := os.WriteFile(prog, data, 0o755); err != nil {
		return result{exit: -2, problems: []string{"setup"}, detail: err.Error()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+grace)
	defer cancel()
	args := []string{"run", "-q", "--timeout", timeout.String(), "-o", log, "--", prog}
	var cmd *exec.Cmd
	if cg != nil {
		// The shell joins the cgroup, then becomes vtrace: every process
		// vtrace and the program start is counted against pids.max.
		cmd = exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, cg.dir, vtrace}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, vtrace, args...)
	}
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.Stdin = nil
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	res := result{}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		res.exit = -1
		res.problems = append(res.problems, "hang")
		res.detail = fmt.Sprintf("still running %v after its --timeout", grace)
	case errors.As(err, &ee):
		res.exit = ee.ExitCode()
	case err != nil:
		res.exit = -2
		res.problems = append(res.problems, "setup")
		res.detail = err.Error()
	}
	out := stderr.String()
	var evs []event.Event
	if res.exit >= 0 {
		if f, err := os.Open(log); err == nil {
			if evs, err = event.ReadLog(f); err != nil {
				res.problems = append(res.problems, "badlog")
				res.detail += " log: " + err.Error()
			}
			f.Close()
		} else {
			res.problems = append(res.problems, "badlog")
			res.detail += " no log"
		}
	}
	// Exit status 2 is an uncaught Go panic's, unless it is the program's
	// own, which vtrace passes on (a mutated copy that exits 2 natively).
	if res.exit == 2 && !programExited(evs, 2) || strings.Contains(out, "internal error") || strings.Contains(out, "goroutine ") {
		res.problems = append(res.problems, "panic")
		res.detail = firstLine(out, "internal error", "panic:") + res.detail
	}
	if cg != nil {
		if left, what := cg.killAll(); left > 0 && res.exit >= 0 {
			res.problems = append(res.problems, "left")
			res.detail += fmt.Sprintf(" exit %d, %d processes left in the cgroup:%s", res.exit, left, what)
		}
	}
	return res
}

// programExited reports whether the log says the program vtrace started
// exited with code.
func programExited(evs []event.Event, code int) bool {
	for _, ev := range evs {
		if e, ok := ev.(*event.Exit); ok && e.Main && e.Code != nil && *e.Code == code {
			return true
		}
	}
	return false
}

func firstLine(s string, keys ...string) string {
	for _, line := range strings.Split(s, "\n") {
		for _, k := range keys {
			if strings.Contains(line, k) {
				return strings.TrimSpace(line)
			}
		}
	}
	return strings.TrimSpace(s)
}

// cgroup is a pids cgroup (v1 /sys/fs/cgroup/pids, or v2) of one worker.
type cgroup struct{ dir string }

func newCgroup(name string, max int) (*cgroup, error) {
	root := "/sys/fs/cgroup/pids"
	if _, err := os.Stat(root); err != nil {
		root = "/sys/fs/cgroup"
		if b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers")); err != nil || !strings.Contains(string(b), "pids") {
			return nil, errors.New("no pids cgroup controller")
		}
	}
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.Itoa(max)), 0o644); err != nil {
		_ = os.Remove(dir)
		return nil, err
	}
	return &cgroup{dir: dir}, nil
}

// killAll SIGKILLs every process left in the cgroup and returns how many
// there were, and their command lines.
func (c *cgroup) killAll() (int, string) {
	left, what := 0, ""
	for try := 0; try < 20; try++ {
		b, err := os.ReadFile(filepath.Join(c.dir, "cgroup.procs"))
		if err != nil {
			return left, what
		}
		fs := strings.Fields(string(b))
		if len(fs) == 0 {
			return left, what
		}
		if try == 0 {
			left = len(fs)
			for _, f := range fs {
				cmdline, _ := os.ReadFile("/proc/" + f + "/cmdline")
				stat, _ := os.ReadFile("/proc/" + f + "/stat")
				what += fmt.Sprintf(" [%s %q %.40s]", f, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}), stat)
			}
		}
		for _, f := range fs {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return left, what
}

func (c *cgroup) remove() {
	if c != nil {
		c.killAll()
		_ = os.Remove(c.dir)
	}
}
