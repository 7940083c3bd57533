package disasm

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// sweepFile is one ELF file whose whole .text the length sweep decodes.
type sweepFile struct {
	name string
	path string
	hint string // how to get the file when it is absent
}

// targetsDir is where `make targets` puts the target builds: VTRACE_TARGETS
// under make test, else the worktree's build/targets.
func targetsDir() string {
	if dir := os.Getenv("VTRACE_TARGETS"); dir != "" {
		return dir
	}
	return filepath.Join("..", "..", "..", "build", "targets")
}

// firstExisting returns the first of paths that exists, or the first path.
func firstExisting(paths ...string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return paths[0]
}

func sweepFiles() []sweepFile {
	td := targetsDir()
	return []sweepFile{
		{"glibc-amd64", "/lib/x86_64-linux-gnu/libc.so.6", "the host's C library"},
		{"glibc-i386", firstExisting("/lib32/libc.so.6", "/lib/i386-linux-gnu/libc.so.6"), "scripts/install-deps.sh installs libc6-i386"},
		{"musl-amd64", "/lib/x86_64-linux-musl/libc.so", "scripts/install-deps.sh installs musl-tools"},
		// Static builds: the libc.a variants of the string functions and
		// the startup code, linked into the seed program.
		{"gcc-O2-static", filepath.Join(td, "gcc-O2-static", "badvfork"), "make targets-gcc-O2-static"},
		{"gcc-O2-m32-static", filepath.Join(td, "gcc-O2-m32-static", "badvfork"), "make targets-gcc-O2-m32-static"},
		{"musl-O2", filepath.Join(td, "musl-O2", "badvfork"), "make targets-musl-O2"},
	}
}

// openELFOrSkip opens an ELF file, skipping the test only when the file is
// absent; any other error (unreadable, not ELF) fails it.
func openELFOrSkip(t *testing.T, path, hint string) *elf.File {
	t.Helper()
	f, err := elf.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s does not exist (%s)", path, hint)
	}
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return f
}

// lengthMismatch is one instruction whose decoded length differs from the
// distance objdump puts between it and the next instruction.
type lengthMismatch struct {
	addr     uint64
	got      int
	want     int
	err      error
	objdump  string
	decoded  string
	encoding []byte
}

// sweepLengths decodes every instruction of the file's .text at objdump's
// own instruction boundaries and compares its length with the distance to
// objdump's next address (the end of .text for the last one). Each
// instruction is decoded where objdump starts it, so one wrong length
// counts once instead of desynchronising everything after it.
func sweepLengths(t *testing.T, f *elf.File, path string) (total int, bad []lengthMismatch) {
	t.Helper()
	a := archOf(t, f)
	text := f.Section(".text")
	if text == nil {
		t.Fatalf("%s: no .text section", path)
	}
	code, err := text.Data()
	if err != nil {
		t.Fatalf("%s: read .text: %v", path, err)
	}
	cmd := exec.Command("objdump", "-d", "--no-show-raw-insn", "-j", ".text", path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("objdump (binutils, installed by scripts/install-deps.sh): %v", err)
	}
	defer cmd.Wait()
	defer out.Close()

	end := text.Addr + text.Size
	var prev uint64
	var prevText []byte
	havePrev := false
	check := func(next uint64) {
		if !havePrev {
			return
		}
		havePrev = false
		if prev < text.Addr || prev >= end || next <= prev || next > end {
			t.Errorf("%s: objdump lists %#x then %#x, outside .text [%#x,%#x)", path, prev, next, text.Addr, end)
			return
		}
		total++
		want := int(next - prev)
		in, err := Decode(code[prev-text.Addr:], prev, a)
		if in.Len == want && err == nil {
			return
		}
		if waitMerged(prevText) && in.Inst.Op == x86asm.FWAIT && in.Len == 1 && want > 1 {
			// objdump shows fwait and the fn* instruction after it as
			// one (9b d9 /7 is "fstcw"), but the CPU executes them as
			// two (Intel SDM, FSTCW: "the processor executes each of
			// these instructions separately"), and a single step stops
			// between them: fwait is 1 byte, then the rest.
			rest, err := Decode(code[prev+1-text.Addr:], prev+1, a)
			if rest.Len == want-1 && err == nil {
				return
			}
			in.Len += rest.Len
		}
		n := min(max(in.Len, want), int(end-prev), 15)
		bad = append(bad, lengthMismatch{addr: prev, got: in.Len, want: want, err: err,
			objdump: string(prevText), decoded: in.FormatATT(nil),
			encoding: code[prev-text.Addr : prev-text.Addr+uint64(n)]})
	}
	r := bufio.NewReaderSize(out, 1<<16)
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			t.Fatalf("%s: objdump line longer than 64 KiB", path)
		}
		if len(line) == 0 && err != nil {
			if err != io.EOF {
				t.Fatalf("read objdump output: %v", err)
			}
			break
		}
		line = bytes.TrimRight(line, "\n")
		// An instruction line is "  addr:\ttext"; objdump prints "\t..."
		// where it skips a run of zero bytes, after which the previous
		// instruction's end is unknown.
		if bytes.Equal(bytes.TrimSpace(line), []byte("...")) {
			havePrev = false
			continue
		}
		colon := bytes.Index(line, []byte(":\t"))
		if colon < 0 || len(line) == 0 || line[0] != ' ' {
			continue
		}
		addr, perr := strconv.ParseUint(string(bytes.TrimSpace(line[:colon])), 16, 64)
		if perr != nil {
			continue
		}
		check(addr)
		prev, havePrev = addr, true
		prevText = append(prevText[:0], line[colon+2:]...)
	}
	check(end)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("objdump %s: %v", path, err)
	}
	if total == 0 {
		t.Fatalf("%s: objdump listed no .text instruction", path)
	}
	return total, bad
}

// waitMerged reports whether objdump's text is one of the mnemonics it
// gives an fwait (9b) followed by the fn* form of an x87 control
// instruction.
func waitMerged(objdump []byte) bool {
	op, _, _ := bytes.Cut(objdump, []byte(" "))
	switch string(op) {
	case "fstcw", "fstsw", "fstenv", "fsave", "finit", "fclex":
		return true
	}
	return false
}

// TestLengthSweep checks Decode's instruction lengths against objdump on
// every instruction of the C libraries vtrace steps through (glibc amd64
// and i386, musl) and of the static target builds: a wrong length makes the
// tracer predict the wrong next pc for a silent instruction, and skip the
// one that follows. objdump (GNU binutils) is the reference: its decoder
// follows the Intel SDM and its boundaries are what the golden tests and
// users read.
func TestLengthSweep(t *testing.T) {
	for _, sf := range sweepFiles() {
		t.Run(sf.name, func(t *testing.T) {
			t.Parallel() // objdump runs while another file is decoded
			f := openELFOrSkip(t, sf.path, sf.hint)
			defer f.Close()
			total, bad := sweepLengths(t, f, sf.path)
			t.Logf("%s: %d instructions, %d length mismatches", sf.path, total, len(bad))
			reportMismatches(t, bad)
		})
	}
}

// reportMismatches fails the test with the mismatches grouped by objdump's
// mnemonic, most frequent first, with an example of each.
func reportMismatches(t *testing.T, bad []lengthMismatch) {
	t.Helper()
	if len(bad) == 0 {
		return
	}
	groups := map[string][]lengthMismatch{}
	for _, m := range bad {
		k := m.objdump
		if i := bytes.IndexAny([]byte(k), " \t"); i >= 0 {
			k = k[:i]
		}
		groups[k] = append(groups[k], m)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if len(groups[keys[i]]) != len(groups[keys[j]]) {
			return len(groups[keys[i]]) > len(groups[keys[j]])
		}
		return keys[i] < keys[j]
	})
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d instructions decoded at the wrong length:\n", len(bad))
	for _, k := range keys {
		m := groups[k][0]
		fmt.Fprintf(&b, "  %6d × %-12s e.g. %#x: % x: length %d, objdump %d (%q); decoded %q",
			len(groups[k]), k, m.addr, m.encoding, m.got, m.want, m.objdump, m.decoded)
		if m.err != nil {
			fmt.Fprintf(&b, " (%v)", m.err)
		}
		b.WriteByte('\n')
	}
	t.Error(b.String())
}
