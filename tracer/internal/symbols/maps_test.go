package symbols

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// An open Maps reads the mappings of its memory as they are at each read
// (a mapping made after the open shows), the whole text however long, and
// what /proc/PID/maps opened anew gives.
func TestMapsRereads(t *testing.T) {
	m, err := OpenMaps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.buf = make([]byte, 64) // several reads, and growth, on the first read
	// The Go runtime's threads may map memory between two reads: the two
	// texts agree on some try.
	var got, want []byte
	for try := 0; try < 20; try++ {
		if got, err = m.text(); err != nil {
			t.Fatal(err)
		}
		if want, err = readMapsText(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if string(got) == string(want) {
			break
		}
	}
	if string(got) != string(want) {
		t.Fatalf("open Maps read\n%s\nwant (a new open)\n%s", got, want)
	}
	// A mapping of its own: a file mapped at an address no other has.
	f, err := os.CreateTemp(t.TempDir(), "mapped-*")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(4096); err != nil {
		t.Fatal(err)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ, unix.MAP_SHARED)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	again, err := m.text()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(again), f.Name()) {
		t.Errorf("a file mapped after the open is not in the next read:\n%s", again)
	}
	if err := unix.Munmap(b); err != nil {
		t.Fatal(err)
	}
	if after, err := m.text(); err != nil || strings.Contains(string(after), f.Name()) {
		t.Errorf("the unmapped file is still in the read (%v):\n%s", err, after)
	}
	sp, err := LoadSpaceMaps(m, os.Getpid())
	if err != nil || len(sp.Mappings()) == 0 {
		t.Errorf("LoadSpaceMaps: %v, %v", sp, err)
	}
}

// A Maps opened before its process execs does not follow it to its new
// memory (the kernel bound the old one): it reads as gone (ErrMapsGone),
// never as the old mappings or the new program's; one opened after the
// exec shows the new program.
func TestMapsGoneAtExec(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep")
	}
	cmd := exec.Command(sh, "-c", "read x; exec "+sleep+" 30")
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	m, err := OpenMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if text, err := m.text(); err != nil || strings.Contains(string(text), sleep) {
		t.Fatalf("before the exec: %v\n%s", err, text)
	}
	w.Write([]byte("go\n"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
		if strings.HasSuffix(exe, "/sleep") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d did not exec %s (exe %q)", pid, sleep, exe)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if text, err := m.text(); !errors.Is(err, ErrMapsGone) {
		t.Errorf("after the exec, the Maps opened before reads %v:\n%s", err, text)
	}
	m2, err := OpenMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if text, err := m2.text(); err != nil || !strings.Contains(string(text), "sleep") {
		t.Errorf("a Maps opened after the exec: %v\n%s", err, text)
	}
}
