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

// Fixes the rows wait for (issue 11, "right on real programs").
const (
	item4        = "issue 11 item 4: vzeroupper is decoded 1-2 bytes too long; the child's ret after it is never seen"
	item5        = "issue 11 item 5: leaving the frame without a ret (longjmp, C++ unwinding) is not seen"
	item10frames = "issue 11 item 10: the parent's frames at a vfork from generated code are wrongly unwound by frame pointer, or unknown without saying so"
	item11       = "issue 11 item 11: the child's return from frame 0 (syscall(), __kernel_vsyscall: a return slot on the stack) is not counted"
	rr3270       = "catalogue rr#3270: single-stepping the child's pushw/popfw kills it with SIGTRAP (on amd64 the program too); its return from hook_vfork (frame 0) is not counted; objdump's `pushw` is printed `push`"
	rr1595       = "catalogue rr#1595: clone()'s return slot, rewritten by a child whose stack lies in the parent's, is reported as a plain stack word or missed"
)

const (
	o0builds = "gcc-O0 clang-O0 gcc-O0-nopie gcc-O0-static musl-O0 gcc-O0-m32 gcc-O0-m32-static"
	o2builds = "gcc-O2 clang-O2 clang-O2-nopie gcc-O2-static musl-O2 gcc-O2-m32 gcc-O2-m32-static"
)

var pendingToday = map[string][]pendingRow{
	"rawvfork": {{"*", item11}},

	"vzeroret":     {{"*", item4}},
	"longjmpvfork": {{"*", item5}},
	"throwvfork":   {{"*", item5}},
	"jitvfork":     {{"*", item10frames}},

	"rr3270_popfw":      {{"*", rr3270}},
	"fastio1141_helper": {{o0builds, item11}},
	"rr1595_stack":      {{"*", rr1595}},
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
// today's engine fails (measured on 43da3b8 like the rows above).
const item8 = "issue 11 item 8: with watchpoints, the writer of a pushed return address is named as the instruction ending where the callee starts (a PLT entry's `jmp`), not the call"

var pendingTests = map[string]string{
	"step/vzeroret":     item4,
	"step/longjmpvfork": item5,
	"step/throwvfork":   item5,
	"hw-call-writer":    item8,
}

// PendingTest returns the fix the named check outside the matrix waits
// for, or "" when today's engine meets it.
func PendingTest(name string) string { return pendingTests[name] }
