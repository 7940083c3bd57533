package event

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestLogFormatDocumented checks docs/log-format.md against the event types:
// every event has a section, and its table lists exactly the JSON fields the
// type writes (the common v/event/t/pid aside). The log is a contract for
// scripts; this keeps the document from drifting.
func TestLogFormatDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/log-format.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string][]string{}
	var cur string
	row := regexp.MustCompile(`^\| ([a-z_]+) \|`)
	for _, line := range strings.Split(string(doc), "\n") {
		if name, ok := strings.CutPrefix(line, "### "); ok {
			cur = strings.TrimSpace(name)
			sections[cur] = []string{}
			continue
		}
		if m := row.FindStringSubmatch(line); m != nil && cur != "" && m[1] != "field" {
			sections[cur] = append(sections[cur], m[1])
		}
	}
	for _, name := range Names() {
		documented, ok := sections[name]
		if !ok {
			t.Errorf("event %q has no section in docs/log-format.md", name)
			continue
		}
		fields := jsonFields(reflect.TypeOf(New(name)).Elem())
		sort.Strings(documented)
		if !reflect.DeepEqual(fields, documented) {
			t.Errorf("event %q: type writes %v, docs list %v", name, fields, documented)
		}
		delete(sections, name)
	}
	for name := range sections {
		t.Errorf("docs/log-format.md documents %q, which is not an event", name)
	}
}

func jsonFields(typ reflect.Type) []string {
	var out []string
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if f.Anonymous { // Header: common to all events
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
