package event

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/docs"
)

// The JSON Schema (docs/log.schema.json) is hand-written, so that it can
// say what types cannot (which field follows from which value); these tests
// keep it equal to the Go types in both directions: every event, every
// field of every event and of every object inside one, whether it is
// required, its JSON type, and every enumerated value.

type schemaDoc struct {
	Properties struct {
		Event struct {
			Enum []string `json:"enum"`
		} `json:"event"`
	} `json:"properties"`
	AllOf []struct {
		If struct {
			Properties struct {
				Event struct {
					Const string `json:"const"`
				} `json:"event"`
			} `json:"properties"`
		} `json:"if"`
		Then struct {
			Ref string `json:"$ref"`
		} `json:"then"`
	} `json:"allOf"`
	Defs map[string]*schemaDef `json:"$defs"`
}

type schemaDef struct {
	Ref        string                `json:"$ref"`
	Type       string                `json:"type"`
	Enum       []string              `json:"enum"`
	Const      any                   `json:"const"`
	Pattern    string                `json:"pattern"`
	AnyOf      []*schemaDef          `json:"anyOf"`
	Items      *schemaDef            `json:"items"`
	Properties map[string]*schemaDef `json:"properties"`
	Required   []string              `json:"required"`
}

func loadSchema(t *testing.T) *schemaDoc {
	t.Helper()
	var s schemaDoc
	if err := json.Unmarshal(docs.LogSchema, &s); err != nil {
		t.Fatalf("log.schema.json: %v", err)
	}
	return &s
}

// objectDefs names the schema definition of each struct type that appears
// inside an event.
var objectDefs = map[reflect.Type]string{
	reflect.TypeOf(Header{}):       "header",
	reflect.TypeOf(Sym{}):          "sym",
	reflect.TypeOf(Insn{}):         "insn",
	reflect.TypeOf(SavedSlot{}):    "saved_slot",
	reflect.TypeOf(Frame{}):        "frame",
	reflect.TypeOf(CorruptFrame{}): "corrupt_frame",
	reflect.TypeOf(Region{}):       "region",
	reflect.TypeOf(SlotState{}):    "slot_state",
	reflect.TypeOf(WordFate{}):     "word_fate",
	reflect.TypeOf(MemoryWatch{}):  "memory_watch",
	reflect.TypeOf(GlobalChange{}): "global_change",
	reflect.TypeOf(WordChange{}):   "word_change",
}

// enumDefs names the schema definition of each enumerated type (values.go).
var enumDefs = map[string]string{
	"Judgement": "judgement", "LeaveKind": "leave_kind", "Reason": "reason", "SlotKind": "slot_kind", "EndKind": "end_kind",
	"LandingKind": "landing_kind", "FoundBy": "found_by", "Mechanism": "mechanism", "UnwindMethod": "unwind_method",
	"NoteCode": "note_code", "FateKind": "fate_kind", "ChannelKind": "channel_kind",
	"MemMethod": "mem_method", "MemArea": "mem_area", "LibcUse": "libc_use",
}

func TestSchemaHasEveryEvent(t *testing.T) {
	s := loadSchema(t)
	names := Names()
	sort.Strings(names)
	enum := append([]string(nil), s.Properties.Event.Enum...)
	sort.Strings(enum)
	if !reflect.DeepEqual(names, enum) {
		t.Errorf("event kinds: code %v, schema enum %v", names, enum)
	}
	dispatched := map[string]bool{}
	for _, a := range s.AllOf {
		name := a.If.Properties.Event.Const
		if a.Then.Ref != "#/$defs/"+name {
			t.Errorf("event %q dispatches to %q", name, a.Then.Ref)
		}
		dispatched[name] = true
	}
	for _, n := range names {
		if !dispatched[n] {
			t.Errorf("event %q: no if/then in the schema's allOf", n)
		}
	}
}

func TestSchemaMatchesTypes(t *testing.T) {
	s := loadSchema(t)
	for _, name := range Names() {
		def := s.Defs[name]
		if def == nil {
			t.Errorf("event %q has no $defs entry", name)
			continue
		}
		if def.Ref != "#/$defs/header" {
			t.Errorf("event %q does not include the header", name)
		}
		checkObject(t, s, name, reflect.TypeOf(New(name)).Elem(), def)
	}
	for typ, name := range objectDefs {
		def := s.Defs[name]
		if def == nil {
			t.Errorf("type %s has no $defs %q", typ.Name(), name)
			continue
		}
		checkObject(t, s, name, typ, def)
	}
}

// checkObject compares a struct type's JSON fields with a schema object:
// the same names, required exactly when not omitempty, of the same kind.
func checkObject(t *testing.T, s *schemaDoc, where string, typ reflect.Type, def *schemaDef) {
	t.Helper()
	required := map[string]bool{}
	for _, r := range def.Required {
		required[r] = true
	}
	inCode := map[string]bool{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if f.Anonymous {
			continue // the header: its own $defs entry
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		inCode[name] = true
		prop := def.Properties[name]
		if prop == nil {
			t.Errorf("%s.%s (Go %s.%s) is not in the schema", where, name, typ.Name(), f.Name)
			continue
		}
		optional := strings.Contains(opts, "omitempty")
		if optional == required[name] {
			t.Errorf("%s.%s: Go omitempty=%v, schema required=%v (optional fields are exactly the omitempty ones)", where, name, optional, required[name])
		}
		if want, got := goKind(f.Type), schemaKind(s, prop); want != got {
			t.Errorf("%s.%s: Go type %s is %s in JSON, the schema says %s", where, name, f.Type, want, got)
		}
	}
	for name := range def.Properties {
		if !inCode[name] {
			t.Errorf("%s.%s is in the schema but %s has no such field", where, name, typ.Name())
		}
	}
	for r := range required {
		if def.Properties[r] == nil && !(typ == reflect.TypeOf(Header{})) {
			t.Errorf("%s requires %q, which it does not define", where, r)
		}
	}
}

// goKind is the JSON shape a Go field type encodes to.
func goKind(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if name, ok := objectDefs[t]; ok {
		return "object " + name
	}
	if name, ok := enumDefs[t.Name()]; ok && t.PkgPath() == reflect.TypeOf(Sym{}).PkgPath() {
		return "enum " + name
	}
	switch {
	case t == reflect.TypeOf(Addr(0)):
		return "addr"
	case t.Kind() == reflect.Slice:
		return "array of " + goKind(t.Elem())
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Bool:
		return "boolean"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "integer"
	}
	return "unknown " + t.String()
}

// schemaKind is the JSON shape a schema property allows, following $refs.
// An inline enum of strings is "string", unless it is a subset of an
// enumerated type's values (then that type's name, so that slot_write's
// kind, which can only be ret or saved_reg, still checks as a SlotKind).
func schemaKind(s *schemaDoc, p *schemaDef) string {
	if p.Ref != "" {
		name := strings.TrimPrefix(p.Ref, "#/$defs/")
		d := s.Defs[name]
		switch {
		case name == "addr":
			return "addr"
		case d != nil && d.Type == "object":
			return "object " + name
		case d != nil && d.Enum != nil && isEnumDef(name):
			return "enum " + name
		case d != nil && d.Enum != nil:
			return "string" // an enum of a plain string field (budget names)
		case d != nil:
			return schemaKind(s, d)
		}
		return "missing " + name
	}
	switch {
	case p.Type == "array" && p.Items != nil:
		return "array of " + schemaKind(s, p.Items)
	case p.Type != "":
		return p.Type
	case p.Enum != nil:
		for _, name := range enumDefs {
			if subset(p.Enum, s.Defs[name].Enum) {
				return "enum " + name
			}
		}
		return "string"
	case p.Const != nil:
		switch p.Const.(type) {
		case bool:
			return "boolean"
		case float64:
			return "integer"
		case string:
			return "string"
		}
	case p.AnyOf != nil:
		return schemaKind(s, p.AnyOf[0])
	}
	return "unknown"
}

func isEnumDef(name string) bool {
	for _, d := range enumDefs {
		if d == name {
			return true
		}
	}
	return false
}

func subset(a, b []string) bool {
	for _, x := range a {
		found := false
		for _, y := range b {
			found = found || x == y
		}
		if !found {
			return false
		}
	}
	return true
}

// Every value of every enumerated type in values.go, and no other, is in
// the schema's enum for it: a new reason, end, landing or method is added
// to both or the test fails.
func TestSchemaEnumsMatchValues(t *testing.T) {
	s := loadSchema(t)
	f, err := parser.ParseFile(token.NewFileSet(), "values.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	code := map[string][]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			id, ok := vs.Type.(*ast.Ident)
			if !ok || len(vs.Values) != 1 {
				continue
			}
			lit, ok := vs.Values[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				continue
			}
			v, _ := strconv.Unquote(lit.Value)
			code[id.Name] = append(code[id.Name], v)
		}
	}
	for typ, def := range enumDefs {
		got := append([]string(nil), s.Defs[def].Enum...)
		want := code[typ]
		sort.Strings(got)
		sort.Strings(want)
		if len(want) == 0 {
			t.Errorf("values.go declares no %s constants", typ)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: values.go has %v, the schema's %s enum %v", typ, want, def, got)
		}
	}
	for typ := range code {
		if _, ok := enumDefs[typ]; !ok {
			t.Errorf("values.go type %s has no enum in the schema (add it to enumDefs and log.schema.json)", typ)
		}
	}
}
