package expect

import "strings"

// What today's engine does not tell yet. Kept apart from the expectations
// (For), which are the truth: this is a status, measured, and meant to
// shrink. Each entry is a case, the builds where its row fails today (or
// "*": every build it is built in), and the fix it waits for. Measured with
// `go run ./cmd/vtrace-matrix -i386 native` on vtrace 43da3b8 (twice: the
// same rows failed both times). When a fix lands, its rows pass, the matrix
// fails them as "as expected although marked pending", and the entry goes.
type pendingRow struct {
	builds string // space-separated builds, or "*"
	why    string
}

// A row that fails for a fix not made yet gets an entry here, with the
// builds and the fix it waits for.
var pendingToday = map[string][]pendingRow{}

// pending returns the fix c's row in build waits for, or "".
func pending(c Case, build string) string {
	for _, p := range pendingToday[c.Name()] {
		if p.builds == "*" || strings.Contains(" "+p.builds+" ", " "+build+" ") {
			return p.why
		}
	}
	return ""
}

// Checks outside the matrix (cmd/vtrace/realbugs_test.go), by name, that
// today's engine fails (measured on 43da3b8 like the rows above). None
// today: each one's fix has landed.
var pendingTests = map[string]string{}

// PendingTest returns the fix the named check outside the matrix waits
// for, or "" when today's engine meets it.
func PendingTest(name string) string { return pendingTests[name] }
