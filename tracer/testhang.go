package tracer

import (
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// hangPoint is VTRACE_TEST_HANG, a hook for tests only (the watchdog's,
// cmd/vtrace TestWatchdog; docs/reliability.md): "vfork" makes the tracer
// thread hang at the start of the first story, where the parent's symbols
// are loaded — as a parser that never returns on a crafted binary would.
// It sleeps for ever; "vfork:spin" loops on the CPU instead. Unset (every
// real run), hangAt does nothing.
var hangPoint = os.Getenv("VTRACE_TEST_HANG")

// hangAt hangs the calling thread for ever if VTRACE_TEST_HANG names point.
func hangAt(point string) {
	if hangPoint == "" {
		return
	}
	name, how, _ := strings.Cut(hangPoint, ":")
	if name != point {
		return
	}
	if how == "spin" {
		for n := uint64(0); ; n++ {
			spinSink.Store(n) // a loop the compiler cannot drop
		}
	}
	for {
		time.Sleep(time.Hour)
	}
}

var spinSink atomic.Uint64
