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
var pendingToday = map[string][]pendingRow{
	// Measured on 4a81c2a (h-realtests): violation (child_returned_past_frame,
	// child_called_exit) in all 14 builds, fast and --step.
	"clonevforkcopy": {{builds: "*", why: "a CLONE_VFORK child without CLONE_VM is judged as if it shared the parent's memory: " +
		"the kernel raises PTRACE_EVENT_VFORK for CLONE_VFORK whatever CLONE_VM says (kernel_clone), and " +
		"tracer/story.go begin gives the child the parent's address space (c.proc.mm = st.mm) while " +
		"tracer/capture.go capture decodes the clone flags for the log only; the story needs to know the child " +
		"has a copy (no CLONE_VM in clone's or clone3's flags) and not apply vfork's rules to it"}},
	// Measured on db685f0 (h-realtests): clean in all 14 builds.
	"vforkerrno read": {{builds: "*", why: "errno the child changed is never followed into the parent: " +
		"tracer/memory.go emitGlobalDiff puts only words that are not libc bookkeeping (libc == \"\") into " +
		"m.poisoned, so watchGlobalReads never looks for main's read of errno (global_write libc \"errno\", 9 → 2). " +
		"Poisoning errno words too finds it (14 builds, both modes) but makes `vforkerrno open` warn in fast mode " +
		"(14 builds): the parent's own open() at full speed stores ENOENT over the child's ENOENT unseen; " +
		"the fix needs the parent's stores to errno inside calls (a write watchpoint, or stepping)"}},
}

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
