package event

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Signal names in the log (exit.signal, child_end.signal): the C library's
// for the classic signals (SIGSEGV); for the real-time ones, which it does
// not name, SIGRTMIN+N counted from glibc's SIGRTMIN (34), as bash's
// `kill -l` and strace write them; the kernel's own 32 and 33, which glibc
// keeps for itself, are SIG32 and SIG33.

// sigRTMin is glibc's SIGRTMIN: the first real-time signal a program can use.
const sigRTMin = 34

// SignalName names signal n.
func SignalName(n int) string {
	if name := unix.SignalName(unix.Signal(n)); name != "" {
		return name
	}
	switch {
	case n >= sigRTMin && n <= 64:
		if n == sigRTMin {
			return "SIGRTMIN"
		}
		return "SIGRTMIN+" + strconv.Itoa(n-sigRTMin)
	case n > 0 && n <= 64:
		return "SIG" + strconv.Itoa(n)
	}
	return "signal " + strconv.Itoa(n)
}

// SignalNum is the number of a signal named by SignalName (0 if unknown).
func SignalNum(name string) int {
	if n := unix.SignalNum(name); n != 0 {
		return int(n)
	}
	if name == "SIGRTMIN" {
		return sigRTMin
	}
	if rest, ok := strings.CutPrefix(name, "SIGRTMIN+"); ok {
		if k, err := strconv.Atoi(rest); err == nil && k >= 0 && sigRTMin+k <= 64 {
			return sigRTMin + k
		}
	}
	if rest, ok := strings.CutPrefix(name, "SIG"); ok {
		if k, err := strconv.Atoi(rest); err == nil && k > 0 && k <= 64 {
			return k
		}
	}
	return 0
}
