package unwind

import (
	"fmt"
	"testing"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"github.com/go-delve/delve/pkg/dwarf/regnum"
)

// The snapshots are the seed program (targets/badvfork.c) of
// ../disasm/testdata stopped in its own code; see testdata/gen.sh. Link-time
// addresses below are those of ../disasm/testdata/<build>.objdump.

func reg(p *stop, n int) uint64 {
	v, _ := p.regs.Get(n)
	return v
}

// unwindStop unwinds a stop with the executable's CFI and checks the
// invariants every frame must satisfy: its return slot and saved-register
// slots hold what it reports, and CFAs grow toward the stack's top.
func unwindStop(t *testing.T, s *snapshot, p *stop, cfi CFI) []Frame {
	t.Helper()
	frames, err := Unwind(&p.regs, p.mem, cfi, 64)
	if err != nil {
		t.Fatal(err)
	}
	size := p.regs.Arch.PtrSize
	for i, f := range frames {
		if f.RetSlot != 0 && p.mem.word(t, f.RetSlot, size) != f.Ret {
			t.Errorf("frame %d: return slot %#x does not hold %#x", i, f.RetSlot, f.Ret)
		}
		for _, sv := range f.Saved {
			if p.mem.word(t, sv.Addr, size) != sv.Value {
				t.Errorf("frame %d: slot %#x of reg %d does not hold %#x", i, sv.Addr, sv.Reg, sv.Value)
			}
		}
		if i > 0 && f.CFA <= frames[i-1].CFA {
			t.Errorf("frame %d: cfa %#x not above frame %d's %#x", i, f.CFA, i-1, frames[i-1].CFA)
		}
	}
	return frames
}

// amd64Frames returns the expected frames of createproc (at fn) and main
// when createproc's frame pointer is rbp: gcc -O0 saves %rbp at CFA-16, the
// return address main+0x12 (0x116b, after main's call createproc) at CFA-8.
func amd64Frames(t *testing.T, p *stop, fn string, rbp uint64) []frameWant {
	mainRBP := p.mem.word(t, rbp, 8)
	return []frameWant{
		{fn: fn, method: "cfi", cfa: rbp + 16, retSlot: rbp + 8, ret: "main+0x12",
			saved: []SavedSlot{{Reg: regnum.AMD64_Rbp, Addr: rbp, Value: mainRBP}}},
		{fn: "main+0x12", method: "cfi", cfa: mainRBP + 16, retSlot: mainRBP + 8,
			saved: []SavedSlot{{Reg: regnum.AMD64_Rbp, Addr: mainRBP, Value: p.mem.word(t, mainRBP, 8)}}},
	}
}

func TestUnwindAMD64CreateprocCallsVfork(t *testing.T) {
	s := loadSnapshot(t, "gcc-O0.json")
	p := s.stop(t, "createproc-call-vfork")
	frames := unwindStop(t, s, p, s.cfi(t))
	want := amd64Frames(t, p, "createproc+0x8", reg(p, regnum.AMD64_Rbp))
	checkFrames(t, s, frames, want)
	if len(frames) != 2 {
		// main's caller is in libc, whose CFI the test does not have;
		// main's saved %rbp (1) is no frame pointer: the walk ends there.
		t.Errorf("%d frames, want 2:\n%s", len(frames), dump(s, frames))
	}
	if got := frames[0].Ret - s.bias; got != 0x116b {
		t.Errorf("createproc returns to %#x, want 0x116b (main+18)", got)
	}
	if frames[0].Saved[0].Addr != frames[0].CFA-16 {
		t.Errorf("saved %%rbp at %#x, want CFA-16 = %#x", frames[0].Saved[0].Addr, frames[0].CFA-16)
	}
}

func TestUnwindAMD64FunctionEntry(t *testing.T) {
	// At createproc's first instruction only the return address is on the
	// stack: the CIE's rules (CFA = rsp+8, return address at CFA-8).
	s := loadSnapshot(t, "gcc-O0.json")
	p := s.stop(t, "createproc-entry")
	rsp := p.regs.SP()
	frames := unwindStop(t, s, p, s.cfi(t))
	// main's frame is the one seen at the call to vfork (same run).
	at := s.stop(t, "createproc-call-vfork")
	want := amd64Frames(t, at, "createproc+0x0", reg(at, regnum.AMD64_Rbp))
	want[0].cfa, want[0].retSlot, want[0].saved = rsp+8, rsp, nil
	checkFrames(t, s, frames, want)
}

func TestUnwindAMD64Epilogue(t *testing.T) {
	// At createproc's ret (after leave, reached without a vfork: see
	// gen.sh). gcc's CFI still says %rbp is at CFA-16, just below %rsp.
	s := loadSnapshot(t, "gcc-O0.json")
	p := s.stop(t, "createproc-ret")
	rsp := p.regs.SP()
	frames := unwindStop(t, s, p, s.cfi(t))
	want := amd64Frames(t, p, "createproc+0x3a", rsp-8)
	want[0].saved[0].Value = reg(p, regnum.AMD64_Rbp)
	checkFrames(t, s, frames, want)
	// main's frame is the one seen at the call to vfork.
	at := unwindStop(t, s, s.stop(t, "createproc-call-vfork"), s.cfi(t))
	if frames[1].CFA != at[1].CFA || frames[1].RetSlot != at[1].RetSlot {
		t.Errorf("main's frame at createproc's ret %+v, at its call to vfork %+v", frames[1], at[1])
	}
}

func TestUnwindAMD64PLT(t *testing.T) {
	// The .plt FDE: PLT0 has CFA rsp+16, then rsp+24 after its push; the
	// stubs have DW_CFA_def_cfa_expression rsp+8 + ((rip&15) >= 11) * 8,
	// which counts the push $index at stub+6. PLT0 (at 0x1020, after .init)
	// has no name.
	s := loadSnapshot(t, "gcc-O0.json")
	for _, c := range []struct {
		stop, fn string
		cfa      uint64 // CFA - rsp
	}{
		{"vfork-plt", "vfork@plt+0x0", 8},
		{"vfork-plt-pushed", "vfork@plt+0xb", 16},
		{"plt0", fmt.Sprintf("%#x", s.bias+0x1020), 16},
		{"plt0-pushed", fmt.Sprintf("%#x", s.bias+0x1026), 24},
	} {
		t.Run(c.stop, func(t *testing.T) {
			p := s.stop(t, c.stop)
			rsp := p.regs.SP()
			frames := unwindStop(t, s, p, s.cfi(t))
			want := []frameWant{{fn: c.fn, method: "cfi", cfa: rsp + c.cfa, retSlot: rsp + c.cfa - 8, ret: "createproc+0xd"}}
			want = append(want, amd64Frames(t, p, "createproc+0xd", reg(p, regnum.AMD64_Rbp))...)
			checkFrames(t, s, frames, want)
			if len(frames) != 3 {
				t.Errorf("%d frames, want 3:\n%s", len(frames), dump(s, frames))
			}
		})
	}
}

func TestUnwindAMD64FramePointer(t *testing.T) {
	// Without CFI the frame-pointer chain gives the same frames in -O0
	// code once the prologue has run.
	s := loadSnapshot(t, "gcc-O0.json")
	p := s.stop(t, "createproc-call-vfork")
	want := amd64Frames(t, p, "createproc+0x8", reg(p, regnum.AMD64_Rbp))
	for i := range want {
		want[i].method = "fp"
	}
	for name, cfi := range map[string]CFI{"no FDE": noCFI{}, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			frames := unwindStop(t, s, p, cfi)
			checkFrames(t, s, frames, want)
			if len(frames) != 2 {
				t.Errorf("%d frames, want 2:\n%s", len(frames), dump(s, frames))
			}
		})
	}
	// Mixed: the PLT stub and createproc by CFI; a CFI that knows only
	// the .plt leaves main to the frame pointer.
	pp := s.stop(t, "vfork-plt")
	fdes := s.cfi(t)
	pltOnly := cfiFunc(func(pc uint64) (*frame.FrameDescriptionEntry, error) {
		if s.sym(pc) != "vfork@plt+0x0" {
			return noCFI{}.FDEForPC(pc)
		}
		return fdes.FDEForPC(pc)
	})
	frames := unwindStop(t, s, pp, pltOnly)
	if len(frames) != 3 || frames[0].Method != "cfi" || frames[1].Method != "fp" || frames[2].Method != "fp" {
		t.Fatalf("want cfi, fp, fp frames:\n%s", dump(s, frames))
	}
	all := unwindStop(t, s, pp, fdes)
	for i := range frames {
		if frames[i].CFA != all[i].CFA || frames[i].RetSlot != all[i].RetSlot || frames[i].Ret != all[i].Ret {
			t.Errorf("frame %d by %s: %+v, by CFI: %+v", i, frames[i].Method, frames[i], all[i])
		}
	}
}

func TestUnwindMax(t *testing.T) {
	s := loadSnapshot(t, "gcc-O0.json")
	p := s.stop(t, "vfork-plt")
	frames, err := Unwind(&p.regs, p.mem, s.cfi(t), 1)
	if err != nil || len(frames) != 1 {
		t.Fatalf("max 1: %d frames, %v", len(frames), err)
	}
}

func TestUnwindNoFrames(t *testing.T) {
	s := loadSnapshot(t, "gcc-O0.json")
	p := s.stop(t, "createproc-call-vfork")
	regs := p.regs
	regs.Set(regnum.AMD64_Rbp, 0)
	if frames, err := Unwind(&regs, p.mem, noCFI{}, 8); err == nil || len(frames) != 0 {
		t.Errorf("no CFI, no frame pointer: %d frames, err %v", len(frames), err)
	}
	regs.SetPC(0)
	if _, err := Unwind(&regs, p.mem, s.cfi(t), 8); err != ErrNoFrames {
		t.Errorf("pc 0: err %v, want ErrNoFrames", err)
	}
}

// i386Frames returns the expected frames of createproc and main when
// createproc's frame pointer is ebp. gcc -m32 -O0 saves %ebp at CFA-8 and
// %ebx at CFA-12 in createproc. main realigns its stack: its CFA is
// DW_CFA_def_cfa_expression [ebp-8] (the saved %ecx) and its %ebp and %ebx
// slots are DW_CFA_expression ebp+0 and ebp-4.
func i386Frames(t *testing.T, p *stop, fn string, ebp uint64) []frameWant {
	mainEBP := p.mem.word(t, ebp, 4)
	mainCFA := p.mem.word(t, mainEBP-8, 4)
	return []frameWant{
		{fn: fn, method: "cfi", cfa: ebp + 8, retSlot: ebp + 4, ret: "main+0x22",
			saved: []SavedSlot{
				{Reg: regnum.I386_Ebx, Addr: ebp - 4, Value: p.mem.word(t, ebp-4, 4)},
				{Reg: regnum.I386_Ebp, Addr: ebp, Value: mainEBP},
			}},
		{fn: "main+0x22", method: "cfi", cfa: mainCFA, retSlot: mainCFA - 4,
			saved: []SavedSlot{
				{Reg: regnum.I386_Ebx, Addr: mainEBP - 4, Value: p.mem.word(t, mainEBP-4, 4)},
				{Reg: regnum.I386_Ebp, Addr: mainEBP, Value: p.mem.word(t, mainEBP, 4)},
			}},
	}
}

func TestUnwindI386CreateprocCallsVfork(t *testing.T) {
	s := loadSnapshot(t, "gcc-m32-O0.json")
	p := s.stop(t, "createproc-call-vfork")
	frames := unwindStop(t, s, p, s.cfi(t))
	checkFrames(t, s, frames, i386Frames(t, p, "createproc+0x18", reg(p, regnum.I386_Ebp)))
	if len(frames) != 2 {
		t.Errorf("%d frames, want 2:\n%s", len(frames), dump(s, frames))
	}
	if got := frames[0].Ret - s.bias; got != 0x11cf {
		t.Errorf("createproc returns to %#x, want 0x11cf (main+0x22)", got)
	}
	if sv := frames[0].Saved[0]; sv.Reg != regnum.I386_Ebx || sv.Addr != frames[0].CFA-12 {
		t.Errorf("createproc's %%ebx slot: %+v, want at CFA-12", sv)
	}
}

func TestUnwindI386Epilogue(t *testing.T) {
	// At createproc's ret the CFI says DW_CFA_restore for %ebp and %ebx,
	// which delve reports as RuleUndefined: they must keep their (restored)
	// values, or main's CFA expression [ebp-8] cannot be evaluated.
	s := loadSnapshot(t, "gcc-m32-O0.json")
	p := s.stop(t, "createproc-ret")
	esp := p.regs.SP()
	frames := unwindStop(t, s, p, s.cfi(t))
	at := s.stop(t, "createproc-call-vfork")
	want := i386Frames(t, at, "createproc+0x4c", reg(at, regnum.I386_Ebp))
	want[0].cfa, want[0].retSlot, want[0].saved = esp+4, esp, nil
	checkFrames(t, s, frames, want)
}

func TestUnwindI386FunctionEntry(t *testing.T) {
	s := loadSnapshot(t, "gcc-m32-O0.json")
	p := s.stop(t, "createproc-entry")
	esp := p.regs.SP()
	frames := unwindStop(t, s, p, s.cfi(t))
	at := s.stop(t, "createproc-call-vfork")
	want := i386Frames(t, at, "createproc+0x0", reg(at, regnum.I386_Ebp))
	want[0].cfa, want[0].retSlot, want[0].saved = esp+4, esp, nil
	checkFrames(t, s, frames, want)
}

func TestUnwindI386PLT(t *testing.T) {
	// i386 .plt: CFA esp+8 in PLT0, esp+12 after its push; stubs:
	// esp+4 + ((eip&15) >= 11) * 4.
	s := loadSnapshot(t, "gcc-m32-O0.json")
	for _, c := range []struct {
		stop, fn string
		cfa      uint64
	}{
		{"vfork-plt", "vfork@plt+0x0", 4},
		{"vfork-plt-pushed", "vfork@plt+0xb", 8},
		{"plt0", fmt.Sprintf("%#x", s.bias+0x1020), 8},
		{"plt0-pushed", fmt.Sprintf("%#x", s.bias+0x1026), 12},
	} {
		t.Run(c.stop, func(t *testing.T) {
			p := s.stop(t, c.stop)
			esp := p.regs.SP()
			frames := unwindStop(t, s, p, s.cfi(t))
			want := []frameWant{{fn: c.fn, method: "cfi", cfa: esp + c.cfa, retSlot: esp + c.cfa - 4, ret: "createproc+0x1d"}}
			want = append(want, i386Frames(t, p, "createproc+0x1d", reg(p, regnum.I386_Ebp))...)
			checkFrames(t, s, frames, want)
		})
	}
}

func TestUnwindI386FramePointer(t *testing.T) {
	// The frame pointer finds createproc's frame but knows nothing of its
	// %ebx slot.
	s := loadSnapshot(t, "gcc-m32-O0.json")
	p := s.stop(t, "createproc-call-vfork")
	frames := unwindStop(t, s, p, noCFI{})
	want := i386Frames(t, p, "createproc+0x18", reg(p, regnum.I386_Ebp))[:1]
	want[0].method = "fp"
	want[0].saved = want[0].saved[1:]
	checkFrames(t, s, frames, want)
}
