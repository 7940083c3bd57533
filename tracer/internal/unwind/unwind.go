// Package unwind walks a stopped task's stack with DWARF call-frame
// information (delve's pkg/dwarf/frame and pkg/dwarf/op). Where no CFI
// covers a pc it reads the function's machine code from its start (stepCode),
// and failing that it follows the frame-pointer chain.
//
// What vtrace needs from a frame is not just "who called whom" but where the
// frame's state lives in memory: the address of the return-address slot and
// of every callee-saved register slot. Those are the words a vfork child can
// overwrite in the memory it shares with its parent.
package unwind

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"github.com/go-delve/delve/pkg/dwarf/op"
	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// Memory reads the tracee's memory.
type Memory interface {
	ReadWord(addr uint64, size int) (uint64, error)
}

// CFI finds the call-frame information for a runtime pc.
type CFI interface {
	FDEForPC(pc uint64) (*frame.FrameDescriptionEntry, error)
}

// SavedSlot is a callee-saved register spilled to the stack.
type SavedSlot struct {
	Reg   int // DWARF number
	Addr  uint64
	Value uint64
}

// Frame is one stack frame. Frame 0 is the innermost.
type Frame struct {
	PC  uint64 // where execution is in this frame
	CFA uint64 // canonical frame address (the caller's SP before the call)
	// RetSlot is the address of the stack word holding the return address;
	// 0 when the return address is in a register (RetReg) instead.
	RetSlot uint64
	RetReg  int    // DWARF register holding the return address, or -1
	Ret     uint64 // the return address: the caller's PC
	Saved   []SavedSlot
	// RetStored is the address of the function's own store that
	// overwrote the return slot before pc (stepCode: glibc's clone given
	// a child stack just above its return slot, rr#1595): Ret is that
	// store's word, not a return address, and the callers are unknown.
	RetStored uint64
	Method    string // "cfi", "code" (see stepCode), "fp" (or "none", set by the engine)
	// CFIErr: the call-frame information that covers this frame's pc
	// could not be read (a malformed FDE); Method says what was used
	// instead. Empty when the CFI was used, or there was none.
	CFIErr string
}

// ErrNoFrames is returned when not even the first frame could be unwound.
var ErrNoFrames = errors.New("no unwindable frame")

// Unwind walks up to max frames from regs.
func Unwind(regs *arch.Regs, mem Memory, cfi CFI, max int) ([]Frame, error) {
	return unwindFrom(regs.Arch, newRegState(regs), mem, cfi, max)
}

// UnwindDeps is Unwind, and says what the frames depend on (Deps): which
// of regs' registers and which of the words it read. Everything else it
// read only ends up in the frames' saved-register values (SavedSlot.Value):
// with the same values of those registers and words, the same failed
// reads, and the same CFI and code in cfi, an unwind gives the same frames
// but for those values, each the word now at its slot.
func UnwindDeps(regs *arch.Regs, mem Memory, cfi CFI, max int) ([]Frame, *Deps, error) {
	a := regs.Arch
	d := &Deps{}
	cur := newRegState(regs)
	cur.deps = d
	frames, err := unwindFrom(a, cur, &recMem{m: mem, d: d}, cfi, max)
	return frames, d, err
}

// Deps is what an unwind depended on: Regs has bit n for register n of the
// first frame; Reads are the words it read, in order, each marked Needed
// when its value decided something other than a saved-register value.
type Deps struct {
	Regs  uint32
	Reads []Read
}

// Read is one word an unwind read.
type Read struct {
	Addr   uint64
	Size   int
	Val    uint64
	Failed bool // the read failed (then Val is 0)
	Needed bool // the frames depend on the value
}

// recMem records the reads of an unwind (UnwindDeps). A read through
// ReadWord is needed; saved-register slots are read with readSaved.
type recMem struct {
	m Memory
	d *Deps
}

func (r *recMem) ReadWord(addr uint64, size int) (uint64, error) {
	v, _, err := r.read(addr, size, true)
	return v, err
}

func (r *recMem) read(addr uint64, size int, needed bool) (uint64, int, error) {
	v, err := r.m.ReadWord(addr, size)
	if err != nil {
		v = 0
	}
	r.d.Reads = append(r.d.Reads, Read{Addr: addr, Size: size, Val: v, Failed: err != nil, Needed: needed})
	return v, len(r.d.Reads) - 1, err
}

// readSaved reads a callee-saved register's slot: the value is the
// frame's SavedSlot.Value and the register's in the caller, where it is
// needed only if a later step reads it through get. It returns the source
// to give the register (srcOf).
func readSaved(mem Memory, addr uint64, size int) (uint64, int32, error) {
	if r, ok := mem.(*recMem); ok {
		v, k, err := r.read(addr, size, false)
		return v, int32(k) + 1, err
	}
	v, err := mem.ReadWord(addr, size)
	return v, 0, err
}

func unwindFrom(a *arch.Arch, cur regState, mem Memory, cfi CFI, max int) ([]Frame, error) {
	var frames []Frame
	var lastErr error
	for i := 0; i < max; i++ {
		pc, _ := cur.get(a.PC)
		if pc == 0 {
			break
		}
		look := pc
		if i > 0 {
			look = pc - 1 // the call, not the instruction after it
		}
		f, next, err := stepCFI(a, cur, look, mem, cfi)
		cfiErr := ""
		if unreadable(err) {
			cfiErr = err.Error()
		}
		if c, ok := cfi.(Code); ok && err != nil && !haveFDE(cfi, look) {
			f, next, err = stepCode(a, cur, pc, look, i == 0, mem, c)
		}
		if m, ok := cfi.(Modules); ok && err != nil && !m.InModule(look) {
			// Code no module covers (a JIT's): nothing says it keeps a
			// frame pointer, and a leaf that does not would be unwound
			// into its caller's caller. The frames are unknown.
			err = fmt.Errorf("pc %#x is in no module (generated code): no CFI, no function bounds, no trustworthy frame pointer", look)
		} else if err != nil {
			f, next, err = stepFP(a, cur, mem)
		}
		if err != nil {
			lastErr = err
			break
		}
		f.PC, f.CFIErr = pc, cfiErr
		frames = append(frames, f)
		if f.Ret == 0 || f.RetStored != 0 {
			break
		}
		// The stack grows down: a caller's CFA must be above its callee's.
		if len(frames) > 1 && f.CFA <= frames[len(frames)-2].CFA {
			break
		}
		cur = next
	}
	if len(frames) == 0 {
		if lastErr == nil {
			lastErr = ErrNoFrames
		}
		return nil, lastErr
	}
	return frames, nil
}

// Modules is implemented by a CFI source that knows which addresses
// belong to a loaded module (an ELF file or the vDSO). Unwind does not
// trust a frame pointer at a pc outside every module.
type Modules interface {
	InModule(pc uint64) bool
}

// regState is the set of register values known in one frame.
type regState struct {
	v     [17]uint64
	known [17]bool
	// src is where each value came from, for UnwindDeps: -(n+1) register
	// n of the first frame, k+1 the k-th read (Deps.Reads), 0 anything
	// else (a value computed from others, each marked as it was read).
	src [17]int32
	// deps, if set, gets every source a value is read from (get), in any
	// frame (the states of the frames share it). Values move between
	// registers and frames only through get, set, setFrom and forget.
	deps *Deps
}

func newRegState(r *arch.Regs) regState {
	var s regState
	for n := 0; n < r.Arch.NumRegs; n++ {
		s.v[n], s.known[n], s.src[n] = r.R[n], true, -int32(n)-1
	}
	return s
}

// get is register n's value, which the unwind then depends on.
func (s *regState) get(n int) (uint64, bool) {
	if n < 0 || n >= len(s.v) {
		return 0, false
	}
	s.deps.need(s.src[n])
	return s.v[n], s.known[n]
}

// need records that the unwind depends on the value of source src
// (regState.src); d may be nil (no one asked).
func (d *Deps) need(src int32) {
	switch {
	case d == nil:
	case src < 0:
		d.Regs |= 1 << (-src - 1)
	case src > 0:
		d.Reads[src-1].Needed = true
	}
}

// peek is register n's value and its source, which the unwind does not
// depend on by reading it: it only moves it to another register (setFrom).
func (s *regState) peek(n int) (uint64, int32, bool) {
	if n < 0 || n >= len(s.v) {
		return 0, 0, false
	}
	return s.v[n], s.src[n], s.known[n]
}

// has reports whether register n's value is known (whatever it is).
func (s *regState) has(n int) bool {
	return n >= 0 && n < len(s.v) && s.known[n]
}

// set gives register n a value computed from values read through get.
func (s *regState) set(n int, v uint64) { s.setFrom(n, v, 0) }

// setFrom gives register n a value and its source (peek, readSaved).
func (s *regState) setFrom(n int, v uint64, src int32) {
	if n >= 0 && n < len(s.v) {
		s.v[n], s.known[n], s.src[n] = v, true, src
	}
}

func (s *regState) forget(n int) {
	if n >= 0 && n < len(s.v) {
		s.known[n], s.src[n] = false, 0
	}
}

func stepCFI(a *arch.Arch, cur regState, pc uint64, mem Memory, cfi CFI) (Frame, regState, error) {
	f := Frame{RetReg: -1, Method: "cfi"}
	if cfi == nil {
		return f, cur, errors.New("no CFI")
	}
	fde, err := cfi.FDEForPC(pc)
	if err != nil {
		return f, cur, err
	}
	fc, err := establishFrame(fde, pc)
	if err != nil {
		return f, cur, err
	}
	var cfa uint64
	switch fc.CFA.Rule {
	case frame.RuleCFA:
		v, ok := cur.get(int(fc.CFA.Reg))
		if !ok {
			return f, cur, fmt.Errorf("CFA register %d unknown", fc.CFA.Reg)
		}
		cfa = v + uint64(fc.CFA.Offset)
	case frame.RuleExpression:
		v, err := evalExpr(a, cur, 0, fc.CFA.Expression, mem)
		if err != nil {
			return f, cur, err
		}
		cfa = v
	default:
		return f, cur, fmt.Errorf("unsupported CFA rule %d", fc.CFA.Rule)
	}
	cfa &= mask(a)
	f.CFA = cfa

	next := cur
	// Only callee-saved registers (and SP) survive a call; the rest are
	// unknown in the caller unless a rule says otherwise, or the function
	// provably never writes them (keepUnwritten).
	for n := 0; n < a.NumRegs; n++ {
		if !isCalleeSaved(a, n) {
			next.forget(n)
		}
	}
	next.set(a.SP, cfa)

	retCol := int(fc.RetAddrReg)
	for reg, rule := range fc.Regs {
		n := int(reg)
		if rule.Rule == frame.RuleUndefined && n != retCol && isCalleeSaved(a, n) {
			rule = restoredRule(fde, reg)
		}
		var slot uint64
		var val uint64
		var src int32 // val's source (regState.src)
		haveVal := false
		switch rule.Rule {
		case frame.RuleOffset:
			slot = (cfa + uint64(rule.Offset)) & mask(a)
		case frame.RuleValOffset:
			val, haveVal = (cfa+uint64(rule.Offset))&mask(a), true
		case frame.RuleRegister:
			v, from, ok := cur.peek(int(rule.Reg))
			if !ok {
				continue
			}
			val, src, haveVal = v, from, true
			if n == retCol {
				f.RetReg = int(rule.Reg)
			}
		case frame.RuleExpression:
			v, err := evalExpr(a, cur, cfa, rule.Expression, mem)
			if err != nil {
				continue
			}
			slot = v
		case frame.RuleValExpression:
			v, err := evalExpr(a, cur, cfa, rule.Expression, mem)
			if err != nil {
				continue
			}
			val, haveVal = v, true
		case frame.RuleSameVal:
			if v, from, ok := cur.peek(n); ok {
				val, src, haveVal = v, from, true
			}
		case frame.RuleUndefined:
			if n == retCol {
				// The outermost frame (_start, a new thread): no return
				// address. Its other rules still apply (fc.Regs is a map:
				// stopping here would drop a random subset of its slots).
				f.Ret = 0
				continue
			}
			next.forget(n)
			continue
		default:
			continue
		}
		if slot != 0 {
			var v uint64
			var err error
			if n == retCol {
				v, err = mem.ReadWord(slot, a.PtrSize)
			} else {
				v, src, err = readSaved(mem, slot, a.PtrSize)
			}
			if err != nil {
				if n == retCol {
					return f, cur, fmt.Errorf("read return slot %#x: %w", slot, err)
				}
				continue
			}
			val, haveVal = v, true
			if n == retCol {
				f.RetSlot = slot
			} else if n < a.NumRegs {
				f.Saved = append(f.Saved, SavedSlot{Reg: n, Addr: slot, Value: v})
			}
		}
		if !haveVal {
			continue
		}
		if n == retCol {
			// The return address is the caller's pc: the unwind goes on
			// from it.
			cur.deps.need(src)
			f.Ret = val
		} else {
			next.setFrom(n, val, src)
		}
	}
	if _, ok := fc.Regs[fc.RetAddrReg]; !ok {
		// No rule for the return address column: the RA is the word at CFA-ptr
		// on x86 (the CIE's default), as for a function's first instruction.
		slot := cfa - uint64(a.PtrSize)
		v, err := mem.ReadWord(slot, a.PtrSize)
		if err != nil {
			return f, cur, err
		}
		f.RetSlot, f.Ret = slot, v
	}
	sortSaved(f.Saved)
	if c, ok := cfi.(Code); ok {
		keepUnwritten(a, cur, &next, c, pc, f.Ret, func(n int) bool { _, ok := fc.Regs[uint64(n)]; return ok })
	}
	next.set(a.PC, f.Ret)
	return f, next, nil
}

// haveFDE reports whether some CFI covers pc (an FDE that stepCFI could not
// use is not replaced by a reading of the code).
func haveFDE(cfi CFI, pc uint64) bool {
	_, err := cfi.FDEForPC(pc)
	return err == nil
}

// stepFP unwinds one frame through the frame-pointer chain: the saved BP is
// at BP, the return address right above it.
func stepFP(a *arch.Arch, cur regState, mem Memory) (Frame, regState, error) {
	f := Frame{RetReg: -1, Method: "fp"}
	bp, ok := cur.get(a.BP)
	sp, _ := cur.get(a.SP)
	if !ok || bp == 0 || bp < sp || bp%uint64(a.PtrSize) != 0 || bp-sp > 64<<20 {
		return f, cur, fmt.Errorf("no usable frame pointer (bp=%#x sp=%#x)", bp, sp)
	}
	savedBP, src, err := readSaved(mem, bp, a.PtrSize)
	if err != nil {
		return f, cur, err
	}
	ret, err := mem.ReadWord(bp+uint64(a.PtrSize), a.PtrSize)
	if err != nil {
		return f, cur, err
	}
	if ret == 0 {
		// A chain through a frame pointer ends at _start's zeroed %rbp;
		// a return address of 0 means %rbp was not a frame pointer here.
		return f, cur, fmt.Errorf("frame pointer %#x leads to a return address of 0", bp)
	}
	f.CFA = bp + 2*uint64(a.PtrSize)
	f.RetSlot, f.Ret = bp+uint64(a.PtrSize), ret
	f.Saved = []SavedSlot{{Reg: a.BP, Addr: bp, Value: savedBP}}
	next := cur
	for n := 0; n < a.NumRegs; n++ {
		if !isCalleeSaved(a, n) {
			next.forget(n)
		}
	}
	next.set(a.SP, f.CFA)
	next.setFrom(a.BP, savedBP, src)
	next.set(a.PC, ret)
	return f, next, nil
}

// restoredRule is the rule of a register that delve reports as undefined
// other than for the return address. delve's DW_CFA_restore and
// DW_CFA_restore_extended turn a register's rule into RuleUndefined, because
// delve never records the CIE's initial rules; gcc emits DW_CFA_restore in
// every i386 epilogue (for %ebp and %ebx at the ret). The restored rule is the
// CIE's initial one; with none (the x86 CIEs give rules only for the return
// address) it is the psABI default for a register the callee must preserve:
// same value. An explicit DW_CFA_undefined for such a register is read the
// same way: the two are indistinguishable after delve. A caller-saved
// register's restored rule is no rule, which the psABI reads as clobbered:
// stepCFI forgets it either way (and keepUnwritten, seeing a rule, leaves
// it forgotten).
func restoredRule(fde *frame.FrameDescriptionEntry, reg uint64) frame.DWRule {
	if fde.CIE != nil {
		// An FDE with no instructions of its own: its context is the CIE's.
		if fc, err := establishFrame(&frame.FrameDescriptionEntry{CIE: fde.CIE}, 0); err == nil {
			if r, ok := fc.Regs[reg]; ok && r.Rule != frame.RuleUndefined {
				return r
			}
		}
	}
	return frame.DWRule{Rule: frame.RuleSameVal}
}

// evalExpr evaluates a DWARF expression of the CFI. For a register rule
// (DW_CFA_expression, DW_CFA_val_expression) cfa is the frame's CFA, which
// DWARF pushes on the stack before the expression runs; for the CFA rule
// itself it is 0 and the stack starts empty.
func evalExpr(a *arch.Arch, cur regState, cfa uint64, expr []byte, mem Memory) (uint64, error) {
	if cfa != 0 {
		// delve's evaluator starts with an empty stack: push the CFA with
		// DW_OP_call_frame_cfa.
		expr = append([]byte{opCallFrameCFA}, expr...)
	}
	regs := make([]*op.DwarfRegister, a.NumRegs)
	for n := 0; n < a.NumRegs; n++ {
		if v, ok := cur.get(n); ok {
			regs[n] = op.DwarfRegisterFromUint64(v)
		}
	}
	dr := op.NewDwarfRegisters(0, regs, binary.LittleEndian, uint64(a.PC), uint64(a.SP), uint64(a.BP), 0)
	dr.CFA = int64(cfa)
	read := func(buf []byte, addr uint64) (int, error) {
		for i := 0; i < len(buf); i += a.PtrSize {
			w, err := mem.ReadWord(addr+uint64(i), a.PtrSize)
			if err != nil {
				return i, err
			}
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], w)
			copy(buf[i:], b[:a.PtrSize])
		}
		return len(buf), nil
	}
	v, err := executeStackProgram(*dr, expr, a.PtrSize, read)
	return uint64(v) & mask(a), err
}

// ErrCFI wraps what delve's CFI interpreter said of a malformed program
// (it panics on some: a LEB128 past the end, an unknown opcode's operand).
type ErrCFI struct{ Err any }

func (e *ErrCFI) Error() string { return fmt.Sprintf("CFI unreadable: %v", e.Err) }

// unreadable reports whether err says that CFI exists but could not be
// read (rather than that there is none for the pc).
func unreadable(err error) bool {
	var e *ErrCFI
	var se interface{ CFIUnreadable() bool }
	return errors.As(err, &e) || errors.As(err, &se) && se.CFIUnreadable()
}

// frameRows keeps establishFrame's answers by FDE and pc: running an FDE's
// program up to a pc is pure, and a program that vforks in a loop unwinds
// the same frames at every vfork. The FDEs come from the modules' caches
// (symbols: one *FrameDescriptionEntry per entry and load bias), so the
// pointer names the entry. Bounded: emptied when full. The rows are shared:
// callers only read them.
var frameRows struct {
	sync.Mutex
	m map[frameKey]frameRow
}

type frameKey struct {
	fde *frame.FrameDescriptionEntry
	pc  uint64
}

type frameRow struct {
	fc  *frame.FrameContext
	err error
}

const maxFrameRows = 4096

// establishFrame is fde.EstablishFrame, its panics turned into an *ErrCFI,
// from frameRows when it was asked before.
func establishFrame(fde *frame.FrameDescriptionEntry, pc uint64) (*frame.FrameContext, error) {
	k := frameKey{fde, pc}
	frameRows.Lock()
	r, ok := frameRows.m[k]
	frameRows.Unlock()
	if ok {
		return r.fc, r.err
	}
	r.fc, r.err = establishFrameOnce(fde, pc)
	frameRows.Lock()
	if frameRows.m == nil || len(frameRows.m) >= maxFrameRows {
		frameRows.m = map[frameKey]frameRow{}
	}
	frameRows.m[k] = r
	frameRows.Unlock()
	return r.fc, r.err
}

func establishFrameOnce(fde *frame.FrameDescriptionEntry, pc uint64) (fc *frame.FrameContext, err error) {
	defer func() {
		if r := recover(); r != nil {
			fc, err = nil, &ErrCFI{r}
		}
	}()
	fc, err = fde.EstablishFrame(pc)
	if err != nil {
		err = &ErrCFI{err}
	}
	return fc, err
}

// executeStackProgram is op.ExecuteStackProgram, its panics turned into an
// *ErrCFI.
func executeStackProgram(dr op.DwarfRegisters, expr []byte, ptrSize int, read func([]byte, uint64) (int, error)) (v int64, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = 0, &ErrCFI{r}
		}
	}()
	v, _, err = op.ExecuteStackProgram(dr, expr, ptrSize, read)
	return v, err
}

const opCallFrameCFA = 0x9c // DW_OP_call_frame_cfa

func mask(a *arch.Arch) uint64 {
	if a.PtrSize == 4 {
		return 0xffffffff
	}
	return ^uint64(0)
}

func isCalleeSaved(a *arch.Arch, n int) bool {
	if n == a.SP {
		return true
	}
	for _, c := range a.CalleeSaved {
		if c == n {
			return true
		}
	}
	return false
}

func sortSaved(s []SavedSlot) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Addr < s[j-1].Addr; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
