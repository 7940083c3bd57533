package main

import (
	"testing"

	"github.com/vtrace/vtrace/targets/expect"
)

// TestMatrix traces every target case in every build (fast mode, as a user
// runs it) and checks the verdict and key facts targets/expect gives for
// it; `make matrix` prints the same as a table. i386 builds run here when
// the kernel runs i386 code; where it cannot, the VM tests cover them.
func TestMatrix(t *testing.T) {
	requirePtrace(t)
	runMatrix(t, expect.Builds, trace)
}

// runMatrix traces every case of builds with tr and checks what
// targets/expect gives for it.
func runMatrix(t *testing.T, builds []string, tr func(t *testing.T, args ...string) *traced) {
	for _, build := range builds {
		t.Run(build, func(t *testing.T) {
			t.Parallel()
			if expect.I386(build) {
				requireI386(t)
			}
			for _, c := range expect.Cases {
				if !expect.Built(c.Target, build) {
					continue // targets.mk has no C++ compiler for this build
				}
				t.Run(c.Name(), func(t *testing.T) {
					args := append(append(expect.RunFlags(c), targetPath(t, build, c.Target)), c.Args...)
					r := tr(t, args...)
					e := expect.For(c, build)
					checkExpect(t, e, e.Check(expect.Summarize(r.events)))
					if e.Why != "" && t.Failed() {
						t.Logf("this build's story differs because: %s", e.Why)
					}
					r.assertNoneLeft(t)
				})
			}
		})
	}
}
