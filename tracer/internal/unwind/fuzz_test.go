package unwind

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// bytesStack is a stack: data mapped at sp0.
type bytesStack []byte

func (m bytesStack) ReadWord(addr uint64, size int) (uint64, error) {
	if addr < sp0 || addr-sp0 > uint64(len(m)) || uint64(len(m))-(addr-sp0) < uint64(size) {
		return 0, errors.New("unmapped")
	}
	var w [8]byte
	copy(w[:], m[addr-sp0:addr-sp0+uint64(size)])
	return binary.LittleEndian.Uint64(w[:]), nil
}

// FuzzUnwindCode: the machine-code unwinder (stepCode, then the frame
// pointers) over any function code, any stop position in it, and any
// stack: frames or an error, never a panic or a loop, and each caller's
// CFA above its callee's.
func FuzzUnwindCode(f *testing.F) {
	seeds := [][]byte{
		cat(subRSP58, movRDIRAX, syscall64),
		cat(endbr64, pushRBX, pushR12, movRBXRDI, testRAX, jeFwd, syscall64),
		cat(popRDX, syscall64, pushRDX),
		cat(pushRBX, callRel0, leaRSPm8, syscall64),
		cat(i386Pushes, int80),
		cat(probeLoop, syscall64),
		cat(andRSP, leave, ret, bad),
	}
	stack := make([]byte, 128)
	binary.LittleEndian.PutUint64(stack[0x58:], 0x401189)
	for _, c := range seeds {
		f.Add(c, uint16(len(c)), stack, false, uint64(sp0+0x40))
		f.Add(c, uint16(len(c)), stack, true, uint64(sp0+0x40))
	}
	f.Fuzz(func(t *testing.T, code []byte, at uint16, stack []byte, i386 bool, bp uint64) {
		a := arch.AMD64
		if i386 {
			a = arch.I386
		}
		r := &arch.Regs{Arch: a}
		r.SetPC(fnStart + uint64(at))
		r.Set(a.SP, sp0)
		r.Set(a.BP, bp)
		frames, err := Unwind(r, bytesStack(stack), fakeCode{start: fnStart, code: code}, 16)
		if err == nil && len(frames) == 0 {
			t.Fatal("no frame and no error")
		}
		for i := 1; i < len(frames); i++ {
			if frames[i].CFA <= frames[i-1].CFA {
				t.Fatalf("frame %d's CFA %#x is not above frame %d's %#x", i, frames[i].CFA, i-1, frames[i-1].CFA)
			}
		}
	})
}
