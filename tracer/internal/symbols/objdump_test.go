package symbols

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The seed program's golden builds and their objdump -d listings, shared
// with package disasm (see ../disasm/testdata/gen.sh).
const disasmData = "../disasm/testdata"

var seedBuilds = []string{"gcc-O0", "gcc-O2", "clang-O0", "clang-O2", "gcc-m32-O0", "gcc-m32-O2"}

// objdumpListing is what the tests take from `objdump -d`: the symbol
// headers, each instruction under its header, and the <sym+off> objdump
// printed for the targets of direct branches.
type objdumpListing struct {
	headers  []objHeader
	insns    []objInsn
	branches map[uint64]string // target -> "printf@plt", "createproc+0x34"
}

type objHeader struct {
	addr uint64
	name string
}

type objInsn struct {
	addr uint64
	fn   objHeader // the header it is listed under
}

var (
	objHeaderRE = regexp.MustCompile(`^([0-9a-f]+) <(.+)>:$`)
	objInsnRE   = regexp.MustCompile(`^ +([0-9a-f]+):\t(.*)$`)
	objBranchRE = regexp.MustCompile(`^(call|jmp|j[a-z]+) +([0-9a-f]+) <([^>]+)>$`)
)

func readObjdump(t *testing.T, path string) *objdumpListing {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l := &objdumpListing{branches: map[uint64]string{}}
	var cur objHeader
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := objHeaderRE.FindStringSubmatch(line); m != nil {
			a, _ := strconv.ParseUint(m[1], 16, 64)
			cur = objHeader{a, m[2]}
			l.headers = append(l.headers, cur)
			continue
		}
		m := objInsnRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		a, _ := strconv.ParseUint(m[1], 16, 64)
		l.insns = append(l.insns, objInsn{a, cur})
		text := strings.Join(strings.Fields(m[2]), " ")
		if b := objBranchRE.FindStringSubmatch(text); b != nil {
			target, _ := strconv.ParseUint(b[2], 16, 64)
			l.branches[target] = b[3]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(l.headers) == 0 {
		t.Fatalf("%s: no objdump headers", path)
	}
	return l
}

// symText formats SymbolAt's answer as objdump does inside an instruction.
func symText(b *Binary, addr uint64) string {
	name, off, ok := b.SymbolAt(addr)
	switch {
	case !ok:
		return "?"
	case off == 0:
		return name
	}
	return fmt.Sprintf("%s+%#x", name, off)
}

// objdumpNames reports whether objdump's name for a header is one SymbolAt
// is expected to give: not a section (".plt") nor PLT0, which objdump names
// after the stub that follows it ("printf@plt-0x10").
func objdumpNames(name string) bool {
	return !strings.HasPrefix(name, ".") && !strings.Contains(name, "@plt-")
}

func TestSymbolAtMatchesObjdump(t *testing.T) {
	paths := []string{"testdata/gcc-O2-g"}
	for _, b := range seedBuilds {
		paths = append(paths, filepath.Join(disasmData, b))
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			b, err := OpenBinary(path)
			if err != nil {
				t.Fatal(err)
			}
			l := readObjdump(t, path+".objdump")
			for _, h := range l.headers {
				if !objdumpNames(h.name) {
					continue
				}
				if got := symText(b, h.addr); got != h.name {
					t.Errorf("%#x: %s, objdump's header says %s", h.addr, got, h.name)
				}
			}
			// Every instruction, padding included, is named after the
			// function objdump lists it under.
			for _, in := range l.insns {
				if !objdumpNames(in.fn.name) {
					continue
				}
				want := in.fn.name
				if in.addr != in.fn.addr {
					want = fmt.Sprintf("%s+%#x", in.fn.name, in.addr-in.fn.addr)
				}
				if got := symText(b, in.addr); got != want {
					t.Errorf("%#x: %s, objdump lists it as %s", in.addr, got, want)
				}
			}
			// Branch targets. objdump names PLT0, the lazy-binding header
			// every stub jumps to, after the last symbol before it, in
			// another section (jmp 1020 <_init+0x20>): vtrace does not.
			plt := b.img.Section(".plt")
			for target, want := range l.branches {
				if plt != nil && target >= plt.Addr && target < plt.Addr+plt.Size && !strings.Contains(want, "@plt") {
					want = "?"
				}
				if got := symText(b, target); got != want {
					t.Errorf("branch target %#x: %s, objdump says <%s>", target, got, want)
				}
			}
		})
	}
}
