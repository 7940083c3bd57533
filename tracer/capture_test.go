package tracer

import (
	"encoding/binary"
	"fmt"
	"os"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/unwind"
)

// imageMemory reads a fake image's words (an unwind.Memory).
type imageMemory struct{ im *fakeImage }

func (m imageMemory) ReadWord(addr uint64, size int) (uint64, error) {
	var b [8]byte
	if !m.im.read(addr, b[:size]) {
		return 0, fmt.Errorf("read %#x: %w", addr, unix.EFAULT)
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// A parent that vforks in a loop keeps a counter in a callee-saved
// register: the words its frames saved change at every vfork, its frames
// do not. The memo of its last unwind is reused then, with each saved
// value read again (the frames a new unwind gives); a changed word the
// frames depend on (a return address) is not reused; the memo's own
// frames are never changed.
func TestUnwindMemoRereadsSavedValues(t *testing.T) {
	a := newAsm(codeBase)
	a.fn("start").call("main").raw(0xf4)                                // hlt
	a.fn("main").raw(0x53).call("inner").raw(0x5b).ret()                // push %rbx; call inner; pop %rbx; ret
	a.fn("inner").raw(0x53, 0x55).raw(0x0f, 0x05).raw(0x5d, 0x5b).ret() // push %rbx; push %rbp; syscall; pop; pop; ret
	im := a.image(t)
	// The stack as at inner's syscall: main entered from start with
	// %rsp = top, its %rbx pushed below, then inner's return address and
	// its two pushes.
	top := uint64(fakeStackTop - 0x100)
	put := func(addr, v uint64) {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		if !im.write(addr, b[:]) {
			t.Fatalf("write %#x", addr)
		}
	}
	put(top, a.labels["main"]-1)     // start's call returns into start
	put(top-8, 7)                    // main's caller's %rbx
	put(top-16, a.labels["inner"]-2) // inner returns after main's call (pop %rbx)
	put(top-24, 3)                   // main's %rbx: the loop counter
	put(top-32, 0x1234)              // main's %rbp
	var regs arch.Regs
	regs.Arch = arch.AMD64
	regs.R[arch.AMD64.PC] = a.labels["inner"] + 2
	regs.R[arch.AMD64.SP] = top - 32
	regs.R[arch.AMD64.BP] = 0x1234
	regs.R[3] = 3 // %rbx
	mem := imageMemory{im}
	sp := fakeSpace{im}

	frames, deps, err := unwind.UnwindDeps(&regs, mem, sp, maxFrames)
	if len(frames) < 2 || len(frames[0].Saved) != 2 || len(frames[1].Saved) != 1 {
		t.Fatalf("unwind: %+v, %v: want inner with %%rbx and %%rbp saved, main with %%rbx", frames, err)
	}
	m := &unwindMemo{regs: regs, deps: deps, frames: frames, err: err}
	keep := cloneFrames(frames)

	got, ok := m.reuse(mem)
	if !ok || &got[0] != &frames[0] {
		t.Errorf("nothing changed: reuse = %v, %v; want the memo's own frames", ok, got)
	}

	// The next vfork: main's counter and its caller's %rbx changed.
	put(top-24, 4)
	put(top-8, 8)
	want, _, werr := unwind.UnwindDeps(&regs, mem, sp, maxFrames)
	got, ok = m.reuse(mem)
	if !ok {
		t.Fatalf("saved values changed: memo not reused")
	}
	if !reflect.DeepEqual(got, want) || werr != err {
		t.Errorf("reused frames\n%+v\nwant (a new unwind)\n%+v", got, want)
	}
	if got[0].Saved[1].Value != 4 || got[1].Saved[0].Value != 8 {
		t.Errorf("saved values %+v %+v: want %%rbx 4 in inner's frame, 8 in main's", got[0].Saved, got[1].Saved)
	}
	if !reflect.DeepEqual(frames, keep) {
		t.Errorf("the frames given before changed: %+v, were %+v", frames, keep)
	}
	// The memo took the new values: the next vfork with them gets its
	// own frames again.
	if again, ok := m.reuse(mem); !ok || &again[0] != &got[0] || !reflect.DeepEqual(again, want) {
		t.Errorf("the same saved values again: reuse = %v, %+v; want the frames given last", ok, again)
	}
	// Back to the first values: read again, as a new unwind gives them.
	put(top-24, 3)
	put(top-8, 7)
	if back, ok := m.reuse(mem); !ok || !reflect.DeepEqual(back, keep) || &back[0] == &got[0] {
		t.Errorf("the first saved values again: reuse = %v, %+v; want a copy equal to %+v", ok, back, keep)
	}

	// inner's return address changed (still code): the frames depend on it.
	put(top-16, a.labels["main"]+1)
	if got, ok := m.reuse(mem); ok {
		t.Errorf("return address changed: reused %+v", got)
	}
}

func cloneFrames(fs []unwind.Frame) []unwind.Frame {
	out := make([]unwind.Frame, len(fs))
	for i, f := range fs {
		out[i] = f
		out[i].Saved = append([]unwind.SavedSlot(nil), f.Saved...)
	}
	return out
}

// refresh keeps each address space's maps file open for its next refresh,
// at most maxMapsOpen of them (the oldest closed first, opened again when
// next needed); the run closes them all at its end.
func TestRefreshKeepsMapsOpen(t *testing.T) {
	s := &session{p: livePtrace{}}
	pid := os.Getpid()
	mms := make([]*addrSpace, maxMapsOpen+3)
	for i := range mms {
		mms[i] = &addrSpace{}
		s.refresh(mms[i], pid)
		if mms[i].space == nil || mms[i].maps.m == nil {
			t.Fatalf("refresh %d: space %v, maps %v", i, mms[i].space, mms[i].maps.m)
		}
	}
	if len(s.mapsOpen) != maxMapsOpen {
		t.Errorf("%d maps files open, want %d", len(s.mapsOpen), maxMapsOpen)
	}
	for i, mm := range mms {
		if open := mm.maps.m != nil; open != (i >= 3) {
			t.Errorf("address space %d: maps open %v", i, open)
		}
	}
	s.refresh(mms[0], pid) // opened again: the oldest of the others goes
	if mms[0].maps.m == nil || mms[3].maps.m != nil || len(s.mapsOpen) != maxMapsOpen {
		t.Errorf("after a refresh of a closed one: %v %v, %d open", mms[0].maps.m, mms[3].maps.m, len(s.mapsOpen))
	}
	s.refresh(mms[0], pid) // already open: nothing closed
	if mms[4].maps.m == nil || len(s.mapsOpen) != maxMapsOpen {
		t.Errorf("a refresh of an open one closed another, or listed it twice: %d open", len(s.mapsOpen))
	}
	s.closeMaps()
	for i, mm := range mms {
		if mm.maps.m != nil {
			t.Errorf("address space %d: maps still open after closeMaps", i)
		}
	}
}

// The vfork events of stories whose unwind is the memo's own frames share
// what recordFrames made of them the first time; frames with other saved
// values (a copy) are named again, and so are frames of another parent.
func TestRecordFramesFromMemo(t *testing.T) {
	a := newAsm(codeBase)
	a.fn("start").call("main").raw(0xf4)
	a.fn("main").raw(0x53).call("inner").raw(0x5b).ret()
	a.fn("inner").raw(0x53, 0x55).raw(0x0f, 0x05).raw(0x5d, 0x5b).ret()
	im := a.image(t)
	s := newSession(Config{Mode: Fast, Sink: &recorder{}}, newFakeProcs(t))
	mm := &addrSpace{arch: arch.AMD64, space: fakeSpace{im}, code: map[uint64]*insnEntry{}}
	frames := []unwind.Frame{
		{PC: a.labels["inner"] + 2, CFA: 0x7000, RetSlot: 0x6ff8, Ret: a.labels["inner"] - 2, Method: "cfi",
			Saved: []unwind.SavedSlot{{Reg: 3, Addr: 0x6ff0, Value: 1}}},
		{PC: a.labels["inner"] - 2, CFA: 0x7010, RetSlot: 0x7008, Ret: a.labels["main"] - 1, Method: "cfi"},
	}
	memo := &unwindMemo{frames: frames}
	record := func(pid int, fs []unwind.Frame) (*event.Vfork, *story) {
		st := &story{parent: &task{pid: pid}, mm: mm}
		st.arch, st.word, st.frames = arch.AMD64, 8, fs
		ev := &event.Vfork{}
		s.recordFrames(st, ev, memo)
		return ev, st
	}
	ev1, st1 := record(1, frames)
	ev2, st2 := record(1, frames)
	if !reflect.DeepEqual(ev1.Frames, ev2.Frames) || &ev1.Frames[0] != &ev2.Frames[0] || &st1.frameFns[0] != &st2.frameFns[0] {
		t.Errorf("the memo's own frames again: not shared\n%+v\n%+v", ev1.Frames, ev2.Frames)
	}
	other := cloneFrames(frames)
	other[0].Saved[0].Value = 2
	ev3, _ := record(1, other)
	if ev3.Frames[0].Saved[0].Value != 2 || ev1.Frames[0].Saved[0].Value != 1 {
		t.Errorf("frames with another saved value: %+v (the first story's: %+v)", ev3.Frames[0].Saved, ev1.Frames[0].Saved)
	}
	ev4, _ := record(2, frames)
	if &ev4.Frames[0] == &ev1.Frames[0] {
		t.Error("another parent's story shares the first parent's frames")
	}
	if !reflect.DeepEqual(ev4.Frames, ev1.Frames) { // no frame here names an instruction (RetStoredBy)
		t.Errorf("another parent's frames differ:\n%+v\n%+v", ev4.Frames, ev1.Frames)
	}
}
