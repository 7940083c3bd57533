package report

import (
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// A clone(CLONE_VFORK) child without CLONE_VM (mechanism "copy") is told as
// a copy: it ran in its own memory, nothing it did could reach the parent
// — not "on the parent's stack", and no claim about slots vtrace watched.
// A parent's read of the errno the child's libc left is told too.
func TestExplainCopyAndErrno(t *testing.T) {
	code := 3
	st := &Story{
		Vfork:   &event.Vfork{Vfork: 1, Child: 42, Syscall: "clone", Flags: "CLONE_VFORK|SIGCHLD", Mechanism: event.MechCopy},
		End:     &event.ChildEnd{How: event.EndExit, Code: &code},
		Verdict: &event.VforkVerdict{Verdict: event.Clean, Reasons: []event.Reason{}},
	}
	got := Explain(st)
	for _, want := range []string{"own copy of the parent's memory", "clone without CLONE_VM", "exited with status 3", "could reach the parent"} {
		if !strings.Contains(got, want) {
			t.Errorf("copy: %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "parent's stack") || strings.Contains(got, "intact") {
		t.Errorf("copy: %q claims what was not watched", got)
	}

	errnoSym := &event.Sym{Sym: "errno", Module: "libc.so.6"}
	st = &Story{
		Vfork:        &event.Vfork{Vfork: 1, Child: 42, Syscall: "vfork", SharedStack: true, Mechanism: event.MechDepth},
		GlobalWrites: []*event.GlobalWrite{{Area: event.AreaTLS, Mapping: "[tls]", Sym: errnoSym, Libc: event.LibcErrno, Old: 9, New: 2}},
		GlobalReads: []*event.GlobalRead{{Area: event.AreaTLS, Mapping: "[tls]", Sym: errnoSym, Libc: event.LibcErrno, Value: 2, Was: 9,
			By: event.Insn{PC: 0x401000, Sym: &event.Sym{Sym: "main", Off: 116}, Insn: "mov (%rax),%ebp"}}},
		Verdict: &event.VforkVerdict{Verdict: event.Warning, Reasons: []event.Reason{event.ReasonWroteGlobal, event.ReasonReadGlobal}},
	}
	got = Explain(st)
	for _, want := range []string{"set errno", "read errno (TLS of libc.so.6) at main+116", "child's value 0x2 instead of its own 0x9"} {
		if !strings.Contains(got, want) {
			t.Errorf("errno: %q lacks %q", got, want)
		}
	}
}
