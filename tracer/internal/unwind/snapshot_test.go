package unwind

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/symbols"
)

// snapshot is a stopped process as testdata/snapshot (run by gen.sh)
// captured it: see the Snapshot type there.
type snapshot struct {
	Binary  string `json:"binary"`
	BuildID string `json:"build_id"`
	Arch    string `json:"arch"`
	Bias    string `json:"bias"`
	Stops   []struct {
		Name      string `json:"name"`
		LinkPC    string `json:"link_pc"`
		PrStatus  string `json:"prstatus"`
		StackAddr string `json:"stack_addr"`
		Stack     string `json:"stack"`
	} `json:"stops"`

	bin  *symbols.Binary
	bias uint64
}

// stop is one replayable stop: registers, stack memory, CFI.
type stop struct {
	regs arch.Regs
	mem  *stackMem
	snap *snapshot
}

func loadSnapshot(t *testing.T, name string) *snapshot {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	s.bin, err = symbols.OpenBinary(filepath.Join("testdata", s.Binary))
	if err != nil {
		t.Fatal(err)
	}
	if s.bin.BuildID != s.BuildID {
		t.Fatalf("%s was captured from a binary with build-id %s, %s has %s: regenerate with testdata/gen.sh",
			name, s.BuildID, s.Binary, s.bin.BuildID)
	}
	s.bias = hexU64(t, s.Bias)
	return &s
}

func (s *snapshot) stop(t *testing.T, name string) *stop {
	t.Helper()
	for _, st := range s.Stops {
		if st.Name != name {
			continue
		}
		raw, err := hex.DecodeString(st.PrStatus)
		if err != nil {
			t.Fatal(err)
		}
		stack, err := hex.DecodeString(st.Stack)
		if err != nil {
			t.Fatal(err)
		}
		p := &stop{snap: s, mem: &stackMem{base: hexU64(t, st.StackAddr), data: stack}}
		if err := arch.DecodePrStatus(raw, &p.regs); err != nil {
			t.Fatal(err)
		}
		if p.regs.Arch.Name != s.Arch {
			t.Fatalf("%s: registers of %s, snapshot of %s", name, p.regs.Arch.Name, s.Arch)
		}
		if want := s.bias + hexU64(t, st.LinkPC); p.regs.PC() != want {
			t.Fatalf("%s: pc %#x, want %#x", name, p.regs.PC(), want)
		}
		if sp := p.regs.SP(); sp < p.mem.base || sp >= p.mem.base+uint64(len(p.mem.data)) {
			t.Fatalf("%s: sp %#x outside the stack snapshot at %#x", name, sp, p.mem.base)
		}
		return p
	}
	t.Fatalf("no stop %q", name)
	return nil
}

// cfi is the executable's .eh_frame at the snapshot's load bias. The
// libraries' CFI is not there: frames in libc unwind by frame pointer, or
// not at all.
func (s *snapshot) cfi(t *testing.T) frame.FrameDescriptionEntries {
	t.Helper()
	fdes, err := s.bin.FDEs(s.bias)
	if err != nil {
		t.Fatal(err)
	}
	return fdes
}

// link converts a runtime address of the executable to a link-time one.
func (s *snapshot) link(addr uint64) uint64 { return addr - s.bias }

// sym names a runtime address of the executable ("main+0x12").
func (s *snapshot) sym(addr uint64) string {
	name, off, ok := s.bin.SymbolAt(s.link(addr))
	if !ok {
		return fmt.Sprintf("%#x", addr)
	}
	return fmt.Sprintf("%s+%#x", name, off)
}

func hexU64(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// stackMem is Memory over a stack snapshot; reads elsewhere fail.
type stackMem struct {
	base uint64
	data []byte
}

func (m *stackMem) ReadWord(addr uint64, size int) (uint64, error) {
	if addr < m.base || addr-m.base+uint64(size) > uint64(len(m.data)) {
		return 0, fmt.Errorf("read %#x: outside the snapshot", addr)
	}
	b := m.data[addr-m.base:]
	if size == 4 {
		return uint64(binary.LittleEndian.Uint32(b)), nil
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (m *stackMem) word(t *testing.T, addr uint64, size int) uint64 {
	t.Helper()
	v, err := m.ReadWord(addr, size)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// noCFI covers no pc: every frame unwinds by frame pointer.
type noCFI struct{}

func (noCFI) FDEForPC(pc uint64) (*frame.FrameDescriptionEntry, error) {
	return nil, &frame.ErrNoFDEForPC{PC: pc}
}

// cfiFunc adapts a function to CFI.
type cfiFunc func(pc uint64) (*frame.FrameDescriptionEntry, error)

func (f cfiFunc) FDEForPC(pc uint64) (*frame.FrameDescriptionEntry, error) { return f(pc) }

func dump(s *snapshot, frames []Frame) string {
	out := ""
	for i, f := range frames {
		out += fmt.Sprintf("#%d %s pc=%#x (%s) cfa=%#x retslot=%#x retreg=%d ret=%#x (%s)", i, f.Method, f.PC, s.sym(f.PC),
			f.CFA, f.RetSlot, f.RetReg, f.Ret, s.sym(f.Ret))
		for _, sv := range f.Saved {
			out += fmt.Sprintf(" %d@%#x=%#x", sv.Reg, sv.Addr, sv.Value)
		}
		out += "\n"
	}
	return out
}

// frameWant is what a test checks of one frame; zero fields are not
// checked, except Saved (nil: none expected).
type frameWant struct {
	fn      string // symbol of PC (of PC-1 for callers), "main+0x12"
	method  string
	cfa     uint64
	retSlot uint64
	ret     string // symbol of Ret
	saved   []SavedSlot
}

func checkFrames(t *testing.T, s *snapshot, frames []Frame, want []frameWant) {
	t.Helper()
	if len(frames) < len(want) {
		t.Fatalf("%d frames, want at least %d:\n%s", len(frames), len(want), dump(s, frames))
	}
	for i, w := range want {
		f := frames[i]
		if got := s.sym(f.PC); got != w.fn {
			t.Errorf("frame %d: pc at %s, want %s", i, got, w.fn)
		}
		if f.Method != w.method {
			t.Errorf("frame %d: method %s, want %s", i, f.Method, w.method)
		}
		if f.CFA != w.cfa {
			t.Errorf("frame %d: cfa %#x, want %#x", i, f.CFA, w.cfa)
		}
		if f.RetSlot != w.retSlot {
			t.Errorf("frame %d: return slot %#x, want %#x", i, f.RetSlot, w.retSlot)
		}
		if w.ret != "" && s.sym(f.Ret) != w.ret {
			t.Errorf("frame %d: returns to %s, want %s", i, s.sym(f.Ret), w.ret)
		}
		if f.RetReg != -1 {
			t.Errorf("frame %d: return register %d, want none", i, f.RetReg)
		}
		if fmt.Sprint(f.Saved) != fmt.Sprint(w.saved) {
			t.Errorf("frame %d: saved %v, want %v", i, f.Saved, w.saved)
		}
	}
	if t.Failed() {
		t.Logf("frames:\n%s", dump(s, frames))
	}
}
