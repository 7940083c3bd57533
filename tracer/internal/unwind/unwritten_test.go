package unwind

import (
	"encoding/binary"
	"testing"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"github.com/go-delve/delve/pkg/dwarf/regnum"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
)

// fakeFuncs is CFI (possibly none) plus functions of machine code.
type fakeFuncs struct {
	fdes  frame.FrameDescriptionEntries
	funcs map[uint64][]byte // start → code
}

func (f fakeFuncs) FDEForPC(pc uint64) (*frame.FrameDescriptionEntry, error) {
	if f.fdes == nil {
		return nil, &frame.ErrNoFDEForPC{PC: pc}
	}
	return f.fdes.FDEForPC(pc)
}

func (f fakeFuncs) FuncCode(pc uint64) (uint64, []byte, bool) {
	for start, code := range f.funcs {
		if pc >= start && pc < start+uint64(len(code)) {
			return start, code, true
		}
	}
	return 0, nil, false
}

func (f fakeFuncs) IsCode(addr uint64) bool { _, _, ok := f.FuncCode(addr); return ok }

// rr3270's amd64 shape: tramp keeps its return address in %rdi
// (pop %rdi; .cfi_register rip, rdi), reserves 0x4000 bytes and calls
// hook, which makes the syscall; main called tramp.
const (
	hookAt  = 0x401000
	trampAt = 0x402000
	mainAt  = 0x403000
	mainRet = mainAt + 4 // where tramp returns to
	hookPC  = hookAt + 7 // after hook's mov $58,%eax; syscall
)

var (
	popRDI      = []byte{0x5f}                                     // pop %rdi
	subRSP4000  = []byte{0x48, 0x81, 0xec, 0x00, 0x40, 0x00, 0x00} // sub $0x4000,%rsp
	addRSP4000  = []byte{0x48, 0x81, 0xc4, 0x00, 0x40, 0x00, 0x00} // add $0x4000,%rsp
	callRAX     = []byte{0xff, 0xd0}                               // call *%rax
	jmpRDI      = []byte{0xff, 0xe7}                               // jmp *%rdi
	movRAXRDI   = []byte{0x48, 0x89, 0xc7}                         // mov %rax,%rdi
	repStosb    = []byte{0xf3, 0xaa}                               // rep stos %al,(%rdi)
	xchgRDIRAX  = []byte{0x48, 0x97}                               // xchg %rax,%rdi
	cpuid       = []byte{0x0f, 0xa2}                               // cpuid
	movRDIRSI   = []byte{0x48, 0x89, 0xfe}                         // mov %rdi,%rsi: reads %rdi
	hookSyscall = cat(movEAX3A, syscall64)                         // hook up to its pc
)

// callTo is `call target` placed at pc.
func callTo(pc, target uint64) []byte {
	return binary.LittleEndian.AppendUint32([]byte{0xe8}, uint32(target-(pc+5)))
}

// jmpTo is `jmp target` placed at pc.
func jmpTo(pc, target uint64) []byte {
	return binary.LittleEndian.AppendUint32([]byte{0xe9}, uint32(target-(pc+5)))
}

// trampCFI: after pop %rdi (+1) CFA = rsp+0 and rip in rdi; after the sub
// (+7 more) CFA = rsp+0x4000. main has the CIE's rules.
func trampCFI(t *testing.T, hookInsns []byte) frame.FrameDescriptionEntries {
	return debugFrame(t,
		testFDE{hookAt, 0x40, hookInsns},
		testFDE{trampAt, 0x40, []byte{
			cfaAdvanceLoc | 1, cfaDefCFAOffset, 0, cfaRegister, 16, 5,
			cfaAdvanceLoc | 7, cfaDefCFAOffset, 0x80, 0x80, 0x01,
		}},
		testFDE{mainAt, 0x40, nil},
	)
}

// trampCode is tramp calling hook directly (or, indirect, through %rax).
func trampCode(indirect bool) (code []byte, ret uint64) {
	code = cat(popRDI, subRSP4000)
	if indirect {
		code = cat(code, callRAX)
	} else {
		code = cat(code, callTo(trampAt+uint64(len(code)), hookAt))
	}
	ret = trampAt + uint64(len(code))
	return cat(code, addRSP4000, jmpRDI), ret
}

// unwindHook unwinds the parent stopped at hookPC: hook's return slot at
// sp, tramp's frame above it, main's return slot (0: the walk ends).
func unwindHook(t *testing.T, hook []byte, hookInsns []byte, indirect, withCFI bool) []Frame {
	t.Helper()
	tramp, ret := trampCode(indirect)
	f := fakeFuncs{funcs: map[uint64][]byte{hookAt: hook, trampAt: tramp, mainAt: make([]byte, 0x40)}}
	if withCFI {
		f.fdes = trampCFI(t, hookInsns)
	}
	sp := uint64(stackTop - 0x8000)
	mem := wordMem{sp: ret, sp + 8 + 0x4000: 0}
	regs := amd64Regs(hookPC, sp, map[int]uint64{regnum.AMD64_Rdi: mainRet, regnum.AMD64_Rax: hookAt})
	frames, err := Unwind(regs, mem, f, 8)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) < 2 || frames[0].Ret != ret || frames[1].PC != ret {
		t.Fatalf("frames %+v: want hook returning to tramp at %#x", frames, ret)
	}
	return frames
}

func TestUnwrittenReturnRegisterKeepsItsValue(t *testing.T) {
	// hook writes %eax and (its syscall) %rcx, %r11, never %rdi: tramp's
	// return address is the %rdi of the stop, and the walk reaches main.
	// Reading %rdi does not write it; cpuid writes %rax-%rdx only.
	for name, hook := range map[string][]byte{
		"syscall; ret":         cat(hookSyscall, ret),
		"reads and cpuid":      cat(hookSyscall, movRDIRSI, cpuid, ret),
		"loop inside its code": cat(hookSyscall, jeFwd[:1], []byte{0x100 - 2 - 7}, ret), // je back to its start
	} {
		for _, withCFI := range []bool{true, false} {
			// Without CFI (the machine-code unwinder) main's frame, all
			// zero bytes here, does not unwind: the walk ends at tramp.
			frames := unwindHook(t, hook, nil, false, withCFI)
			if f := frames[1]; f.Ret != mainRet || f.RetReg != regnum.AMD64_Rdi || f.RetSlot != 0 || f.CFA != stackTop-0x8000+8+0x4000 {
				t.Errorf("%s (cfi %v): tramp %+v, want return to %#x in rdi", name, withCFI, f, mainRet)
			}
			if !withCFI {
				continue
			}
			if len(frames) != 3 || frames[2].PC != mainRet || frames[2].CFA != frames[1].CFA+8 {
				t.Errorf("%s: frames %+v, want hook, tramp, main", name, frames)
			}
		}
	}
}

func TestWrittenReturnRegisterStaysUnknown(t *testing.T) {
	// Anything that may write %rdi on some path, or that hides what ran
	// before the stop, leaves tramp's return address unknown: the walk
	// ends at tramp (Ret 0), as before the rule.
	callOut := callTo(hookAt+7, 0x404000) // a call: the callee may write anything
	cases := []struct {
		name      string
		hook      []byte
		hookInsns []byte
		indirect  bool
	}{
		{name: "writes it after pc", hook: cat(hookSyscall, movRAXRDI, ret)},
		{name: "rep stos", hook: cat(hookSyscall, repStosb, ret)},
		{name: "xchg", hook: cat(hookSyscall, xchgRDIRAX, ret)},
		{name: "calls", hook: cat(hookSyscall, callOut, ret)},
		{name: "jumps out", hook: cat(hookSyscall, jmpTo(hookAt+7, 0x404000))},
		{name: "undecodable", hook: cat(hookSyscall, bad, ret)},
		{name: "a CFI rule for rdi", hook: cat(hookSyscall, ret), hookInsns: []byte{cfaUndefined, 5}},
		{name: "called indirectly", hook: cat(hookSyscall, ret), indirect: true},
	}
	for _, c := range cases {
		frames := unwindHook(t, c.hook, c.hookInsns, c.indirect, true)
		if len(frames) != 2 || frames[1].Ret != 0 {
			t.Errorf("%s: frames %+v, want tramp's return address unknown", c.name, frames)
		}
	}
}

func TestInsnWritesI386(t *testing.T) {
	// rr3270's i386 hook: mov $190,%eax; int $0x80; ret writes %eax only:
	// tramp's %ecx survives. loop and rep movs write %ecx.
	a := arch.I386
	w, ok := funcWrites(a, 0x1000, cat([]byte{0xb8, 0xbe, 0, 0, 0}, int80, ret))
	if !ok || w != 1<<regnum.I386_Eax {
		t.Errorf("hook writes %#x %v, want %%eax only", w, ok)
	}
	// The same code cut before its ret runs on past the bytes given (a
	// function bounded by its CFI, not a symbol: FuncCode's cfiGapFunc):
	// what it writes is not known.
	if w, ok := funcWrites(a, 0x1000, cat([]byte{0xb8, 0xbe, 0, 0, 0}, int80)); ok {
		t.Errorf("code ending in int $0x80: writes %#x, ok; want not known", w)
	}
	for name, code := range map[string][]byte{
		"loop":          {0xe2, 0xfe}, // loop .
		"rep movsb":     {0xf3, 0xa4}, // rep movsb
		"mov %eax,%ecx": {0x89, 0xc1}, // mov %eax,%ecx
		"cpuid":         {0x0f, 0xa2},
		"mul":           {0xf7, 0xe3}, // mul %ebx: writes %edx:%eax, not %ecx
	} {
		in, err := disasm.Decode(code, 0x1000, a)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		w, ok := insnWrites(in, a)
		ecx := w&(1<<regnum.I386_Ecx) != 0
		if want := name != "mul"; !ok || ecx != want {
			t.Errorf("%s: writes %#x %v, %%ecx written %v, want %v", name, w, ok, ecx, want)
		}
	}
}
