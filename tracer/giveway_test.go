package tracer

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/ptrace"
)

// giveWay cuts the story on top only while vtrace holds a task, once the
// task it waits for has slept without running for blockQuiet and nothing
// else ran; a task that keeps running keeps the story going.
func TestGiveWay(t *testing.T) {
	f := newFakeProcs(t)
	f.activity = map[int]activity{
		10: {state: 'S', ran: 5, syscall: 202}, // the task the story waits for
		11: {state: 't', ran: 7, syscall: -1},  // its stop kept for an enclosing story
	}
	s := newSession(Config{CPU: -1}, f)
	waited, held := &task{pid: 10, state: taskFollowed}, &task{pid: 11, state: taskFollowed}
	s.byPID[10], s.byPID[11] = waited, held

	// poll calls giveWay as waitFor would, every 10 ms, for at most d.
	poll := func(d time.Duration, each func()) (time.Duration, error) {
		var pr blockProbe
		start := time.Now()
		for time.Since(start) < d {
			if each != nil {
				each()
			}
			if _, err := s.giveWay(10, &pr); err != nil {
				return time.Since(start), err
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(start), nil
	}

	if _, err := poll(2*blockQuiet+100*time.Millisecond, nil); err != nil {
		t.Fatalf("nothing held: %v", err)
	}
	s.postponed[11] = ptrace.Stop{PID: 11}
	took, err := poll(time.Second, nil)
	if !errors.Is(err, errBlocked) || took < 2*blockQuiet {
		t.Fatalf("held and asleep: %v after %v, want errBlocked after %v", err, took, 2*blockQuiet)
	}
	if msg := err.Error(); !strings.Contains(msg, "task 10") || !strings.Contains(msg, "system call 202") || !strings.Contains(msg, "11 (a stop kept") {
		t.Errorf("message %q does not say who slept and what was held", msg)
	}
	if !waited.adrift {
		t.Errorf("the task waited for is not marked adrift")
	}

	// Another traced task runs: it may wake the one waited for.
	waited.adrift = false
	f.activity[12] = activity{state: 'S', ran: 1, syscall: -1}
	s.byPID[12] = &task{pid: 12, state: taskRunning}
	if _, err := poll(3*blockQuiet, func() {
		a := f.activity[12]
		a.ran++
		f.activity[12] = a
	}); err != nil {
		t.Errorf("another task runs: %v", err)
	}
	// The task waited for runs: no cut.
	if _, err := poll(3*blockQuiet, func() {
		a := f.activity[10]
		a.ran++
		f.activity[10] = a
	}); err != nil {
		t.Errorf("the task waited for runs: %v", err)
	}
}

// While the story on top follows its parent and a stop of an enclosing
// story's task is kept (keepsRunnable), a wait looks at /proc only once it
// has lasted keepsFirstLook: the waits of a followed parent (a step, a
// call) nearly all end sooner, and every traced task's /proc files were
// read at each of them. A wait that lasts is looked at, and cut after
// blockHeld as before.
func TestGiveWayKeepsFirstLook(t *testing.T) {
	f := newFakeProcs(t)
	f.activity = map[int]activity{
		10: {state: 'S', ran: 5, syscall: 61}, // the followed parent, in wait4
		11: {state: 't', ran: 7, syscall: -1}, // its stop kept for an enclosing story
	}
	s := newSession(Config{CPU: -1}, f)
	s.byPID[10], s.byPID[11] = &task{pid: 10, state: taskFollowed}, &task{pid: 11, state: taskFollowed}
	s.stories = []*story{{id: 1, par: parentFacts{running: true}}}
	s.postponed[11] = ptrace.Stop{PID: 11}
	if !s.keepsRunnable() {
		t.Fatal("the setting is not keepsRunnable")
	}
	var pr blockProbe
	if _, err := s.giveWay(10, &pr); err != nil {
		t.Fatal(err)
	}
	if f.activityReads != 0 {
		t.Errorf("a wait that has just begun read /proc %d times", f.activityReads)
	}
	time.Sleep(keepsFirstLook + time.Millisecond)
	if _, err := s.giveWay(10, &pr); err != nil {
		t.Fatal(err)
	}
	if f.activityReads != 2 {
		t.Errorf("a wait past keepsFirstLook read /proc %d times, want 2 (each task once)", f.activityReads)
	}
	start := time.Now()
	var err error
	for time.Since(start) < 2*blockHeld && err == nil {
		time.Sleep(10 * time.Millisecond)
		_, err = s.giveWay(10, &pr)
	}
	if !errors.Is(err, errBlocked) || time.Since(start) < blockHeld-keepsFirstLook {
		t.Errorf("the parent asleep while a runnable stop was kept: %v after %v, want errBlocked after %v", err, time.Since(start), blockHeld)
	}
}

// A task asleep in nanosleep or clock_nanosleep (numbered in its own ABI)
// wakes by itself: vtrace holding others does not block it before
// blockLong; the same numbers in the other ABI (i386's nanosleep is
// amd64's sync) are no timed sleep. A loop that wakes and sleeps again
// (polling with sleep() for a held task) is cut after blockLong.
func TestGiveWayTimedSleep(t *testing.T) {
	for _, c := range []struct {
		a     *arch.Arch
		nr    int
		timed bool
	}{
		{arch.AMD64, 35, true}, {arch.AMD64, 230, true}, {arch.AMD64, 162, false}, {arch.AMD64, 202, false},
		{arch.I386, 162, true}, {arch.I386, 267, true}, {arch.I386, 407, true}, {arch.I386, 230, false},
	} {
		err := heldWait(t, c.a, activity{state: 'S', ran: 5, syscall: c.nr}, nil)
		if cut := errors.Is(err, errBlocked); cut == c.timed {
			t.Errorf("%s system call %d: cut %v (%v), want a cut: %v", c.a.Name, c.nr, cut, err, !c.timed)
		}
	}
}

// heldWait is a story waiting for task 10, asleep as waited says (its
// descriptors fds), while vtrace keeps task 11's stop: what giveWay, asked
// every 10 ms for 3*blockQuiet, decides (errBlocked: a cut).
func heldWait(t *testing.T, a *arch.Arch, waited activity, fds map[[2]int]fakeFd) error {
	return heldWaitMem(t, a, waited, fds, nil)
}

// heldWaitMem is heldWait with the waiting task's memory (nil: none
// readable).
func heldWaitMem(t *testing.T, a *arch.Arch, waited activity, fds map[[2]int]fakeFd, mem *fakeImage) error {
	f := newFakeProcs(t)
	if mem != nil {
		f.tasks[10] = &fakeTask{pid: 10, img: mem}
	}
	f.activity = map[int]activity{10: waited, 11: {state: 't', ran: 7, syscall: -1}}
	f.fds = fds
	s := newSession(Config{CPU: -1}, f)
	mm := &addrSpace{arch: a}
	s.byPID[10] = &task{pid: 10, state: taskFollowed, proc: &process{tgid: 10, mm: mm}}
	s.byPID[11] = &task{pid: 11, state: taskFollowed, proc: &process{tgid: 11, mm: mm}}
	s.postponed[11] = ptrace.Stop{PID: 11}
	var pr blockProbe
	var err error
	for start := time.Now(); time.Since(start) < 3*blockQuiet && err == nil; time.Sleep(10 * time.Millisecond) {
		_, err = s.giveWay(10, &pr)
	}
	return err
}

func TestGiveWayPollingSleep(t *testing.T) {
	f := newFakeProcs(t)
	f.activity = map[int]activity{
		10: {state: 'S', ran: 5, syscall: 230},
		11: {state: 't', ran: 7, syscall: -1},
	}
	s := newSession(Config{CPU: -1}, f)
	mm := &addrSpace{arch: arch.AMD64}
	waited := &task{pid: 10, state: taskFollowed, proc: &process{tgid: 10, mm: mm}}
	s.byPID[10] = waited
	s.byPID[11] = &task{pid: 11, state: taskFollowed, proc: &process{tgid: 11, mm: mm}}
	s.postponed[11] = ptrace.Stop{PID: 11}
	var pr blockProbe
	var err error
	start := time.Now()
	for time.Since(start) < blockLong+time.Second && err == nil {
		a := f.activity[10]
		a.ran++ // woke and slept again
		f.activity[10] = a
		_, err = s.giveWay(10, &pr)
		time.Sleep(10 * time.Millisecond)
	}
	if took := time.Since(start); !errors.Is(err, errBlocked) || took < blockLong {
		t.Errorf("a task polling with clock_nanosleep: %v after %v, want errBlocked after %v", err, took, blockLong)
	}
}

// Another traced task in a timed sleep may wake the one waited for (a
// process of the child's own that sleeps while the child waits for it):
// no cut before blockLong.
func TestGiveWayOtherSleepsTimed(t *testing.T) {
	f := newFakeProcs(t)
	f.activity = map[int]activity{
		10: {state: 'S', ran: 5, syscall: 61},  // wait4
		11: {state: 't', ran: 7, syscall: -1},  // held
		12: {state: 'S', ran: 3, syscall: 230}, // clock_nanosleep
	}
	s := newSession(Config{CPU: -1}, f)
	mm := &addrSpace{arch: arch.AMD64}
	for _, pid := range []int{10, 11, 12} {
		s.byPID[pid] = &task{pid: pid, state: taskFollowed, proc: &process{tgid: pid, mm: mm}}
	}
	s.postponed[11] = ptrace.Stop{PID: 11}
	var pr blockProbe
	var err error
	for start := time.Now(); time.Since(start) < 3*blockQuiet && err == nil; time.Sleep(10 * time.Millisecond) {
		_, err = s.giveWay(10, &pr)
	}
	if err != nil {
		t.Errorf("another task in clock_nanosleep: %v, want no cut before %v", err, blockLong)
	}
}

// A task asleep in a read (numbered in its own ABI) of a descriptor the
// world feeds — a terminal or a device, a pipe a process vtrace does not
// trace holds open for writing — can wake without the traced program: no
// cut before blockLong. A pipe whose only writers are traced (the held
// task among them), a socket whose peer is closed, and a read's number in
// the other ABI are cut as before.
func TestGiveWayReadFed(t *testing.T) {
	const outsider = 99
	for _, c := range []struct {
		what string
		a    *arch.Arch
		nr   int
		fd   fakeFd
		fed  bool
	}{
		{"terminal", arch.AMD64, 0, fakeFd{kind: fdDevice}, true},
		{"pipe fed from outside", arch.AMD64, 0, fakeFd{kind: fdPipe, writers: []int{11, outsider}}, true},
		{"readv, pipe fed from outside", arch.AMD64, 19, fakeFd{kind: fdPipe, writers: []int{outsider}}, true},
		{"i386 read, pipe fed from outside", arch.I386, 3, fakeFd{kind: fdPipe, writers: []int{outsider}}, true},
		{"pipe the held task writes", arch.AMD64, 0, fakeFd{kind: fdPipe, writers: []int{10, 11}}, false},
		{"pipe no one writes", arch.AMD64, 0, fakeFd{kind: fdPipe}, false},
		{"socket whose peer is closed", arch.AMD64, 0, fakeFd{kind: fdUnknown}, false},
		{"i386's 0 is restart_syscall", arch.I386, 0, fakeFd{kind: fdDevice}, false},
		{"amd64's 3 is close", arch.AMD64, 3, fakeFd{kind: fdDevice}, false},
	} {
		err := heldWait(t, c.a, activity{state: 'S', ran: 5, syscall: c.nr, args: [6]uint64{7}},
			map[[2]int]fakeFd{{10, 7}: c.fd})
		if cut := errors.Is(err, errBlocked); cut == c.fed {
			t.Errorf("%s: cut %v (%v), want a cut: %v", c.what, cut, err, !c.fed)
		}
	}
}

// /proc/PID/syscall now and then says "running" of a task asleep for
// seconds (sysRunning; TestStoriesGiveWay/stdinheld and sleepgrand were cut
// so in 1 of ~100 runs: the child's read, the grandchild's timed sleep
// were taken for no system call). A task that has not run since a look
// that caught its system call is in that call still; one never caught is
// not known to be blocked for good before blockLong.
func TestGiveWaySyscallNotCaught(t *testing.T) {
	run := func(acts []map[int]activity, fds map[[2]int]fakeFd, d time.Duration) (time.Duration, error) {
		f := newFakeProcs(t)
		f.fds = fds
		s := newSession(Config{CPU: -1}, f)
		mm := &addrSpace{arch: arch.AMD64}
		for pid := range acts[0] {
			s.byPID[pid] = &task{pid: pid, state: taskFollowed, proc: &process{tgid: pid, mm: mm}}
		}
		s.postponed[11] = ptrace.Stop{PID: 11}
		var pr blockProbe
		var err error
		start := time.Now()
		for i := 0; time.Since(start) < d && err == nil; i++ {
			f.activity = acts[min(i, len(acts)-1)]
			_, err = s.giveWay(10, &pr)
			time.Sleep(5 * time.Millisecond)
		}
		return time.Since(start), err
	}
	held := activity{state: 't', ran: 7, syscall: -1}
	notCaught := activity{state: 'S', ran: 3, syscall: sysRunning}
	// another task in clock_nanosleep, not caught after the first looks
	sleeper := []map[int]activity{
		{10: {state: 'S', ran: 5, syscall: 61}, 11: held, 12: {state: 'S', ran: 3, syscall: 230}},
		{10: {state: 'S', ran: 5, syscall: 61}, 11: held, 12: {state: 'S', ran: 3, syscall: 230}},
	}
	for range 100 {
		sleeper = append(sleeper, map[int]activity{10: {state: 'S', ran: 5, syscall: 61}, 11: held, 12: notCaught})
	}
	if took, err := run(sleeper, nil, 4*blockQuiet); err != nil {
		t.Errorf("another task in a timed sleep, its system call not caught later: %v after %v, want no cut", err, took)
	}
	// the waited task reads a terminal, not caught after the first looks
	reader := []map[int]activity{{10: {state: 'S', ran: 5, syscall: 0, args: [6]uint64{7}}, 11: held}}
	for range 100 {
		reader = append(reader, map[int]activity{10: {state: 'S', ran: 5, syscall: sysRunning}, 11: held})
	}
	if took, err := run(reader, map[[2]int]fakeFd{{10, 7}: {kind: fdDevice}}, 4*blockQuiet); err != nil {
		t.Errorf("a read of a terminal, its system call not caught later: %v after %v, want no cut", err, took)
	}
	// never caught, nothing else runs: cut, but not before blockLong
	never := []map[int]activity{{10: {state: 'S', ran: 5, syscall: sysRunning}, 11: held}}
	if took, err := run(never, nil, blockLong+time.Second); !errors.Is(err, errBlocked) || took < blockLong {
		t.Errorf("a sleep never caught: %v after %v, want errBlocked after %v", err, took, blockLong)
	}
}

// A task asleep waiting for input on several descriptors — poll, ppoll,
// select, pselect6, epoll_wait, in either ABI — or receiving from a
// socket (i386's through socketcall) can wake without the traced program
// when one of the descriptors it waits to read is fed from outside: no cut
// before blockLong. Descriptors it waits to write to, negative ones, and
// sets it cannot be read are not counted.
func TestGiveWayWaitFed(t *testing.T) {
	const outsider = 99
	const buf = 0x5000
	fed := map[[2]int]fakeFd{
		{10, 3}: {kind: fdPipe, writers: []int{11}},       // written by the held task only
		{10, 7}: {kind: fdDevice},                         // a terminal
		{10, 8}: {kind: fdPipe, writers: []int{outsider}}, // a connected socket whose peer is outside
		{10, 5}: {epoll: []int{3, 7}},
		{10, 6}: {epoll: []int{3}},
	}
	pollfd := func(fd int32, events uint16) []byte {
		b := binary.LittleEndian.AppendUint32(nil, uint32(fd))
		return binary.LittleEndian.AppendUint32(b, uint32(events))
	}
	cat := func(bs ...[]byte) []byte { return slices.Concat(bs...) }
	for _, c := range []struct {
		what string
		a    *arch.Arch
		nr   int
		args [6]uint64
		mem  []byte // at buf
		fed  bool
	}{
		{"poll, a terminal among its inputs", arch.AMD64, 7, [6]uint64{buf, 2}, cat(pollfd(3, 1), pollfd(7, 1)), true},
		{"poll, the held task's pipe only", arch.AMD64, 7, [6]uint64{buf, 1}, pollfd(3, 1), false},
		{"poll, the terminal for output only", arch.AMD64, 7, [6]uint64{buf, 2}, cat(pollfd(3, 1), pollfd(7, 4)), false},
		{"poll, a negative descriptor", arch.AMD64, 7, [6]uint64{buf, 1}, pollfd(-7, 1), false},
		{"poll, its set unreadable", arch.AMD64, 7, [6]uint64{buf + 0x100000, 2}, cat(pollfd(3, 1), pollfd(7, 1)), false},
		{"i386 ppoll_time64, the socket", arch.I386, 414, [6]uint64{buf, 1}, pollfd(8, 0x40), true},
		{"select, the terminal in its read set", arch.AMD64, 23, [6]uint64{8, buf}, []byte{0x80}, true},
		{"select, the held task's pipe in its read set", arch.AMD64, 23, [6]uint64{8, buf}, []byte{0x08}, false},
		{"select, no read set", arch.AMD64, 23, [6]uint64{8, 0}, []byte{0x80}, false},
		{"i386 _newselect, the terminal", arch.I386, 142, [6]uint64{8, buf}, []byte{0x80}, true},
		// past the descriptors looked at: not known, taken for fed
		{"poll, the terminal past the 64th entry", arch.AMD64, 7, [6]uint64{buf, 100}, cat(slices.Repeat(pollfd(3, 1), 80), pollfd(7, 1), slices.Repeat(pollfd(-1, 0), 19)), true},
		{"select, the terminal past descriptor 1023", arch.AMD64, 23, [6]uint64{1101, buf}, append(make([]byte, 137), 0x10), true},
		{"select, 65 descriptors not known (9-73): the last not looked at", arch.AMD64, 23, [6]uint64{74, buf}, []byte{0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x03}, true},
		{"epoll_wait, the terminal added", arch.AMD64, 232, [6]uint64{5}, nil, true},
		{"epoll_pwait, the held task's pipe only", arch.AMD64, 281, [6]uint64{6}, nil, false},
		{"recvfrom, the socket", arch.AMD64, 45, [6]uint64{8}, nil, true},
		{"recvmsg, the held task's pipe", arch.AMD64, 47, [6]uint64{3}, nil, false},
		{"i386 socketcall recv, the socket", arch.I386, 102, [6]uint64{10, buf}, binary.LittleEndian.AppendUint32(nil, 8), true},
		{"i386 socketcall send: no wait for input", arch.I386, 102, [6]uint64{9, buf}, binary.LittleEndian.AppendUint32(nil, 8), false},
	} {
		mem := &fakeImage{regions: []*fakeRegion{{start: buf, data: append(c.mem, make([]byte, 64)...)}}}
		err := heldWaitMem(t, c.a, activity{state: 'S', ran: 5, syscall: c.nr, args: c.args}, fed, mem)
		if cut := errors.Is(err, errBlocked); cut == c.fed {
			t.Errorf("%s: cut %v (%v), want a cut: %v", c.what, cut, err, !c.fed)
		}
	}
}

// FdWriters over the real /proc: a pipe's writers are the processes that
// hold its write end (this one, then none once it is closed; a FIFO
// likewise); /dev/null is a device; a socketpair end's are those that
// hold the other end (none once it is closed); a TCP socket is the
// world's. EpollFds lists what an epoll descriptor watches.
func TestFdWritersLive(t *testing.T) {
	var l livePtrace
	me := os.Getpid()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if kind, ws := l.FdWriters(me, int(r.Fd())); kind != fdPipe || !slices.Contains(ws, me) {
		t.Errorf("pipe with its write end open here: %v %v, want a pipe written by %d", kind, ws, me)
	}
	w.Close()
	if kind, ws := l.FdWriters(me, int(r.Fd())); kind != fdPipe || slices.Contains(ws, me) {
		t.Errorf("pipe with its write end closed: %v %v, want a pipe with no writer here", kind, ws)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	fr, err := os.OpenFile(fifo, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	fw, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	if kind, ws := l.FdWriters(me, int(fr.Fd())); kind != fdPipe || !slices.Contains(ws, me) {
		t.Errorf("FIFO open for writing here: %v %v", kind, ws)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if kind, _ := l.FdWriters(me, int(null.Fd())); kind != fdDevice {
		t.Errorf("/dev/null: %v, want a device", kind)
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sp[0])
	if kind, ws := l.FdWriters(me, sp[0]); kind != fdPipe || !slices.Contains(ws, me) {
		t.Errorf("socketpair end whose peer is open here: %v %v, want a socket written by %d", kind, ws, me)
	}
	unix.Close(sp[1])
	if kind, ws := l.FdWriters(me, sp[0]); kind == fdPipe && slices.Contains(ws, me) || kind == fdDevice {
		t.Errorf("socketpair end whose peer is closed: %v %v, want no writer", kind, ws)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tf, err := tcp.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()
	if kind, _ := l.FdWriters(me, int(tf.Fd())); kind != fdDevice {
		t.Errorf("a TCP socket: %v, want the world's (a device)", kind)
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, int(r.Fd()), &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		t.Fatal(err)
	}
	if fds := l.EpollFds(me, ep); !slices.Equal(fds, []int{int(r.Fd())}) {
		t.Errorf("epoll watching a pipe (%d): %v", r.Fd(), fds)
	}
	if kind, _ := l.FdWriters(me, 12345); kind != fdUnknown {
		t.Errorf("a closed descriptor: %v, want not known", kind)
	}
}

// A wake command the tracer's wait4(-1) reaps is forgotten there, its
// descriptor released: a story blocked for minutes starts one a second,
// and each was kept until the end of the run (752 descriptors after 12
// minutes).
func TestWakeReapedReleased(t *testing.T) {
	f := newFakeProcs(t)
	s := newSession(Config{CPU: -1, WakeCommand: []string{"/bin/true"}}, f)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := fds()
	for i := 0; i < 20; i++ {
		if !s.wakeTracer() {
			t.Fatal("the wake command did not start")
		}
		s.stopMu.Lock()
		p := s.wakes[len(s.wakes)-1]
		s.stopMu.Unlock()
		var ws unix.WaitStatus
		if _, err := unix.Wait4(p.Pid, &ws, 0, nil); err != nil { // the tracer's wait4(-1)
			t.Fatal(err)
		}
		s.dispatch(ptrace.Stop{PID: p.Pid, Status: ws})
	}
	if n := len(s.wakes); n != 0 {
		t.Errorf("%d wake commands still kept after their exits were dispatched", n)
	}
	if after := fds(); after > before {
		t.Errorf("%d descriptors open after 20 wakes, %d before", after, before)
	}
	s.reapWakes() // nothing left: returns at once
}
