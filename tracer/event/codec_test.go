package event

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// Every list field of every event is written as [] when empty: a clean
// story has no reasons, a frame may save no register, a child may change
// no word. Before this, Go wrote those as null, where the schema and the
// docs promise a list.
func TestEmptyListsAreLists(t *testing.T) {
	for _, name := range Names() {
		ev := New(name)
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if bytes.Contains(b, []byte("null")) {
			t.Errorf("%s encodes a nil field as null: %s", name, b)
		}
	}
	v := New("vfork").(*Vfork)
	v.Frames = []Frame{{Index: 0}}
	b, _ := json.Marshal(v)
	if !bytes.Contains(b, []byte(`"frames":[{"index":0,"pc":"0x0","cfa":"0x0","ret":"0x0","saved":[],"method":""}]`)) {
		t.Errorf("frame without saved registers: %s", b)
	}
}

// The list-encoding copies keep every field and its order, decode back to
// the same event, and leave the outer encoder's HTML escaping alone: the
// log keeps `<printf@plt>` as it is.
func TestListEncodingRoundTrip(t *testing.T) {
	slot := Addr(0x7ffc10)
	in := &Vfork{Header: Header{V: Version, Event: "vfork", T: 5, PID: 7}, Vfork: 1, Child: 8, Syscall: "vfork", SharedStack: true,
		Site: Insn{PID: 7, PC: 0x401000, Insn: "call   401030 <vfork@plt>"},
		Frames: []Frame{{Index: 1, PC: 0x401005, RetSlot: &slot, Ret: 0x401100,
			Saved: []SavedSlot{{Reg: "rbp", Slot: 0x7ffc08, Value: 0x7ffc30}}, Method: MethodCFI}},
		Mechanism: MechDepth}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(in); err != nil {
		t.Fatal(err)
	}
	line := buf.Bytes()
	if !strings.Contains(string(line), "<vfork@plt>") {
		t.Errorf("HTML-escaped by the list encoding: %s", line)
	}
	if !strings.HasPrefix(string(line), `{"v":1,"event":"vfork","t":5,"pid":7,"vfork":1,"child":8,`) {
		t.Errorf("field order changed: %s", line)
	}
	out, err := Decode(line)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip:\n in %+v\nout %+v", in, out)
	}
}

// LogReader reads a log to its end; a last line without its newline that
// is not a whole event (a writer killed mid-line) ends the log and is
// reported, while a bad line with its newline is an error.
func TestLogReader(t *testing.T) {
	start := `{"v":1,"event":"start","t":1,"pid":5,"argv":["x"],"mode":"fast","vtrace":"t","cpu":-1,"watchpoints":"off"}` + "\n"
	exit := `{"v":1,"event":"exit","t":2,"pid":5,"status":"exited","code":0,"main":true}`
	read := func(log string) (n int, truncated string, err error) {
		lr := NewLogReader(strings.NewReader(log))
		for {
			_, err := lr.Next()
			if err != nil {
				if err.Error() == "EOF" {
					err = nil
				}
				return n, lr.Truncated, err
			}
			n++
		}
	}
	for _, c := range []struct {
		name, log string
		n         int
		truncated bool
		err       bool
	}{
		{"whole", start + exit + "\n", 2, false, false},
		{"last newline missing, line whole", start + exit, 2, false, false},
		{"cut in the last line", start + exit[:30], 1, true, false},
		{"bad line inside", start + exit[:30] + "\n" + exit + "\n", 1, false, true},
		{"blank lines", start + "\n\n" + exit + "\n", 2, false, false},
	} {
		n, tr, err := read(c.log)
		if n != c.n || (tr != "") != c.truncated || (err != nil) != c.err {
			t.Errorf("%s: %d events, truncated %q, err %v", c.name, n, tr, err)
		}
	}
}
