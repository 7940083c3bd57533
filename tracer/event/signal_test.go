package event

import "testing"

// Names as bash's `kill -l` gives them (glibc's SIGRTMIN is 34), and back.
func TestSignalNames(t *testing.T) {
	for n, want := range map[int]string{9: "SIGKILL", 11: "SIGSEGV", 32: "SIG32", 33: "SIG33", 34: "SIGRTMIN", 36: "SIGRTMIN+2", 64: "SIGRTMIN+30"} {
		if got := SignalName(n); got != want {
			t.Errorf("SignalName(%d) = %q, want %q", n, got, want)
		}
		if got := SignalNum(want); got != n {
			t.Errorf("SignalNum(%q) = %d, want %d", want, got, n)
		}
	}
	if SignalNum("SIGRTMIN+31") != 0 || SignalNum("SIGNOPE") != 0 {
		t.Error("a name no signal has must give 0")
	}
}
