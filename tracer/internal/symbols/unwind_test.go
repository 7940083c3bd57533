package symbols

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/unwind"
)

// The unwinder reads functions without CFI from their code (unwind's
// stepCode, through Space.FuncCode): checked here on the real functions
// that lack CFI at a vfork — musl's syscall(), glibc's clone3 (amd64) and
// clone (i386) right after their syscall instruction.

// stackMem is a stack of words at sp: the return address at depth, 0
// elsewhere.
type stackMem struct {
	sp, depth, ret uint64
}

func (m stackMem) ReadWord(addr uint64, size int) (uint64, error) {
	if addr == m.sp+m.depth {
		return m.ret, nil
	}
	return 0, nil
}

// afterSyscall returns the runtime address right after the first syscall
// instruction (syscall, int $0x80) of the named function.
func afterSyscall(t *testing.T, sp *Space, module, name string, insn []byte) uint64 {
	t.Helper()
	addr, ok := sp.Lookup(module, name)
	if !ok {
		t.Skipf("no %s in %s", name, module)
	}
	start, code, ok := sp.FuncCode(addr)
	if !ok || start != addr {
		t.Fatalf("FuncCode(%s) = %#x, %d bytes, %v", name, start, len(code), ok)
	}
	i := bytes.Index(code, insn)
	if i < 0 {
		t.Fatalf("no syscall instruction in %s", name)
	}
	return start + uint64(i+len(insn))
}

// spaceOf maps one file at its link-time addresses, plus a code mapping
// for the return address, and names the modules by their base names.
func spaceOf(t *testing.T, path string, bias uint64) *Space {
	t.Helper()
	b, err := OpenBinary(path)
	if err != nil {
		t.Skip(err)
	}
	var maps []Mapping
	for _, p := range b.loads {
		perms := "r--p"
		if p.Flags&4 != 0 && p.Flags&1 != 0 {
			perms = "r-xp"
		}
		maps = append(maps, Mapping{Start: (p.Vaddr + bias) &^ 0xfff, End: (p.Vaddr + bias + p.Memsz + 0xfff) &^ 0xfff,
			Perms: perms, Offset: p.Off &^ 0xfff, Path: path})
	}
	maps = append([]Mapping{{Start: 0x10000, End: 0x20000, Perms: "r-xp", Path: "[caller]"}}, maps...) // sorted, as in /proc
	return newSpace(maps, path, func(p string) (*Binary, error) { return OpenBinary(p) })
}

func unwindAfterSyscall(t *testing.T, sp *Space, a *arch.Arch, pc, depth uint64) unwind.Frame {
	t.Helper()
	const stackPtr = 0x7ff00000
	regs := &arch.Regs{Arch: a}
	regs.SetPC(pc)
	regs.Set(a.SP, stackPtr)
	frames, err := unwind.Unwind(regs, stackMem{sp: stackPtr, depth: depth, ret: 0x10010}, sp, 1)
	if err != nil || len(frames) != 1 {
		t.Fatalf("unwind at %#x: %v, %v", pc, frames, err)
	}
	f := frames[0]
	if f.Method != "code" || f.RetSlot != stackPtr+depth || f.Ret != 0x10010 {
		t.Errorf("frame at %s: %s, return slot sp+%#x -> %#x; want code, sp+%#x", symName(sp, pc), f.Method, f.RetSlot-stackPtr, f.Ret, depth)
	}
	return f
}

func symName(sp *Space, pc uint64) string {
	y := sp.Symbolize(pc)
	return y.Module + ":" + y.Name
}

func TestCodeUnwindMuslSyscall(t *testing.T) {
	dir := os.Getenv("VTRACE_TARGETS")
	if dir == "" {
		t.Skip("VTRACE_TARGETS not set (make test sets it)")
	}
	path := filepath.Join(dir, "musl-O0", "rawvfork")
	sp := spaceOf(t, path, 0)
	pc := afterSyscall(t, sp, "rawvfork", "syscall", []byte{0x0f, 0x05})
	unwindAfterSyscall(t, sp, arch.AMD64, pc, 0x58) // sub $0x58,%rsp
}

func TestCodeUnwindGlibcClone3(t *testing.T) {
	path, err := filepath.EvalSymlinks("/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		t.Skip(err)
	}
	sp := spaceOf(t, path, 0x7f0000000000)
	sp.Symbolize(0x7f0000000000 + 0x30000) // reads the debug file, where clone3 is named
	pc := afterSyscall(t, sp, "libc", "__clone3", []byte{0x0f, 0x05})
	if _, err := sp.FDEForPC(pc); err == nil {
		t.Skip("this libc's clone3 has CFI after its syscall")
	}
	unwindAfterSyscall(t, sp, arch.AMD64, pc, 0) // a leaf: the return address at sp
}

func TestCodeUnwindGlibcI386Clone(t *testing.T) {
	path, err := filepath.EvalSymlinks("/lib32/libc.so.6")
	if err != nil {
		t.Skip(err)
	}
	sp := spaceOf(t, path, 0xf7000000)
	pc := afterSyscall(t, sp, "libc", "clone", []byte{0xcd, 0x80})
	if _, err := sp.FDEForPC(pc); err == nil {
		t.Skip("this libc's clone has CFI after its syscall")
	}
	f := unwindAfterSyscall(t, sp, arch.I386, pc, 12) // push %ebx; push %esi; push %edi
	if len(f.Saved) != 3 {
		t.Errorf("saved %+v, want %%ebx, %%esi, %%edi", f.Saved)
	}
}

func TestCodeUnwindMuslVfork(t *testing.T) {
	// musl's vfork (assembly, no .size): pop %rdx; mov $58,%eax; syscall.
	// After the syscall the return address is in %rdx and the CFA is sp.
	dir := os.Getenv("VTRACE_TARGETS")
	if dir == "" {
		t.Skip("VTRACE_TARGETS not set (make test sets it)")
	}
	sp := spaceOf(t, filepath.Join(dir, "musl-O0", "badvfork"), 0)
	pc := afterSyscall(t, sp, "badvfork", "vfork", []byte{0x0f, 0x05})
	const stackPtr = 0x7ff00000
	regs := &arch.Regs{Arch: arch.AMD64}
	regs.SetPC(pc)
	regs.Set(arch.AMD64.SP, stackPtr)
	regs.Set(1, 0x10010) // %rdx (DWARF 1)
	frames, err := unwind.Unwind(regs, stackMem{}, sp, 1)
	if err != nil || len(frames) != 1 {
		t.Fatalf("unwind at %#x: %v, %v", pc, frames, err)
	}
	if f := frames[0]; f.Method != "code" || f.RetReg != 1 || f.RetSlot != 0 || f.Ret != 0x10010 || f.CFA != stackPtr {
		t.Errorf("frame %+v, want the return address in %%rdx and CFA = sp", f)
	}
}
