package tracer

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// python3.11's _posixsubprocess child (issue 15): after vfork it tests the
// value with a jump back to cold code far before the function (`je
// 48fc80 <... call fork@plt>`), then pushes child_exec's arguments. Fast
// mode runs the test and the pushes as one block — the backward jump's
// target is an exit like any other — where it single-stepped up to the
// backward jump; the story and the steps counted are --step's.
func TestBlockBackwardJump(t *testing.T) {
	a := startMain()
	a.fn("cold").exitWith(3) // before spawn: a backward target
	a.fn("main").pushRBP().movRSPtoRBP().call("spawn").exitWith(0)
	a.fn("spawn").pushRBP().movRSPtoRBP().call("vfork").jnzParent("parent")
	a.raw(0x85, 0xc0).raw(0x0f).rel32(0x85, "cold") // test %eax,%eax; jne cold (back)
	a.pushRDI().pushRDI().pushRDI().pushRDI().pushRDI()
	a.movEAX(59).syscall() // execve
	a.label("parent").leave().ret()
	a.glibcVfork().raw(nops...) // code after the wrapper, as in libc: its ret decodes
	step, fast := stepThenFast(t, a.image(t))
	for _, r := range []modeRun{step, fast} {
		if r.res.Verdict != event.Clean {
			t.Errorf("%v: verdict %v", r.mode, r.res.Verdict)
		}
	}
	// push, ret (stepped: the stack pointer goes up), then test, jne,
	// test, jne, 5 pushes, mov and the execve syscall.
	if fast.steps != step.steps || step.steps != 13 {
		t.Errorf("child steps: fast %d, step %d; want 13 both", fast.steps, step.steps)
	}
	// The wrapper's push, cmp and jae (a short block: three
	// instructions), its ret (pushedRets: it returns to %rdi) and the
	// block to the syscall in one continue (linkRet); the syscall is
	// stepped.
	if fast.f.stepReqs != 1 {
		t.Errorf("fast mode made %d single-steps, want 1 (the wrapper, the test and the pushes in one run)", fast.f.stepReqs)
	}
}

// nops are code after a fake program's last function (the decoder reads
// up to 15 bytes ahead).
var nops = []byte{0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90}

// modeRun is one fake run of a program in one mode.
type modeRun struct {
	mode  Mode
	rec   *recorder
	res   Result
	f     *fakeProcs
	steps int64 // the steps of the child's end (0 without one child_end)
	// childConts are the continues of the child (0 without one child_end).
	childConts int
}

// stepThenFast runs img in --step, then in fast mode, and checks that
// fast mode tells --step's story, line for line.
func stepThenFast(t *testing.T, img *fakeImage) (step, fast modeRun) {
	t.Helper()
	run := func(mode Mode) modeRun {
		rec, res, f := runFake(t, img, codeBase, mode)
		r := modeRun{mode: mode, rec: rec, res: res, f: f}
		if ends := all[*event.ChildEnd](rec); len(ends) == 1 {
			r.steps, r.childConts = ends[0].Steps, f.conts[ends[0].PID]
		}
		return r
	}
	step, fast = run(Step), run(Fast)
	if ls, lf := storyLines(step.rec), storyLines(fast.rec); !slices.Equal(lf, ls) {
		t.Errorf("fast:\n  %s\nstep:\n  %s", strings.Join(lf, "\n  "), strings.Join(ls, "\n  "))
	}
	return step, fast
}

// A loop is not a block's: a run through code with a loop might never
// reach an exit. cyclic tells; blockAt then keeps to forward jumps.
func TestBlockCyclic(t *testing.T) {
	b := &block{}
	b.reset()
	for _, pc := range []uint64{1, 2, 3, 4} {
		b.depth[pc] = int(pc)
	}
	b.edges = append(b.edges, [2]uint64{1, 2}, [2]uint64{2, 3}, [2]uint64{2, 4}, [2]uint64{4, 3})
	if b.cyclic() {
		t.Error("a DAG (a join at 3) is cyclic")
	}
	b.edges = append(b.edges, [2]uint64{3, 2})
	if !b.cyclic() {
		t.Error("the loop 2 -> 3 -> 2 is not seen")
	}
	b.reset()
	b.depth[1] = 0
	b.edges = append(b.edges, [2]uint64{1, 1})
	if !b.cyclic() {
		t.Error("a jump to itself is not seen")
	}
	b.reset()
	for _, pc := range []uint64{1, 2, 3, 4, 5} {
		b.depth[pc] = int(pc)
	}
	b.edges = append(b.edges, [2]uint64{4, 2}, [2]uint64{3, 5}, [2]uint64{1, 2}, [2]uint64{3, 4}, [2]uint64{2, 3})
	if !b.cyclic() {
		t.Error("the loop 2 -> 3 -> 4 -> 2 (edges out of order, a way out at 3) is not seen")
	}
}

// A child that loops (a countdown: nop, nop, sub, jne back) before its exec:
// the story is --step's, and the run ends (a block with the loop would be
// a run to an exit it may never reach; it is decoded with forward jumps
// only).
func TestBlockLoop(t *testing.T) {
	a := startMain()
	a.fn("main").pushRBP().movRSPtoRBP().call("spawn").exitWith(0)
	a.fn("spawn").pushRBP().movRSPtoRBP().call("vfork").jnzParent("parent")
	a.movEAX(3)
	a.label("loop").raw(0x90, 0x90, 0x83, 0xe8, 0x01) // nop; nop; sub $1,%eax
	a.raw(0x0f).rel32(0x85, "loop")                   // jne loop
	a.movEAX(59).syscall()
	a.label("parent").leave().ret()
	a.glibcVfork().raw(nops...) // code after the wrapper, as in libc: its ret decodes
	step, fast := stepThenFast(t, a.image(t))
	if fast.steps != step.steps {
		t.Errorf("child steps: fast %d, step %d", fast.steps, step.steps)
	}
}

// A call whose push lands below the parent's live region, to a known
// target (python3.11's child calls child_exec with its arguments pushed),
// is run from the call itself to its return: not single-stepped. The
// story is --step's; the child_call names the callee; the call counts as
// one step, as when it was stepped.
func TestCallBelowRegion(t *testing.T) {
	a := startMain()
	a.fn("main").pushRBP().movRSPtoRBP().call("spawn").exitWith(0)
	a.fn("spawn").pushRBP().movRSPtoRBP().call("vfork").jnzParent("parent")
	a.pushRDI().pushRDI().call("runexec")
	a.label("parent").leave().ret()
	a.fn("runexec").movEAX(59).syscall() // execve
	a.glibcVfork().raw(nops...)          // code after the wrapper, as in libc: its ret decodes
	step, fast := stepThenFast(t, a.image(t))
	for _, r := range []modeRun{step, fast} {
		if r.res.Verdict != event.Clean {
			t.Errorf("%v: verdict %v", r.mode, r.res.Verdict)
		}
	}
	calls := all[*event.ChildCall](fast.rec)
	// push, ret, test, jne, push, push, call; --step steps runexec's two
	// instructions too.
	if fast.steps != 7 || step.steps != 9 {
		t.Errorf("child steps: fast %d, step %d; want 7 and 9", fast.steps, step.steps)
	}
	if len(calls) != 1 || calls[0].TargetSym == nil || calls[0].TargetSym.Sym != "runexec" || calls[0].By.Sym.Sym != "spawn" {
		t.Fatalf("child_calls %+v, want spawn's call of runexec", calls)
	}
	// The wrapper (a short block linked through its ret), test, jne and
	// the pushes (a block), on into the call (linkCall) in one continue:
	// neither the call nor runexec (run at full speed to the exec) is
	// stepped.
	if fast.f.stepReqs != 0 {
		t.Errorf("fast mode made %d single-steps, want 0 (the call not stepped)", fast.f.stepReqs)
	}
}

// A block's exits are planted and taken out a word at a time: two int3s
// in one aligned word, one in another, one where another story's int3
// already is (it stays, theirs), one at a word that cannot be read whole
// (the end of the mapping: planted as plant does). The code is as it was
// once the block's claims are dropped.
func TestPlantAll(t *testing.T) {
	code := make([]byte, 0x3d) // its last word is not whole
	for i := range code {
		code[i] = byte(0x10 + i)
	}
	img := &fakeImage{path: "/prog", regions: []*fakeRegion{{start: 0x1000, data: append([]byte(nil), code...), perms: "r-xp", path: "/prog"}}}
	f := newFakeProcs(t)
	f.tasks[1] = &fakeTask{pid: 1, img: img, atStop: true}
	s := newSession(Config{Mode: Fast}, f)
	mm := &addrSpace{arch: arch.AMD64, space: fakeSpace{img}, code: map[uint64]*insnEntry{}, bps: map[uint64]*breakpoint{}, removed: map[uint64]bool{}}
	if err := s.plant(mm, 1, 0x1011, 7); err != nil { // another story's
		t.Fatal(err)
	}
	exits := []uint64{0x1002, 0x1005, 0x1011, 0x1019, 0x103b}
	if err := s.plantAll(mm, 1, exits, 1); err != nil {
		t.Fatal(err)
	}
	mem := img.regions[0].data
	for i := range mem {
		a := uint64(0x1000 + i)
		if want := slices.Contains(exits, a); (mem[i] == 0xcc) != want {
			t.Errorf("byte at %#x = %#x after plantAll, int3 wanted: %v", a, mem[i], want)
		}
	}
	if bp := mm.bps[0x1011]; bp == nil || !bp.owners[1] || !bp.owners[7] || bp.orig != code[0x11] {
		t.Errorf("the shared int3: %+v", bp)
	}
	if bp := mm.bps[0x103b]; bp == nil || bp.orig != code[0x3b] {
		t.Errorf("the int3 at the mapping's end: %+v", bp)
	}
	s.unclaimMany(mm, 1, exits, 1)
	for i := range mem {
		a := uint64(0x1000 + i)
		if a == 0x1011 {
			if mem[i] != 0xcc || mm.bps[a] == nil {
				t.Errorf("the other story's int3 at %#x is gone", a)
			}
			continue
		}
		if mem[i] != code[i] || mm.bps[a] != nil {
			t.Errorf("byte at %#x = %#x after unclaimMany, want %#x", a, mem[i], code[i])
		}
	}
	if !mm.removed[0x1002] || !mm.removed[0x1005] || !mm.removed[0x103b] || mm.removed[0x1011] {
		t.Errorf("removed %v", mm.removed)
	}
}

// A ret that leaves a live frame, into code that makes a block (the
// seed's child returning from createproc into main, here with four nops
// before main's next call): the ret and the block run in one continue, and
// the story is --step's — child_return_past_frame by that ret, the slot
// the next call clobbers, the parent's landing.
func TestRetIntoBlockLeavesFrame(t *testing.T) {
	a := startMain()
	a.fn("main").pushRBP().movRSPtoRBP().call("createproc")
	a.label("after_createproc").raw(0x90, 0x90, 0x90, 0x90).call("finish")
	a.label("after_finish").exitWith(7)
	a.fn("createproc").pushRBP().movRSPtoRBP().call("vfork").leave().ret()
	a.fn("finish").exitWith(0)
	a.glibcVfork().raw(nops...)
	_, fast := stepThenFast(t, a.image(t))
	if lines := storyLines(fast.rec); !slices.Contains(lines, "#1 child left frame 1 createproc+8 to main+9 by ret createproc+10") {
		t.Errorf("no child_return_past_frame by createproc's ret: %q", lines)
	}
	// The steps counted are those of fast mode without the merge (9;
	// --step also steps finish), in one single-step fewer (10 without).
	if fast.steps != 9 || fast.f.stepReqs != 9 {
		t.Errorf("fast mode: %d steps counted, %d single-steps; want 9 and 9", fast.steps, fast.f.stepReqs)
	}
}

// A child that vforks twice from the same place (python's
// _posixsubprocess in a loop): the second story's blocks are the first's,
// kept per image (blockMemo), and both stories are --step's.
func TestBlockMemo(t *testing.T) {
	a := startMain()
	a.fn("cold").exitWith(3)
	a.fn("main").pushRBP().movRSPtoRBP().call("spawn").call("spawn").exitWith(0)
	a.fn("spawn").pushRBP().movRSPtoRBP().call("vfork").jnzParent("parent")
	a.raw(0x85, 0xc0).raw(0x0f).rel32(0x85, "cold") // test %eax,%eax; jne cold (back)
	a.pushRDI().pushRDI().pushRDI().pushRDI().pushRDI()
	a.movEAX(59).syscall() // execve
	a.label("parent").leave().ret()
	a.glibcVfork().raw(nops...)
	img := a.image(t)
	lines := map[Mode][]string{}
	var steps []int64
	for _, mode := range []Mode{Step, Fast} {
		decoded, reused := blockMemos.decoded.Load(), blockMemos.reused.Load()
		rec, res, f := runFake(t, img, codeBase, mode)
		if res.Verdict != event.Clean || res.Vforks != 2 {
			t.Errorf("%v: verdict %v, %d vforks", mode, res.Verdict, res.Vforks)
		}
		lines[mode] = storyLines(rec)
		for _, e := range all[*event.ChildEnd](rec) {
			steps = append(steps, e.Steps)
		}
		if mode == Fast {
			// Two blocks per story (the wrapper's; the test and the
			// pushes after its ret), decoded for the first, reused for
			// the second.
			if d, r := blockMemos.decoded.Load()-decoded, blockMemos.reused.Load()-reused; r < 1 || d+r < 2 {
				t.Errorf("blocks decoded %d, reused %d: want the second story's reused", d, r)
			}
			if f.stepReqs != 2 {
				t.Errorf("fast mode made %d single-steps, want 2 (the syscall of each story)", f.stepReqs)
			}
		}
	}
	if !slices.Equal(lines[Fast], lines[Step]) {
		t.Errorf("fast:\n  %s\nstep:\n  %s", strings.Join(lines[Fast], "\n  "), strings.Join(lines[Step], "\n  "))
	}
	if !slices.Equal(steps, []int64{13, 13, 13, 13}) {
		t.Errorf("child steps (step, step, fast, fast) %v, want 13 each", steps)
	}
}

// A block memo holds while the live region and the watched ranges are
// those it was decoded with and no int3 is planted where the decoding
// looked; one decoded where an int3 was is not kept.
func TestBlockMemoHolds(t *testing.T) {
	mm := &addrSpace{bps: map[uint64]*breakpoint{}}
	st := &story{mm: mm, snapshot: snapshot{lo: 0x1000, hi: 0x2000},
		mem: &memWatch{ranges: []memRange{{lo: 0x5000, hi: 0x6000}}}}
	b := &block{}
	b.reset()
	b.depth[0x400], b.depth[0x404], b.depth[0x408] = 0, 1, 2
	b.exits = append(b.exits, 0x408)
	key := blockKey{start: 0x400, sp: 0xff8}
	pcs := b.looked(nil, 0x400)
	mm.bps[0x404] = &breakpoint{}
	mm.keepBlock(key, b, st, pcs)
	if mm.blocks[key] != nil {
		t.Fatal("kept a block decoded with an int3 planted at one of its pcs")
	}
	delete(mm.bps, 0x404)
	mm.keepBlock(key, b, st, pcs)
	m := mm.blocks[key]
	if m == nil || !m.holds(st) {
		t.Fatalf("memo %+v does not hold for the story it was made for", m)
	}
	if !slices.Equal(m.b.exits, b.exits) || len(m.b.depth) != 3 {
		t.Errorf("memo's block %+v, want a copy of %+v", m.b, b)
	}
	b.exits[0] = 0x999
	if m.b.exits[0] != 0x408 {
		t.Error("the memo's block shares its exits with the decoder's")
	}
	for name, change := range map[string]func(){
		"an int3 at an exit":    func() { mm.bps[0x408] = &breakpoint{} },
		"an int3 inside":        func() { mm.bps[0x404] = &breakpoint{} },
		"another live region":   func() { st.hi = 0x2008 },
		"another watched range": func() { st.mem.ranges[0].hi = 0x6008 },
		"a range more":          func() { st.mem.ranges = append(st.mem.ranges, memRange{lo: 0x7000, hi: 0x7008}) },
		"no memory watch":       func() { st.mem = nil },
	} {
		saveBps, saveHi, saveMem := maps.Clone(mm.bps), st.hi, st.mem
		st.mem = &memWatch{ranges: slices.Clone(saveMem.ranges)}
		change()
		if m.holds(st) {
			t.Errorf("%s: the memo still holds", name)
		}
		mm.bps, st.hi, st.mem = saveBps, saveHi, saveMem
		if !m.holds(st) {
			t.Fatalf("after %s undone: the memo does not hold", name)
		}
	}
}

// insnAt reads code a page at a time (codeBytes): an int3 vtrace planted
// before the page was first read is not what is decoded, nor one planted
// after (the page is kept as it was); an instruction that ends at the
// last byte before unmapped memory is still decoded (read alone).
func TestCodePagesHideInt3s(t *testing.T) {
	page := make([]byte, codePage)
	for i := range page {
		page[i] = 0x90 // nop
	}
	copy(page[0x100:], []byte{0x48, 0x89, 0xe5}) // mov %rsp,%rbp
	copy(page[0x200:], []byte{0x48, 0x89, 0xc3}) // mov %rax,%rbx
	page[codePage-1] = 0xc3                      // ret, the mapping's last byte
	pristine := slices.Clone(page)
	img := &fakeImage{path: "/prog", regions: []*fakeRegion{{start: codeBase, data: page, perms: "r-xp", path: "/prog"}}}
	_, s, tk := spawnedTask(t, img)
	mm := tk.proc.mm
	mm.syms() // code is read a page at a time where the mappings say it is a file's
	if err := s.plant(mm, tk.pid, codeBase+0x100, 1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		pc   uint64
		want string
	}{{0x100, "mov"}, {0x200, "mov"}, {codePage - 1, "ret"}} {
		if c.pc == 0x200 {
			if err := s.plant(mm, tk.pid, codeBase+0x200, 1); err != nil {
				t.Fatal(err)
			}
		}
		in, err := s.insnAt(mm, tk.pid, codeBase+c.pc)
		if err != nil {
			t.Fatalf("insn at +%#x: %v", c.pc, err)
		}
		if got := s.insnText(mm, in); !strings.HasPrefix(got, c.want) || in.Len == 1 && c.want == "mov" {
			t.Errorf("insn at +%#x: %q (%d bytes), want %s", c.pc, got, in.Len, c.want)
		}
	}
	if len(mm.codePages) != 1 {
		t.Errorf("%d code pages kept, want the one page read once", len(mm.codePages))
	}
	// Anonymous or writable code (a JIT's) is read an instruction at a
	// time, never kept: it may be written again.
	for _, r := range []fakeRegion{{perms: "r-xp", path: ""}, {perms: "rwxp", path: "/prog"}, {perms: "r-xp", path: "/memfd:jit (deleted)"}, {perms: "r-xs", path: "/dev/shm/jit"}} {
		img := &fakeImage{path: "/prog", regions: []*fakeRegion{{start: codeBase, data: slices.Clone(pristine), perms: r.perms, path: r.path}}}
		_, s, tk := spawnedTask(t, img)
		mm := tk.proc.mm
		mm.syms()
		if in, err := s.insnAt(mm, tk.pid, codeBase+0x200); err != nil || !strings.HasPrefix(s.insnText(mm, in), "mov") {
			t.Errorf("%s %q: insn at +0x200: %v %v", r.perms, r.path, in, err)
		}
		if in, err := s.insnAt(mm, tk.pid, codeBase+codePage-1); err != nil || !strings.HasPrefix(s.insnText(mm, in), "ret") {
			t.Errorf("%s %q: the ret at the mapping's last byte: %v %v", r.perms, r.path, in, err)
		}
		if len(mm.codePages) != 0 {
			t.Errorf("%s %q: %d code pages kept, want none", r.perms, r.path, len(mm.codePages))
		}
	}
}
