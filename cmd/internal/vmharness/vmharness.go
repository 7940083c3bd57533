// Package vmharness runs vtrace inside a full-system emulator: qemu-system-
// x86_64 in TCG mode (software emulation, no /dev/kvm needed) booting a
// stock Debian 6.1 kernel with a busybox initramfs (scripts/vm/). Inside it
// i386 code runs and debug-register watchpoints fire, whatever the host
// allows, so the tests (cmd/vtrace, TestVM*) and `make matrix` (for i386
// rows on a host that refuses i386 programs) use it to trace what the host
// cannot.
//
// Start collects jobs — one `vtrace run -o log.jsonl` each — builds one
// initramfs with the static vtrace, the targets the jobs name (and the
// i386 loader and libraries a dynamic -m32 target needs) and boots once;
// /init (scripts/vm/init) runs the jobs in order and sends each one's exit
// code, stderr and files back as base64 tar.gz on the second serial port,
// decoded here into Runs.
package vmharness

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vtrace/vtrace/tracer/elfdeps"
	"github.com/vtrace/vtrace/tracer/event"
)

// Job is one `vtrace run` inside the VM.
type Job struct {
	Build, Name string   // the target: <targets>/<Build>/<Name>
	Args        []string // the target's arguments
	Flags       []string // vtrace run flags (besides -o log.jsonl --color=never)
	Timeout     int      // seconds (default JobTimeout): vtrace is killed after it (a guard)
	Post        string   // shell run after vtrace, in the job's directory (its files come back too)
}

// Key is how a job is named: "build/name args…" plus the flags.
func (j *Job) Key() string {
	return strings.Join(append(append([]string{j.Build + "/" + j.Name}, j.Args...), j.Flags...), " ")
}

// Path is the target's path inside the VM.
func (j *Job) Path() string { return "/targets/" + j.Build + "/" + j.Name }

// Guard is the job's time limit in seconds.
func (j *Job) Guard() int {
	if j.Timeout > 0 {
		return j.Timeout
	}
	return JobTimeout
}

// Run is one job's outcome, brought back from the VM.
type Run struct {
	Job            *Job
	Exit           int // vtrace's exit status (137: the guard killed it)
	Stdout, Stderr string
	Events         []event.Event     // the decoded log (nil if Err says why not)
	Files          map[string][]byte // everything the job left in its directory
	Seconds        float64           // guest uptime spent on the job
	InitAt         float64           // guest uptime when it started
	Leftovers      []string          // processes left behind after vtrace exited
	Err            string            // why there is no log, if there is none
}

// Boot is one boot's outcome.
type Boot struct {
	Runs      map[string]*Run // by job key
	Ready     string          // the READY line: kernel release | command line
	Done      bool            // /init reached the end of the job list
	Wall      time.Duration   // qemu start → exit
	InitAt    float64         // guest uptime when the first job started
	QemuErr   error
	Console   string // the serial console (kernel and busybox messages)
	Skip      string // why the VM cannot be used here (qemu or the kernel cannot be had)
	Fatal     string // why the harness itself failed
	JobsTotal int
}

// Config says where things are.
type Config struct {
	Root   string // the repository (scripts/vm/ is run from it)
	Vtrace string // a static vtrace binary
	// Target returns the host path of a target build.
	Target    func(build, name string) (string, error)
	KernelDir string // where the kernel is cached (default Root/build/vm)
	Append    string // extra kernel parameters
	Keep      string // if set, every job's files (and the console) are kept there
}

const (
	BootTimeout = 480 // seconds: the whole boot, under `timeout` in run.sh
	JobTimeout  = 150 // seconds: one job, under busybox timeout in /init
	marker      = "@@VTRACE-VM "
)

var (
	qemuOnce sync.Once
	qemuSkip string
	kernOnce sync.Once
	kernPath string
	kernSkip string
)

// requireQemu makes sure qemu-system-x86_64 is there, installing it with
// scripts/install-deps.sh if it is not; it returns why not otherwise.
func requireQemu(root string) string {
	qemuOnce.Do(func() {
		if _, err := exec.LookPath("qemu-system-x86_64"); err == nil {
			return
		}
		out, err := exec.Command(filepath.Join(root, "scripts", "install-deps.sh")).CombinedOutput()
		if _, lerr := exec.LookPath("qemu-system-x86_64"); lerr != nil {
			qemuSkip = fmt.Sprintf("qemu-system-x86_64 is not installed and scripts/install-deps.sh could not install it (%v): %s",
				err, strings.TrimSpace(string(out)))
		}
	})
	return qemuSkip
}

// kernel returns the cached Debian kernel, fetching it once
// (scripts/vm/kernel.sh), or why it cannot be had.
func kernel(root, dir string) (string, string) {
	kernOnce.Do(func() {
		if dir == "" {
			dir = filepath.Join(root, "build", "vm")
		}
		cmd := exec.Command(filepath.Join(root, "scripts", "vm", "kernel.sh"), dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			kernSkip = fmt.Sprintf("the Debian kernel package cannot be fetched (scripts/vm/kernel.sh: %v): %s",
				err, strings.TrimSpace(stderr.String()))
			return
		}
		kernPath = strings.TrimSpace(string(out))
	})
	return kernPath, kernSkip
}

// Start builds an initramfs for jobs and boots it once. What went wrong
// (Skip, Fatal) is in the result, for every user of the boot.
func Start(cfg Config, jobs []*Job) *Boot {
	b := &Boot{Runs: map[string]*Run{}, JobsTotal: len(jobs)}
	if why := requireQemu(cfg.Root); why != "" {
		b.Skip = why
		return b
	}
	kern, why := kernel(cfg.Root, cfg.KernelDir)
	if why != "" {
		b.Skip = why
		return b
	}
	if !isStatic(cfg.Vtrace) {
		b.Fatal = fmt.Sprintf("%s is not a static executable: build it with CGO_ENABLED=0 (make build)", cfg.Vtrace)
		return b
	}
	work, err := os.MkdirTemp("", "vtrace-vm")
	if err != nil {
		b.Fatal = err.Error()
		return b
	}
	defer os.RemoveAll(work)

	// The overlay: /bin/vtrace, /targets/<build>/<name>, /vm/jobs/NNN/.
	ov := filepath.Join(work, "overlay")
	if err := copyFile(cfg.Vtrace, filepath.Join(ov, "bin", "vtrace")); err != nil {
		b.Fatal = err.Error()
		return b
	}
	hostFiles := map[string]bool{}
	for i, j := range jobs {
		host, err := cfg.Target(j.Build, j.Name)
		if err != nil {
			b.Fatal = err.Error()
			return b
		}
		dst := filepath.Join(ov, j.Path())
		if _, err := os.Stat(dst); err != nil {
			if err := copyFile(host, dst); err != nil {
				b.Fatal = err.Error()
				return b
			}
			libs, err := elfDeps(host)
			if err != nil {
				b.Fatal = err.Error()
				return b
			}
			for _, l := range libs {
				hostFiles[l] = true
			}
		}
		dir := filepath.Join(ov, "vm", "jobs", fmt.Sprintf("%03d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal = err.Error()
			return b
		}
		if err := os.WriteFile(filepath.Join(dir, "cmd"), []byte(j.script()), 0o755); err != nil {
			b.Fatal = err.Error()
			return b
		}
		// /init's own guard, for whatever the job runs after vtrace.
		if err := os.WriteFile(filepath.Join(dir, "timeout"), []byte(strconv.Itoa(j.Guard()+60)), 0o644); err != nil {
			b.Fatal = err.Error()
			return b
		}
	}
	var libs []string
	for l := range hostFiles {
		libs = append(libs, l)
	}
	sort.Strings(libs)
	initrd := filepath.Join(work, "initrd.gz")
	cmd := exec.Command(filepath.Join(cfg.Root, "scripts", "vm", "initramfs.sh"), append([]string{initrd, ov}, libs...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatal = fmt.Sprintf("scripts/vm/initramfs.sh: %v\n%s", err, out)
		return b
	}

	results := filepath.Join(work, "results")
	cmd = exec.Command(filepath.Join(cfg.Root, "scripts", "vm", "run.sh"), kern, initrd, results, strconv.Itoa(BootTimeout))
	cmd.Env = append(os.Environ(), "VM_APPEND="+cfg.Append)
	var console bytes.Buffer
	cmd.Stdout, cmd.Stderr = &console, &console
	start := time.Now()
	b.QemuErr = cmd.Run()
	b.Wall = time.Since(start)
	b.Console = console.String()
	data, err := os.ReadFile(results)
	if err != nil {
		b.Fatal = fmt.Sprintf("no results file: %v (qemu: %v)\nconsole:\n%s", err, b.QemuErr, Tail(b.Console, 3000))
		return b
	}
	blobs := parseResults(b, data)
	for i, j := range jobs {
		r := decodeRun(j, blobs[fmt.Sprintf("%03d", i)])
		b.Runs[j.Key()] = r
		if r.InitAt == 0 {
			continue
		}
		if b.InitAt == 0 || r.InitAt < b.InitAt {
			b.InitAt = r.InitAt
		}
		if cfg.Keep != "" {
			keepFiles(filepath.Join(cfg.Keep, fmt.Sprintf("%03d", i)), j, r)
		}
	}
	if cfg.Keep != "" {
		_ = os.WriteFile(filepath.Join(cfg.Keep, "console.txt"), []byte(b.Console), 0o644)
	}
	return b
}

// script is the job's cmd: vtrace's exit code is the job's; the process
// table is saved right after vtrace exits, to find anything left behind.
// The guard kills vtrace itself (SIGKILL; PTRACE_O_EXITKILL takes its
// tracees with it), not only the shell around it. The log goes to a file
// without --json, so stderr holds vtrace's text report too: what a reader
// of a failing job wants to see.
func (j *Job) script() string {
	args := append([]string{"timeout", "-s", "KILL", strconv.Itoa(j.Guard()), "/bin/vtrace", "run", "-o", "log.jsonl", "--color=never"}, j.Flags...)
	args = append(append(args, "--", j.Path()), j.Args...)
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	return strings.Join(args, " ") + "\nrc=$?\ncat /proc/[0-9]*/stat >procs 2>/dev/null\n" + j.Post + "\nexit $rc\n"
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// parseResults splits the second serial port's stream into the jobs'
// decoded tar.gz blobs (see scripts/vm/init for the format).
func parseResults(b *Boot, data []byte) map[string][]byte {
	blobs := map[string][]byte{}
	var cur string
	var text strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if rest, ok := strings.CutPrefix(line, marker); ok {
			word, arg, _ := strings.Cut(rest, " ")
			switch word {
			case "READY":
				b.Ready = arg
			case "BEGIN":
				cur = arg
				text.Reset()
			case "END":
				if arg == cur {
					raw, err := base64.StdEncoding.DecodeString(text.String())
					if err == nil {
						blobs[cur] = raw
					} else {
						blobs[cur] = []byte("bad base64: " + err.Error())
					}
				}
				cur = ""
			case "DONE":
				b.Done = true
			}
			continue
		}
		if cur != "" {
			text.WriteString(line)
		}
	}
	return blobs
}

// decodeRun unpacks one job's blob and decodes its log.
func decodeRun(j *Job, blob []byte) *Run {
	r := &Run{Job: j, Files: map[string][]byte{}}
	if blob == nil {
		r.Err = "no result: the VM stopped before this job finished"
		return r
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		r.Err = fmt.Sprintf("damaged result: %v", err)
		return r
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			r.Err = fmt.Sprintf("damaged result: %v", err)
			return r
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			r.Err = fmt.Sprintf("damaged result: %v", err)
			return r
		}
		r.Files[strings.TrimPrefix(h.Name, "./")] = data
	}
	r.Exit, _ = strconv.Atoi(strings.TrimSpace(string(r.Files["rc"])))
	r.Stderr = string(r.Files["stderr"])
	r.Stdout = string(r.Files["stdout"])
	t0, _ := strconv.ParseFloat(strings.TrimSpace(string(r.Files["uptime.start"])), 64)
	t1, _ := strconv.ParseFloat(strings.TrimSpace(string(r.Files["uptime.end"])), 64)
	r.Seconds, r.InitAt = t1-t0, t0
	r.Leftovers = leftovers(string(r.Files["procs"]), j.Name)
	r.Err = decodeLog(r)
	// 137 is 128+SIGKILL: the guard's SIGKILL when vtrace left its log
	// without a verdict (vtrace always ends its log with one), otherwise
	// the program's own death by SIGKILL, passed on by vtrace.
	if r.Exit == 137 && r.Err != "" {
		r.Err = strings.TrimSuffix(fmt.Sprintf("vtrace killed by the VM's %d s guard; %s", j.Guard(), r.Err), "; ")
	}
	return r
}

// decodeLog decodes the job's log.jsonl into r.Events, or says why not.
func decodeLog(r *Run) string {
	log, ok := r.Files["log.jsonl"]
	if !ok {
		return fmt.Sprintf("vtrace wrote no log (exit %d)", r.Exit)
	}
	evs, err := event.ReadLog(bytes.NewReader(log))
	if err != nil {
		return fmt.Sprintf("%v (exit %d)", err, r.Exit)
	}
	r.Events = evs
	return ""
}

// leftovers names the processes of /proc/*/stat lines (saved right after
// vtrace exited) that vtrace should have reaped: stopped, zombie, or still
// running the target or vtrace.
func leftovers(procs, target string) []string {
	var out []string
	comm := target
	if len(comm) > 15 {
		comm = comm[:15]
	}
	for _, line := range strings.Split(procs, "\n") {
		open, close := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
		if open < 0 || close < open {
			continue
		}
		name := line[open+1 : close]
		f := strings.Fields(line[close+1:])
		if len(f) == 0 {
			continue
		}
		if strings.ContainsAny(f[0], "tTZ") || name == comm || name == "vtrace" {
			out = append(out, fmt.Sprintf("%s (%s) state %s", strings.TrimSpace(line[:open]), name, f[0]))
		}
	}
	return out
}

func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// elfDeps lists the host files a dynamic executable needs at run time: its
// interpreter and, transitively, its DT_NEEDED libraries, found in the
// default directories of its class (no ld.so.cache in the VM: the loader
// looks there too). Nothing for a static executable.
func elfDeps(path string) ([]string, error) {
	var dirs []string
	seen := map[string]bool{}
	var out []string
	var visit func(p string, top bool) error
	visit = func(p string, top bool) error {
		f, err := elf.Open(p)
		if err != nil {
			return fmt.Errorf("%s: %v", p, err)
		}
		defer f.Close()
		if dirs == nil {
			dirs = elfdeps.LibDirs(f.Class)
		}
		if interp, ok := elfdeps.Interp(f); ok && top && !seen[interp] {
			seen[interp] = true
			out = append(out, interp)
		}
		needed, err := f.ImportedLibraries()
		if err != nil {
			return nil // static: no dynamic section
		}
		for _, lib := range needed {
			if seen[lib] {
				continue
			}
			seen[lib] = true
			found := ""
			for _, d := range dirs {
				if _, err := os.Stat(filepath.Join(d, lib)); err == nil {
					found = filepath.Join(d, lib)
					break
				}
			}
			if found == "" {
				return fmt.Errorf("%s needs %s, not found in %v (install libc6-i386 / gcc-multilib)", p, lib, dirs)
			}
			out = append(out, found)
			if err := visit(found, false); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(path, true); err != nil {
		return nil, err
	}
	return out, nil
}

// keepFiles saves a job's files under dir (Config.Keep: to read the logs
// of a VM run by hand).
func keepFiles(dir string, j *Job, r *Run) {
	_ = os.MkdirAll(dir, 0o755)
	_ = os.WriteFile(filepath.Join(dir, "job"), []byte(j.Key()+"\n"), 0o644)
	for name, data := range r.Files {
		_ = os.WriteFile(filepath.Join(dir, filepath.Base(name)), data, 0o644)
	}
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o755)
}

// Tail is the last n bytes of s.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
