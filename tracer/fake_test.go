package tracer

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"golang.org/x/arch/x86/x86asm"
	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
	"github.com/vtrace/vtrace/tracer/internal/ptrace"
	"github.com/vtrace/vtrace/tracer/internal/symbols"
)

// The engine's tests run stories against fakeProcs: simulated amd64
// processes behind the procs interface, no ptrace. Each process has memory
// regions and registers; a Step or Cont request executes real machine code
// (assembled by the tests) with a small interpreter of the instructions the
// test programs use, and produces the wait statuses the kernel would:
// single-step traps, int3 traps, PTRACE_EVENT_VFORK/EXEC/EXIT stops, a
// vfork child's initial SIGSTOP, VFORK_DONE, faults as SIGSEGV deliveries.
// The engine decodes, unwinds (by machine code: the fake has no CFI) and
// judges exactly as it does on real processes.

// fakeRegion is one mapping of an image.
type fakeRegion struct {
	start uint64
	data  []byte
	perms string
	path  string
}

func (r *fakeRegion) end() uint64 { return r.start + uint64(len(r.data)) }

// fakeSym is a function of an image's code.
type fakeSym struct {
	name       string
	start, end uint64
}

// fakeImage is one memory image: shared by a vfork parent and its child.
type fakeImage struct {
	regions []*fakeRegion
	syms    []fakeSym
	path    string
	fdes    frame.FrameDescriptionEntries // the image's call-frame information, if any
}

// copy is a fork's copy of the image: the same layout, memory of its own.
func (im *fakeImage) copy() *fakeImage {
	c := &fakeImage{syms: im.syms, path: im.path, fdes: im.fdes}
	for _, r := range im.regions {
		c.regions = append(c.regions, &fakeRegion{start: r.start, data: slices.Clone(r.data), perms: r.perms, path: r.path})
	}
	return c
}

func (im *fakeImage) region(addr uint64, n int) *fakeRegion {
	for _, r := range im.regions {
		if addr >= r.start && addr+uint64(n) <= r.end() {
			return r
		}
	}
	return nil
}

func (im *fakeImage) read(addr uint64, buf []byte) bool {
	r := im.region(addr, len(buf))
	if r == nil {
		return false
	}
	copy(buf, r.data[addr-r.start:])
	return true
}

func (im *fakeImage) write(addr uint64, data []byte) bool {
	r := im.region(addr, len(data))
	if r == nil {
		return false
	}
	copy(r.data[addr-r.start:], data)
	return true
}

// fakeSpace is the image as the engine's symbol layer sees it.
type fakeSpace struct{ im *fakeImage }

func (sp fakeSpace) sym(addr uint64) *fakeSym {
	for i := range sp.im.syms {
		if y := &sp.im.syms[i]; addr >= y.start && addr < y.end {
			return y
		}
	}
	return nil
}

func (sp fakeSpace) Symbolize(addr uint64) symbols.Sym {
	if y := sp.sym(addr); y != nil {
		return symbols.Sym{Name: y.name, Off: addr - y.start, Module: "fake"}
	}
	return symbols.Sym{}
}

func (sp fakeSpace) IsCode(addr uint64) bool {
	r := sp.im.region(addr, 1)
	return r != nil && r.perms[2] == 'x'
}

func (sp fakeSpace) MappingAt(addr uint64) (symbols.Mapping, bool) {
	r := sp.im.region(addr, 1)
	if r == nil {
		return symbols.Mapping{}, false
	}
	return symbols.Mapping{Start: r.start, End: r.end(), Perms: r.perms, Path: r.path}, true
}

func (sp fakeSpace) FDEForPC(pc uint64) (*frame.FrameDescriptionEntry, error) {
	if sp.im.fdes != nil {
		return sp.im.fdes.FDEForPC(pc)
	}
	return nil, &frame.ErrNoFDEForPC{PC: pc}
}

// fakeFDEs is call-frame information with an FDE for each [start, end)
// (gcc's CIE, no rules of their own: only where they begin and end
// matters to the tests that use it).
func fakeFDEs(t *testing.T, ranges ...[2]uint64) frame.FrameDescriptionEntries {
	t.Helper()
	cie := []byte{1, 0, 1, 0x78, 16, 0x0c, 7, 8, 0x80 | 16, 1} // version 1, "", CFA rsp+8, rip at CFA-8
	var sec []byte
	sec = binary.LittleEndian.AppendUint32(sec, uint32(4+len(cie)))
	sec = binary.LittleEndian.AppendUint32(sec, 0xffffffff)
	sec = append(sec, cie...)
	for _, r := range ranges {
		sec = binary.LittleEndian.AppendUint32(sec, 4+16)
		sec = binary.LittleEndian.AppendUint32(sec, 0) // the CIE at offset 0
		sec = binary.LittleEndian.AppendUint64(sec, r[0])
		sec = binary.LittleEndian.AppendUint64(sec, r[1]-r[0])
	}
	fdes, err := frame.Parse(sec, binary.LittleEndian, 0, 8, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fdes
}

func (sp fakeSpace) FuncCode(pc uint64) (uint64, []byte, bool) {
	y := sp.sym(pc)
	if y == nil {
		return 0, nil, false
	}
	buf := make([]byte, y.end-y.start)
	if !sp.im.read(y.start, buf) {
		return 0, nil, false
	}
	return y.start, buf, true
}

// fakeTask is one simulated process (one thread).
type fakeTask struct {
	pid  int
	img  *fakeImage
	regs arch.Regs
	dead bool
	// vforkChild is the child a vfork parent waits for; a request to the
	// parent waits (pending) until that child execs or exits.
	vforkChild *fakeTask
	vforkOf    *fakeTask // the parent of a vfork child that has not released it
	pending    func()
	// syscallTrap: the child released this vfork parent; its next step
	// only reports the trap at syscall exit (TF set on the return to user
	// mode), executing nothing. (No VFORK_DONE: vtrace does not ask for it.)
	syscallTrap bool
	zf          bool        // the zero flag (test, cmp, je/jne)
	cf          bool        // the carry flag (cmp, sub, jae)
	exitStatus  int         // set by an exit syscall, for the exit event and the end
	exiting     bool        // stopped at PTRACE_EVENT_EXIT
	killed      bool        // by SIGKILL (fakeProcs.killToExit): it dies of it
	noExitStop  bool        // PTRACE_O_TRACEEXIT is off (ExitStops): it dies without the exit stop
	sigpending  unix.Signal // a signal sent to it, reported at its next resume
	detached    bool
	// dr are the debug registers DR0-DR7 (see watchHit).
	dr [8]uint64
	// atStop: the engine has been told of the task's latest stop (Wait)
	// and has not resumed it since — the kernel's condition for every
	// ptrace request but the signals; anything else answers ESRCH.
	atStop bool
}

// fakeProcs implements procs over simulated processes.
type fakeProcs struct {
	t       *testing.T
	tasks   map[int]*fakeTask
	stops   []ptrace.Stop
	msg     map[int]uint64
	info    map[int]ptrace.SigInfo
	nextPID int
	// execImage makes the image of a program a task execs.
	execImage func() (*fakeImage, uint64, uint64)
	steps     int
	stepReqs  int         // PTRACE_SINGLESTEP requests
	conts     map[int]int // PTRACE_CONT requests, by pid
	noDR      bool        // debug registers refuse to be written (as with --watchpoints off)
	drWrites  int         // debug-register writes made
	// childStopFirst: a vfork child's first stop is reported before its
	// parent's event (as on a real machine, often).
	childStopFirst bool
	// killToExit: SIGKILL takes a task out of a stop vtrace was told of
	// into its exit stop (PTRACE_EVENT_EXIT, message 9), as the kernel
	// does; otherwise the fake's SIGKILL ends it at once.
	killToExit bool
	// onWait is called with each stop Wait returns, before the engine
	// sees it (a test stops the run there).
	onWait func(ptrace.Stop)
	// onEventMsg is called as the engine asks for a task's event message.
	onEventMsg func(pid int)
	// foreignKills are signals sent to pids the fake does not have.
	foreignKills []int
	// activity, if set, is what Activity reports of each pid;
	// activityReads counts the Activity calls (the looks at /proc).
	activity      map[int]activity
	activityReads int
	// regsReads and pcReads count the Regs and PC calls.
	regsReads, pcReads int
	// exitStopCalls records each ExitStops request: "pid on" or "pid off".
	exitStopCalls []string
	// infoRead are the signals whose siginfo the engine read (SigInfo),
	// delivered those it resumed a task with.
	infoRead, delivered []unix.Signal
	// trail is the order of the continues and memory writes: "cont PID",
	// "write PID".
	trail []string
	// fds, if set, is what FdWriters reports of a pid's descriptor.
	fds map[[2]int]fakeFd
}

// fakeFd is what a fake descriptor refers to.
type fakeFd struct {
	kind    fdKind
	writers []int
	epoll   []int // for an epoll descriptor, the descriptors it watches
}

func newFakeProcs(t *testing.T) *fakeProcs {
	return &fakeProcs{t: t, tasks: map[int]*fakeTask{}, msg: map[int]uint64{}, info: map[int]ptrace.SigInfo{}, nextPID: 100}
}

const fakeStackTop = 0x7ff000

// spawnedTask starts img at codeBase in new fake processes: the
// processes, a session over them, and the started task with its address
// space (no story, no int3 yet).
func spawnedTask(t *testing.T, img *fakeImage) (*fakeProcs, *session, *task) {
	t.Helper()
	f := newFakeProcs(t)
	pid := f.spawn(img, codeBase)
	s := newSession(Config{CPU: -1}, f)
	mm, err := s.newAddrSpace(pid)
	if err != nil {
		t.Fatal(err)
	}
	return f, s, &task{pid: pid, proc: &process{tgid: pid, mm: mm}}
}

// spawn creates the main task, stopped at its exec stop, at entry.
func (f *fakeProcs) spawn(img *fakeImage, entry uint64) int {
	f.nextPID++
	t := &fakeTask{pid: f.nextPID, img: img, atStop: true}
	t.regs.Arch = arch.AMD64
	t.regs.SetPC(entry)
	t.regs.Set(arch.AMD64.SP, fakeStackTop-16) // [sp] = 0: main's return address
	f.tasks[t.pid] = t
	return t.pid
}

func stopped(sig unix.Signal) unix.WaitStatus { return unix.WaitStatus(0x7f | int(sig)<<8) }

func eventStop(ev int) unix.WaitStatus {
	return unix.WaitStatus(0x7f | int(unix.SIGTRAP)<<8 | ev<<16)
}

func (f *fakeProcs) queue(pid int, ws unix.WaitStatus) {
	f.stops = append(f.stops, ptrace.Stop{PID: pid, Status: ws})
}

func (f *fakeProcs) WaitStepped() (ptrace.Stop, error) { return f.Wait() }

func (f *fakeProcs) Wait() (ptrace.Stop, error) {
	if len(f.stops) == 0 {
		for _, t := range f.tasks {
			if !t.dead {
				f.t.Fatalf("fake: Wait with no stop to report but task %d alive (engine would hang)", t.pid)
			}
		}
		return ptrace.Stop{}, unix.ECHILD
	}
	st := f.stops[0]
	f.stops = f.stops[1:]
	if t := f.tasks[st.PID]; t != nil && st.Status.Stopped() {
		t.atStop = true
		if ev := st.Event(); ev != 0 {
			// An event stop's siginfo: SIGTRAP, si_code SIGTRAP|event<<8.
			f.info[st.PID] = ptrace.SigInfo{Signo: int32(unix.SIGTRAP), Code: int32(unix.SIGTRAP) | int32(ev)<<8}
		}
	}
	if f.onWait != nil {
		f.onWait(st)
	}
	return st, nil
}

func (f *fakeProcs) ReapDead() int { return 0 }

func (f *fakeProcs) task(pid int) (*fakeTask, error) {
	t := f.tasks[pid]
	if t == nil || t.dead {
		return nil, fmt.Errorf("fake %d: %w", pid, unix.ESRCH)
	}
	return t, nil
}

// stoppedTask is a task the engine may make a ptrace request of: one in a
// ptrace-stop it has been told of.
func (f *fakeProcs) stoppedTask(pid int) (*fakeTask, error) {
	t, err := f.task(pid)
	if err == nil && !t.atStop {
		err = fmt.Errorf("fake %d is not in a ptrace-stop: %w", pid, unix.ESRCH)
	}
	return t, err
}

func (f *fakeProcs) Step(pid, sig int) error {
	f.stepReqs++
	f.drOff(pid, "step")
	return f.resume(pid, sig, true)
}

// drOff fails the test when task pid has a watchpoint enabled (DR7's
// enable bits) as it is single-stepped or let go: vtrace turns them on
// only for its continues (a step a watchpoint stops hung qemu's TCG
// guest; a task let go would die of the next hit's SIGTRAP).
func (f *fakeProcs) drOff(pid int, what string) {
	if t, err := f.task(pid); err == nil && t.dr[7]&0xff != 0 {
		f.t.Errorf("fake: %s of %d with DR7 %#x on", what, pid, t.dr[7])
	}
}
func (f *fakeProcs) Cont(pid, sig int) error {
	if f.conts == nil {
		f.conts = map[int]int{}
	}
	f.conts[pid]++
	f.trail = append(f.trail, fmt.Sprintf("cont %d", pid))
	return f.resume(pid, sig, false)
}

func (f *fakeProcs) resume(pid, sig int, step bool) error {
	t, err := f.stoppedTask(pid)
	if err != nil {
		return err
	}
	if sig != 0 && t.vforkChild == nil { // (a vfork parent's request runs later: counted then)
		f.delivered = append(f.delivered, unix.Signal(sig))
	}
	t.atStop = false
	if t.vforkChild != nil {
		// Blocked in vfork until the child releases it.
		t.pending = func() { t.atStop = true; _ = f.resume(pid, sig, step) }
		return nil
	}
	delete(f.info, pid)
	if sig := t.sigpending; sig != 0 {
		t.sigpending = 0
		f.queue(t.pid, stopped(sig))
		f.info[t.pid] = ptrace.SigInfo{Signo: int32(sig), Code: -6} // SI_TKILL
		return nil
	}
	if t.syscallTrap {
		t.syscallTrap = false
		if step {
			f.queue(t.pid, stopped(unix.SIGTRAP))
			f.info[t.pid] = ptrace.SigInfo{Signo: int32(unix.SIGTRAP), Code: 1} // TRAP_BRKPT, as x86 reports it
			return nil
		}
	}
	switch {
	case sig != 0 && !isIgnoredByDefault(unix.Signal(sig)):
		f.die(t, unix.WaitStatus(sig)) // no handlers in the fake: fatal
	case t.exiting && t.killed:
		f.die(t, unix.WaitStatus(unix.SIGKILL))
	case t.exiting:
		f.die(t, unix.WaitStatus(t.exitStatus<<8))
	case step:
		f.step(t, true)
	default:
		for i := 0; !f.step(t, false); i++ {
			if i == 100000 {
				f.t.Fatalf("fake: task %d ran 100000 instructions without stopping", t.pid)
			}
		}
	}
	return nil
}

func isIgnoredByDefault(sig unix.Signal) bool {
	return sig == unix.SIGCHLD || sig == unix.SIGWINCH || sig == unix.SIGURG || sig == unix.SIGCONT || sig == unix.SIGSTOP
}

// die ends a task with a wait status and releases a vfork parent.
func (f *fakeProcs) die(t *fakeTask, ws unix.WaitStatus) {
	t.dead = true
	f.queue(t.pid, ws)
	f.release(t)
}

// release wakes a vfork parent: its pending request runs.
func (f *fakeProcs) release(child *fakeTask) {
	p := child.vforkOf
	if p == nil {
		return
	}
	child.vforkOf, p.vforkChild = nil, nil
	p.syscallTrap = true
	if run := p.pending; run != nil {
		p.pending = nil
		run()
	}
}

// step executes one instruction of t and queues the stop it leads to (the
// single-step trap only when trap is set); it reports whether the task
// stopped for a reason other than a finished instruction (so a continue
// ends there).
func (f *fakeProcs) step(t *fakeTask, trap bool) (stop bool) {
	f.steps++
	pc := t.regs.PC()
	var buf [16]byte
	n := 0
	for n = 16; n > 0 && !t.img.read(pc, buf[:n]); n-- {
	}
	if n == 0 {
		f.fault(t, pc)
		return true
	}
	if buf[0] == 0xcc {
		t.regs.SetPC(pc + 1)
		f.queue(t.pid, stopped(unix.SIGTRAP))
		f.info[t.pid] = ptrace.SigInfo{Signo: int32(unix.SIGTRAP), Code: 0x80}
		return true
	}
	in, err := disasm.Decode(buf[:n], pc, arch.AMD64)
	if err != nil {
		f.t.Fatalf("fake: cannot decode at %#x: %v", pc, err)
	}
	var hit uint64
	if t.dr[7] != 0 {
		acc, _ := in.Effects(&t.regs, nil)
		if in.Class == disasm.Call {
			acc = append(acc, disasm.Access{Addr: t.regs.SP() - 8, Size: 8, Write: true})
		}
		hit = watchHit(t, acc)
	}
	ev, faultAt := f.exec(t, in)
	switch {
	case faultAt != 0:
		f.fault(t, faultAt)
		return true
	case ev == 0 && hit != 0:
		// A data watchpoint traps after the instruction (with the
		// single-step's trap, if any: one SIGTRAP).
		t.dr[6] |= hit
		f.queue(t.pid, stopped(unix.SIGTRAP))
		return true
	case ev == 0:
		if trap {
			f.queue(t.pid, stopped(unix.SIGTRAP))
			f.info[t.pid] = ptrace.SigInfo{Signo: int32(unix.SIGTRAP), Code: 2} // TRAP_TRACE
		}
		return false
	}
	return true
}

func (f *fakeProcs) fault(t *fakeTask, addr uint64) {
	f.info[t.pid] = ptrace.SigInfo{Signo: int32(unix.SIGSEGV), Code: 1, Addr: addr}
	f.queue(t.pid, stopped(unix.SIGSEGV))
}

var fakeRegs = map[x86asm.Reg]int{
	x86asm.RAX: 0, x86asm.RDX: 1, x86asm.RCX: 2, x86asm.RBX: 3, x86asm.RSI: 4, x86asm.RDI: 5,
	x86asm.RBP: 6, x86asm.RSP: 7, x86asm.R8: 8, x86asm.R9: 9, x86asm.R12: 12, x86asm.R15: 15,
	x86asm.EAX: 0, x86asm.EDX: 1, x86asm.ECX: 2, x86asm.EBX: 3, x86asm.ESI: 4, x86asm.EDI: 5,
}

// exec interprets one instruction. It returns the event it raised (0 for
// none) or the address of a fault.
func (f *fakeProcs) exec(t *fakeTask, in *disasm.Insn) (ev int, faultAt uint64) {
	r := &t.regs
	next := in.PC + uint64(in.Len)
	reg := func(a x86asm.Arg) int {
		n, ok := fakeRegs[a.(x86asm.Reg)]
		if !ok {
			f.t.Fatalf("fake: register %v at %#x", a, in.PC)
		}
		return n
	}
	addr := func(m x86asm.Mem) uint64 {
		a := uint64(m.Disp)
		if m.Base == x86asm.RIP {
			a += next
		} else if m.Base != 0 {
			a += r.R[reg(m.Base)]
		}
		if m.Index != 0 {
			a += r.R[reg(m.Index)] * uint64(m.Scale)
		}
		return a
	}
	load := func(a uint64) (uint64, bool) {
		var b [8]byte
		if !t.img.read(a, b[:]) {
			return 0, false
		}
		return binary.LittleEndian.Uint64(b[:]), true
	}
	store := func(a, v uint64) bool {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		return t.img.write(a, b[:])
	}
	push := func(v uint64) uint64 {
		sp := r.SP() - 8
		if !store(sp, v) {
			return sp
		}
		r.Set(arch.AMD64.SP, sp)
		return 0
	}
	pop := func() (uint64, uint64) {
		v, ok := load(r.SP())
		if !ok {
			return 0, r.SP()
		}
		r.Set(arch.AMD64.SP, r.SP()+8)
		return v, 0
	}
	value := func(a x86asm.Arg) uint64 {
		switch a := a.(type) {
		case x86asm.Reg:
			return r.R[reg(a)]
		case x86asm.Imm:
			return uint64(int64(a))
		}
		f.t.Fatalf("fake: operand %v at %#x", a, in.PC)
		return 0
	}
	args := in.Inst.Args
	switch in.Inst.Op {
	case x86asm.NOP:
	case x86asm.PUSH:
		if fa := push(value(args[0])); fa != 0 {
			return 0, fa
		}
	case x86asm.POP:
		v, fa := pop()
		if fa != 0 {
			return 0, fa
		}
		r.Set(reg(args[0]), v)
	case x86asm.CALL:
		if fa := push(next); fa != 0 {
			return 0, fa
		}
		next = in.Target
	case x86asm.RET:
		v, fa := pop()
		if fa != 0 {
			return 0, fa
		}
		next = v
	case x86asm.JMP:
		next = in.Target
	case x86asm.TEST:
		t.zf, t.cf = value(args[0])&value(args[1]) == 0, false
	case x86asm.CMP:
		x, y := value(args[0]), value(args[1])
		t.zf, t.cf = x == y, x < y
	case x86asm.JAE:
		if !t.cf {
			next = in.Target
		}
	case x86asm.JE:
		if t.zf {
			next = in.Target
		}
	case x86asm.JNE:
		if !t.zf {
			next = in.Target
		}
	case x86asm.LEAVE:
		r.Set(arch.AMD64.SP, r.R[6])
		v, fa := pop()
		if fa != 0 {
			return 0, fa
		}
		r.Set(6, v)
	case x86asm.MOV:
		switch dst := args[0].(type) {
		case x86asm.Reg:
			var v uint64
			if m, ok := args[1].(x86asm.Mem); ok {
				x, ok := load(addr(m))
				if !ok {
					return 0, addr(m)
				}
				v = x
			} else {
				v = value(args[1])
			}
			if dst >= x86asm.EAX && dst <= x86asm.R15L {
				v = uint64(uint32(v)) // a 32-bit destination zero-extends
			}
			r.Set(reg(dst), v)
		case x86asm.Mem:
			if !store(addr(dst), value(args[1])) {
				return 0, addr(dst)
			}
		}
	case x86asm.LEA:
		r.Set(reg(args[0]), addr(args[1].(x86asm.Mem)))
	case x86asm.ADD:
		r.Set(reg(args[0]), value(args[0])+value(args[1]))
	case x86asm.SUB:
		x, y := value(args[0]), value(args[1])
		r.Set(reg(args[0]), x-y)
		t.zf, t.cf = x == y, x < y
	case x86asm.XOR:
		r.Set(reg(args[0]), value(args[0])^value(args[1]))
	case x86asm.SYSCALL:
		r.SetPC(next)
		return f.syscall(t), 0
	default:
		f.t.Fatalf("fake: no interpreter for %v at %#x", in.Inst, in.PC)
	}
	r.SetPC(next)
	return 0, 0
}

// syscall runs the system call in %rax (amd64 numbers) with t's pc already
// past the syscall instruction.
func (f *fakeProcs) syscall(t *fakeTask) int {
	r := &t.regs
	r.OrigAX = r.R[0]
	switch r.R[0] {
	case 58, 56: // vfork; clone(CLONE_VM|CLONE_VFORK, stack) (the flags are taken as those)
		f.nextPID++
		c := &fakeTask{pid: f.nextPID, img: t.img, regs: t.regs, vforkOf: t, noExitStop: t.noExitStop}
		c.regs.R[0] = 0
		if r.R[0] == 56 && r.R[4] != 0 {
			c.regs.Set(arch.AMD64.SP, r.R[4]) // a stack of its own (%rsi)
		}
		r.R[0] = uint64(c.pid)
		t.vforkChild = c
		f.tasks[c.pid] = c
		f.msg[t.pid] = uint64(c.pid)
		if f.childStopFirst {
			f.queue(c.pid, stopped(unix.SIGSTOP))
			f.queue(t.pid, eventStop(unix.PTRACE_EVENT_VFORK))
		} else {
			f.queue(t.pid, eventStop(unix.PTRACE_EVENT_VFORK))
			f.queue(c.pid, stopped(unix.SIGSTOP))
		}
		return unix.PTRACE_EVENT_VFORK
	case 57: // fork: a copy of the memory; the options are inherited
		f.nextPID++
		c := &fakeTask{pid: f.nextPID, img: t.img.copy(), regs: t.regs, noExitStop: t.noExitStop}
		c.regs.R[0] = 0
		r.R[0] = uint64(c.pid)
		f.tasks[c.pid] = c
		f.msg[t.pid] = uint64(c.pid)
		f.queue(t.pid, eventStop(unix.PTRACE_EVENT_FORK))
		f.queue(c.pid, stopped(unix.SIGSTOP))
		return unix.PTRACE_EVENT_FORK
	case 60, 231: // exit, exit_group
		t.exitStatus = int(r.R[5] & 0xff)
		if t.noExitStop {
			f.die(t, unix.WaitStatus(t.exitStatus<<8))
			return unix.PTRACE_EVENT_EXIT
		}
		t.exiting = true
		f.msg[t.pid] = uint64(t.exitStatus << 8)
		f.queue(t.pid, eventStop(unix.PTRACE_EVENT_EXIT))
		return unix.PTRACE_EVENT_EXIT
	case 200: // tkill(tid, sig): to itself
		t.sigpending = unix.Signal(r.R[4])
		r.R[0] = 0
		return 0
	case 61: // wait4(pid, &status, ...): the kernel stores a 4-byte status (0: exited 0)
		if a := r.R[4]; a != 0 && !t.img.write(a, []byte{0, 0, 0, 0}) {
			r.R[0] = ^uint64(unix.EFAULT) + 1 // -EFAULT
			return 0
		}
		r.R[0] = 0
		return 0
	case 59: // execve: a new image
		img, entry, sp := f.execImage()
		t.img = img
		t.dr = [8]uint64{} // as the kernel's flush_thread: a tracer's watchpoints do not survive an exec
		r.SetPC(entry)
		r.Set(arch.AMD64.SP, sp)
		f.msg[t.pid] = uint64(t.pid)
		f.queue(t.pid, eventStop(unix.PTRACE_EVENT_EXEC))
		f.release(t)
		return unix.PTRACE_EVENT_EXEC
	}
	r.R[0] = 0
	return 0
}

func (f *fakeProcs) EventMsg(pid int) (uint64, error) {
	if f.onEventMsg != nil {
		f.onEventMsg(pid)
	}
	if _, err := f.stoppedTask(pid); err != nil {
		return 0, err
	}
	return f.msg[pid], nil
}

func (f *fakeProcs) SigInfo(pid int) (ptrace.SigInfo, error) {
	if _, err := f.stoppedTask(pid); err != nil {
		return ptrace.SigInfo{}, err
	}
	if i, ok := f.info[pid]; ok {
		f.infoRead = append(f.infoRead, unix.Signal(i.Signo))
		return i, nil
	}
	return ptrace.SigInfo{}, unix.EINVAL
}

func (f *fakeProcs) Regs(pid int, r *arch.Regs) error {
	f.regsReads++
	t, err := f.stoppedTask(pid)
	if err != nil {
		return err
	}
	*r = t.regs
	return nil
}

func (f *fakeProcs) PC(pid int) (uint64, error) {
	f.pcReads++
	t, err := f.stoppedTask(pid)
	if err != nil {
		return 0, err
	}
	return t.regs.PC(), nil
}

func (f *fakeProcs) SetRegs(pid int, r *arch.Regs) error {
	t, err := f.stoppedTask(pid)
	if err != nil {
		return err
	}
	t.regs = *r
	return nil
}

func (f *fakeProcs) ReadMem(pid int, addr uint64, buf []byte) error {
	t, err := f.task(pid)
	if err != nil {
		return err
	}
	if !t.img.read(addr, buf) {
		return fmt.Errorf("fake read %d bytes at %#x: %w", len(buf), addr, unix.EFAULT)
	}
	return nil
}

func (f *fakeProcs) ReadRanges(pid int, addrs []uint64, bufs [][]byte) (failed []int) {
	for i := range bufs {
		if f.ReadMem(pid, addrs[i], bufs[i]) != nil {
			failed = append(failed, i)
		}
	}
	return failed
}

func (f *fakeProcs) ThreadPointer(pid int, r *arch.Regs) (uint64, error) { return r.TP, nil }

func (f *fakeProcs) WriteMem(pid int, addr uint64, data []byte) error {
	t, err := f.stoppedTask(pid)
	if err != nil {
		return err
	}
	if !t.img.write(addr, data) {
		return fmt.Errorf("fake write at %#x: %w", addr, unix.EFAULT)
	}
	f.trail = append(f.trail, fmt.Sprintf("write %d", pid))
	return nil
}

// DebugReg and SetDebugReg are the fake's debug registers: unless
// fakeNoDR, DR7's enabled watchpoints fire as on hardware (watchHit).
func (f *fakeProcs) DebugReg(pid, n int) (uint64, error) {
	t, err := f.stoppedTask(pid)
	if err != nil || f.noDR {
		return 0, unix.EIO
	}
	return t.dr[n], nil
}

// ExitStops turns a task's exit stops on or off; its vfork children
// inherit the setting, as the kernel's do.
func (f *fakeProcs) ExitStops(pid int, on bool) error {
	f.exitStopCalls = append(f.exitStopCalls, fmt.Sprintf("%d %s", pid, map[bool]string{true: "on", false: "off"}[on]))
	t, err := f.stoppedTask(pid)
	if err != nil {
		return err
	}
	t.noExitStop = !on
	return nil
}

func (f *fakeProcs) SetDebugReg(pid, n int, v uint64) error {
	t, err := f.stoppedTask(pid)
	if err != nil {
		return err
	}
	if f.noDR {
		return unix.EIO
	}
	f.drWrites++
	t.dr[n] = v
	return nil
}

// watchHit reports the debug-register watchpoints an instruction's memory
// accesses (effects computed before it ran) trigger, as DR6 bits: a write
// watchpoint (RW=01) on writes, a read/write one (RW=11) on both.
func watchHit(t *fakeTask, acc []disasm.Access) uint64 {
	dr7 := t.dr[7]
	var hit uint64
	for i := 0; i < 4; i++ {
		if dr7&(1<<(2*i)) == 0 {
			continue
		}
		rw := dr7 >> (16 + 4*i) & 3
		size := map[uint64]uint64{0: 1, 1: 2, 3: 4, 2: 8}[dr7>>(18+4*i)&3]
		for _, a := range acc {
			if a.Seg || !a.Write && rw != 3 {
				continue
			}
			if a.Addr < t.dr[i]+size && t.dr[i] < a.Addr+uint64(a.Size) {
				hit |= 1 << i
			}
		}
	}
	return hit
}

func (f *fakeProcs) Kill(pid int, sig unix.Signal) error {
	if f.tasks[pid] == nil {
		f.foreignKills = append(f.foreignKills, pid)
	}
	t, err := f.task(pid)
	if err != nil {
		return err
	}
	if f.killToExit && sig == unix.SIGKILL && t.atStop && !t.exiting {
		// Out of its stop into its exit stop, which survives SIGKILL; a
		// stop of it not yet reported is never reported.
		kept := f.stops[:0]
		for _, st := range f.stops {
			if st.PID != pid {
				kept = append(kept, st)
			}
		}
		f.stops = kept
		t.exiting, t.killed = true, true
		f.msg[pid] = uint64(unix.SIGKILL)
		f.info[pid] = ptrace.SigInfo{Signo: int32(unix.SIGTRAP), Code: int32(unix.SIGTRAP) | unix.PTRACE_EVENT_EXIT<<8}
		f.queue(pid, eventStop(unix.PTRACE_EVENT_EXIT))
		t.pending = nil
		if c := t.vforkChild; c != nil {
			c.vforkOf, t.vforkChild = nil, nil
		}
		return nil
	}
	f.die(t, unix.WaitStatus(sig))
	return nil
}

// Tgkill makes the task report sig at its next resume (the fake's tasks
// only run between a request and its stop).
func (f *fakeProcs) Tgkill(tgid, tid int, sig unix.Signal) error {
	t, err := f.task(tid)
	if err != nil {
		return err
	}
	t.sigpending = sig
	return nil
}

// StopPending: a SIGSTOP sent with Tgkill and not yet reported.
func (f *fakeProcs) StopPending(pid int) bool {
	t := f.tasks[pid]
	return t != nil && !t.dead && t.sigpending == unix.SIGSTOP
}

// Activity: a fake task never blocks in a kernel (its stops are
// scripted), unless the test says what it does (f.activity).
func (f *fakeProcs) Activity(pid int) (activity, bool) {
	f.activityReads++
	if f.activity != nil {
		a, ok := f.activity[pid]
		return a, ok
	}
	return activity{state: 'R', syscall: -1}, f.tasks[pid] != nil
}

// FdWriters: a fake descriptor is what the test says (f.fds), else not
// known.
func (f *fakeProcs) FdWriters(pid, fd int) (fdKind, []int) {
	if w, ok := f.fds[[2]int{pid, fd}]; ok {
		return w.kind, w.writers
	}
	return fdUnknown, nil
}

// EpollFds: what the test says (f.fds' epoll), else none.
func (f *fakeProcs) EpollFds(pid, fd int) []int { return f.fds[[2]int{pid, fd}].epoll }

// Detach lets a task go: the fake forgets it (it runs on untraced).
func (f *fakeProcs) Detach(pid, sig int) error {
	t, err := f.stoppedTask(pid)
	if err != nil {
		return err
	}
	f.drOff(pid, "detach")
	if t.sigpending == unix.SIGSTOP {
		// The real kernel would deliver it once the task is untraced: a
		// group-stop nobody ends (the task and its process left stopped).
		f.t.Errorf("fake: task %d detached with a SIGSTOP pending: it would stop for good", pid)
	}
	t.dead, t.detached = true, true
	f.release(t)
	return nil
}

func (f *fakeProcs) Space(pid int) (space, error) {
	t, err := f.task(pid)
	if err != nil {
		return nil, err
	}
	return fakeSpace{t.img}, nil
}

func (f *fakeProcs) SpaceMaps(_ *mapsHandle, pid int) (space, error) { return f.Space(pid) }

func (f *fakeProcs) Arch(pid int) (*arch.Arch, error) { return arch.AMD64, nil }

func (f *fakeProcs) ExePath(pid int) string {
	if t := f.tasks[pid]; t != nil {
		return t.img.path
	}
	return ""
}

func (f *fakeProcs) LookUpExe(int) {}

func (f *fakeProcs) SameThreadGroup(tgid, pid int) bool { return false }

func (f *fakeProcs) LeakSanitizer(int) string { return "" }

// asm assembles a test program: functions of raw amd64 bytes, calls and
// jumps by label (rel32, fixed up by finish).
type asm struct {
	base   uint64
	buf    []byte
	labels map[string]uint64
	fixups []struct {
		at    int
		label string
	}
	funcs []fakeSym
}

func newAsm(base uint64) *asm { return &asm{base: base, labels: map[string]uint64{}} }

func (a *asm) pc() uint64 { return a.base + uint64(len(a.buf)) }

// fn starts a function (a symbol) at the current position.
func (a *asm) fn(name string) *asm {
	if n := len(a.funcs); n > 0 {
		a.funcs[n-1].end = a.pc()
	}
	a.label(name)
	a.funcs = append(a.funcs, fakeSym{name: name, start: a.pc()})
	return a
}

func (a *asm) label(name string) *asm {
	a.labels[name] = a.pc()
	return a
}

func (a *asm) raw(b ...byte) *asm {
	a.buf = append(a.buf, b...)
	return a
}

func (a *asm) rel32(op byte, label string) *asm {
	a.buf = append(a.buf, op)
	a.fixups = append(a.fixups, struct {
		at    int
		label string
	}{len(a.buf), label})
	a.buf = append(a.buf, 0, 0, 0, 0)
	return a
}

func (a *asm) call(label string) *asm { return a.rel32(0xe8, label) }

// rel32n appends a rel32 to label after opcode bytes already appended.
func (a *asm) rel32n(label string) *asm {
	a.fixups = append(a.fixups, struct {
		at    int
		label string
	}{len(a.buf), label})
	a.buf = append(a.buf, 0, 0, 0, 0)
	return a
}

// jnzParent branches to label when %eax is not 0: after vfork, the parent.
func (a *asm) jnzParent(label string) *asm {
	a.raw(0x85, 0xc0) // test %eax,%eax
	a.buf = append(a.buf, 0x0f)
	return a.rel32(0x85, label) // jne rel32
}

// Instructions the test programs use.
func (a *asm) pushRBP() *asm      { return a.raw(0x55) }
func (a *asm) movRSPtoRBP() *asm  { return a.raw(0x48, 0x89, 0xe5) }
func (a *asm) leave() *asm        { return a.raw(0xc9) }
func (a *asm) ret() *asm          { return a.raw(0xc3) }
func (a *asm) popRDI() *asm       { return a.raw(0x5f) }
func (a *asm) pushRDI() *asm      { return a.raw(0x57) }
func (a *asm) syscall() *asm      { return a.raw(0x0f, 0x05) }
func (a *asm) movEAX(v byte) *asm { return a.raw(0xb8, v, 0, 0, 0) }
func (a *asm) movEDI(v byte) *asm { return a.raw(0xbf, v, 0, 0, 0) }

// movRSP sets %rsp to an immediate (sign-extended 32-bit).
func (a *asm) movRSP(v uint32) *asm {
	return a.raw(0x48, 0xc7, 0xc4, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}

// glibcVfork is glibc's x86-64 vfork wrapper: the return address is kept
// in %rdi across the syscall, so the child's and the parent's returns from
// it do not depend on the shared stack.
func (a *asm) glibcVfork() *asm {
	return a.fn("vfork").popRDI().movEAX(58).syscall().pushRDI().ret()
}

// glibcVfork236 is glibc 2.36's x86-64 vfork wrapper, error path and all:
// `pop %rdi; mov $58,%eax; syscall; push %rdi; cmp $-4095,%rax; jae 1f;
// ret; 1: mov errno@gottpoff(%rip),%rcx; neg %eax; mov %eax,%fs:(%rcx);
// or $-1,%rax; ret` (the fake's syscalls do not fail: the error path is
// decoded, never run). after are bytes put between the push and the cmp.
func (a *asm) glibcVfork236(after ...byte) *asm {
	a.fn("vfork").popRDI().movEAX(58).syscall().pushRDI().raw(after...)
	a.raw(0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff)  // cmp $0xfffffffffffff001,%rax
	a.raw(0x73, 0x01).ret()                    // jae 1f; ret
	a.raw(0x48, 0x8b, 0x0d, 0, 0, 0, 0)        // 1: mov 0x0(%rip),%rcx
	a.raw(0xf7, 0xd8)                          // neg %eax
	a.raw(0x64, 0x89, 0x01)                    // mov %eax,%fs:(%rcx)
	return a.raw(0x48, 0x83, 0xc8, 0xff).ret() // or $-1,%rax; ret
}

// exitWith is _exit(code) inline.
func (a *asm) exitWith(code byte) *asm { return a.movEAX(60).movEDI(code).syscall() }

// image finishes the program: code at base, a 64 KiB stack below
// fakeStackTop.
func (a *asm) image(t *testing.T) *fakeImage {
	t.Helper()
	if n := len(a.funcs); n > 0 {
		a.funcs[n-1].end = a.pc()
	}
	for _, fx := range a.fixups {
		target, ok := a.labels[fx.label]
		if !ok {
			t.Fatalf("asm: no label %q", fx.label)
		}
		rel := int32(int64(target) - int64(a.base) - int64(fx.at) - 4)
		binary.LittleEndian.PutUint32(a.buf[fx.at:], uint32(rel))
	}
	return &fakeImage{
		path: "/fake/prog",
		regions: []*fakeRegion{
			// Padded to whole pages, as code is mapped: insnAt reads it a
			// page at a time (addrspace.go, codeBytes).
			{start: a.base, data: append(append([]byte(nil), a.buf...), make([]byte, -len(a.buf)&(codePage-1))...), perms: "r-xp", path: "/fake/prog"},
			{start: fakeStackTop - 0x10000, data: make([]byte, 0x10000), perms: "rw-p", path: "[stack]"},
		},
		syms: append([]fakeSym(nil), a.funcs...),
	}
}

// trueImage is what an exec'd child runs: _exit(0).
func trueImage() (*fakeImage, uint64, uint64) {
	code := []byte{0xb8, 60, 0, 0, 0, 0xbf, 0, 0, 0, 0, 0x0f, 0x05}
	return &fakeImage{
		path: "/fake/true",
		regions: []*fakeRegion{
			{start: 0x900000, data: code, perms: "r-xp", path: "/fake/true"},
			{start: 0xa00000 - 0x1000, data: make([]byte, 0x1000), perms: "rw-p", path: "[stack]"},
		},
		syms: []fakeSym{{name: "_start", start: 0x900000, end: 0x900000 + uint64(len(code))}},
	}, 0x900000, 0xa00000 - 64
}

// vforkingImage makes the image of an exec'd program that vforks (a raw
// vfork syscall at its entry); its child _exits, then it _exits; a second
// exec of it runs /fake/true.
func vforkingImage(t *testing.T) func() (*fakeImage, uint64, uint64) {
	return execImages(t, "/fake/vforking", func(a *asm) {
		a.movEAX(58).syscall().jnzParent("parent").exitWith(0)
	})
}

// spawningImage is vforkingImage with clone(CLONE_VM|CLONE_VFORK|SIGCHLD)
// and a stack of the child's own, as glibc's posix_spawn makes it: its
// child _exits (status 3) without sharing the parent's stack.
func spawningImage(t *testing.T) func() (*fakeImage, uint64, uint64) {
	return execImages(t, "/fake/spawning", func(a *asm) {
		a.raw(0xbf, 0x11, 0x41, 0, 0)                                                      // mov $0x4111, %edi: CLONE_VM|CLONE_VFORK|SIGCHLD
		a.raw(0x48, 0xbe).raw(binary.LittleEndian.AppendUint64(nil, fakeStackTop-2048)...) // movabs $stack, %rsi
		a.movEAX(56).syscall().jnzParent("parent").exitWith(3)
	})
}

// execImages is what the fake's execs run: first the program named path
// whose _start is what start writes (its label "parent" _exits with 0),
// then, at every later exec, /fake/true.
func execImages(t *testing.T, path string, start func(a *asm)) func() (*fakeImage, uint64, uint64) {
	n := 0
	return func() (*fakeImage, uint64, uint64) {
		if n++; n > 1 {
			return trueImage()
		}
		a := newAsm(0x800000)
		start(a.fn("_start"))
		a.label("parent").exitWith(0)
		im := a.image(t)
		im.path = path
		return im, 0x800000, fakeStackTop - 64
	}
}

// recorder keeps a run's events.
type recorder struct{ evs []event.Event }

func (r *recorder) Emit(ev event.Event) error {
	r.evs = append(r.evs, ev)
	return nil
}

// all returns the events of type T.
func all[T event.Event](r *recorder) []T {
	var out []T
	for _, ev := range r.evs {
		if e, ok := ev.(T); ok {
			out = append(out, e)
		}
	}
	return out
}

// runFake traces a fake program from its entry point to the end.
func runFake(t *testing.T, img *fakeImage, entry uint64, mode Mode) (*recorder, Result, *fakeProcs) {
	t.Helper()
	return runFakeWith(t, img, entry, Config{Mode: mode})
}

// runFakeWith traces a fake program with a configuration (budgets).
func runFakeWith(t *testing.T, img *fakeImage, entry uint64, cfg Config) (*recorder, Result, *fakeProcs) {
	t.Helper()
	f := newFakeProcs(t)
	f.execImage = trueImage
	pid := f.spawn(img, entry)
	rec := &recorder{}
	cfg.Path, cfg.Argv, cfg.Watchpoints, cfg.CPU, cfg.Sink = img.path, []string{img.path}, "off", -1, rec
	s := newSession(cfg, f)
	res, err := s.follow(context.Background(), pid)
	if err != nil {
		t.Fatalf("follow: %v", err)
	}
	for pid, tk := range f.tasks {
		if !tk.dead {
			t.Errorf("task %d left alive", pid)
		}
	}
	for pid, tk := range s.byPID {
		t.Errorf("task %d still registered (state %s)", pid, tk.state)
	}
	if len(s.stories) != 0 {
		t.Errorf("%d stories left on the stack", len(s.stories))
	}
	return rec, res, f
}

// storyLines summarises a run's events in a stable, address-free form.
func storyLines(r *recorder) []string {
	var out []string
	name := func(y *event.Sym) string { return y.String() }
	for _, ev := range r.evs {
		switch e := ev.(type) {
		case *event.Vfork:
			out = append(out, fmt.Sprintf("vfork #%d caller %s frames %d", e.Vfork, name(e.Caller), len(e.Frames)))
		case *event.ChildReturnPastFrame:
			line := fmt.Sprintf("#%d child left frame %d %s to %s by %s %s", e.Vfork, e.Frame, name(e.FrameFn), name(e.ToSym), e.How, name(e.By.Sym))
			if e.During != nil {
				line += " during " + name(e.During.Sym)
			}
			out = append(out, line)
		case *event.SlotWrite:
			by := "?"
			if e.By != nil {
				by = name(e.By.Sym)
			}
			out = append(out, fmt.Sprintf("#%d slot %s of %s: %s -> %s by %s (%s)", e.Vfork, e.Kind, name(e.FrameFn), name(e.OldSym), name(e.NewSym), by, e.FoundBy))
		case *event.ChildEnd:
			out = append(out, fmt.Sprintf("#%d child %s", e.Vfork, e.How))
		case *event.ParentConsume:
			out = append(out, fmt.Sprintf("#%d parent reads %s by %s", e.Vfork, e.Kind, name(e.By.Sym)))
		case *event.ParentLanding:
			out = append(out, fmt.Sprintf("#%d parent %s at %s", e.Vfork, e.How, name(e.Sym)))
		case *event.VforkVerdict:
			out = append(out, fmt.Sprintf("#%d %s %v%s", e.Vfork, e.Verdict, e.Reasons, cutNote(e.Incomplete)))
		case *event.Exit:
			out = append(out, fmt.Sprintf("exit main=%v %s code=%v", e.Main, e.Status, deref(e.Code)))
		case *event.Note:
			out = append(out, fmt.Sprintf("note #%d %s", e.Vfork, e.Code))
		case *event.Budget:
			out = append(out, fmt.Sprintf("budget %s %s", e.Budget, e.Limit))
		case *event.Verdict:
			out = append(out, fmt.Sprintf("verdict %s vforks=%d", e.Verdict, e.Vforks))
		}
	}
	return out
}

func cutNote(s string) string {
	if s == "" {
		return ""
	}
	return " cut:" + s
}

func deref(p *int) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}
