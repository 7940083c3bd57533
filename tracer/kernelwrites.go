package tracer

import (
	"maps"
	"slices"
	"strings"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
)

// Memory the kernel fills in for the parent, known by the call's meaning.
//
// The parent phase (parent.go) drops a changed word once it no longer
// holds the child's bytes. A write that happens to store the very bytes
// the child left there cannot be seen by comparing values, and the
// commonest is the kernel's: the parent's waitpid() stores the child's
// exit status into a word the child wrote (clang -O2 gives the child's
// and the parent's status one stack slot; a status is mostly zero bytes),
// and the parent then reads the kernel's value, not the child's. So for
// the system calls and libc functions that fill in a caller's buffer,
// the bytes they wrote are known from their arguments and result: the
// syscall when the parent is stepped through it, the libc function when
// fast mode runs its call at full speed.

// written is a range of memory a call filled in (or, for kernelReads,
// read).
type written struct{ addr, size uint64 }

// sysOut is one system call that fills in caller memory: the argument
// holding the pointer, and how many bytes it writes there (size, or the
// result when byRet). okZero: it succeeded when it returned 0 (else when
// it returned more than 0: a pid, a byte count). intRet: a libc function
// returning int (not ssize_t): on amd64 its result is %eax alone, the upper
// half of %rax is not part of it (glibc's wait4 fails with
// `mov $0xffffffff,%eax`).
type sysOut struct {
	ptrArg int
	size   uint64
	byRet  bool
	okZero bool
	intRet bool
}

// The syscalls modelled, by number, per architecture: the wait family
// (status word, rusage, siginfo), read/pread64 (the bytes read), pipe and
// pipe2 (two descriptors).
var sysOuts = map[*arch.Arch]map[uint64][]sysOut{
	arch.AMD64: {
		61:  {{ptrArg: 1, size: 4}, {ptrArg: 3, size: 144}},                               // wait4(pid, status, options, rusage)
		247: {{ptrArg: 2, size: 128, okZero: true}, {ptrArg: 4, size: 144, okZero: true}}, // waitid
		0:   {{ptrArg: 1, byRet: true}},                                                   // read
		17:  {{ptrArg: 1, byRet: true}},                                                   // pread64
		22:  {{ptrArg: 0, size: 8, okZero: true}},                                         // pipe
		293: {{ptrArg: 0, size: 8, okZero: true}},                                         // pipe2
	},
	arch.I386: {
		7:   {{ptrArg: 1, size: 4}},                                                      // waitpid(pid, status, options)
		114: {{ptrArg: 1, size: 4}, {ptrArg: 3, size: 72}},                               // wait4
		284: {{ptrArg: 2, size: 128, okZero: true}, {ptrArg: 4, size: 72, okZero: true}}, // waitid
		3:   {{ptrArg: 1, byRet: true}},                                                  // read
		180: {{ptrArg: 1, byRet: true}},                                                  // pread64
		42:  {{ptrArg: 0, size: 8, okZero: true}},                                        // pipe
		331: {{ptrArg: 0, size: 8, okZero: true}},                                        // pipe2
	},
}

// libcOuts are the libc functions with the same effect, by name (glibc's
// and musl's internal aliases included), with their arguments in C order.
var libcOuts = map[string][]sysOut{
	"wait":    {{ptrArg: 0, size: 4, intRet: true}},
	"waitpid": {{ptrArg: 1, size: 4, intRet: true}},
	"wait3":   {{ptrArg: 0, size: 4, intRet: true}},
	"wait4":   {{ptrArg: 1, size: 4, intRet: true}},
	"waitid":  {{ptrArg: 2, size: 128, okZero: true, intRet: true}},
	"read":    {{ptrArg: 1, byRet: true}},
	"pread":   {{ptrArg: 1, byRet: true}},
	"pread64": {{ptrArg: 1, byRet: true}},
	"pipe":    {{ptrArg: 0, size: 8, okZero: true, intRet: true}},
	"pipe2":   {{ptrArg: 0, size: 8, okZero: true, intRet: true}},
}

// libcName strips the decorations a libc function's symbol carries in
// the parent's code: a PLT entry, glibc's __libc_ and __ prefixes, and
// the _chk of _FORTIFY_SOURCE's checked variants (__read_chk(fd, buf,
// nbytes, buflen): read's arguments first, read's effect).
func libcName(sym string) string {
	sym = strings.TrimSuffix(sym, "@plt")
	if i := strings.IndexByte(sym, '@'); i >= 0 {
		sym = sym[:i]
	}
	sym = strings.TrimPrefix(sym, "__libc_")
	if c := strings.TrimSuffix(sym, "_chk"); c != sym && strings.HasPrefix(c, "__") {
		sym = c
	}
	return strings.TrimPrefix(sym, "__")
}

// retValue is a call's result in the return register, signed.
func retValue(r *arch.Regs) int64 {
	if r.Arch == arch.AMD64 {
		return int64(r.AX())
	}
	return int64(int32(r.AX()))
}

// outputs turns the modelled effects into ranges, given the pointer
// arguments and the result.
func outputs(outs []sysOut, arg func(int) uint64, ret int64) []written {
	var w []written
	for _, o := range outs {
		ret := ret
		if o.intRet {
			ret = int64(int32(ret))
		}
		if o.okZero && ret != 0 || !o.okZero && ret <= 0 {
			continue
		}
		p := arg(o.ptrArg)
		if p == 0 {
			continue
		}
		n := o.size
		if o.byRet {
			n = uint64(ret)
		}
		w = append(w, written{p, n})
	}
	return w
}

// syscallWrites is what the system call the parent is stopped at (before)
// wrote for it, given the registers after.
func syscallWrites(before, after *arch.Regs) []written {
	return syscallRanges(sysOuts, before, after)
}

// syscallReads is what the system call at before read of the caller's
// memory, given the registers after.
func syscallReads(before, after *arch.Regs) []written {
	return syscallRanges(sysIns, before, after)
}

func syscallRanges(table map[*arch.Arch]map[uint64][]sysOut, before, after *arch.Regs) []written {
	outs := table[before.Arch][before.AX()]
	if len(outs) == 0 {
		return nil
	}
	return outputs(outs, before.SyscallArg, retValue(after))
}

// libcWrites is what the libc function called at before (the parent at
// its call instruction) wrote for it, given the registers after its
// return; arguments on the stack (i386) are read through readWord.
func libcWrites(name string, before, after *arch.Regs, readWord func(uint64) (uint64, bool)) []written {
	return libcRanges(libcOuts[libcName(name)], before, after, readWord)
}

// libcReads is what the libc function called at before read of the
// caller's memory (for the kernel), given the registers after its return.
func libcReads(name string, before, after *arch.Regs, readWord func(uint64) (uint64, bool)) []written {
	return libcRanges(libcIns[libcName(name)], before, after, readWord)
}

func libcRanges(outs []sysOut, before, after *arch.Regs, readWord func(uint64) (uint64, bool)) []written {
	if len(outs) == 0 {
		return nil
	}
	arg := func(n int) uint64 {
		if v, ok := before.CallArg(n); ok {
			return v
		}
		// i386 cdecl: at the call, argument n is at %esp + 4n.
		v, ok := readWord(before.SP() + uint64(4*n))
		if !ok {
			return 0
		}
		return v
	}
	return outputs(outs, arg, retValue(after))
}

// liveIn calls f for each live word with bytes in ws, with the mask of
// those bytes that are still the child's.
func (r *parentRun) liveIn(ws []written, f func(x uint64, m uint8)) {
	word := uint64(r.st.word)
	// In address order: f emits events (parent_consume), and a map's
	// order changes from run to run.
	xs := slices.Sorted(maps.Keys(r.changed))
	for _, w := range ws {
		acc := disasm.Access{Addr: w.addr, Size: int(min(w.size, 1<<30))}
		for _, x := range xs {
			if x+word <= w.addr || x >= w.addr+w.size {
				continue
			}
			if m := r.changed[x].bytes & overlap(x, word, acc); m != 0 {
				f(x, m)
			}
		}
	}
}

// clearWritten drops the bytes of live words a call filled in: whatever
// they hold now is the call's, not the child's.
func (r *parentRun) clearWritten(ws []written, fate event.FateKind, by *event.Insn) {
	r.liveIn(ws, func(x uint64, m uint8) { r.clear(x, m, fate, by) })
}

// The calls that hand the kernel the caller's bytes: write, pwrite64 and
// sendto send the buffer (argument 1) of the length they return. A word
// the child left there is read by the parent then, through the kernel,
// where neither stepping nor a watchpoint sees it.
var sysIns = map[*arch.Arch]map[uint64][]sysOut{
	arch.AMD64: {1: {{ptrArg: 1, byRet: true}}, 18: {{ptrArg: 1, byRet: true}}, 44: {{ptrArg: 1, byRet: true}}},
	arch.I386:  {4: {{ptrArg: 1, byRet: true}}, 181: {{ptrArg: 1, byRet: true}}, 369: {{ptrArg: 1, byRet: true}}},
}

var libcIns = map[string][]sysOut{
	"write":    {{ptrArg: 1, byRet: true}},
	"pwrite":   {{ptrArg: 1, byRet: true}},
	"pwrite64": {{ptrArg: 1, byRet: true}},
	"send":     {{ptrArg: 1, byRet: true}},
	"sendto":   {{ptrArg: 1, byRet: true}},
}

// kernelConsumes reports the live words in ws — memory the kernel read for
// the parent — as read by the parent: by is the syscall (stepped) or the
// call to the libc function (run at full speed).
func (s *session) kernelConsumes(r *parentRun, ws []written, by *event.Insn) {
	r.liveIn(ws, func(x uint64, _ uint8) { s.consume(r, x, nil, by, uint64(by.PC), event.FoundKernel) })
}
