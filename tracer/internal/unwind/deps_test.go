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
					frames, deps, err := UnwindDeps(&p.regs, p.mem, c.cfi, 64)
					used := deps.Regs
					if used&(1<<a.PC) == 0 {
						t.Errorf("mask %#x lacks the instruction pointer", used)
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
	_, deps, _ := UnwindDeps(&p.regs, p.mem, s.cfi(t), 64)
	used := deps.Regs
	if full := uint32(1)<<p.regs.Arch.NumRegs - 1; used&full == full {
		t.Errorf("mask %#x names every register", used)
	}
}

// Deps.Reads are every word the unwind read, and the ones not Needed only
// end up in saved-register values: at every stop, changing such a word
// gives the same frames but for the Value of the saved slots at its
// address (and changing a Needed one changes something, for at least one
// stop: the marks are not all on).
func TestUnwindDepsNamesEveryWordNeeded(t *testing.T) {
	soft, hard := 0, 0
	for _, file := range []string{"gcc-O0.json", "gcc-m32-O0.json"} {
		s := loadSnapshot(t, file)
		for _, st := range s.Stops {
			for _, c := range []struct {
				name string
				cfi  CFI
			}{{"cfi", s.cfi(t)}, {"fp", noCFI{}}} {
				t.Run(fmt.Sprintf("%s/%s/%s", file, st.Name, c.name), func(t *testing.T) {
					p := s.stop(t, st.Name)
					frames, deps, err := UnwindDeps(&p.regs, p.mem, c.cfi, 64)
					for _, r := range deps.Reads {
						if r.Failed {
							continue
						}
						v, rerr := p.mem.ReadWord(r.Addr, r.Size)
						if rerr != nil || v != r.Val {
							t.Fatalf("read %#x recorded as %#x, memory holds %#x (%v)", r.Addr, r.Val, v, rerr)
						}
						mem := &stackMem{base: p.mem.base, data: append([]byte(nil), p.mem.data...)}
						off := r.Addr - mem.base
						for i := 0; i < r.Size; i++ {
							mem.data[off+uint64(i)] ^= 0x5a
						}
						nv := mem.word(t, r.Addr, r.Size)
						f2, _, err2 := UnwindDeps(&p.regs, mem, c.cfi, 64)
						if r.Needed {
							if !reflect.DeepEqual(f2, frames) || fmt.Sprint(err2) != fmt.Sprint(err) {
								hard++
							}
							continue
						}
						soft++
						want := make([]Frame, len(frames))
						for i, f := range frames {
							want[i] = f
							want[i].Saved = append([]SavedSlot(nil), f.Saved...)
							for j := range want[i].Saved {
								if want[i].Saved[j].Addr == r.Addr {
									want[i].Saved[j].Value = nv
								}
							}
						}
						if !reflect.DeepEqual(f2, want) || fmt.Sprint(err2) != fmt.Sprint(err) {
							t.Errorf("word %#x is not needed, but changing it changes more than its saved values:\n%+v %v\n%+v %v", r.Addr, want, err, f2, err2)
						}
					}
				})
			}
		}
	}
	// At -O0 every frame's CFA is computed from its saved frame pointer:
	// the -m32 stops' saved %ebx and %esi are the words not needed.
	if soft == 0 || hard == 0 {
		t.Errorf("%d words not needed, %d needed words whose change changed the unwind: want some of each", soft, hard)
	}
}
