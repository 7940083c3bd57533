package arch

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/go-delve/delve/pkg/dwarf/regnum"
)

// The kernel's struct user_regs_struct, word by word: the NT_PRSTATUS
// layout PTRACE_GETREGSET returns (arch/x86/include/asm/user_64.h and
// user_32.h).
var (
	userRegs64 = strings.Fields("r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs")
	userRegs32 = strings.Fields("ebx ecx edx esi edi ebp eax xds xes xfs xgs orig_eax eip xcs eflags esp xss")
)

func wordIndex(layout []string, name string) int {
	for i, n := range layout {
		if n == name {
			return i
		}
	}
	return -1
}

func TestArchTables(t *testing.T) {
	for _, c := range []struct {
		a      *Arch
		layout []string
		name   func(uint64) string
		em     elf.Machine
	}{
		{AMD64, userRegs64, regnum.AMD64ToName, elf.EM_X86_64},
		{I386, userRegs32, regnum.I386ToName, elf.EM_386},
	} {
		a := c.a
		if len(a.RegNames) != a.NumRegs || len(a.prStatusSlot) != a.NumRegs || a.NumRegs > len(Regs{}.R) {
			t.Errorf("%s: %d names, %d slots, %d registers", a.Name, len(a.RegNames), len(a.prStatusSlot), a.NumRegs)
		}
		if a.PrStatusSize != len(c.layout)*a.PtrSize {
			t.Errorf("%s: NT_PRSTATUS of %d bytes, the kernel's is %d", a.Name, a.PrStatusSize, len(c.layout)*a.PtrSize)
		}
		for n := 0; n < a.NumRegs; n++ {
			// DWARF numbering as delve names it: "Rbp" is 6.
			if got, want := a.RegName(n), strings.ToLower(c.name(uint64(n))); got != want {
				t.Errorf("%s: DWARF register %d is %s, delve says %s", a.Name, n, got, want)
			}
			if got, want := a.prStatusSlot[n], wordIndex(c.layout, a.RegNames[n]); got != want {
				t.Errorf("%s: %s is word %d of NT_PRSTATUS, the kernel's is %d", a.Name, a.RegNames[n], got, want)
			}
		}
		for _, n := range append([]int{a.PC, a.SP, a.BP}, a.CalleeSaved...) {
			if n < 0 || n >= a.NumRegs {
				t.Errorf("%s: register %d out of range", a.Name, n)
			}
		}
		if a.RegName(a.PC) != map[int]string{8: "rip", 4: "eip"}[a.PtrSize] || a.Bits != 8*a.PtrSize {
			t.Errorf("%s: pc is %s, %d bits", a.Name, a.RegName(a.PC), a.Bits)
		}
		if got := ForELFMachine(uint16(c.em)); got != a {
			t.Errorf("ForELFMachine(%v) = %v", c.em, got)
		}
	}
	for _, m := range []elf.Machine{elf.EM_AARCH64, elf.EM_X86_64 + 1, 0} {
		if got := ForELFMachine(uint16(m)); got != nil {
			t.Errorf("ForELFMachine(%v) = %s", m, got.Name)
		}
	}
	if AMD64.RegName(99) != "r99" || AMD64.RegName(-1) != "r-1" || I386.RegName(16) != "r16" {
		t.Error("RegName of a number out of range")
	}
}

// The x86 encoding order of the general-purpose registers (Intel SDM
// vol. 2, table 2-2 "32-Bit Addressing Forms with the ModR/M Byte", and the
// REX.B/R/X extension to r8-r15): the names GPR's DWARF numbers must carry.
func TestGPRByEncoding(t *testing.T) {
	for _, c := range []struct {
		a     *Arch
		names string
	}{
		{AMD64, "rax rcx rdx rbx rsp rbp rsi rdi r8 r9 r10 r11 r12 r13 r14 r15"},
		{I386, "eax ecx edx ebx esp ebp esi edi"},
	} {
		names := strings.Fields(c.names)
		if len(c.a.GPRDWARF) != len(names) {
			t.Errorf("%s: %d registers by encoding, want %d", c.a.Name, len(c.a.GPRDWARF), len(names))
		}
		for enc, want := range names {
			n, ok := c.a.GPR(enc)
			if got := c.a.RegName(n); !ok || got != want {
				t.Errorf("%s: encoding %d is DWARF %d (%s, %v), want %s", c.a.Name, enc, n, got, ok, want)
			}
		}
		for _, enc := range []int{-1, len(names), 16} {
			if n, ok := c.a.GPR(enc); ok {
				t.Errorf("%s: GPR(%d) = %d", c.a.Name, enc, n)
			}
		}
	}
}

// capture is one stop of the unwind tests' snapshots: a real NT_PRSTATUS
// read by PTRACE_GETREGSET (see ../unwind/testdata/gen.sh).
type capture struct {
	raw       []byte
	pc, stack uint64 // stack: the snapshot's start, 128 bytes below sp
}

func readCapture(t *testing.T, file, stop string) capture {
	t.Helper()
	data, err := os.ReadFile("../unwind/testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Arch  string `json:"arch"`
		Bias  string `json:"bias"`
		Stops []struct {
			Name      string `json:"name"`
			LinkPC    string `json:"link_pc"`
			PrStatus  string `json:"prstatus"`
			StackAddr string `json:"stack_addr"`
		} `json:"stops"`
	}
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	for _, st := range s.Stops {
		if st.Name != stop {
			continue
		}
		var c capture
		if c.raw, err = hex.DecodeString(st.PrStatus); err != nil {
			t.Fatal(err)
		}
		c.pc = parseHex(t, s.Bias) + parseHex(t, st.LinkPC)
		c.stack = parseHex(t, st.StackAddr)
		return c
	}
	t.Fatalf("%s: no stop %s", file, stop)
	return capture{}
}

func parseHex(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDecodePrStatus(t *testing.T) {
	for _, c := range []struct {
		file   string
		arch   *Arch
		layout []string
		segs   map[string]uint64 // the user code and stack segment selectors
	}{
		{"gcc-O0.json", AMD64, userRegs64, map[string]uint64{"cs": 0x33, "ss": 0x2b}},
		{"gcc-m32-O0.json", I386, userRegs32, map[string]uint64{"xcs": 0x23, "xss": 0x2b}},
	} {
		t.Run(c.arch.Name, func(t *testing.T) {
			cp := readCapture(t, c.file, "createproc-call-vfork")
			word := func(name string) uint64 {
				i := wordIndex(c.layout, name)
				if c.arch.PtrSize == 4 {
					return uint64(binary.LittleEndian.Uint32(cp.raw[i*4:]))
				}
				return binary.LittleEndian.Uint64(cp.raw[i*8:])
			}
			// The test's own reading of the layout, checked on the
			// kernel's data: user segment selectors where they belong.
			for name, want := range c.segs {
				if got := word(name); got != want {
					t.Fatalf("%s = %#x, want %#x: the capture is not %s's layout", name, got, want, c.arch.Name)
				}
			}
			var regs Regs
			if err := DecodePrStatus(cp.raw, &regs); err != nil {
				t.Fatal(err)
			}
			if regs.Arch != c.arch {
				t.Fatalf("decoded as %v", regs.Arch)
			}
			if regs.PC() != cp.pc {
				t.Errorf("pc %#x, want %#x (the breakpoint)", regs.PC(), cp.pc)
			}
			if regs.SP() != cp.stack+128 {
				t.Errorf("sp %#x, want %#x", regs.SP(), cp.stack+128)
			}
			// Stopped at a breakpoint, not in a syscall: orig_ax is -1,
			// sign-extended for i386.
			if regs.OrigAX != ^uint64(0) {
				t.Errorf("orig_ax %#x, want -1", regs.OrigAX)
			}
			for n := 0; n < c.arch.NumRegs; n++ {
				v, ok := regs.Get(n)
				if !ok || v != word(c.arch.RegNames[n]) {
					t.Errorf("%s = %#x, %v; NT_PRSTATUS has %#x", c.arch.RegNames[n], v, ok, word(c.arch.RegNames[n]))
				}
			}
			// -O0 createproc has set up its frame: bp above sp, below the
			// top of the stack.
			if bp, _ := regs.Get(c.arch.BP); bp <= regs.SP() || bp-regs.SP() > 0x100 {
				t.Errorf("bp %#x, sp %#x", bp, regs.SP())
			}
		})
	}
}

func TestDecodePrStatusSize(t *testing.T) {
	for _, n := range []int{0, 67, 69, 216 - 8, 216 + 8, 4096} {
		var regs Regs
		if err := DecodePrStatus(make([]byte, n), &regs); err == nil {
			t.Errorf("%d bytes decoded as %v", n, regs.Arch)
		}
	}
	// Decoding an i386 set over an amd64 one leaves nothing of it.
	var regs Regs
	full := bytes.Repeat([]byte{0xff}, AMD64.PrStatusSize)
	if err := DecodePrStatus(full, &regs); err != nil {
		t.Fatal(err)
	}
	if err := DecodePrStatus(make([]byte, I386.PrStatusSize), &regs); err != nil {
		t.Fatal(err)
	}
	if regs != (Regs{Arch: I386, OrigAX: 0}) {
		t.Errorf("after decoding zeros: %+v", regs)
	}
}

func TestEncodePrStatus(t *testing.T) {
	for _, file := range []string{"gcc-O0.json", "gcc-m32-O0.json"} {
		cp := readCapture(t, file, "createproc-call-vfork")
		var regs Regs
		if err := DecodePrStatus(cp.raw, &regs); err != nil {
			t.Fatal(err)
		}
		a := regs.Arch
		// Unchanged registers encode to the very same bytes.
		buf := append([]byte(nil), cp.raw...)
		EncodePrStatus(&regs, buf)
		if !bytes.Equal(buf, cp.raw) {
			t.Errorf("%s: decode+encode changed NT_PRSTATUS", a.Name)
		}
		// Changing the pc and the accumulator changes their words only.
		regs.SetPC(regs.PC() + 1)
		regs.Set(0, 0x1122334455667788)
		EncodePrStatus(&regs, buf)
		var again Regs
		if err := DecodePrStatus(buf, &again); err != nil {
			t.Fatal(err)
		}
		if again != regs {
			t.Errorf("%s: re-decoded %+v, want %+v", a.Name, again, regs)
		}
		changed := map[int]bool{}
		for i := 0; i < len(buf); i += a.PtrSize {
			if !bytes.Equal(buf[i:i+a.PtrSize], cp.raw[i:i+a.PtrSize]) {
				changed[i/a.PtrSize] = true
			}
		}
		if len(changed) != 2 || !changed[a.prStatusSlot[a.PC]] || !changed[a.prStatusSlot[0]] {
			t.Errorf("%s: words %v changed, want pc's (%d) and ax's (%d)", a.Name, changed, a.prStatusSlot[a.PC], a.prStatusSlot[0])
		}
		if want := uint64(0x1122334455667788); a == I386 {
			if v, _ := again.Get(0); v != want&0xffffffff {
				t.Errorf("i386 eax %#x, want the low 32 bits of %#x", v, want)
			}
		}
	}
}

func TestRegsAccess(t *testing.T) {
	r := Regs{Arch: AMD64}
	for n := 0; n < AMD64.NumRegs; n++ {
		r.Set(n, uint64(0x100+n))
	}
	if r.PC() != 0x110 || r.SP() != 0x107 {
		t.Errorf("pc %#x sp %#x", r.PC(), r.SP())
	}
	r.SetPC(0xffffffff00001234)
	if r.PC() != 0xffffffff00001234 {
		t.Errorf("amd64 pc truncated: %#x", r.PC())
	}
	for _, n := range []int{-1, AMD64.NumRegs, 100} {
		if v, ok := r.Get(n); ok {
			t.Errorf("Get(%d) = %#x", n, v)
		}
		r.Set(n, 1) // ignored, no panic
	}
	// rdi rsi rdx r10 r8 r9.
	for i, n := range []int{regnum.AMD64_Rdi, regnum.AMD64_Rsi, regnum.AMD64_Rdx, regnum.AMD64_R10, regnum.AMD64_R8, regnum.AMD64_R9} {
		if got := r.SyscallArg(i); got != uint64(0x100+n) {
			t.Errorf("amd64 syscall arg %d = %#x, want %s", i, got, AMD64.RegName(n))
		}
	}

	r = Regs{Arch: I386}
	for n := 0; n < I386.NumRegs; n++ {
		r.Set(n, uint64(0xabcd00000200+n))
	}
	if r.PC() != 0x208 || r.SP() != 0x204 {
		t.Errorf("i386 pc %#x sp %#x: not truncated to 32 bits", r.PC(), r.SP())
	}
	if v, ok := r.Get(I386.NumRegs); ok {
		t.Errorf("i386 Get(%d) = %#x", I386.NumRegs, v)
	}
	// ebx ecx edx esi edi ebp.
	for i, n := range []int{regnum.I386_Ebx, regnum.I386_Ecx, regnum.I386_Edx, regnum.I386_Esi, regnum.I386_Edi, regnum.I386_Ebp} {
		if got := r.SyscallArg(i); got != uint64(0x200+n) {
			t.Errorf("i386 syscall arg %d = %#x, want %s", i, got, I386.RegName(n))
		}
	}
}

// TestDWARFNumbers checks arch's own DWARF register numbers against
// delve's tables.
func TestDWARFNumbers(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"rax", dwarf64Rax, regnum.AMD64_Rax}, {"rdx", dwarf64Rdx, regnum.AMD64_Rdx},
		{"rcx", dwarf64Rcx, regnum.AMD64_Rcx}, {"rbx", dwarf64Rbx, regnum.AMD64_Rbx},
		{"rsi", dwarf64Rsi, regnum.AMD64_Rsi}, {"rdi", dwarf64Rdi, regnum.AMD64_Rdi},
		{"rbp", dwarf64Rbp, regnum.AMD64_Rbp}, {"rsp", dwarf64Rsp, regnum.AMD64_Rsp},
		{"r8", dwarf64R8, regnum.AMD64_R8}, {"r9", dwarf64R9, regnum.AMD64_R9},
		{"r10", dwarf64R10, regnum.AMD64_R10}, {"r11", dwarf64R11, regnum.AMD64_R11},
		{"r12", dwarf64R12, regnum.AMD64_R12}, {"r13", dwarf64R13, regnum.AMD64_R13},
		{"r14", dwarf64R14, regnum.AMD64_R14}, {"r15", dwarf64R15, regnum.AMD64_R15},
		{"rip", dwarf64Rip, regnum.AMD64_Rip},
		{"eax", dwarf32Eax, regnum.I386_Eax}, {"ecx", dwarf32Ecx, regnum.I386_Ecx},
		{"edx", dwarf32Edx, regnum.I386_Edx}, {"ebx", dwarf32Ebx, regnum.I386_Ebx},
		{"esp", dwarf32Esp, regnum.I386_Esp}, {"ebp", dwarf32Ebp, regnum.I386_Ebp},
		{"esi", dwarf32Esi, regnum.I386_Esi}, {"edi", dwarf32Edi, regnum.I386_Edi},
		{"eip", dwarf32Eip, regnum.I386_Eip},
	} {
		if c.got != c.want {
			t.Errorf("DWARF number of %s: %d, delve's %d", c.name, c.got, c.want)
		}
	}
}
