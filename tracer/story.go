package tracer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/ptrace"
	"github.com/vtrace/vtrace/tracer/internal/unwind"
)

// story is everything vtrace learns about one vfork, phase by phase:
// capture (capture.go) records the parent's frames and stack; the child
// phase (child.go) follows the child to its exec or exit; release
// (release.go) takes back every breakpoint and diffs the stack; the parent
// phase (parent.go) follows the parent to where it lands; verdict.go judges.
type story struct {
	id            int
	parent, child *task
	mm            *addrSpace // the image parent and child share
	cut           string     // why the story was cut short (a budget, "error"), or ""
	steps         int64      // single-steps spent on it (MaxStorySteps)
	captured      bool       // its vfork event is out: the story will be judged

	snapshot
	mem *memWatch // the parent's memory outside the stack (memory.go)
	kid childFacts
	par parentFacts
}

// snapshot is what capture records of the parent at its vfork event stop.
type snapshot struct {
	arch     *arch.Arch
	word     int
	regs0    arch.Regs // the parent at its vfork event stop
	frames   []unwind.Frame
	frameFns []*event.Sym // each frame's function
	// The parent's live stack region [lo, hi): from its stack pointer at
	// the vfork to the outermost frame it unwound. orig is its content at
	// the vfork; shadow what vtrace last saw there (scratch: a read buffer).
	lo, hi uint64
	// ownHi: [lo, ownHi) is the child's own stack, placed inside the
	// parent's live region (clone with a stack there); its plain words
	// are the child's, the parent's slots there are watched (0: none).
	ownHi                 uint64
	orig, shadow, scratch []byte
	regionBuf             []byte // holds orig, shadow and scratch (regionBufs)
	// stopMem reads the parent's memory a page at a time while it stays in
	// its vfork event stop (begin, then capture: the unwind, the live
	// region's snapshot, the TLS words); nil after capture.
	stopMem *pageMemory
	slots   map[uint64]slotInfo
	call    cloneCall // the vfork, clone or clone3 call, decoded (capture.go)
	// copy: the child has a copy of the parent's memory (CLONE_VFORK
	// without CLONE_VM): the parent waits for it as for a vfork child,
	// but nothing it does reaches the parent.
	copy      bool
	shared    bool // the child runs on the parent's stack
	stepChild bool // the child is single-stepped where it shares frames
}

// slotInfo describes a return-address or saved-register slot of a live
// parent frame.
type slotInfo struct {
	kind  event.SlotKind
	reg   string
	frame int
}

// childFacts is what the child did, as the story reports it.
type childFacts struct {
	returns     []*event.ChildReturnPastFrame
	left        int // frames the child has left (checkLeftFrames), innermost first
	writes      []*event.SlotWrite
	stackWrites int
	// Stack writes are reported once per word, when the child ends
	// (flushWrites): byWord holds each word's event, order the words in
	// the order they were first changed, counts the changes of each.
	byWord     map[uint64]*event.StackWrite
	order      []uint64
	counts     map[uint64]int
	events     int  // slot_write and stack_write events of the story (maxWriteEvents)
	capped     bool // the cap was reached (a writes_capped note said so)
	flushed    bool
	calledExit bool
	end        *event.ChildEnd
	steps      int64
	bpHits     int
	hw         watchSet
	// writers: the exact instruction that last wrote each word, where the
	// child was stepped; endFns: the functions on the child's own stack at
	// its end, innermost first (libc.go: who wrote a libc channel).
	writers map[uint64]*event.Insn
	endFns  []*event.Sym
	// execGone: the child exec'd and was let go (letExecGo), its program
	// at execPath; emitExec tells its exec event.
	execGone bool
	execPath string
	emitExec func()
}

// parentFacts is what the parent did after it woke.
type parentFacts struct {
	consumed  map[uint64]event.SlotKind // words whose read was reported
	consumes  []*event.ParentConsume
	channels  []*event.LibcChannel // reads that were the libc's own channel
	landing   *event.ParentLanding
	resumeSig int // a signal the parent stopped with, delivered when it resumes
	run       *parentRun
	// following: the parent phase is under way (a vfork of the parent
	// then ends the story: outVfork); vforked: it did.
	following, vforked bool
	// running: the child is gone and the parent is followed at its own
	// pace (its stack, then its globals): it may wait for another task,
	// whose vfork then runs its story at once, nested (vforkEvent).
	running bool
	// block is the parent's block decoded last (parentblock.go).
	block *parentBlock
}

// story traces one vfork from the parent's PTRACE_EVENT_VFORK stop to the
// parent's landing, phase by phase, and gives it a verdict. It runs on the
// stack of stories: a vfork made meanwhile by the child it waits for runs
// nested (wait.go). When the parent vforks again while it is followed, the
// story ends there (its verdict given) and the next one runs from that
// event stop, in this same loop: stories never nest because of following,
// and a program that vforks in a loop uses no more stack or memory for its
// thousandth vfork than for its first. On return the parent has been
// resumed, unless an enclosing story follows it, which then goes on
// stepping it; the child has ended or runs free.
func (s *session) story(p *task) error {
	prev := p.state
	for {
		again, err := s.storyOnce(p, prev)
		if !again {
			return err
		}
		if err == nil && !s.stopping() && s.cfg.MaxVforks > 0 && s.vforks >= s.cfg.MaxVforks {
			s.stopRun("max_vforks", strconv.Itoa(s.cfg.MaxVforks))
		}
		if err != nil || s.stopping() {
			// As vforkEvent does: the new child is registered so that it
			// is killed too, and the parent is let go.
			if msg, ok := s.eventMsg(p, ptrace.EventVfork); ok && s.byPID[int(msg)] == nil {
				s.newTask(p, int(msg), false, false)
			}
			s.letGoParent(p, prev, 0)
			return err
		}
	}
}

// following returns the story whose parent phase follows t, if any.
func (s *session) following(t *task) *story {
	if n := len(s.stories); n > 0 {
		if st := s.stories[n-1]; st.parent == t && st.par.following {
			return st
		}
	}
	return nil
}

// storyOnce runs one story; again is true when its parent vforked again
// while it was followed (it is then in that vfork's event stop, still
// taskFollowed). prev is the parent's state before the first story of the
// chain.
func (s *session) storyOnce(p *task, prev taskState) (again bool, err error) {
	s.vforks++
	st := &story{id: s.vforks, parent: p, mm: p.proc.mm, par: parentFacts{consumed: map[uint64]event.SlotKind{}}}
	s.stories = append(s.stories, st)
	p.set(taskFollowed)
	defer func() {
		s.stories = s.stories[:len(s.stories)-1]
		st.dropGlobals()
		s.letGo(st, prev)
		// A death kept for this story that it did not wait for.
		delete(s.deaths, p.pid)
		if st.child != nil {
			delete(s.deaths, st.child.pid)
		}
		s.dropRegion(st)
	}()

	err = s.begin(st)
	if err == nil {
		err = s.capture(st)
	}
	if err != nil && !errors.Is(err, errStopped) {
		// vtrace could not even look (the parent's registers or stack
		// are unreadable): the story is unchecked, its tasks let go.
		s.unchecked(st, err)
		return false, nil
	}
	if err == nil {
		err = s.followChild(st)
		s.flushWrites(st) // a child followed to its end has flushed them already
		// No int3 may outlive the child: the parent runs the same bytes.
		s.release(st, err == nil)
	}
	st.par.running = true
	if err == nil {
		err = s.followParent(st)
	}
	if err == nil {
		err = s.watchGlobalReads(st)
	}
	st.par.running = false
	if !st.captured {
		return false, err // the run stopped before anything was reported
	}
	if err != nil {
		// Judge what was seen so far: a story cut short by a budget (or
		// an error) still counts, and says it was cut.
		switch r, _ := s.stopState(); {
		case errors.Is(err, errStoryBudget):
			st.cut, err = "max_story_steps", nil
		case r != "":
			st.cut = r
		case errors.Is(err, errBlocked):
			// It gave way (giveway.go): its tasks run on unfollowed. A
			// parent another story follows (this story's parent is that
			// story's child) is adrift for it too: it is cut as well.
			st.cut = "blocked"
			s.note(st.id, event.NoteStoryGaveWay, err.Error())
			if !(prev == taskFollowed && p.adrift) {
				err = nil
			}
		default:
			st.cut = "error"
			s.note(st.id, event.NoteStoryAbandoned, err.Error())
			err = nil
		}
	}
	v := s.verdict(st)
	s.tally.add(v)
	if v == event.Violation && s.cfg.MaxViolations > 0 && s.tally.violations >= s.cfg.MaxViolations {
		s.stopRun("max_violations", strconv.Itoa(s.cfg.MaxViolations))
	}
	return st.par.vforked, err
}

// unchecked reports a story vtrace could not follow at all, with the
// reason: its vfork event (as much as is known), a note, and the verdict
// "unchecked". The run goes on.
func (s *session) unchecked(st *story, err error) {
	if !st.captured {
		ev := &event.Vfork{Header: s.hdr("vfork", st.parent.pid), Vfork: st.id, Frames: []event.Frame{}}
		if st.regs0.Arch != nil {
			ev.SP = event.Addr(st.regs0.SP())
		}
		if st.child != nil {
			ev.Child = st.child.pid
		}
		s.emit(ev)
		st.captured = true
	}
	s.note(st.id, event.NoteStoryAbandoned, err.Error())
	s.emit(&event.VforkVerdict{Header: s.hdr("vfork_verdict", st.parent.pid), Vfork: st.id,
		Verdict: event.Unchecked, Reasons: []event.Reason{}, Incomplete: "error"})
	s.tally.add(event.Unchecked)
}

// begin reads the parent's registers at its event stop, decodes the call
// and takes its child: a vfork child shares the parent's memory until it
// execs; a clone(CLONE_VFORK) child without CLONE_VM has a copy of it
// (its own address space, as newTask made it, with the program's bytes
// where vtrace's int3s were). When the flags cannot be read, the child is
// taken to share the memory, and a note says so.
func (s *session) begin(st *story) error {
	p := st.parent
	msg, ok := s.eventMsg(p, ptrace.EventVfork)
	if !ok {
		// Killed out of its event stop (the run is stopping, or someone
		// sent it SIGKILL): its child is not known for sure.
		return fmt.Errorf("task %d left its vfork event stop: %w", p.pid, errStopped)
	}
	if err := s.p.Regs(p.pid, &st.regs0); err != nil {
		return err
	}
	st.arch, st.word = st.regs0.Arch, st.regs0.Arch.PtrSize
	hangAt("vfork") // VTRACE_TEST_HANG (tests only: testhang.go)
	s.refresh(st.mm, p.pid)
	c := s.byPID[int(msg)]
	if c == nil {
		c = s.newTask(p, int(msg), false, true)
	}
	// The parent stays in this stop until capture is done: the pages read
	// here (the clone3 arguments are on its stack) serve capture too.
	st.stopMem = &pageMemory{s: s, pid: p.pid, pages: s.unwindPages[:0]}
	// A program that spawns in a loop vforks from the same frames: the
	// pages the last vfork here read (its unwind's words, the clone3
	// arguments, the TLS words) and those of its live region (the
	// snapshot is taken from them: capture), in one read.
	addrs := slices.Clone(st.mm.lastPages)
	for a := st.mm.lastRegion[0] &^ (memPageSize - 1); a < st.mm.lastRegion[1]; a += memPageSize {
		addrs = append(addrs, a)
	}
	st.stopMem.prefetch(addrs)
	st.call = cloneCallIn(&st.regs0, st.stopMem.read)
	switch st.call.memory() {
	case memCopy:
		st.copy = true
	default: // shared, or unknown (capture's note says so)
		c.proc.mm = st.mm
	}
	st.child = c
	return nil
}

// letGo hands the story's tasks back when it ends: the parent runs on (or
// goes back to the enclosing story that follows it), and a child the story
// still held — its end never came, the story was cut — runs free.
func (s *session) letGo(st *story, prev taskState) {
	detach := s.detaching()
	// Only a child whose end the story did not see is still the story's
	// to release: once it exec'd it is an ordinary task (it may even be
	// held now as the parent of a vfork of its own).
	if c := st.child; c != nil && st.kid.end == nil && s.byPID[c.pid] == c {
		switch {
		case c.state == taskNewHeld:
			c.set(taskNew) // its first stop, when it comes, resumes (or detaches) it
		case (c.state == taskHeld || c.state == taskFollowed) && detach:
			s.detach(c, 0)
		case c.state == taskHeld || c.state == taskFollowed:
			c.set(taskRunning)
			s.cont(c, 0)
		}
	}
	if st.par.vforked {
		return // the parent's next story runs from its vfork event stop (story)
	}
	s.letGoParent(st.parent, prev, st.par.resumeSig)
}

// letGoParent resumes (or detaches) a story's parent, unless an enclosing
// story follows it.
func (s *session) letGoParent(p *task, prev taskState, sig int) {
	if prev == taskFollowed || s.byPID[p.pid] != p {
		return
	}
	if s.detaching() {
		s.detach(p, sig)
		return
	}
	p.set(taskRunning)
	s.cont(p, sig)
}

// awaitFirstStop waits for the story's vfork child's first stop (its
// SIGSTOP), unless it came already (before the parent's event), and takes
// it.
func (s *session) awaitFirstStop(story *story) error {
	c := story.child
	if !c.firstStopSeen() {
		// The stop may be taken by a dispatch made while this waits (a
		// story nested there): c is held, or gone, then.
		st, taken, err := s.waitForOr(c.pid, func() bool { return c.firstStopSeen() || s.byPID[c.pid] != c })
		switch {
		case err != nil:
			return err
		case taken && s.byPID[c.pid] != c:
			return errStopped
		case taken:
		case st.Status.Exited() || st.Status.Signaled():
			s.gone(c, st.Status)
			return errStopped
		default:
			c.set(taskHeld)
		}
	}
	s.restoreInherited(c) // a copy's int3s (newTask); none when it came early (firstStop)
	// The end of a child on a stack of its own is part of its story
	// (libc.go: recordChildEnd reads it at its exit stop); it may come
	// from a program vtrace spared exit stops (childEnded), and inherited
	// that. A child on the parent's stack is told the same without the
	// stop (it is reaped: outGone): it keeps what it inherited, and the
	// child of a shell spared them costs no PTRACE_SETOPTIONS here nor at
	// its exec (dash's vfork).
	if !story.shared {
		if err := s.exitStops(c, true); err != nil {
			return err
		}
	}
	c.set(taskFollowed)
	return nil
}

func (st *story) inRegion(a uint64) bool {
	return a >= st.lo && a+uint64(st.word) <= st.hi
}

// eachChanged calls fn, by address, with every word of the live region
// whose last seen value (shadow) is not the snapshot's (orig): before and
// after. Equal stretches are skipped regionChunk bytes at a time (a
// posix_spawn child leaves the parent's stack as it was).
func (st *story) eachChanged(fn func(a, before, after uint64)) {
	w := uint64(st.word)
	n := st.hi - st.lo
	for off := uint64(0); off < n; off += regionChunk {
		end := min(off+regionChunk, n)
		if bytes.Equal(st.orig[off:end], st.shadow[off:end]) {
			continue
		}
		// regionChunk is a multiple of the word: a word lies in one chunk.
		for a := st.lo + off; a < st.lo+end && a+w <= st.hi; a += w {
			if before, after := st.wordAt(st.orig, a), st.wordAt(st.shadow, a); before != after {
				fn(a, before, after)
			}
		}
	}
}

// regionChunk is eachChanged's unit of comparison.
const regionChunk = 256

func (st *story) wordAt(buf []byte, a uint64) uint64 {
	off := a - st.lo
	if st.word == 4 {
		return uint64(binary.LittleEndian.Uint32(buf[off:]))
	}
	return binary.LittleEndian.Uint64(buf[off:])
}

func (st *story) putWord(buf []byte, a, v uint64) {
	off := a - st.lo
	if st.word == 4 {
		binary.LittleEndian.PutUint32(buf[off:], uint32(v))
		return
	}
	binary.LittleEndian.PutUint64(buf[off:], v)
}

// frameOf returns the index of the parent frame holding addr.
func (st *story) frameOf(a uint64) int {
	for i, f := range st.frames {
		if a < f.CFA {
			return i
		}
	}
	return len(st.frames) - 1
}

// words calls fn for each word-aligned address of the words [addr,
// addr+size) touches.
func words(addr uint64, size int, word int, fn func(x uint64)) {
	w := uint64(word)
	for x := addr &^ (w - 1); x < addr+uint64(size); x += w {
		fn(x)
	}
}

// exitStops gives a stopped task PTRACE_EVENT_EXIT stops or takes them
// away, unless it has them as asked already (task.exitStops).
func (s *session) exitStops(t *task, on bool) error {
	want := exitStopsOff
	if on {
		want = exitStopsOn
	}
	if t.exitStops == want {
		return nil
	}
	if err := s.p.ExitStops(t.pid, on); err != nil {
		t.exitStops = exitStopsUnknown
		return err
	}
	t.exitStops = want
	return nil
}
