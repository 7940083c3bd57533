package symbols

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

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

// armed loads m's Space until a second load reuses it without reading the
// text (the Go runtime's threads may map memory between two loads): the
// keys are then those of the mappings as they are. It skips the test on
// a kernel without PROCMAP_QUERY.
func armed(t *testing.T, m *Maps) *Space {
	t.Helper()
	for try := 0; try < 20; try++ {
		sp, err := LoadSpaceMaps(m, os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if m.noQuery {
			t.Skip("no PROCMAP_QUERY (Linux < 6.11)")
		}
		n := m.texts
		again, err := LoadSpaceMaps(m, os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if again == sp && m.texts == n {
			return sp
		}
	}
	t.Fatal("the Space is never reused: the query's keys never match the text's")
	return nil
}

// The text's lines and PROCMAP_QUERY's answers agree on a process whose
// memory does not change (a stopped sleep): the second load asks the
// kernel and reuses the Space, without reading the text again.
func TestMapsQueryReuses(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep")
	}
	cmd := exec.Command(sleep, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Until it has execed sleep and mapped its libraries.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
		if strings.Contains(string(b), "libc") || time.Now().After(deadline) {
			break
		}
		unix.Kill(pid, unix.SIGCONT)
		time.Sleep(5 * time.Millisecond)
		unix.Kill(pid, unix.SIGSTOP)
	}
	m, err := OpenMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sp, err := LoadSpaceMaps(m, pid)
	if err != nil {
		t.Fatal(err)
	}
	if m.noQuery {
		t.Skip("no PROCMAP_QUERY (Linux < 6.11)")
	}
	for i := 0; i < 3; i++ {
		again, err := LoadSpaceMaps(m, pid)
		if err != nil || again != sp || m.texts != 1 {
			t.Fatalf("load %d: %p (%v), want the first Space %p; %d text reads, want 1", i+2, again, err, sp, m.texts)
		}
	}
}

// Every change of a writable or executable mapping's bounds, permissions,
// offset or file is seen by the query, and the text read again: a Space is
// never reused over code or writable memory it does not describe. Each
// change is made after the Space was reused once (its keys are the
// mappings of now).
func TestMapsQuerySeesChanges(t *testing.T) {
	m, err := OpenMaps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dir := t.TempDir()
	file := func(name string, fill byte) int {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(bytes.Repeat([]byte{fill}, 2*4096)); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Dup(int(f.Fd()))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	fa, fb := file("a.so", 1), file("b.so", 2)
	// Two pages at an address of their own, between two inaccessible
	// guard pages, so that the kernel never merges a mapping made there
	// with a neighbour of the same permissions (the Go heap's anonymous
	// rw-p memory may lie next to it): the changes map over them in place
	// (MAP_FIXED).
	res, err := unix.Mmap(-1, 0, 4*4096, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	base := uint64(uintptr(unsafe.Pointer(&res[0])))
	defer unix.Syscall(unix.SYS_MUNMAP, uintptr(base), 4*4096, 0)
	at := base + 4096
	mem := res[4096 : 3*4096]
	if err := unix.Mprotect(mem, unix.PROT_READ); err != nil {
		t.Fatal(err)
	}
	mapAt := func(fd int, off int64, prot int) { // fd -1: anonymous memory
		flags := unix.MAP_PRIVATE | unix.MAP_FIXED
		if fd < 0 {
			flags |= unix.MAP_ANONYMOUS
		}
		_, _, e := unix.Syscall6(unix.SYS_MMAP, uintptr(at), 2*4096, uintptr(prot), uintptr(flags), uintptr(fd), uintptr(off))
		if e != 0 {
			t.Fatal(e)
		}
	}
	steps := []struct {
		what   string
		change func()
		want   Mapping // at at
	}{
		{"file a's code mapped over the read-only anonymous pages", func() { mapAt(fa, 0, unix.PROT_READ|unix.PROT_EXEC) },
			Mapping{Start: at, End: at + 2*4096, Perms: "r-xp", Path: filepath.Join(dir, "a.so")}},
		{"file b at the same place, same size and permissions (dlclose, dlopen)", func() { mapAt(fb, 0, unix.PROT_READ|unix.PROT_EXEC) },
			Mapping{Start: at, End: at + 2*4096, Perms: "r-xp", Path: filepath.Join(dir, "b.so")}},
		{"file b made writable data (mprotect)", func() {
			if err := unix.Mprotect(mem, unix.PROT_READ|unix.PROT_WRITE); err != nil {
				t.Fatal(err)
			}
		}, Mapping{Start: at, End: at + 2*4096, Perms: "rw-p", Path: filepath.Join(dir, "b.so")}},
		{"anonymous writable memory mapped over it (an allocator's arena)", func() { mapAt(-1, 0, unix.PROT_READ|unix.PROT_WRITE) },
			Mapping{Start: at, End: at + 2*4096, Perms: "rw-p"}},
		{"file b from another offset", func() { mapAt(fb, 4096, unix.PROT_READ|unix.PROT_EXEC) },
			Mapping{Start: at, End: at + 2*4096, Perms: "r-xp", Offset: 4096, Path: filepath.Join(dir, "b.so")}},
		{"its second page unmapped", func() {
			if _, _, e := unix.Syscall(unix.SYS_MUNMAP, uintptr(at+4096), 4096, 0); e != 0 {
				t.Fatal(e)
			}
		}, Mapping{Start: at, End: at + 4096, Perms: "r-xp", Offset: 4096, Path: filepath.Join(dir, "b.so")}},
	}
	for _, st := range steps {
		before := armed(t, m)
		st.change()
		sp, err := LoadSpaceMaps(m, os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		got, ok := sp.MappingAt(at)
		got.Major, got.Minor, got.Inode = 0, 0, 0
		if sp == before || !ok || got != st.want {
			t.Errorf("%s: the Space reused: %v; mapping at %#x %+v, want %+v", st.what, sp == before, at, got, st.want)
		}
	}
	// The page unmapped shows as such.
	armed(t, m)
	if _, _, e := unix.Syscall(unix.SYS_MUNMAP, uintptr(at), 4096, 0); e != 0 {
		t.Fatal(e)
	}
	sp, err := LoadSpaceMaps(m, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := sp.MappingAt(at); ok {
		t.Errorf("after munmap, a mapping at %#x: %+v", at, got)
	}
}

// A mapping of a checked kind above the last one the Space knows is seen:
// each walk asks once more past its last key (the Space is told one
// mapping fewer of each kind in turn, its highest: the vDSO's code, the
// stack).
func TestMapsQuerySeesOneMore(t *testing.T) {
	m, err := OpenMaps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	armed(t, m)
	if same, err := m.unchanged(&m.keys); !same || err != nil {
		t.Fatalf("unchanged with the keys of now: %v, %v", same, err)
	}
	for i := range m.keys {
		if len(m.keys[i]) == 0 {
			t.Fatalf("no mapping of kind %#x", checkedKinds[i])
		}
		keys := [2][]vmaKey{slices.Clone(m.keys[0]), slices.Clone(m.keys[1])}
		keys[i] = keys[i][:len(keys[i])-1]
		if same, err := m.unchanged(&keys); same || err != nil {
			t.Errorf("kind %#x with its highest mapping unknown: unchanged %v (%v)", checkedKinds[i], same, err)
		}
	}
}
