// Package testcache runs a package's tests with the symbol index
// (internal/symbols, index.go) in a directory of their own: never the
// user's cache, and cold at the start of every run. Only tests import it.
package testcache

import (
	"os"
	"testing"
)

// Main is a TestMain: m's tests with XDG_CACHE_HOME a new temporary
// directory, removed after them.
func Main(m *testing.M) {
	dir, err := os.MkdirTemp("", "vtrace-test-cache-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CACHE_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
