package tracer

import (
	"os"
	"testing"
)

// The tests run with the symbol index (internal/symbols, index.go) in a
// directory of their own: never the user's cache, and cold at the start
// of every run.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vtrace-test-cache-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CACHE_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
