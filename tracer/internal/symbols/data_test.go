package symbols

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// dataProg prints the addresses the program itself knows — errno (libc's
// TLS), a TLS variable of its own, a global, an element of a static array
// — and its thread pointer (the TCB's self pointer at tp+0, glibc's and
// musl's), then waits on stdin while the test reads its maps and memory.
const dataProg = `#include <errno.h>
#include <stdio.h>
__thread int my_tls = 5;
int counter = 3;
static int hidden[4] = {1, 2, 3, 4};
int main(void)
{
	void *tp;
#ifdef __x86_64__
	__asm__("mov %%fs:0, %0" : "=r"(tp));
#else
	__asm__("mov %%gs:0, %0" : "=r"(tp));
#endif
	errno = 0;
	printf("%p %p %p %p %p\n", (void *)&errno, (void *)&my_tls, (void *)&counter, (void *)&hidden[2], tp);
	fflush(stdout);
	getchar();
	return hidden[1] + counter + my_tls;
}
`

// TestDataSymbolsLive checks the data lookups against what a running
// program says about itself: the writable ranges hold its globals, the
// data symbols name them (a static array element by its offset), and the
// TLS layout, found from libc's TLS relocation and the program's TLS
// segment, names errno in libc and the program's own TLS variable.
func TestDataSymbolsLive(t *testing.T) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("gcc not installed (%v): the live data-symbol test compiles its program", err)
	}
	src := filepath.Join(t.TempDir(), "data.c")
	if err := os.WriteFile(src, []byte(dataProg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		flags []string
		libc  string // module of errno
	}{
		{"amd64-pie", []string{"-O0"}, "libc.so.6"},
		{"amd64-static", []string{"-O2", "-static"}, "data"},
		{"i386", []string{"-O0", "-m32"}, "libc.so.6"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "data")
			if out, err := exec.Command(cc, append(c.flags, "-o", bin, src)...).CombinedOutput(); err != nil {
				t.Skipf("gcc %v cannot build here (%v): %s", c.flags, err, out)
			}
			cmd := exec.Command(bin)
			in, _ := cmd.StdinPipe()
			outp, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				if errors.Is(err, syscall.ENOEXEC) {
					t.Skipf("this machine cannot run %s programs: %v", c.name, err)
				}
				t.Fatal(err)
			}
			defer func() { in.Close(); _ = cmd.Wait() }()
			line, err := bufio.NewReader(outp).ReadString('\n')
			if err != nil {
				t.Fatalf("read the program's addresses: %v", err)
			}
			var a [5]uint64
			for i, f := range strings.Fields(line) {
				if a[i], err = strconv.ParseUint(strings.TrimPrefix(f, "0x"), 16, 64); err != nil {
					t.Fatalf("address %q: %v", f, err)
				}
			}
			errnoA, tlsA, counterA, hiddenA, tp := a[0], a[1], a[2], a[3], a[4]
			sp, err := LoadSpace(cmd.Process.Pid)
			if err != nil {
				t.Fatal(err)
			}
			inRanges := func(x uint64) string {
				for _, r := range sp.DataRanges() {
					if x >= r.Start && x < r.End {
						return r.Area + " " + filepath.Base(r.Path)
					}
				}
				return ""
			}
			if got := inRanges(counterA); got != "data data" {
				t.Errorf("counter %#x is in %q, want the program's data range", counterA, got)
			}
			if y := sp.DataSymbolize(counterA); y.Name != "counter" || y.Off != 0 || y.Module != "data" {
				t.Errorf("DataSymbolize(&counter) = %+v", y)
			}
			if y := sp.DataSymbolize(hiddenA + 1); y.Name != "hidden" || y.Off != 9 {
				t.Errorf("DataSymbolize(&hidden[2]+1) = %+v, want hidden+9", y)
			}
			mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			defer mem.Close()
			read := func(addr uint64, size int) (uint64, bool) {
				var b [8]byte
				if _, err := mem.ReadAt(b[:size], int64(addr)); err != nil {
					return 0, false
				}
				if size == 4 {
					return uint64(binary.LittleEndian.Uint32(b[:])), true
				}
				return binary.LittleEndian.Uint64(b[:]), true
			}
			blocks := sp.TLSBlocks(tp, read)
			if y, ok := TLSSymbolize(blocks, errnoA); !ok || y.Name != "errno" || y.Off != 0 || y.Module != c.libc {
				t.Errorf("TLSSymbolize(&errno %#x, tp %#x) = %+v %v, want errno in %s (blocks %+v)", errnoA, tp, y, ok, c.libc, blocks)
			}
			if y, ok := TLSSymbolize(blocks, tlsA+2); !ok || y.Name != "my_tls" || y.Off != 2 || y.Module != "data" {
				t.Errorf("TLSSymbolize(&my_tls+2) = %+v %v, want my_tls+2 in the program", y, ok)
			}
		})
	}
}
