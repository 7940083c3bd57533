package unwind

import (
	"testing"

	"github.com/vtrace/vtrace/tracer/internal/testcache"
)

// The tests run with the symbol index in a directory of their own.
func TestMain(m *testing.M) { testcache.Main(m) }
