package tracer

import (
	"context"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
	"github.com/vtrace/vtrace/tracer/internal/ptrace"
)

// TestTimeoutAtVforkEvent: the run is stopped (--timeout) just as vtrace
// takes the parent's vfork event stop — the race behind the mutation
// test's hang. The SIGKILL moves the parent into its exit stop, where the
// event message is its exit status (9), not the child's pid; the child's
// first stop may have come before the parent's event (it is not yet a
// registered task then). The run must end — the fake fails a Wait that
// nothing could ever answer — with every task reaped and no signal sent
// to a process vtrace does not trace (it used to wait for "pid 9" for
// ever, and kill it).
func TestTimeoutAtVforkEvent(t *testing.T) {
	for _, c := range []struct {
		name                 string
		childFirst, atEvtMsg bool
	}{
		{"child's stop first, stopped as the event is taken", true, false},
		{"parent's event first, stopped as the event is taken", false, false},
		{"child's stop first, stopped before the event message is read", true, true},
		{"parent's event first, stopped before the event message is read", false, true},
	} {
		childFirst := c.childFirst
		t.Run(c.name, func(t *testing.T) {
			a := newAsm(0x400000)
			a.fn("main").movEAX(58).syscall().jnzParent("parent").exitWith(0)
			a.label("parent").exitWith(0)
			img := a.image(t)
			img.path = "/fake/vforking"

			f := newFakeProcs(t)
			f.execImage = trueImage
			f.childStopFirst, f.killToExit = childFirst, true
			pid := f.spawn(img, 0x400000)
			rec := &recorder{}
			s := newSession(Config{Path: img.path, Argv: []string{img.path}, Watchpoints: "off", CPU: -1, Sink: rec}, f)
			if c.atEvtMsg {
				f.onEventMsg = func(p int) {
					if p == pid && !s.stopping() {
						s.stopRun("timeout", "5s") // what watchStops does at --timeout
					}
				}
			} else {
				f.onWait = func(st ptrace.Stop) {
					if st.PID == pid && st.Event() == ptrace.EventVfork && !s.stopping() {
						s.stopRun("timeout", "5s")
					}
				}
			}
			res, err := s.follow(context.Background(), pid)
			if err != nil {
				t.Fatalf("follow: %v", err)
			}
			for p, tk := range f.tasks {
				if !tk.dead {
					t.Errorf("task %d left alive", p)
				}
			}
			if len(s.byPID) != 0 || len(s.unknown) != 0 {
				t.Errorf("tasks still registered: %d known, %d unknown", len(s.byPID), len(s.unknown))
			}
			if len(f.foreignKills) != 0 {
				t.Errorf("signals sent to pids vtrace does not trace: %v", f.foreignKills)
			}
			if res.Incomplete != "timeout" {
				t.Errorf("incomplete %q, want timeout", res.Incomplete)
			}
			if b := all[*event.Budget](rec); len(b) != 1 || b[0].Budget != "timeout" {
				t.Errorf("budget events %v, want one timeout", b)
			}
			for _, v := range all[*event.Vfork](rec) {
				if v.Child != f.nextPID {
					t.Errorf("vfork event names child %d, want %d", v.Child, f.nextPID)
				}
			}
		})
	}
}
