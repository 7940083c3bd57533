package main

import (
	"bufio"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sigIgnored is the SigIgn mask /proc/self/status shows to a program the
// shell command sh runs (which execs `grep ^SigIgn: /proc/self/status`).
func sigIgnored(t *testing.T, sh string) uint64 {
	t.Helper()
	out, err := exec.Command("sh", "-c", sh).Output()
	if err != nil {
		t.Fatalf("sh -c %q: %v", sh, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(f), 16, 64)
			if err != nil {
				t.Fatalf("SigIgn %q: %v", f, err)
			}
			return m
		}
	}
	t.Fatalf("sh -c %q printed no SigIgn line: %q", sh, out)
	return 0
}

// A signal vtrace was started with ignored — nohup's SIGHUP, the SIGINT
// and SIGQUIT of a non-interactive shell's `cmd &`, a `trap "" ...` — stays
// ignored for the program,
// which inherits it through fork and exec as natively, and vtrace does
// not stop the run on it (found wrapping `nohup`: the program's SigIgn
// was 0, and a SIGHUP to the nohup'ed vtrace killed the run, 129).
func TestInheritedIgnoredSignals(t *testing.T) {
	requirePtrace(t)
	bin := vtraceBin(t)
	const hupInt = 1<<(syscall.SIGHUP-1) | 1<<(syscall.SIGINT-1)
	const prog = "grep ^SigIgn: /proc/self/status"
	native := sigIgnored(t, "trap '' HUP INT; exec "+prog)
	if native&hupInt != hupInt {
		t.Fatalf("natively SigIgn %#x: the shell did not ignore SIGHUP and SIGINT", native)
	}
	if got := sigIgnored(t, "trap '' HUP INT; exec "+bin+" run -q -- "+prog); got&hupInt != hupInt {
		t.Errorf("under vtrace SigIgn %#x, natively %#x: SIGHUP or SIGINT no longer ignored", got, native)
	}
	// The others it was started with ignored, which Go's runtime installs
	// its handlers over (vtraceEntry reads them first: entry.go), as
	// natively.
	const others = "QUIT PIPE USR1 USR2 TERM ALRM"
	want := sigIgnored(t, "trap '' "+others+"; exec "+prog)
	if got := sigIgnored(t, "trap '' "+others+"; exec "+bin+" run -q -- "+prog); got != want {
		t.Errorf("under vtrace started with %s ignored: SigIgn %#x, natively %#x", others, got, want)
	}
	// Not ignored, they are not ignored either (vtrace handles them;
	// the program's exec resets a handler).
	if got := sigIgnored(t, "exec "+bin+" run -q -- "+prog); got&hupInt != 0 {
		t.Errorf("under vtrace started without ignoring them, SigIgn %#x", got)
	}

	// nohup: a SIGHUP to vtrace does not end the run.
	cmd := exec.Command("sh", "-c", "trap '' HUP; exec "+bin+" run -- sleep 1")
	se, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(se)
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "vtrace ") {
		t.Fatalf("first stderr line %q (%v), want the start line", line, err)
	}
	time.Sleep(100 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGHUP)
	var rest strings.Builder
	_, _ = rd.WriteTo(&rest)
	if err := cmd.Wait(); err != nil {
		t.Errorf("vtrace with SIGHUP ignored, sent SIGHUP: %v, want exit 0 (the program's)\n%s", err, rest.String())
	}
}
