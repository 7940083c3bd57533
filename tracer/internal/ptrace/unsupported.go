//go:build !(linux && amd64)

// vtrace traces Linux x86-64 processes: ptrace(2), the amd64 (and, for
// 32-bit tracees, i386) register layouts, x86 debug registers. It builds
// only with GOOS=linux GOARCH=amd64; the undefined name below is the
// build error that says so.

package ptrace

const _ = vtrace_builds_only_for_GOOS_linux_GOARCH_amd64
