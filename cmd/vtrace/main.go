// Command vtrace runs a program under ptrace, follows every vfork, and shows
// how a child that breaks vfork's rules corrupts its parent. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer"
)

func main() {
	if os.Getenv("VTRACE_WAKE") != "" {
		return // tracer.Config.WakeCommand: exit at once
	}
	// A write to a closed pipe must fail with EPIPE (a log on a stdout
	// whose reader is gone: "log write failed", exit 74), not kill vtrace
	// with SIGPIPE as Go does for fds 1 and 2 by default. A handler, not
	// SIG_IGN: execve resets handlers, so the traced program still gets
	// the default SIGPIPE it would get without vtrace.
	signal.Notify(make(chan os.Signal, 1), unix.SIGPIPE)
	// What vtrace was started with ignored stays ignored, for vtrace and
	// for the program (entry.go); this undoes the Notify above for an
	// ignored SIGPIPE.
	keepIgnored()
	// SIGINT, SIGTERM and SIGHUP stop the run (the program is killed, the
	// log closed with its verdict) from the moment vtrace starts, not only
	// once the engine watches for them; the exit status then names the
	// signal (128+N).
	//
	// One that vtrace was started with ignored stays ignored
	// (tracer.StopSignals; keepIgnored).
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	if stop := tracer.StopSignals(); len(stop) > 0 {
		signal.Notify(sigs, stop...)
	}
	go func() {
		sig := <-sigs
		cancel(interrupted{sig.(unix.Signal)})
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if !silent(err) {
		fmt.Fprintf(os.Stderr, "vtrace: %v\n", err)
	}
	if ctx.Err() == nil {
		// The program's symbol index entry, if it is still being built
		// or written, is stored for the next run (not when a signal
		// stopped the run).
		tracer.WaitIndexWrites(time.Second)
	}
	stopProfile()
	os.Exit(exitCode(err))
}

// stopProfile ends the CPU profile of a build with -tags vtraceprof
// (cpuprofile.go); a no-op otherwise.
var stopProfile = func() {}
