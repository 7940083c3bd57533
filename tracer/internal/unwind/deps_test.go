package unwind

import (
	"fmt"
	"reflect"
	"testing"
)

// UnwindDeps names every register the frames depend on (capture reuses a
// parent's last frames when those registers, and the words read, are
// unchanged): at every stop of the snapshots, with the executable's CFI and
// with none (frame pointers), changing a register outside the mask leaves
// the frames and the error as they were, and the mask holds the stack and
// instruction pointers.
func TestUnwindDepsNamesEveryRegisterUsed(t *testing.T) {
	for _, file := range []string{"gcc-O0.json", "gcc-m32-O0.json"} {
		s := loadSnapshot(t, file)
		for _, st := range s.Stops {
			for _, c := range []struct {
				name string
				cfi  CFI
			}{{"cfi", s.cfi(t)}, {"fp", noCFI{}}} {
				t.Run(fmt.Sprintf("%s/%s/%s", file, st.Name, c.name), func(t *testing.T) {
					p := s.stop(t, st.Name)
					a := p.regs.Arch
					frames, used, err := UnwindDeps(&p.regs, p.mem, c.cfi, 64)
					if used&(1<<a.SP) == 0 || used&(1<<a.PC) == 0 {
						t.Errorf("mask %#x lacks the stack or instruction pointer", used)
					}
					for n := 0; n < a.NumRegs; n++ {
						if used&(1<<n) != 0 {
							continue
						}
						regs := p.regs
						regs.R[n] ^= 0x5a5a5a5a5a5a5a5a & (1<<(8*a.PtrSize) - 1)
						f2, _, err2 := UnwindDeps(&regs, p.mem, c.cfi, 64)
						if !reflect.DeepEqual(f2, frames) || fmt.Sprint(err2) != fmt.Sprint(err) {
							t.Errorf("register %d is not in the mask %#x, but changing it changes the unwind:\n%+v %v\n%+v %v", n, used, frames, err, f2, err2)
						}
					}
				})
			}
		}
	}
}

// The mask is not everything: a register the unwind never reads, changed,
// gives the same frames (the check above would pass for a full mask).
func TestUnwindDepsLeavesOutUnreadRegisters(t *testing.T) {
	s := loadSnapshot(t, "gcc-O0.json")
	p := s.stop(t, s.Stops[0].Name)
	_, used, _ := UnwindDeps(&p.regs, p.mem, s.cfi(t), 64)
	if full := uint32(1)<<p.regs.Arch.NumRegs - 1; used&full == full {
		t.Errorf("mask %#x names every register", used)
	}
}
