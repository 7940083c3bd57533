package tracer

import (
	"slices"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/unwind"
)

// A libc's own channel from its vfork child to the parent.
//
// glibc's posix_spawn (sysdeps/unix/sysv/linux/spawni.c) runs its child
// with clone(CLONE_VM|CLONE_VFORK) on a stack of its own, passing it a
// pointer to `struct posix_spawn_args args`, a local of __spawnix() on the
// parent's stack. When a file action or the exec fails, the child stores
// errno in args->err and _exits; the parent, resumed, reads args.err in
// __spawnix and returns it. That write and that read are the libc's error
// channel, by design: without it posix_spawn could not report ENOENT.
//
// vtrace recognises it by who wrote the word and who read it, by the libc's
// own symbols, never by the program's: the child wrote it while running
// libc's spawn child function (the exact store when the child was stepped,
// else the function at the bottom of the child's own stack at its end —
// the function its clone runs, so every write the child made is made
// inside it), and the parent read it in libc's spawn function of the same
// object. Such a read is reported as a libc_channel, not a
// parent_consume, and the story stays clean. musl sends the error through
// a CLOEXEC pipe and needs nothing here.

// The libc functions of the spawn channel: the child function clone runs,
// and the functions of the parent that read the error back.
var (
	spawnChildFns  = []string{"__spawni_child"}
	spawnParentFns = []string{"__spawnix", "__spawni"}
	// spawnEntries are the libc's exported spawn functions: always named
	// (dynamic symbols), even in a libc without its symbol table.
	spawnEntries = []string{"posix_spawn", "posix_spawnp"}
)

// libcChannel returns the libc_channel event for the parent's read of the
// changed word x (the child left val there) by the instruction reader, or
// nil when the read is not a libc's channel.
func (s *session) libcChannel(st *story, x, val uint64, reader *event.Insn) *event.LibcChannel {
	if st.shared || reader == nil || reader.Sym == nil {
		return nil // glibc's spawn child has a stack of its own
	}
	if reader.Sym.Sym == "" {
		return s.unnamedChannel(st, x, val, reader)
	}
	if !isFn(reader.Sym, spawnParentFns) {
		return nil
	}
	writer := st.kid.writers[x]
	var wfn *event.Sym
	if writer != nil {
		wfn = writer.Sym
	} else {
		for _, f := range st.kid.endFns {
			if isFn(f, spawnChildFns) {
				wfn = f
				break
			}
		}
	}
	if !isFn(wfn, spawnChildFns) || wfn.Module != reader.Sym.Module {
		return nil
	}
	fn := event.Sym{Sym: reader.Sym.Sym, Module: reader.Sym.Module}
	return &event.LibcChannel{Header: s.hdr("libc_channel", st.parent.pid), Vfork: st.id,
		Kind: event.ChannelSpawnError, Addr: event.Addr(x), Value: event.Addr(val),
		Was: event.Addr(st.wordAt(st.orig, x)), Writer: writer, WriterFn: *wfn, Reader: *reader, Fn: fn}
}

// unnamedChannel recognises the spawn channel in a libc whose internal
// functions have no names (Debian's i386 libc has no symbol table and, here,
// no debug file): the parent reads the word in the libc's own code, called
// — through the libc's frames only — by its exported posix_spawn or
// posix_spawnp, and the child that wrote it ran the libc's code: the
// child of a clone the libc made inside posix_spawn is the libc's spawn
// child (until it execs it runs nothing but the libc's code). WriterFn then
// names the child's function by module and offset only.
func (s *session) unnamedChannel(st *story, x, val uint64, reader *event.Insn) *event.LibcChannel {
	mod := reader.Sym.Module
	if mod == "" {
		return nil
	}
	var regs arch.Regs
	if s.p.Regs(st.parent.pid, &regs) != nil {
		return nil
	}
	frames, _ := unwind.Unwind(&regs, taskMemory{s, st.parent.pid}, st.mm.syms(), 16)
	var entry *event.Sym
	for i, f := range frames {
		pc := f.PC
		if i > 0 {
			pc--
		}
		y := s.sym(st.mm, pc)
		if y == nil || y.Module != mod {
			return nil // left the libc before reaching posix_spawn
		}
		if isFn(y, spawnEntries) {
			entry = y
			break
		}
	}
	if entry == nil {
		return nil
	}
	writer := st.kid.writers[x]
	var wfn *event.Sym
	switch {
	case writer != nil && writer.Sym != nil && writer.Sym.Module == mod:
		wfn = writer.Sym
	case writer == nil:
		// The child's own frames at its end that are the libc's (the
		// vDSO's __kernel_vsyscall, innermost, is not): the outermost is
		// the clone wrapper, the one it called is the function the clone
		// ran (named by its call to _exit).
		var fns []*event.Sym
		for _, y := range st.kid.endFns {
			if y != nil && y.Module == mod {
				fns = append(fns, y)
			}
		}
		switch n := len(fns); {
		case n >= 2:
			wfn = fns[n-2]
		case n == 1:
			wfn = fns[0]
		}
	}
	if wfn == nil {
		return nil
	}
	return &event.LibcChannel{Header: s.hdr("libc_channel", st.parent.pid), Vfork: st.id,
		Kind: event.ChannelSpawnError, Addr: event.Addr(x), Value: event.Addr(val),
		Was: event.Addr(st.wordAt(st.orig, x)), Writer: writer, WriterFn: *wfn, Reader: *reader,
		Fn: event.Sym{Sym: entry.Sym, Module: mod}}
}

func isFn(y *event.Sym, names []string) bool {
	return y != nil && slices.Contains(names, y.Sym)
}

// noteWriter records the exact writer of a word the child changed (nil
// when the write was found by diffing).
func (k *childFacts) noteWriter(a uint64, by *event.Insn) {
	if by == nil {
		return
	}
	if k.writers == nil {
		k.writers = map[uint64]*event.Insn{}
	}
	k.writers[a] = by
}

// recordChildEnd keeps the functions on the child's own stack as it ends
// (its exit stop: its registers are still readable), innermost first —
// for a clone child on its own stack, the outermost is the function its
// clone runs. Only for a child with a stack of its own: that is the one a
// libc's channel needs.
func (s *session) recordChildEnd(st *story) {
	if st.shared {
		return
	}
	var regs arch.Regs
	if s.p.Regs(st.child.pid, &regs) != nil {
		return
	}
	frames, _ := unwind.Unwind(&regs, taskMemory{s, st.child.pid}, st.mm.syms(), 16)
	for i, f := range frames {
		pc := f.PC
		if i > 0 {
			pc-- // a return address: name the call
		}
		st.kid.endFns = append(st.kid.endFns, s.sym(st.mm, pc))
	}
}
