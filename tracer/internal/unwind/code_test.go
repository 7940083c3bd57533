package unwind

import (
	"strings"
	"testing"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"github.com/go-delve/delve/pkg/dwarf/regnum"
	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// fakeCode is a CFI with no FDE at all and one function of machine code;
// code lies in [0x400000, 0x500000).
type fakeCode struct {
	start uint64
	code  []byte
}

func (c fakeCode) FDEForPC(pc uint64) (*frame.FrameDescriptionEntry, error) {
	return nil, &frame.ErrNoFDEForPC{PC: pc}
}

func (c fakeCode) FuncCode(pc uint64) (uint64, []byte, bool) {
	if pc < c.start || pc >= c.start+uint64(len(c.code)) {
		return 0, nil, false
	}
	return c.start, c.code, true
}

func (c fakeCode) IsCode(addr uint64) bool { return addr >= 0x400000 && addr < 0x500000 }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var (
	endbr64    = []byte{0xf3, 0x0f, 0x1e, 0xfa}
	subRSP58   = []byte{0x48, 0x83, 0xec, 0x58}       // sub $0x58,%rsp
	movRDIRAX  = []byte{0x48, 0x89, 0xf8}             // mov %rdi,%rax
	syscall64  = []byte{0x0f, 0x05}                   // syscall
	pushRBX    = []byte{0x53}                         // push %rbx
	pushR12    = []byte{0x41, 0x54}                   // push %r12
	pushRDX    = []byte{0x52}                         // push %rdx
	popRBX     = []byte{0x5b}                         // pop %rbx
	popRDX     = []byte{0x5a}                         // pop %rdx
	movRBXRDI  = []byte{0x48, 0x89, 0xfb}             // mov %rdi,%rbx
	movEAX3A   = []byte{0xb8, 0x3a, 0x00, 0x00, 0x00} // mov $0x3a,%eax
	testRAX    = []byte{0x48, 0x85, 0xc0}             // test %rax,%rax
	jeFwd      = []byte{0x74, 0x10}                   // je .+0x12
	jmpFwd     = []byte{0xeb, 0x02}                   // jmp .+4
	ret        = []byte{0xc3}                         // ret
	leave      = []byte{0xc9}                         // leave
	movRBPRSP  = []byte{0x48, 0x89, 0xec}             // mov %rbp,%rsp
	andRSP     = []byte{0x48, 0x83, 0xe4, 0xf0}       // and $-16,%rsp
	leaRSPm8   = []byte{0x48, 0x8d, 0x64, 0x24, 0xf8} // lea -0x8(%rsp),%rsp
	callRel0   = []byte{0xe8, 0x00, 0x00, 0x00, 0x00} // call .+5
	pushq16    = []byte{0x66, 0x6a, 0x01}             // pushw $1
	bad        = []byte{0x06}                         // push %es: invalid in 64-bit mode
	i386Pushes = []byte{0x53, 0x56, 0x57}             // push %ebx; push %esi; push %edi
	int80      = []byte{0xcd, 0x80}                   // int $0x80
	// 1: sub $0x1000,%rsp; cmp %rbx,%rsp; jne 1b (a stack probe)
	probeLoop = []byte{0x48, 0x81, 0xec, 0x00, 0x10, 0x00, 0x00, 0x48, 0x39, 0xdc, 0x75, 0xf4}
)

const (
	fnStart = 0x401000
	sp0     = 0x7fff0000 // the stack pointer at the stop
)

// codeStop unwinds one frame stopped at fnStart+len(code) (first: a
// vfork stop right after the code), the stack holding words.
func codeStop(t *testing.T, a *arch.Arch, code []byte, words map[uint64]uint64, regs map[int]uint64) (Frame, regState, error) {
	t.Helper()
	r := &arch.Regs{Arch: a}
	r.SetPC(fnStart + uint64(len(code)))
	r.Set(a.SP, sp0)
	for n, v := range regs {
		r.Set(n, v)
	}
	c := fakeCode{start: fnStart, code: append(append([]byte{}, code...), 0x90)} // a nop after pc: pc is inside
	pc := fnStart + uint64(len(code))
	return stepCode(a, newRegState(r), pc, pc, true, wordMem(words), c)
}

func TestStepCodeMuslSyscall(t *testing.T) {
	// musl's syscall(): sub $0x58,%rsp, moves, syscall. The return address
	// is at sp+0x58; the frame pointer (main's) is not this frame's.
	code := cat(subRSP58, movRDIRAX, syscall64)
	f, next, err := codeStop(t, arch.AMD64, code, map[uint64]uint64{sp0 + 0x58: 0x401189}, map[int]uint64{regnum.AMD64_Rbp: 0x7fff1000})
	if err != nil {
		t.Fatal(err)
	}
	if f.RetSlot != sp0+0x58 || f.Ret != 0x401189 || f.CFA != sp0+0x60 || f.Method != "code" || len(f.Saved) != 0 {
		t.Errorf("frame %+v", f)
	}
	if bp, ok := next.get(regnum.AMD64_Rbp); !ok || bp != 0x7fff1000 {
		t.Errorf("caller's %%rbp %#x %v: an untouched callee-saved register keeps its value", bp, ok)
	}
	if v, _ := next.get(regnum.AMD64_Rsp); v != sp0+0x60 {
		t.Errorf("caller's %%rsp %#x", v)
	}
}

func TestStepCodePushes(t *testing.T) {
	// push %rbx; push %r12; mov %rdi,%rbx; test; je (forward); syscall:
	// both pushes are saved-register slots; %rbx changed after its push
	// is the slot's value in the caller; %r12 too.
	code := cat(endbr64, pushRBX, pushR12, movRBXRDI, testRAX, jeFwd, syscall64)
	words := map[uint64]uint64{sp0: 0x12, sp0 + 8: 0xb, sp0 + 16: 0x401234}
	f, next, err := codeStop(t, arch.AMD64, code, words, map[int]uint64{regnum.AMD64_Rbx: 0x999})
	if err != nil {
		t.Fatal(err)
	}
	if f.RetSlot != sp0+16 || f.Ret != 0x401234 {
		t.Fatalf("frame %+v", f)
	}
	want := []SavedSlot{{Reg: regnum.AMD64_R12, Addr: sp0, Value: 0x12}, {Reg: regnum.AMD64_Rbx, Addr: sp0 + 8, Value: 0xb}}
	if len(f.Saved) != 2 || f.Saved[0] != want[0] || f.Saved[1] != want[1] {
		t.Errorf("saved %+v, want %+v", f.Saved, want)
	}
	if v, _ := next.get(regnum.AMD64_Rbx); v != 0xb {
		t.Errorf("caller's %%rbx %#x, want the pushed 0xb", v)
	}
}

func TestStepCodeTouchedRegisterIsUnknown(t *testing.T) {
	// %rbx changed before any push: the caller's value is lost.
	code := cat(movRBXRDI, pushRBX, syscall64)
	_, next, err := codeStop(t, arch.AMD64, code, map[uint64]uint64{sp0: 1, sp0 + 8: 0x401000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := next.get(regnum.AMD64_Rbx); ok {
		t.Errorf("caller's %%rbx known (%#x) though the function changed it before saving it", v)
	}
}

func TestStepCodeMuslVfork(t *testing.T) {
	// musl's vfork: pop %rdx; mov $58,%eax; syscall — the return address
	// is in %rdx and the CFA is sp (as glibc's vfork CFI says with %rdi).
	code := cat(popRDX, movEAX3A, syscall64)
	f, next, err := codeStop(t, arch.AMD64, code, nil, map[int]uint64{regnum.AMD64_Rdx: 0x401177})
	if err != nil {
		t.Fatal(err)
	}
	if f.RetReg != regnum.AMD64_Rdx || f.RetSlot != 0 || f.Ret != 0x401177 || f.CFA != sp0 {
		t.Errorf("frame %+v, want the return address in %%rdx, CFA = sp", f)
	}
	if v, _ := next.get(regnum.AMD64_Rsp); v != sp0 {
		t.Errorf("caller's %%rsp %#x, want %#x", v, sp0)
	}
	// After push %rdx the return address is back on the stack.
	code = cat(popRDX, movEAX3A, syscall64, pushRDX)
	f, _, err = codeStop(t, arch.AMD64, code, map[uint64]uint64{sp0: 0x401177}, map[int]uint64{regnum.AMD64_Rdx: 0x401177})
	if err != nil || f.RetReg != -1 || f.RetSlot != sp0 {
		t.Errorf("after the push: %+v, %v", f, err)
	}
}

func TestStepCodeI386Clone(t *testing.T) {
	// glibc's i386 clone: three pushes, then int $0x80 (its CFI ends just
	// before it).
	code := cat(i386Pushes, int80)
	words := map[uint64]uint64{sp0: 7, sp0 + 4: 6, sp0 + 8: 3, sp0 + 12: 0x4011c9}
	f, _, err := codeStop(t, arch.I386, code, words, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.RetSlot != sp0+12 || f.Ret != 0x4011c9 || f.CFA != sp0+16 || len(f.Saved) != 3 {
		t.Errorf("frame %+v", f)
	}
}

func TestStepCodeStackAdjustments(t *testing.T) {
	for name, c := range map[string]struct {
		code  []byte
		depth uint64
	}{
		"lea -8(%rsp),%rsp":          {cat(leaRSPm8, syscall64), 8},
		"call .+5; pop %rbx":         {cat(callRel0, popRBX, syscall64), 0},
		"pushw $1 (operand size 16)": {cat(pushq16, syscall64), 2},
		"push; pop":                  {cat(pushRBX, popRBX, syscall64), 0},
	} {
		f, _, err := codeStop(t, arch.AMD64, c.code, map[uint64]uint64{sp0 + c.depth: 0x401000}, nil)
		if err != nil || f.RetSlot != sp0+c.depth {
			t.Errorf("%s: slot %#x (%v), want sp+%#x", name, f.RetSlot, err, c.depth)
		}
	}
}

func TestStepCodeGivesUp(t *testing.T) {
	for name, c := range map[string]struct {
		code []byte
		why  string
	}{
		"jmp before pc":       {cat(jmpFwd, []byte{0x90, 0x90}, syscall64), "straight line"},
		"ret before pc":       {cat(ret, syscall64), "straight line"},
		"leave":               {cat(leave, syscall64), "leave"},
		"mov to %rsp":         {cat(movRBPRSP, syscall64), "stack pointer"},
		"stack realignment":   {cat(andRSP, syscall64), "stack pointer"},
		"stack probe loop":    {cat(probeLoop, syscall64), "loop"},
		"undecodable byte":    {cat(bad, syscall64), "undecodable"},
		"above the entry sp":  {cat(popRDX, popRBX, syscall64), "above"},
		"ret register reused": {cat(popRDX, []byte{0x31, 0xd2}, syscall64), "overwritten"}, // xor %edx,%edx
	} {
		_, _, err := codeStop(t, arch.AMD64, c.code, map[uint64]uint64{sp0: 0x401000, sp0 + 8: 0x401000}, nil)
		if err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: %v, want an error about %q", name, err, c.why)
		}
	}
	// A return address that is not code.
	if _, _, err := codeStop(t, arch.AMD64, syscall64, map[uint64]uint64{sp0: 0x1234}, nil); err == nil || !strings.Contains(err.Error(), "not code") {
		t.Errorf("return to 0x1234: %v", err)
	}
	// pc outside any sized function.
	r := &arch.Regs{Arch: arch.AMD64}
	r.Set(regnum.AMD64_Rsp, sp0)
	if _, _, err := stepCode(arch.AMD64, newRegState(r), 0x300000, 0x300000, true, wordMem{}, fakeCode{start: fnStart, code: syscall64}); err == nil {
		t.Error("no error for a pc outside the function")
	}
}

func TestUnwindUsesCodeWithoutCFI(t *testing.T) {
	// Unwind takes the code path where no FDE covers the pc, before the
	// frame-pointer fallback (which would take the caller's frame).
	code := cat(subRSP58, syscall64, []byte{0x90})
	r := amd64Regs(fnStart+uint64(len(subRSP58)+len(syscall64)), sp0, map[int]uint64{regnum.AMD64_Rbp: sp0 + 0x100})
	mem := wordMem{sp0 + 0x58: 0x401189, sp0 + 0x100: 0, sp0 + 0x108: 0x401500}
	frames, err := Unwind(r, mem, fakeCode{start: fnStart, code: code}, 1)
	if err != nil || len(frames) != 1 || frames[0].Method != "code" || frames[0].RetSlot != sp0+0x58 {
		t.Errorf("frames %+v, %v", frames, err)
	}
}

func TestStepCodeOwnStoreOverReturnSlot(t *testing.T) {
	// glibc's amd64 clone given a stack top just above its return slot
	// (rr#1595): and $-16,%rsi; mov %rcx,-8(%rsi); sub $16,%rsi;
	// mov %rdi,(%rsi); mov $56,%eax; syscall. The store of arg (%rcx)
	// landed on the return slot; %rsi at pc is 16 below what it was.
	var (
		andRSI    = []byte{0x48, 0x83, 0xe6, 0xf0} // and $-16,%rsi
		storeArg  = []byte{0x48, 0x89, 0x4e, 0xf8} // mov %rcx,-0x8(%rsi)
		subRSI    = []byte{0x48, 0x83, 0xee, 0x10} // sub $0x10,%rsi
		storeFn   = []byte{0x48, 0x89, 0x3e}       // mov %rdi,(%rsi)
		movRSIRDX = []byte{0x48, 0x89, 0xd6}       // mov %rdx,%rsi
	)
	const arg = 0x7ffe1234 // a data pointer: not code
	words := map[uint64]uint64{sp0: arg}
	rsi := map[int]uint64{regnum.AMD64_Rsi: sp0 - 8}
	code := cat(endbr64, andRSI, storeArg, subRSI, storeFn, movEAX3A, syscall64)
	f, _, err := codeStop(t, arch.AMD64, code, words, rsi)
	if err != nil {
		t.Fatal(err)
	}
	if f.RetSlot != sp0 || f.Ret != arg || f.RetStored != fnStart+8 || f.CFA != sp0+8 {
		t.Errorf("frame %+v, want return slot %#x overwritten by the store at %#x", f, uint64(sp0), fnStart+8)
	}

	// Not proven, so not kept: the base changed otherwise than by a
	// constant; the store elsewhere; a branch that skips the store.
	for name, c := range map[string]struct {
		code []byte
		regs map[int]uint64
	}{
		"base rewritten":  {cat(endbr64, storeArg, movRSIRDX, syscall64), map[int]uint64{regnum.AMD64_Rsi: sp0 + 8, regnum.AMD64_Rdx: sp0 + 8}},
		"another address": {cat(endbr64, storeArg, subRSI, syscall64), map[int]uint64{regnum.AMD64_Rsi: sp0}},
		"skipped":         {cat(endbr64, []byte{0x74, byte(len(storeArg))}, storeArg, subRSI, syscall64), rsi},
	} {
		if f, _, err := codeStop(t, arch.AMD64, c.code, words, c.regs); err == nil || !strings.Contains(err.Error(), "not code") {
			t.Errorf("%s: frame %+v, err %v; want the return address rejected as not code", name, f, err)
		}
	}
}
