package disasm

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// condProbe runs each conditional jump on this CPU with every combination
// of the five flags they test (set with popf), and prints "cc flags taken"
// per line: the ground truth CondTaken is checked against.
const condProbe = `#include <stdio.h>
#define PROBE(cc) do { \
	unsigned long f = fl | 0x2, t; \
	__asm__ volatile("push %1\n\tpopf\n\tmov $1, %0\n\tj" #cc " 1f\n\tmov $0, %0\n1:" \
		: "=&r"(t) : "r"(f) : "cc"); \
	printf("%s %lu %lu\n", #cc, fl, t); \
} while (0)
int main(void) {
	static const unsigned long bits[] = {0x1, 0x4, 0x40, 0x80, 0x800};
	for (int m = 0; m < 32; m++) {
		unsigned long fl = 0;
		for (int i = 0; i < 5; i++)
			if (m & 1 << i)
				fl |= bits[i];
		PROBE(o); PROBE(no); PROBE(b); PROBE(ae); PROBE(e); PROBE(ne); PROBE(be); PROBE(a);
		PROBE(s); PROBE(ns); PROBE(p); PROBE(np); PROBE(l); PROBE(ge); PROBE(le); PROBE(g);
	}
	return 0;
}
`

var condOps = map[string]x86asm.Op{
	"o": x86asm.JO, "no": x86asm.JNO, "b": x86asm.JB, "ae": x86asm.JAE, "e": x86asm.JE, "ne": x86asm.JNE,
	"be": x86asm.JBE, "a": x86asm.JA, "s": x86asm.JS, "ns": x86asm.JNS, "p": x86asm.JP, "np": x86asm.JNP,
	"l": x86asm.JL, "ge": x86asm.JGE, "le": x86asm.JLE, "g": x86asm.JG,
}

// CondTaken agrees with the CPU on all sixteen conditions under all 32
// combinations of CF, PF, ZF, SF and OF.
func TestCondTakenAsTheCPU(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler (cc) on PATH")
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "cond.c"), filepath.Join(dir, "cond")
	if err := os.WriteFile(src, []byte(condProbe), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-O0", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		flags, _ := strconv.ParseUint(f[1], 10, 64)
		op, ok := condOps[f[0]]
		if len(f) != 3 || !ok {
			t.Fatalf("probe line %q", sc.Text())
		}
		taken, known := CondTaken(op, flags)
		if !known || taken != (f[2] == "1") {
			t.Errorf("j%s with flags %#x: CondTaken %v (known %v), the CPU %s", f[0], flags, taken, known, f[2])
		}
		n++
	}
	if n != 16*32 {
		t.Fatalf("%d probe lines, want %d", n, 16*32)
	}
	if _, known := CondTaken(x86asm.JRCXZ, 0); known {
		t.Error("jrcxz: known from the flags alone")
	}
}
