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
// type writes (the common v/event/t/pid aside), with the optional ones (those
// the type may omit: tagged omitempty) and only those marked "optional". The
// log is a contract for scripts; this keeps the document from drifting.
func TestLogFormatDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/log-format.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string][]string{}
	optional := map[string]map[string]bool{}
	var cur string
	row := regexp.MustCompile(`^\| ([a-z_]+) \|.*\| (.*) \|$`)
	for _, line := range strings.Split(string(doc), "\n") {
		if name, ok := strings.CutPrefix(line, "### "); ok {
			cur = strings.TrimSpace(name)
			sections[cur] = []string{}
			optional[cur] = map[string]bool{}
			continue
		}
		if m := row.FindStringSubmatch(line); m != nil && cur != "" && m[1] != "field" {
			sections[cur] = append(sections[cur], m[1])
			optional[cur][m[1]] = strings.HasPrefix(m[2], "optional")
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
		for f, omits := range omitted(reflect.TypeOf(New(name)).Elem()) {
			if doc, ok := optional[name][f]; ok && doc != omits {
				t.Errorf("event %q field %q: the type omits it when empty: %v; the docs say optional: %v", name, f, omits, doc)
			}
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

// omitted maps each JSON field of an event type to whether the encoder may
// leave it out (omitempty): what the docs and the schema call optional.
func omitted(typ reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if f.Anonymous {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		out[name] = strings.Contains(opts, "omitempty")
	}
	return out
}
