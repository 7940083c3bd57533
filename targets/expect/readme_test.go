package expect

import (
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// targets/README.md's table of targets is written for people, but its
// "expected verdict" column must say what this package says: every case's
// target has a row, every row but stepref (not a vfork target) names a
// case's target, and the verdicts a row mentions are exactly the verdicts
// For gives its target across the builds. This package stays the one list
// of targets and their stories; the README cannot drift from it.
func TestReadmeTableMatches(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // target → expected-verdict column
	inTable := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "| target | what it shows | expected verdict |") {
			inTable = true
			continue
		}
		if !inTable {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.ReplaceAll(line, `\|`, "\x00"), "|") // an escaped pipe is no cell border
		if len(cells) < 5 || strings.HasPrefix(cells[1], "---") {
			continue
		}
		rows[strings.TrimSpace(cells[1])] = cells[3]
	}
	if len(rows) == 0 {
		t.Fatal("no table of targets found in targets/README.md")
	}
	word := regexp.MustCompile(`\b(violation|warning|clean)\b`)
	targets := map[string]bool{}
	for _, c := range Cases {
		targets[c.Target] = true
	}
	for target := range targets {
		col, ok := rows[target]
		if !ok {
			t.Errorf("targets/README.md has no row for %s", target)
			continue
		}
		var want []string
		for _, c := range Cases {
			if c.Target != target {
				continue
			}
			for _, build := range Builds {
				if v := For(c, build).Verdict; Built(target, build) && !slices.Contains(want, v) {
					want = append(want, v)
				}
			}
		}
		var said []string
		for _, w := range word.FindAllString(col, -1) {
			if !slices.Contains(said, w) {
				said = append(said, w)
			}
		}
		sort.Strings(want)
		sort.Strings(said)
		if !slices.Equal(want, said) {
			t.Errorf("targets/README.md says %s for %s (%q); targets/expect gives %v", said, target, strings.TrimSpace(col), want)
		}
	}
	for target := range rows {
		if !targets[target] && target != "stepref" {
			t.Errorf("targets/README.md has a row for %s, which is no case of targets/expect", target)
		}
	}
}
