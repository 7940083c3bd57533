package main

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
	"testing"
	"time"

	"github.com/vtrace/vtrace/tracer/event"
)

// The VM harness: vtrace runs inside qemu-system-x86_64 (TCG, a stock
// Debian 6.1 kernel, a busybox initramfs; scripts/vm/), where i386 code
// runs and debug-register watchpoints fire whatever the host allows. A
// test binary run collects every vmJob of the suite, builds one initramfs
// with the static vtrace, the targets the jobs name (and the i386 loader
// and libraries a dynamic -m32 target needs) and boots once; each test
// then reads its jobs' results (exit code, stderr, the JSONL log) as a
// `traced`, like the host tests do.
//
// Environment: VTRACE_BIN (must be a static binary; `make build` makes one
// with CGO_ENABLED=0), VTRACE_TARGETS, and VTRACE_VM_DIR, where the kernel
// is cached (default build/vm).

// vmJob is one `vtrace run` inside the VM.
type vmJob struct {
	build, name string   // the target: build/targets/<build>/<name>
	args        []string // the target's arguments
	flags       []string // vtrace run flags (besides -o log.jsonl --color=never)
	timeout     int      // seconds (default vmJobTimeout): vtrace is killed after it (a guard)
	post        string   // shell run after vtrace, in the job's directory (its files come back too)
}

// key is how tests name a job: "build/name args…" plus the flags.
func (j *vmJob) key() string {
	return strings.Join(append(append([]string{j.build + "/" + j.name}, j.args...), j.flags...), " ")
}

// vmPath is the target's path inside the VM.
func (j *vmJob) vmPath() string { return "/targets/" + j.build + "/" + j.name }

// vmRun is one job's outcome, brought back from the VM.
type vmRun struct {
	*traced
	job       *vmJob
	files     map[string][]byte // everything the job left in its directory
	seconds   float64           // guest uptime spent on the job
	initAt    float64           // guest uptime when it started
	leftovers []string          // processes left behind after vtrace exited
	err       string            // why there is no log, if there is none
}

// vmBoot is one boot's outcome.
type vmBoot struct {
	runs      map[string]*vmRun // by job key
	ready     string            // the READY line: kernel release | command line
	done      bool              // /init reached the end of the job list
	wall      time.Duration     // qemu start → exit
	initAt    float64           // guest uptime when the first job started
	qemuErr   error
	console   string // the serial console (kernel and busybox messages)
	skip      string // why the VM cannot be used here (test skips)
	fatal     string // why the harness itself failed (test fails)
	jobsTotal int
}

const (
	vmBootTimeout = 480 // seconds: the whole boot, under `timeout` in run.sh
	vmJobTimeout  = 150 // seconds: one job, under busybox timeout in /init
	vmMarker      = "@@VTRACE-VM "
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
func requireQemu() string {
	qemuOnce.Do(func() {
		if _, err := exec.LookPath("qemu-system-x86_64"); err == nil {
			return
		}
		out, err := exec.Command(filepath.Join(repoRoot(), "scripts", "install-deps.sh")).CombinedOutput()
		if _, lerr := exec.LookPath("qemu-system-x86_64"); lerr != nil {
			qemuSkip = fmt.Sprintf("qemu-system-x86_64 is not installed and scripts/install-deps.sh could not install it (%v): %s",
				err, strings.TrimSpace(string(out)))
		}
	})
	return qemuSkip
}

// vmKernel returns the cached Debian kernel, fetching it once
// (scripts/vm/kernel.sh), or why it cannot be had.
func vmKernel() (string, string) {
	kernOnce.Do(func() {
		dir := os.Getenv("VTRACE_VM_DIR")
		if dir == "" {
			dir = filepath.Join(repoRoot(), "build", "vm")
		}
		cmd := exec.Command(filepath.Join(repoRoot(), "scripts", "vm", "kernel.sh"), dir)
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

// bootVM builds an initramfs for jobs and boots it once, with extra kernel
// parameters appended. It never calls t.Fatal itself: the outcome (skip,
// fatal) is in the result, for every test that shares the boot.
func bootVM(t *testing.T, appendArgs string, jobs []*vmJob) *vmBoot {
	b := &vmBoot{runs: map[string]*vmRun{}, jobsTotal: len(jobs)}
	if why := requireQemu(); why != "" {
		b.skip = why
		return b
	}
	kernel, why := vmKernel()
	if why != "" {
		b.skip = why
		return b
	}
	bin, err := builtVtrace()
	if err != nil {
		b.fatal = err.Error()
		return b
	}
	if !isStatic(bin) {
		b.fatal = fmt.Sprintf("%s is not a static executable: build it with CGO_ENABLED=0 (make build)", bin)
		return b
	}
	work, err := os.MkdirTemp("", "vtrace-vm")
	if err != nil {
		b.fatal = err.Error()
		return b
	}
	defer os.RemoveAll(work)

	// The overlay: /bin/vtrace, /targets/<build>/<name>, /vm/jobs/NNN/.
	ov := filepath.Join(work, "overlay")
	if err := copyFile(bin, filepath.Join(ov, "bin", "vtrace")); err != nil {
		b.fatal = err.Error()
		return b
	}
	hostFiles := map[string]bool{}
	for i, j := range jobs {
		host := targetPath(t, j.build, j.name)
		dst := filepath.Join(ov, j.vmPath())
		if _, err := os.Stat(dst); err != nil {
			if err := copyFile(host, dst); err != nil {
				b.fatal = err.Error()
				return b
			}
			libs, err := elfDeps(host)
			if err != nil {
				b.fatal = err.Error()
				return b
			}
			for _, l := range libs {
				hostFiles[l] = true
			}
		}
		dir := filepath.Join(ov, "vm", "jobs", fmt.Sprintf("%03d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.fatal = err.Error()
			return b
		}
		if err := os.WriteFile(filepath.Join(dir, "cmd"), []byte(j.script()), 0o755); err != nil {
			b.fatal = err.Error()
			return b
		}
		// /init's own guard, for whatever the job runs after vtrace.
		if err := os.WriteFile(filepath.Join(dir, "timeout"), []byte(strconv.Itoa(j.guard()+60)), 0o644); err != nil {
			b.fatal = err.Error()
			return b
		}
	}
	var libs []string
	for l := range hostFiles {
		libs = append(libs, l)
	}
	sort.Strings(libs)
	initrd := filepath.Join(work, "initrd.gz")
	cmd := exec.Command(filepath.Join(repoRoot(), "scripts", "vm", "initramfs.sh"), append([]string{initrd, ov}, libs...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.fatal = fmt.Sprintf("scripts/vm/initramfs.sh: %v\n%s", err, out)
		return b
	}

	results := filepath.Join(work, "results")
	cmd = exec.Command(filepath.Join(repoRoot(), "scripts", "vm", "run.sh"), kernel, initrd, results, strconv.Itoa(vmBootTimeout))
	cmd.Env = append(os.Environ(), "VM_APPEND="+appendArgs)
	var console bytes.Buffer
	cmd.Stdout, cmd.Stderr = &console, &console
	start := time.Now()
	b.qemuErr = cmd.Run()
	b.wall = time.Since(start)
	b.console = console.String()
	data, err := os.ReadFile(results)
	if err != nil {
		b.fatal = fmt.Sprintf("no results file: %v (qemu: %v)\nconsole:\n%s", err, b.qemuErr, tail(b.console, 3000))
		return b
	}
	blobs := parseResults(b, data)
	keep := os.Getenv("VTRACE_VM_KEEP")
	for i, j := range jobs {
		r := decodeRun(j, blobs[fmt.Sprintf("%03d", i)])
		b.runs[j.key()] = r
		if r.initAt == 0 {
			continue
		}
		if b.initAt == 0 || r.initAt < b.initAt {
			b.initAt = r.initAt
		}
		if keep != "" {
			keepFiles(filepath.Join(keep, fmt.Sprintf("%03d", i)), j, r)
		}
	}
	if keep != "" {
		_ = os.WriteFile(filepath.Join(keep, "console.txt"), []byte(b.console), 0o644)
	}
	return b
}

func (j *vmJob) guard() int {
	if j.timeout > 0 {
		return j.timeout
	}
	return vmJobTimeout
}

// script is the job's cmd: vtrace's exit code is the job's; the process
// table is saved right after vtrace exits, to find anything left behind.
// The guard kills vtrace itself (SIGKILL; PTRACE_O_EXITKILL takes its
// tracees with it), not only the shell around it.
// Unlike the host harness (--json -o), the log goes to a file without
// --json, so stderr holds vtrace's text report too: what a reader of a
// failing VM test wants to see.
func (j *vmJob) script() string {
	args := append([]string{"timeout", "-s", "KILL", strconv.Itoa(j.guard()), "/bin/vtrace", "run", "-o", "log.jsonl", "--color=never"}, j.flags...)
	args = append(append(args, "--", j.vmPath()), j.args...)
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	return strings.Join(args, " ") + "\nrc=$?\ncat /proc/[0-9]*/stat >procs 2>/dev/null\n" + j.post + "\nexit $rc\n"
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// parseResults splits the second serial port's stream into the jobs'
// decoded tar.gz blobs (see scripts/vm/init for the format).
func parseResults(b *vmBoot, data []byte) map[string][]byte {
	blobs := map[string][]byte{}
	var cur string
	var text strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if rest, ok := strings.CutPrefix(line, vmMarker); ok {
			word, arg, _ := strings.Cut(rest, " ")
			switch word {
			case "READY":
				b.ready = arg
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
				b.done = true
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
func decodeRun(j *vmJob, blob []byte) *vmRun {
	r := &vmRun{job: j, files: map[string][]byte{}, traced: &traced{}}
	if blob == nil {
		r.err = "no result: the VM stopped before this job finished"
		return r
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		r.err = fmt.Sprintf("damaged result: %v", err)
		return r
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			r.err = fmt.Sprintf("damaged result: %v", err)
			return r
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			r.err = fmt.Sprintf("damaged result: %v", err)
			return r
		}
		r.files[strings.TrimPrefix(h.Name, "./")] = data
	}
	r.exit, _ = strconv.Atoi(strings.TrimSpace(string(r.files["rc"])))
	r.stderr = string(r.files["stderr"])
	r.stdout = string(r.files["stdout"])
	t0, _ := strconv.ParseFloat(strings.TrimSpace(string(r.files["uptime.start"])), 64)
	t1, _ := strconv.ParseFloat(strings.TrimSpace(string(r.files["uptime.end"])), 64)
	r.seconds, r.initAt = t1-t0, t0
	r.leftovers = leftovers(string(r.files["procs"]), j.name)
	r.err = decodeLog(r)
	if r.exit == 137 { // vtrace itself exits 0-3: this is the guard's SIGKILL
		r.err = strings.TrimSuffix(fmt.Sprintf("vtrace killed by the VM's %d s guard; %s", j.guard(), r.err), "; ")
	}
	return r
}

// decodeLog decodes the job's log.jsonl into r.events, or says why not.
func decodeLog(r *vmRun) string {
	log, ok := r.files["log.jsonl"]
	if !ok {
		return fmt.Sprintf("vtrace wrote no log (exit %d)", r.exit)
	}
	evs, err := event.ReadLog(bytes.NewReader(log))
	if err != nil {
		return fmt.Sprintf("%v (exit %d)", err, r.exit)
	}
	r.events = evs
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

// get returns a job's run, failing the test when the VM did not bring a
// usable log back, and checks that nothing was left behind.
func (b *vmBoot) get(t *testing.T, j *vmJob) *vmRun {
	t.Helper()
	b.check(t)
	r := b.runs[j.key()]
	if r == nil {
		t.Fatalf("job %q is not part of this boot", j.key())
	}
	t.Logf("VM: vtrace run %s: exit %d, %.2f s of guest time", j.key(), r.exit, r.seconds)
	if r.err != "" {
		t.Fatalf("VM job %q: %s\nstderr: %s\nconsole tail:\n%s", j.key(), r.err, r.stderr, tail(b.console, 2000))
	}
	for _, l := range r.leftovers {
		t.Errorf("left behind in the VM after vtrace exited: %s", l)
	}
	return r
}

// check skips or fails the test when the boot could not happen at all.
func (b *vmBoot) check(t *testing.T) {
	t.Helper()
	if b.skip != "" {
		t.Skip(b.skip)
	}
	if b.fatal != "" {
		t.Fatal(b.fatal)
	}
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
			dirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}
			if f.Class == elf.ELFCLASS32 {
				dirs = []string{"/lib32", "/usr/lib32", "/lib/i386-linux-gnu", "/usr/lib/i386-linux-gnu", "/lib", "/usr/lib"}
			}
		}
		for _, prog := range f.Progs {
			if prog.Type != elf.PT_INTERP || !top {
				continue
			}
			b, err := io.ReadAll(prog.Open())
			if err != nil {
				return fmt.Errorf("%s: PT_INTERP: %v", p, err)
			}
			interp := strings.TrimRight(string(b), "\x00")
			if !seen[interp] {
				seen[interp] = true
				out = append(out, interp)
			}
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

// keepFiles saves a job's files under dir (VTRACE_VM_KEEP=dir: to read
// the logs of a VM run by hand).
func keepFiles(dir string, j *vmJob, r *vmRun) {
	_ = os.MkdirAll(dir, 0o755)
	_ = os.WriteFile(filepath.Join(dir, "job"), []byte(j.key()+"\n"), 0o644)
	for name, data := range r.files {
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

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// The harness's own parsing, without a VM: a results stream with CRLF line
// ends, a damaged job and one cut short by the VM's end.
func TestVMHarnessParse(t *testing.T) {
	pack := func(files map[string]string) string {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		for name, data := range files {
			_ = tw.WriteHeader(&tar.Header{Name: "./" + name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
			_, _ = tw.Write([]byte(data))
		}
		_ = tw.Close()
		_ = zw.Close()
		enc := base64.StdEncoding.EncodeToString(buf.Bytes())
		var lines []string
		for len(enc) > 76 {
			lines, enc = append(lines, enc[:76]), enc[76:]
		}
		return strings.Join(append(lines, enc), "\r\n")
	}
	log := `{"v":1,"event":"start","t":1,"pid":9,"argv":["x"],"mode":"fast","vtrace":"t","cpu":0,"watchpoints":"auto"}` + "\n" +
		`{"v":1,"event":"verdict","t":2,"pid":9,"verdict":"clean","vforks":1,"violations":0,"warnings":0,"explanation":"e"}` + "\n"
	stream := strings.Join([]string{
		"noise before",
		vmMarker + "READY 6.1.0-56-amd64 | console=ttyS0",
		vmMarker + "BEGIN 000",
		pack(map[string]string{"rc": "0\n", "stderr": "report\n", "log.jsonl": log, "uptime.start": "3.50\n", "uptime.end": "4.25\n",
			"procs": "1 (init) S 0\n7 (sh) S 1\n8 (goodvfork_exit) Z 1\n"}),
		vmMarker + "END 000",
		vmMarker + "BEGIN 001",
		"!!!not base64",
		vmMarker + "END 001",
		vmMarker + "BEGIN 002",
		pack(map[string]string{"rc": "0\n"})[:20],
	}, "\r\n")
	b := &vmBoot{}
	blobs := parseResults(b, []byte(stream))
	if b.ready != "6.1.0-56-amd64 | console=ttyS0" || b.done {
		t.Errorf("ready %q done %v", b.ready, b.done)
	}
	j := &vmJob{build: "gcc-O0", name: "goodvfork_exit"}
	r := decodeRun(j, blobs["000"])
	if r.err != "" || r.exit != 0 || r.stderr != "report\n" || len(r.events) != 2 || r.verdict().Verdict != "clean" ||
		r.seconds != 0.75 || r.initAt != 3.5 {
		t.Errorf("job 000: %+v (err %q)", r, r.err)
	}
	if len(r.leftovers) != 1 || !strings.Contains(r.leftovers[0], "goodvfork_exit") {
		t.Errorf("leftovers %q, want the zombie target", r.leftovers)
	}
	if r := decodeRun(j, blobs["001"]); !strings.HasPrefix(r.err, "damaged result") {
		t.Errorf("job 001: err %q, want a damaged result", r.err)
	}
	if r := decodeRun(j, blobs["002"]); !strings.HasPrefix(r.err, "no result") {
		t.Errorf("job 002 (cut short): err %q, want no result", r.err)
	}
}
