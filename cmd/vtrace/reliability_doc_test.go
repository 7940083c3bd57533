package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReliabilityDocCitesRealTests: every test and fuzz target that
// docs/reliability.md cites exists, so the table cannot promise a check
// that is gone. A subtest's name is checked part by part: each part (its
// underscores spaces again) must be written in a test file or the targets'
// expectations.
func TestReliabilityDocCitesRealTests(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot(), "docs", "reliability.md"))
	if err != nil {
		t.Fatal(err)
	}
	var sources strings.Builder
	for _, root := range []string{"cmd", "tracer", "targets/expect", "internal"} {
		_ = filepath.Walk(filepath.Join(repoRoot(), root), func(p string, fi os.FileInfo, err error) error {
			if err == nil && strings.HasSuffix(p, ".go") {
				b, _ := os.ReadFile(p)
				sources.Write(b)
			}
			return nil
		})
	}
	src := sources.String()
	names := regexp.MustCompile("`((?:Test|Fuzz)[A-Za-z0-9]+)((?:/[^`]+)?)`").FindAllStringSubmatch(string(doc), -1)
	if len(names) < 30 {
		t.Fatalf("docs/reliability.md cites %d tests: the table is gone?", len(names))
	}
	for _, m := range names {
		if !strings.Contains(src, "func "+m[1]+"(") {
			t.Errorf("docs/reliability.md cites %s, which no test file defines", m[0])
			continue
		}
		for _, part := range strings.Split(strings.TrimPrefix(m[2], "/"), "/") {
			if part != "" && !strings.Contains(src, strings.ReplaceAll(part, "_", " ")) && !strings.Contains(src, part) {
				t.Errorf("docs/reliability.md cites %s: no test names a subtest %q", m[0], part)
			}
		}
	}
}
