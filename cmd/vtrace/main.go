// Command vtrace runs a program under ptrace, follows every vfork, and shows
// how a child that breaks vfork's rules corrupts its parent. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if os.Getenv("VTRACE_WAKE") != "" {
		return // tracer.Config.WakeCommand: exit at once
	}
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	code := exitCode(err)
	if err != nil && code != exitViolation && code != exitIncomplete {
		fmt.Fprintf(os.Stderr, "vtrace: %v\n", err)
	}
	stopProfile()
	os.Exit(code)
}

// stopProfile ends the CPU profile of a build with -tags vtraceprof
// (cpuprofile.go); a no-op otherwise.
var stopProfile = func() {}
