package tracer

import (
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// The parent phase (parent.go) on simulated processes: a read counts only
// while the word still holds the child's value; following ends as soon as
// nothing the child changed can be read; a vfork of the followed parent
// ends its story.

// spawnFrame is a function with a 16-byte frame that vforks: the child runs
// child, the parent runs parent (both given as raw bytes, after which the
// parent leaves and returns and the child _exits 0).
func spawnFrame(child, parent []byte) *asm {
	a := startMain()
	a.fn("main").pushRBP().movRSPtoRBP().call("spawn").exitWith(0)
	a.fn("spawn").pushRBP().movRSPtoRBP().raw(0x48, 0x83, 0xec, 0x10) // sub $16,%rsp
	a.call("vfork").jnzParent("parent")
	a.raw(child...).exitWith(0)
	a.label("parent").raw(parent...).leave().ret()
	a.glibcVfork()
	return a
}

var (
	childStoresRDI = []byte{0x48, 0x89, 0x7d, 0xf8} // mov %rdi,-0x8(%rbp): vfork's return address, a word of spawn's frame
	parentReads    = []byte{0x48, 0x8b, 0x45, 0xf8} // mov -0x8(%rbp),%rax
	leaRSI         = []byte{0x48, 0x8d, 0x75, 0xf8} // lea -0x8(%rbp),%rsi
	leaRDI         = []byte{0x48, 0x8d, 0x7d, 0xf8} // lea -0x8(%rbp),%rdi
	wait4          = []byte{0xb8, 61, 0, 0, 0, 0x0f, 0x05}
)

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

func landingOf(t *testing.T, rec *recorder, story int) *event.ParentLanding {
	t.Helper()
	for _, l := range all[*event.ParentLanding](rec) {
		if l.Vfork == story {
			return l
		}
	}
	t.Fatalf("story %d has no parent_landing", story)
	return nil
}

func fates(l *event.ParentLanding) []string {
	var out []string
	for _, w := range l.Words {
		by := ""
		if w.By != nil {
			by = " by " + w.By.Sym.String()
		}
		out = append(out, string(w.Fate)+by)
	}
	return out
}

func checkLines(t *testing.T, rec *recorder, want []string) {
	t.Helper()
	if lines := storyLines(rec); !slices.Equal(lines, want) {
		t.Errorf("story:\n  %s\nwant:\n  %s", strings.Join(lines, "\n  "), strings.Join(want, "\n  "))
	}
}

// Issue 11 item 2: the child writes a word of spawn's frame; the parent
// passes that word to wait4, whose status the kernel stores over it, then
// reads it. It reads the kernel's value, not the child's: clean, and
// following ends right after the syscall ("overwritten"), not at spawn's
// ret. Before the fix the read was a parent_consume (warning).
func TestParentKernelRewrite(t *testing.T) {
	a := spawnFrame(childStoresRDI, cat(leaRSI, wait4, parentReads))
	for _, mode := range []Mode{Fast, Step} {
		t.Run(mode.String(), func(t *testing.T) {
			rec, res, _ := runFake(t, a.image(t), codeBase, mode)
			checkLines(t, rec, []string{
				"vfork #1 caller spawn+12 frames 3",
				"#1 child exit",
				"#1 parent overwritten at spawn+48", // the read, right after the syscall
				"#1 clean []",
				"exit main=true exited code=0",
				"verdict clean vforks=1",
			})
			if got := fates(landingOf(t, rec, 1)); !slices.Equal(got, []string{"syscall by spawn+46"}) {
				t.Errorf("word fates %v, want the kernel's rewrite at the syscall", got)
			}
			if res.Verdict != event.Clean {
				t.Errorf("verdict %s", res.Verdict)
			}
		})
	}
}

// The same word read without the kernel's rewrite is the child's value:
// a warning, found by the parent's own instruction.
func TestParentReadsChildWrite(t *testing.T) {
	a := spawnFrame(childStoresRDI, parentReads)
	for _, mode := range []Mode{Fast, Step} {
		t.Run(mode.String(), func(t *testing.T) {
			rec, _, _ := runFake(t, a.image(t), codeBase, mode)
			checkLines(t, rec, []string{
				"vfork #1 caller spawn+12 frames 3",
				"#1 child exit",
				"#1 parent reads local by spawn+37",
				"#1 parent returned at spawn+42", // its leave left the word below the stack

				"#1 warning [parent_read_child_write]",
				"exit main=true exited code=0",
				"verdict warning vforks=1",
			})
			if got := fates(landingOf(t, rec, 1)); !slices.Equal(got, []string{"read by spawn+37"}) {
				t.Errorf("word fates %v", got)
			}
		})
	}
}

// Issue 11 items 3 and 6: what a function the parent calls does with the
// word through a pointer. peek reads it (a read inside the callee: a
// warning naming the call); clear rewrites it before the parent reads it
// (clean).
func TestParentCallee(t *testing.T) {
	build := func(parent []byte, callee string, body []byte) *asm {
		a := startMain()
		a.fn("main").pushRBP().movRSPtoRBP().call("spawn").exitWith(0)
		a.fn("spawn").pushRBP().movRSPtoRBP().raw(0x48, 0x83, 0xec, 0x10)
		a.call("vfork").jnzParent("parent")
		a.raw(childStoresRDI...).exitWith(0)
		a.label("parent").raw(leaRDI...).call(callee).raw(parent...).leave().ret()
		a.fn(callee).raw(body...).ret()
		a.glibcVfork()
		return a
	}
	peek := build(nil, "peek", []byte{0x48, 0x8b, 0x07})                                   // mov (%rdi),%rax
	clear := build(parentReads, "clear", []byte{0x48, 0xc7, 0x07, 0x01, 0x00, 0x00, 0x00}) // movq $1,(%rdi)
	for _, mode := range []Mode{Fast, Step} {
		t.Run("peek/"+mode.String(), func(t *testing.T) {
			rec, _, _ := runFake(t, peek.image(t), codeBase, mode)
			checkLines(t, rec, []string{
				"vfork #1 caller spawn+12 frames 3",
				"#1 child exit",
				"#1 parent reads local by peek",
				"#1 parent returned at spawn+47",
				"#1 warning [parent_read_child_write]",
				"exit main=true exited code=0",
				"verdict warning vforks=1",
			})
			c := all[*event.ParentConsume](rec)
			if len(c) != 1 || c[0].During == nil || c[0].During.Sym.String() != "spawn+41" || c[0].FoundBy != event.FoundStep {
				t.Errorf("the read inside peek must name the call spawn+41 and found_by step (watchpoints do not fire in the fake): %+v", c)
			}
		})
		t.Run("clear/"+mode.String(), func(t *testing.T) {
			rec, _, _ := runFake(t, clear.image(t), codeBase, mode)
			checkLines(t, rec, []string{
				"vfork #1 caller spawn+12 frames 3",
				"#1 child exit",
				"#1 parent overwritten at spawn+46", // back from clear
				"#1 clean []",
				"exit main=true exited code=0",
				"verdict clean vforks=1",
			})
			if got := fates(landingOf(t, rec, 1)); !slices.Equal(got, []string{"store by clear"}) {
				t.Errorf("word fates %v, want clear's store", got)
			}
		})
	}
}

// Issue 11 item 7: vfork in a loop in main(). main never returns; each
// child stores vfork's 0 into main's `pid` (which holds the last child's
// pid) and execs; the parent rewrites `pid` at once: each story ends there
// ("overwritten"), before the next vfork. With keep, the child also zeroes
// a word the parent never rewrites (with the round's count): the parent is still followed at its
// next vfork, which ends that story ("vfork") and starts the next — one
// after the other, never nested.
func TestParentVforkLoop(t *testing.T) {
	const rounds = 5
	build := func(keep bool) *asm {
		a := startMain()
		a.fn("main").pushRBP().movRSPtoRBP().raw(0x48, 0x83, 0xec, 0x10) // sub $16,%rsp
		a.raw(0x48, 0x89, 0x6d, 0xf8)                                    // mov %rbp,-0x8(%rbp): a live word
		a.raw(0xbb, rounds, 0, 0, 0)                                     // mov $rounds,%ebx
		a.label("loop").call("vfork")
		a.raw(0x48, 0x89, 0x45, 0xf0) // mov %rax,-0x10(%rbp): pid = vfork()
		a.jnzParent("parent")
		if keep {
			a.raw(0x48, 0x89, 0x5d, 0xf8) // mov %rbx,-0x8(%rbp): the child stores the round's count in the live word
		}
		a.movEAX(59).syscall()                        // execve
		a.label("parent").raw(0x48, 0x83, 0xeb, 0x01) // sub $1,%rbx
		a.raw(0x0f).rel32(0x85, "loop")               // jne loop
		a.exitWith(0)
		a.glibcVfork()
		return a
	}
	for _, keep := range []bool{false, true} {
		for _, mode := range []Mode{Fast, Step} {
			name := "overwritten/" + mode.String()
			if keep {
				name = "vfork/" + mode.String()
			}
			t.Run(name, func(t *testing.T) {
				rec, res, _ := runFake(t, build(keep).image(t), codeBase, mode)
				if res.Vforks != rounds || res.Verdict != event.Clean {
					t.Fatalf("result %+v, want %d clean vforks", res, rounds)
				}
				open := 0
				for _, ev := range rec.evs {
					switch e := ev.(type) {
					case *event.Vfork:
						if open++; open > 1 {
							t.Errorf("vfork #%d began while another story was open", e.Vfork)
						}
					case *event.VforkVerdict:
						open--
						if e.Incomplete != "" {
							t.Errorf("vfork #%d incomplete: %s", e.Vfork, e.Incomplete)
						}
					}
				}
				for i := 1; i <= rounds; i++ {
					l := landingOf(t, rec, i)
					var want event.LandingKind
					switch {
					case i == 1 && !keep:
						want = event.LandUntouched // pid still held 0: the child's 0 changed nothing
					case keep && i < rounds:
						want = event.LandVfork
					case keep:
						want = event.LandExit
					default:
						want = event.LandOverwritten
					}
					if l.How != want {
						t.Errorf("story %d landed %s at %s, want %s", i, l.How, l.Sym, want)
					}
					if l.Steps > 16 {
						t.Errorf("story %d: the parent was stepped %d times (a few instructions from its wake-up)", i, l.Steps)
					}
				}
			})
		}
	}
}

// Issue 11 item 1: glibc's posix_spawn error channel is recognised by the
// libc's own symbols — who wrote the word (the child, in __spawni_child)
// and who read it (the parent, in __spawnix of the same object) — and
// nothing else: not on a shared stack, not when the program reads it, not
// when another libc or the program wrote it.
func TestLibcChannel(t *testing.T) {
	libc := func(fn string, off uint64) *event.Sym { return &event.Sym{Sym: fn, Off: off, Module: "libc.so.6"} }
	reader := &event.Insn{PID: 1, PC: 0x1000, Sym: libc("__spawnix", 425), Insn: "mov 0xd4(%rsp),%r15d"}
	for _, c := range []struct {
		name   string
		shared bool
		endFns []*event.Sym
		writer *event.Insn
		reader *event.Insn
		want   bool
	}{
		{name: "diffed child, its stack ends in __spawni_child", endFns: []*event.Sym{libc("_exit", 20), libc("__spawni_child", 695)}, reader: reader, want: true},
		{name: "stepped child's store in __spawni_child", writer: &event.Insn{Sym: libc("__spawni_child", 690)}, reader: reader, want: true},
		{name: "shared stack", shared: true, endFns: []*event.Sym{libc("__spawni_child", 695)}, reader: reader},
		{name: "the program reads it", endFns: []*event.Sym{libc("__spawni_child", 695)},
			reader: &event.Insn{Sym: &event.Sym{Sym: "main", Off: 3, Module: "prog"}}},
		{name: "a store of the program's", writer: &event.Insn{Sym: &event.Sym{Sym: "child_fn", Module: "prog"}},
			endFns: []*event.Sym{libc("__spawni_child", 695)}, reader: reader},
		{name: "child function unknown (no symbols)", endFns: []*event.Sym{{Module: "libc.so.6", Off: 0x1234}}, reader: reader},
		{name: "another object's __spawni_child", endFns: []*event.Sym{{Sym: "__spawni_child", Module: "other.so"}}, reader: reader},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSession(Config{Sink: &recorder{}}, newFakeProcs(t))
			st := &story{id: 1, parent: &task{pid: 1}}
			st.word, st.lo, st.hi = 8, 0x7000, 0x7100
			st.orig = make([]byte, 0x100)
			st.shared = c.shared
			st.kid.endFns = c.endFns
			st.kid.noteWriter(0x7020, c.writer)
			ch := s.libcChannel(st, 0x7020, 0x200000000, c.reader)
			if (ch != nil) != c.want {
				t.Fatalf("libc_channel %+v, want one: %v", ch, c.want)
			}
			if ch != nil && (ch.Kind != event.ChannelSpawnError || ch.WriterFn.Sym != "__spawni_child" || ch.Fn.Sym != "__spawnix" || ch.Fn.Off != 0 || ch.Value != 0x200000000) {
				t.Errorf("libc_channel %+v", ch)
			}
		})
	}
}

// runFakeHW traces a fake program in fast mode with watchpoints probed
// ("auto"): the fake's debug registers fire as the hardware's do.
func runFakeHW(t *testing.T, img *fakeImage, entry uint64) *recorder {
	t.Helper()
	f := newFakeProcs(t)
	f.execImage = trueImage
	pid := f.spawn(img, entry)
	rec := &recorder{}
	s := newSession(Config{Mode: Fast, Path: img.path, Argv: []string{img.path}, Watchpoints: "auto", CPU: -1, Sink: rec}, f)
	if _, err := s.follow(context.Background(), pid); err != nil {
		t.Fatalf("follow: %v", err)
	}
	if st := all[*event.Start](rec); len(st) != 1 || st[0].Watchpoints != "hw" {
		t.Fatalf("the probe did not find the fake's watchpoints firing: %+v", st)
	}
	return rec
}

// Issue 11 item 6 in fast mode where watchpoints fire: the call runs at
// full speed with a read/write watchpoint on the live word; the callee's
// read through the pointer traps and is named exactly (found_by hw), and
// a callee's store is a rewrite, named by the store.
func TestParentCalleeWatched(t *testing.T) {
	build := func(parent []byte, callee string, body []byte) *asm {
		a := startMain()
		a.fn("main").pushRBP().movRSPtoRBP().call("spawn").exitWith(0)
		a.fn("spawn").pushRBP().movRSPtoRBP().raw(0x48, 0x83, 0xec, 0x10)
		a.call("vfork").jnzParent("parent")
		a.raw(childStoresRDI...).exitWith(0)
		a.label("parent").raw(leaRDI...).call(callee).raw(parent...).leave().ret()
		a.fn(callee).raw(0x90).raw(body...).ret() // nop; the access
		a.glibcVfork()
		return a
	}
	t.Run("read", func(t *testing.T) {
		rec := runFakeHW(t, build(nil, "peek", []byte{0x48, 0x8b, 0x07}).image(t), codeBase) // mov (%rdi),%rax
		c := all[*event.ParentConsume](rec)
		if len(c) != 1 || c[0].FoundBy != event.FoundHW || c[0].By.Sym.String() != "peek+1" || c[0].During == nil || c[0].During.Sym.String() != "spawn+41" {
			t.Fatalf("want one read by peek+1 found by hw during the call at spawn+41: %+v", c)
		}
		if v := all[*event.VforkVerdict](rec); len(v) != 1 || v[0].Verdict != event.Warning {
			t.Errorf("verdicts %+v", v)
		}
	})
	t.Run("rewrite", func(t *testing.T) {
		rec := runFakeHW(t, build(parentReads, "clear", []byte{0x48, 0xc7, 0x07, 0x01, 0x00, 0x00, 0x00}).image(t), codeBase)
		if c := all[*event.ParentConsume](rec); len(c) != 0 {
			t.Errorf("the parent read clear's value, not the child's: %+v", c)
		}
		l := landingOf(t, rec, 1)
		if got := fates(l); l.How != event.LandOverwritten || !slices.Equal(got, []string{"callee by clear+1"}) {
			t.Errorf("landing %s, fates %v: want overwritten, the word rewritten by clear+1", l.How, got)
		}
	})
}

// A data watchpoint's trap comes after the instruction that touched the
// word, which vtrace finds by decoding from the start of the code around
// it. Where no symbol covers that code — a library's hidden function when
// its debug file is absent: glibc's memcpy runs in
// __memmove_avx_unaligned_erms — the start is its call-frame information's
// (the FDE). Without that, a callee's store of the child's very value into
// a word the parent follows was undecodable and taken for a read: a false
// parent_read_child_write (a program that memcpy'd 1 into a local its vfork
// child had set to 1, run with libc's debug file hidden).
func TestInsnEndingAtWithoutSymbol(t *testing.T) {
	const local = 0x7fe000 // a stack word the child changed
	hidden := []byte{
		0x55,             // 0x401100 push %rbp
		0x48, 0x89, 0xe5, // 0x401101 mov %rsp,%rbp
		0xc7, 0x07, 0x01, 0x00, 0x00, 0x00, // 0x401104 movl $0x1,(%rdi)
		0xc3, // 0x40110a ret
	}
	for _, withFDE := range []bool{false, true} {
		img := &fakeImage{path: "/lib",
			regions: []*fakeRegion{{start: 0x401000, data: make([]byte, 0x1000), perms: "r-xp", path: "/lib"},
				{start: 0x7fd000, data: make([]byte, 0x2000), perms: "rw-p", path: "[stack]"}},
			syms: []fakeSym{{"exported", 0x401000, 0x401010}}} // none covers 0x401100
		copy(img.regions[0].data[0x100:], hidden)
		if withFDE {
			img.fdes = fakeFDEs(t, [2]uint64{0x401100, 0x40110b})
		}
		s, st, rec := globalsStory(t, img)
		in := s.insnEndingAt(st.mm, 1, 0x40110a)
		if got := in != nil; got != withFDE {
			t.Fatalf("with FDE %v: instruction ending at 0x40110a found: %v (%v)", withFDE, got, in)
		}
		if in != nil && in.PC != 0x401104 {
			t.Fatalf("the instruction ending at 0x40110a starts at %#x, want 0x401104", in.PC)
		}

		// The parent's callee stored the child's value (1) again into the
		// followed word: watchpoint DR0 fired after the movl.
		binary.LittleEndian.PutUint64(img.regions[1].data[local-0x7fd000:], 1)
		st.lo, st.hi, st.word = 0x7fd000, 0x7ff000, 8
		st.orig, st.scratch = make([]byte, 0x2000), make([]byte, 0x2000)
		st.par.consumed = map[uint64]event.SlotKind{}
		r := &parentRun{st: st, hw: []uint64{local}, changed: map[uint64]poisoned{local: {val: 1, bytes: 0xff}},
			fates: map[uint64]event.WordFate{}}
		f := s.p.(*fakeProcs)
		f.tasks[1].dr[6] = 1
		var now arch.Regs
		now.Arch = arch.AMD64
		now.SetPC(0x40110a)
		now.Set(5, local) // %rdi (DWARF 5)
		if !s.parentHWHit(r, &now) {
			t.Fatalf("with FDE %v: the watchpoint's trap was not handled", withFDE)
		}
		_, live := r.changed[local]
		reads := len(all[*event.ParentConsume](rec))
		if withFDE && (live || reads != 0) {
			t.Errorf("a store of the same value, decoded from the FDE: word still followed %v, %d parent_consume", live, reads)
		}
		if !withFDE && reads != 1 {
			// What vtrace must assume of an access it cannot decode
			// whose value is unchanged (and did before this fix, FDE or
			// not): a read.
			t.Errorf("an undecodable access of the unchanged word: %d parent_consume, want 1", reads)
		}
	}
}
