package tracer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Who waits for whom across stories. A story keeps tasks from running
// while it waits for its own: the stops of an enclosing story's tasks are
// postponed (wait.go: waitFor), another thread of a story's memory that
// vforks is held in its event stop (session.go: vforkEvent, heldParents),
// a thread that runs into a story's int3 is parked on it. The program may
// need one of those tasks to make progress before the task the story waits
// for can: a vfork child's fork vforks a child that reads a byte the first
// child writes later (cmd/vtrace/testdata/nestwait.c: the nested story
// waits for that reader, the writer's stop is postponed for the enclosing
// story); a parent, followed after its child is gone, joins the thread
// whose vfork is held (threadjoin.c). Nesting or holding, either choice
// deadlocks one direction, so neither is changed: the story that blocks
// gives way.
//
// While vtrace holds a task for a story, waitFor watches what /proc says
// of the traced tasks (procs.Activity). When the task the story waits for
// has slept in the kernel for blockQuiet without running at all, and no
// other traced task ran meanwhile (all sleep or sit in a stop vtrace
// keeps), the program cannot go on as vtrace holds it — or when that task
// has slept blockLong without running whatever the others do (a thread
// that ticks for ever must not keep a deadlock). A task asleep in
// nanosleep or clock_nanosleep wakes by itself: it counts as blocked only
// once it has slept blockLong, its wakes into the next such sleep
// included (a loop polling with sleep() for a held task); a shorter sleep
// is not a deadlock (sleepheld.c: a vfork child sleeps 400 ms, then
// changes its parent's local; cutting its story missed the warning), nor
// is a task waiting while another traced task is in a timed sleep, which
// may wake it (sleepgrand.c: the child waits for a process of its own
// that sleeps). Likewise a task asleep waiting for input that the world
// feeds — a read, a receive, a poll, select or epoll_wait of a terminal,
// a device, a network socket, a pipe, FIFO or connected Unix socket whose
// other end a process vtrace does not trace holds open (stdinheld.c: a
// vfork child reads stdin a shell writes late) — and another task's such
// wait may wake it (readsFed). None of that waits, though, while the story
// on top follows its parent and vtrace keeps a stop of an enclosing
// story's task (keepsRunnable): that task would run natively, so every
// moment of the sleep is time taken from the program (heldrunnable.c: a
// shell's waitpid for its command held the program that started the
// shell); /proc is looked at once the wait has lasted keepsFirstLook (5
// ms) and a sleep of blockHeld is enough.
// Then, in turn:
//
//  1. The held vforks get their turn (runHeld): those of a memory whose
//     every story in progress is in its parent phase — no child runs
//     there, so the stories share no stack and the int3s each plants are
//     its own — run now, nested on top; the wait then goes on, watched
//     afresh (threadjoin.c: main(), followed into pthread_join, reads its
//     child's `x` once the thread's story has run: the warning is seen).
//  2. Else the story on top gives way: waitFor returns errBlocked and the
//     story is cut short there (its verdict's incomplete "blocked", a
//     story_gave_way note saying who slept, in which system call, and what
//     vtrace held). The task it waited for is let go where it stands: it
//     runs, so vtrace cannot stop it; it is "adrift", and its next stop,
//     whatever it is, clears what vtrace left on it (a pending
//     single-step, debug registers) before it is dispatched as any other
//     task's; int3s are taken out through /proc/PID/mem meanwhile. A
//     parent phase cut so reports the words still live as unchecked
//     (parent_landing "unchecked"): the verdict judges only what was seen.
//     The held tasks then run: the enclosing story takes its postponed
//     stop (nestwait.c; threadfirst.c, where main()'s story, nested by 1,
//     blocks on the thread the enclosing story follows), the main loop
//     starts the held vforks' stories.
//
// A waiting task is timed only while vtrace holds something: nested shells
// and make, where a followed parent sleeps in waitpid for a command that
// vforks, hold nothing (the command's story runs at once, nested) and are
// never cut. wait4 blocks as before; a timer wakes it (wakeTracer: a
// process that exits at once) when the wait lasts.
const (
	blockQuiet = 150 * time.Millisecond
	blockLong  = 3 * time.Second
	// blockHeld is how long a story following its parent lets it sleep
	// while a task that would run natively is kept for an enclosing story
	// (keepsRunnable): the time vtrace may take from the program. Longer
	// than blockQuiet, so that a followed parent's short sleep (a 200 ms
	// usleep while an enclosing story steps a task soon to block in
	// waitpid: diesnested.c --step) does not cut its story.
	blockHeld = 500 * time.Millisecond
	// keepsFirstLook is how long a wait lasts, while keepsRunnable, before
	// /proc is first looked at. Nearly every wait of a followed parent (a
	// step, a call) ends sooner: looked at from its start, every traced
	// task's /proc files were read at every step (make -j2, a recipe's
	// shell followed while the other job's stop was kept: a quarter of
	// vtrace's CPU time).
	keepsFirstLook = 5 * time.Millisecond
)

// errBlocked cuts the story on top short: the task it waits for sleeps in
// the kernel while vtrace holds tasks for stories (blockedError says who).
var errBlocked = errors.New("blocked while vtrace held other tasks")

// blockedError is errBlocked with what was seen.
type blockedError struct {
	pid   int
	act   activity
	slept time.Duration
	held  []string
	// others is what the other traced tasks were doing at that look
	// (sawOthers): why none of them was counted on to wake pid.
	others []string
	// input says what pid waited to read from, if it did (waitedInput).
	input string
}

func (e *blockedError) Error() string {
	in := ""
	if e.act.syscall >= 0 {
		in = fmt.Sprintf(" in system call %d", e.act.syscall)
	}
	if e.input != "" {
		in += " waiting to read " + e.input
	}
	msg := fmt.Sprintf("task %d slept in the kernel%s (state %c) for %d ms without running while vtrace held %s: the story gave way",
		e.pid, in, e.act.state, e.slept.Milliseconds(), strings.Join(e.held, ", "))
	if len(e.others) > 0 {
		msg += "; the other tasks: " + strings.Join(e.others, ", ")
	}
	return msg
}

func (e *blockedError) Unwrap() error { return errBlocked }

// blockProbe is what one waitFor has seen of the traced tasks since vtrace
// began holding some.
type blockProbe struct {
	start   time.Time // holds seen since (zero: none)
	checked time.Time // last look at /proc
	// every is the time to the next look: blockQuiet/4 while the task
	// waited for sleeps with nothing running, longer (up to a second)
	// while something runs — each look past a wait's start costs a wake
	// process.
	every time.Duration
	seen  map[int]taskSeen
	// fed caches readsFed's answer per task, for the read it sleeps in.
	fed map[int]fedSeen
}

// fedSeen is readsFed's answer for a task's wait, known by its system
// call and first two arguments.
type fedSeen struct {
	syscall int
	args    [2]uint64
	fed     bool
}

// taskSeen is a task's last activity and since when it has not run.
type taskSeen struct {
	act   activity
	since time.Time
}

// holding reports whether vtrace keeps a task from running for a story: a
// postponed stop, a held vfork parent, a task parked on an int3.
func (s *session) holding() bool {
	if len(s.postponed) > 0 || len(s.heldParents) > 0 {
		return true
	}
	if !s.parkedSeen {
		return false
	}
	for _, t := range s.byPID {
		if t.state == taskParked {
			return true
		}
	}
	s.parkedSeen = false
	return false
}

// heldNames says which tasks vtrace holds, for the note.
func (s *session) heldNames() []string {
	var out []string
	for pid := range s.postponed {
		out = append(out, fmt.Sprintf("%d (a stop kept for an enclosing story)", pid))
	}
	for _, p := range s.heldParents {
		out = append(out, fmt.Sprintf("%d (its vfork held until the stories in progress end)", p.pid))
	}
	for pid, t := range s.byPID {
		if t.state == taskParked {
			out = append(out, fmt.Sprintf("%d (parked on a story's int3)", pid))
		}
	}
	slices.Sort(out)
	return out
}

// giveWay decides, before each wait of waitFor for pid, whether the story
// on top must give way (errBlocked): see the comment at the top. ran says
// that held stories ran nested instead (runHeld): the wait starts afresh.
func (s *session) giveWay(pid int, pr *blockProbe) (ran bool, err error) {
	if s.stopping() || !s.holding() {
		*pr = blockProbe{}
		return false, nil
	}
	now := time.Now()
	// While a task that would run natively is kept (keepsRunnable), /proc
	// is looked at from keepsFirstLook after the start: the sleep is timed
	// from the first look.
	keeps := s.keepsRunnable()
	if pr.start.IsZero() {
		pr.start = now
		if keeps {
			pr.checked, pr.every = now, keepsFirstLook
		}
		return false, nil
	}
	if now.Sub(pr.start) < blockQuiet && !keeps || now.Sub(pr.checked) < pr.every {
		return false, nil
	}
	pr.checked = now
	prev := max(pr.every, blockQuiet/4)
	pr.every = blockQuiet / 4
	slower := func(limit time.Duration) { pr.every = min(2*prev, limit) }
	if pr.seen == nil {
		pr.seen = map[int]taskSeen{}
	}
	for tid := range s.byPID {
		a, ok := s.p.Activity(tid)
		if !ok {
			delete(pr.seen, tid)
			continue
		}
		x, had := pr.seen[tid]
		if a.syscall == sysRunning && had && a.ran == x.act.ran && a.state == x.act.state {
			// Not caught still this time, but it has not run since the
			// last look: in the same system call.
			a.syscall, a.args = x.act.syscall, x.act.args
		}
		// A task back in a timed sleep after a wake keeps its quiet
		// time: a loop that polls with sleep() for what a held task would
		// do is as blocked as a task that waits for it.
		polls := had && a.state != 'R' && s.sleepsTimed(tid, a) && s.sleepsTimed(tid, x.act)
		if !had || (a.ran != x.act.ran && !polls) || a.state == 'R' {
			x.since = now
		}
		x.act = a
		pr.seen[tid] = x
	}
	w, ok := pr.seen[pid]
	if !ok || !w.act.blocked() {
		slower(time.Second)
		return false, nil
	}
	quiet := now.Sub(w.since)
	if quiet < blockQuiet || keeps && quiet < blockHeld || !keeps && w.act.syscall == sysRunning && quiet < blockLong {
		// Not long enough, or what it sleeps in is not known at this
		// look (it may wake by itself): look again soon.
		return false, nil
	}
	// A task that would run natively, kept in a stop for an enclosing
	// story while this one follows its parent (keepsRunnable), is held
	// for as long as this sleep lasts, deadlock or not: the story gives
	// way after blockHeld rather than after blockLong.
	if quiet < blockLong && !keeps {
		if s.wakesAlone(pid, w.act, pr) {
			// It wakes by itself, or the world wakes it: not taken
			// for blocked before blockLong.
			slower(blockLong / 6)
			return false, nil
		}
		for tid, x := range pr.seen {
			if tid != pid && (now.Sub(x.since) < blockQuiet || x.act.blocked() && (x.act.syscall == sysRunning || s.wakesAlone(tid, x.act, pr))) {
				// another task runs, or will when its sleep ends
				// (sleepgrand.c): it may wake this one
				slower(blockLong / 6)
				return false, nil
			}
		}
	}
	if s.runHeld() {
		// The held vforks had their turn: the wait goes on (the task
		// waited for may be awake now), watched afresh.
		*pr = blockProbe{}
		return true, nil
	}
	if t := s.byPID[pid]; t != nil {
		t.adrift = true
	}
	return false, &blockedError{pid: pid, act: w.act, slept: quiet, held: s.heldNames(), others: s.sawOthers(pid, pr, now), input: s.waitedInput(pid, w.act)}
}

// sawOthers says, for the note of a story that gives way on pid, what each
// other traced task was doing at the look that decided it: its state, the
// system call it slept in, and for how long it had not run.
func (s *session) sawOthers(pid int, pr *blockProbe, now time.Time) []string {
	var out []string
	for tid, x := range pr.seen {
		if tid == pid {
			continue
		}
		d := fmt.Sprintf("%d (state %c", tid, x.act.state)
		if s.byPID[tid] == nil {
			d = fmt.Sprintf("%d (gone", tid)
		} else if x.act.syscall >= 0 {
			d += fmt.Sprintf(", in system call %d", x.act.syscall)
		}
		out = append(out, fmt.Sprintf("%s, not run for %d ms)", d, now.Sub(x.since).Milliseconds()))
	}
	slices.Sort(out)
	return out
}

// keepsRunnable reports whether the story on top follows its parent (its
// child gone) while vtrace keeps a stop of an enclosing story's task
// (postponed): that task would run natively, and the program's timing
// changes for as long as the followed parent sleeps (heldrunnable.c: a
// shell's waitpid for a 3 s sleep held the program that started the shell
// at an int3 for those 3 s; python's subprocess.run('sleep 3', shell=True,
// timeout=0.1) never timed out).
func (s *session) keepsRunnable() bool {
	n := len(s.stories)
	return n > 0 && s.stories[n-1].par.running && len(s.postponed) > 0
}

// runHeld runs now, nested, the stories of the held vforks that may run:
// those of a memory whose every story in progress is in its parent phase
// (its child gone: no child runs on the stack or in the int3s they would
// share). It reports whether one ran. Giving the held their turn keeps the
// story that waits whole (threadjoin.c: main(), followed into
// pthread_join, reads its child's `x` once the thread's story has run);
// a story nested so that blocks in turn gives way (giveWay), and the
// enclosing one goes on.
func (s *session) runHeld() bool {
	ran := false
	for i := 0; i < len(s.heldParents); {
		p := s.heldParents[i]
		if !s.childrenGone(p.proc.mm) || s.byPID[p.pid] != p || s.stopping() {
			i++
			continue
		}
		s.heldParents = slices.Delete(s.heldParents, i, i+1)
		s.storyOutside(p)
		ran = true
	}
	return ran
}

// childrenGone reports whether every story in progress of memory mm is in
// its parent phase.
func (s *session) childrenGone(mm *addrSpace) bool {
	for _, st := range s.stories {
		if st.mm == mm && !st.par.running {
			return false
		}
	}
	return true
}

// sleepsTimed reports whether task pid sleeps in nanosleep or
// clock_nanosleep: it wakes by itself (a vfork child that sleeps 400 ms
// before it changes its parent's local: cmd/vtrace/testdata/sleepheld.c).
// /proc/PID/syscall gives the number in the task's own ABI.
func (s *session) sleepsTimed(pid int, a activity) bool {
	switch s.sleepsIn(pid, a) {
	case "nanosleep", "clock_nanosleep", "clock_nanosleep_time64":
		return true
	}
	return false
}

// sleepsIn is the name of the system call task pid sleeps in, as a says
// (its number in the task's own ABI): "" when it is in none, when that is
// not known, or for a call the engine does not look for.
func (s *session) sleepsIn(pid int, a activity) string {
	t := s.byPID[pid]
	if a.syscall < 0 || t == nil || t.proc == nil || t.proc.mm == nil || t.proc.mm.arch == nil {
		return ""
	}
	return sysName(t.proc.mm.arch, uint64(a.syscall))
}

// wakesAlone reports whether task pid, asleep in the kernel as a says, can
// wake without any task vtrace traces: a timed sleep (sleepsTimed), or a
// read that the world feeds (readsFed).
func (s *session) wakesAlone(pid int, a activity, pr *blockProbe) bool {
	return s.sleepsTimed(pid, a) || s.readsFed(pid, a, pr)
}

// readsFed reports whether task pid sleeps waiting for input that
// something outside the traced program feeds: a read or a receive of a
// descriptor, or a poll, select or epoll_wait with such a descriptor among
// those it waits to read (stdinheld.c: a vfork child reads a byte of
// stdin, which the shell's `(sleep 0.6; echo x) |` writes, while vtrace
// holds main()'s vfork; taken for a deadlock, the story was cut and the
// child's later write to its parent's local missed). A descriptor is fed
// (fdFed) when it is a terminal or another device, a network socket, or a
// pipe, FIFO or connected Unix socket whose other end a process vtrace
// does not trace holds open.
func (s *session) readsFed(pid int, a activity, pr *blockProbe) bool {
	name := s.sleepsIn(pid, a)
	if name == "" {
		return false
	}
	if c, ok := pr.fed[pid]; ok && c.syscall == a.syscall && c.args == [2]uint64{a.args[0], a.args[1]} {
		return c.fed
	}
	fds, more := s.waitedFds(pid, name, a)
	// Descriptors it waits for that were not looked at (more) may be
	// fed: as if one were (a deadlock is then cut at blockLong, not
	// missed input).
	fed := more || slices.ContainsFunc(fds, func(fd int) bool { return s.fdFed(pid, fd) })
	if pr.fed == nil {
		pr.fed = map[int]fedSeen{}
	}
	pr.fed[pid] = fedSeen{syscall: a.syscall, args: [2]uint64{a.args[0], a.args[1]}, fed: fed}
	return fed
}

// pollIn is the poll events that wait for input: POLLIN, POLLPRI,
// POLLRDNORM, POLLRDBAND (x86's values).
const pollIn = 0x1 | 0x2 | 0x40 | 0x80

// maxWaitedFds bounds how many of a poll's, select's or epoll's
// descriptors are looked at (each may cost a scan of /proc).
const maxWaitedFds = 64

// waitedFds returns the descriptors task pid, asleep in system call name
// with the arguments a gives, waits to read from: none for a call that is
// no such wait. more says it waits for others too, not looked at (past
// maxWaitedFds descriptors, past a poll's first maxWaitedFds entries,
// past a select's first 1024 descriptors). Arguments are in the task's
// own ABI; a poll's or select's sets are read from its memory, an epoll's
// from /proc.
func (s *session) waitedFds(pid int, name string, a activity) (fds []int, more bool) {
	word := func(i int) int { return int(int32(a.args[i])) }
	switch name {
	case "read", "readv", "pread64", "preadv", "preadv2",
		"recvfrom", "recvmsg", "recvmmsg", "recvmmsg_time64", "accept", "accept4":
		return []int{word(0)}, false
	case "socketcall": // i386's: args[1] points to the call's arguments, the descriptor first
		switch a.args[0] {
		case 5, 10, 12, 17, 18, 19: // accept, recv, recvfrom, recvmsg, accept4, recvmmsg
			var b [4]byte
			if s.p.ReadMem(pid, a.args[1], b[:]) == nil {
				return []int{int(int32(binary.LittleEndian.Uint32(b[:])))}, false
			}
		}
	case "poll", "ppoll", "ppoll_time64":
		// struct pollfd {int fd; short events, revents;}, in both ABIs
		n := min(a.args[1], maxWaitedFds)
		b := make([]byte, 8*n)
		if n == 0 || s.p.ReadMem(pid, a.args[0], b) != nil {
			return nil, false
		}
		for i := range int(n) {
			fd := int(int32(binary.LittleEndian.Uint32(b[8*i:])))
			if ev := binary.LittleEndian.Uint16(b[8*i+4:]); fd >= 0 && ev&pollIn != 0 {
				fds = append(fds, fd)
			}
		}
		return fds, a.args[1] > n
	case "_newselect", "select", "pselect6", "pselect6_time64":
		// The read set: a bitmap, bit n of byte n/8 on these
		// little-endian ABIs. (i386's old select, 82, takes its arguments
		// through a struct and is not in the table.)
		n := min(uint64(max(word(0), 0)), 1024)
		b := make([]byte, (n+7)/8)
		if n == 0 || a.args[1] == 0 || s.p.ReadMem(pid, a.args[1], b) != nil {
			return nil, false
		}
		more = uint64(max(word(0), 0)) > n
		for fd := range int(n) {
			if b[fd/8]&(1<<(fd%8)) != 0 {
				if len(fds) == maxWaitedFds {
					return fds, true
				}
				fds = append(fds, fd)
			}
		}
		return fds, more
	case "epoll_wait", "epoll_pwait", "epoll_pwait2":
		fds := s.p.EpollFds(pid, word(0))
		return fds[:min(len(fds), maxWaitedFds)], len(fds) > maxWaitedFds
	}
	return nil, false
}

// waitedInput says, for the note of a story that gives way on pid, which
// descriptors pid waits to read from (as readsFed saw them) and what
// each is: "" when its system call is no wait for input.
func (s *session) waitedInput(pid int, a activity) string {
	name := s.sleepsIn(pid, a)
	if name == "" {
		return ""
	}
	var out []string
	fds, more := s.waitedFds(pid, name, a)
	for _, fd := range fds {
		kind, writers := s.p.FdWriters(pid, fd)
		d := fmt.Sprintf("descriptor %d (", fd)
		switch kind {
		case fdDevice:
			d += "fed from outside"
		case fdPipe:
			d += fmt.Sprintf("a pipe or socket written by %v", writers)
		default:
			d += "not known"
		}
		out = append(out, d+")")
	}
	if more {
		out = append(out, "more descriptors not looked at")
	}
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, ", ")
}

// fdFed reports whether task pid's descriptor fd is fed from outside the
// traced program (readsFed).
func (s *session) fdFed(pid, fd int) bool {
	switch kind, writers := s.p.FdWriters(pid, fd); kind {
	case fdDevice:
		return true
	case fdPipe:
		return slices.ContainsFunc(writers, func(w int) bool { return s.byPID[w] == nil })
	}
	return false
}

// armWake makes sure the coming wait4 ends by the time giveWay has
// something to look at: a timer starts a wake process then (wakeTracer),
// unless the wait has ended first. The returned function is called as the
// wait returns.
func (s *session) armWake(pr *blockProbe) func() {
	if pr.start.IsZero() {
		return func() {}
	}
	d := time.Until(pr.checked.Add(pr.every))
	if pr.seen == nil && pr.every == 0 {
		d = time.Until(pr.start.Add(blockQuiet))
	}
	s.wakeMu.Lock()
	gen := s.waitGen
	s.wakeMu.Unlock()
	tm := time.AfterFunc(max(d, time.Millisecond), func() {
		s.wakeMu.Lock()
		defer s.wakeMu.Unlock()
		if s.waitGen == gen {
			s.wakeTracer()
		}
	})
	return func() {
		tm.Stop()
		s.wakeMu.Lock()
		s.waitGen++ // a timer that fires now starts nothing
		s.wakeMu.Unlock()
	}
}

// adriftStop handles the first stop of a task a story gave way on while it
// ran (errBlocked): what the story left on it is cleared — its debug
// registers, the trap flag of a single-step it asked for — and a trap of
// vtrace's own (that step ending, a watchpoint) is swallowed. It reports
// whether the stop is handled; any other stop is dispatched as usual.
func (s *session) adriftStop(t *task, sig unix.Signal, event int) bool {
	t.adrift = false
	_ = s.disarmDR(t.pid)
	s.unclobberTF(t)
	if sig != unix.SIGTRAP || event != 0 {
		return false
	}
	info, err := s.p.SigInfo(t.pid)
	if err != nil {
		return false
	}
	switch info.Code {
	case trapTrace, trapBrkpt, trapSignalStep, trapHWBkpt:
		s.cont(t, 0)
		return true
	}
	return false
}
