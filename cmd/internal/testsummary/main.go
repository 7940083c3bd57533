// Command testsummary reads `go test -json` (test2json) on stdin and prints
// what a person needs from a test run: each package's result line, the
// whole output of every failed test, and, at the end, every skipped test
// with the reason it gave — so that a skip is seen, not buried in -v
// output. It exits 1 when a test or a package failed (or the input was not
// test2json), 0 otherwise. `make test` pipes the suite through it.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// testEvent is one line of test2json.
type testEvent struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

type skip struct {
	name, reason string
}

func main() {
	os.Exit(summarize(os.Stdin, os.Stdout))
}

func summarize(in io.Reader, out io.Writer) int {
	outputs := map[string][]string{} // package/test → its output lines
	var skips []skip
	failed := false
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var ev testEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			// Not test2json (a build error printed by go itself).
			fmt.Fprintln(out, sc.Text())
			failed = true
			continue
		}
		key := ev.Package + " " + ev.Test
		switch ev.Action {
		case "output", "build-output":
			if ev.Test == "" {
				// The package's own lines: ok/FAIL/? and anything printed
				// outside a test (a panic, a build failure).
				line := strings.TrimRight(ev.Output, "\n")
				if !strings.HasPrefix(line, "=== ") && !strings.HasPrefix(line, "PASS") && line != "" {
					fmt.Fprintln(out, line)
				}
				continue
			}
			outputs[key] = append(outputs[key], ev.Output)
		case "fail", "build-fail":
			failed = true
			if ev.Test != "" {
				fmt.Fprintf(out, "--- FAIL: %s (%s, %.2fs)\n", ev.Test, ev.Package, ev.Elapsed)
				for _, l := range outputs[key] {
					if !strings.HasPrefix(l, "=== ") {
						fmt.Fprint(out, "    "+strings.TrimLeft(l, " "))
					}
				}
			}
			delete(outputs, key)
		case "skip":
			if ev.Test != "" {
				skips = append(skips, skip{ev.Package + "." + ev.Test, skipReason(outputs[key])})
			}
			delete(outputs, key)
		case "pass":
			delete(outputs, key)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(out, "testsummary: %v\n", err)
		failed = true
	}
	sort.Slice(skips, func(i, j int) bool { return skips[i].name < skips[j].name })
	fmt.Fprintf(out, "\n%d test(s) skipped", len(skips))
	if len(skips) > 0 {
		fmt.Fprint(out, ":")
	}
	fmt.Fprintln(out)
	for _, s := range skips {
		fmt.Fprintf(out, "  %s: %s\n", s.name, s.reason)
	}
	if failed {
		fmt.Fprintln(out, "FAIL")
		return 1
	}
	return 0
}

// skipReason is what a skipped test said: its output without the
// framework's own lines.
func skipReason(lines []string) string {
	var said []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		said = append(said, t)
	}
	if len(said) == 0 {
		return "(no reason given)"
	}
	return strings.Join(said, " / ")
}
