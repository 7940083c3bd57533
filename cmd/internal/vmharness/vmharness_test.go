package vmharness

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/tracer/event"
)

// The harness's own parsing, without a VM: a results stream with CRLF line
// ends, a damaged job and one cut short by the VM's end.
func TestVMHarnessParse(t *testing.T) {
	pack := func(files map[string]string) string {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		for name, data := range files {
			_ = tw.WriteHeader(&tar.Header{Name: "./" + name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
			_, _ = tw.Write([]byte(data))
		}
		_ = tw.Close()
		_ = zw.Close()
		enc := base64.StdEncoding.EncodeToString(buf.Bytes())
		var lines []string
		for len(enc) > 76 {
			lines, enc = append(lines, enc[:76]), enc[76:]
		}
		return strings.Join(append(lines, enc), "\r\n")
	}
	log := `{"v":1,"event":"start","t":1,"pid":9,"argv":["x"],"mode":"fast","vtrace":"t","cpu":0,"watchpoints":"auto"}` + "\n" +
		`{"v":1,"event":"verdict","t":2,"pid":9,"verdict":"clean","vforks":1,"violations":0,"warnings":0,"explanation":"e"}` + "\n"
	stream := strings.Join([]string{
		"noise before",
		marker + "READY 6.1.0-56-amd64 | console=ttyS0",
		marker + "BEGIN 000",
		pack(map[string]string{"rc": "0\n", "stderr": "report\n", "log.jsonl": log, "uptime.start": "3.50\n", "uptime.end": "4.25\n",
			"procs": "1 (init) S 0\n7 (sh) S 1\n8 (goodvfork_exit) Z 1\n"}),
		marker + "END 000",
		marker + "BEGIN 001",
		"!!!not base64",
		marker + "END 001",
		// vtrace passes on a program's death by SIGKILL (137) with a
		// complete log; the guard's SIGKILL of vtrace leaves no verdict.
		marker + "BEGIN 003",
		pack(map[string]string{"rc": "137\n", "log.jsonl": log}),
		marker + "END 003",
		marker + "BEGIN 004",
		pack(map[string]string{"rc": "137\n", "log.jsonl": strings.SplitAfter(log, "\n")[0]}),
		marker + "END 004",
		marker + "BEGIN 002",
		pack(map[string]string{"rc": "0\n"})[:20],
	}, "\r\n")
	b := &Boot{}
	blobs := parseResults(b, []byte(stream))
	if b.Ready != "6.1.0-56-amd64 | console=ttyS0" || b.Done {
		t.Errorf("ready %q done %v", b.Ready, b.Done)
	}
	j := &Job{Build: "gcc-O0", Name: "goodvfork_exit"}
	r := decodeRun(j, blobs["000"])
	if r.Err != "" || r.Exit != 0 || r.Stderr != "report\n" || len(r.Events) != 2 ||
		r.Events[1].(*event.Verdict).Verdict != "clean" || r.Seconds != 0.75 || r.InitAt != 3.5 {
		t.Errorf("job 000: %+v (err %q)", r, r.Err)
	}
	if len(r.Leftovers) != 1 || !strings.Contains(r.Leftovers[0], "goodvfork_exit") {
		t.Errorf("leftovers %q, want the zombie target", r.Leftovers)
	}
	if r := decodeRun(j, blobs["001"]); !strings.HasPrefix(r.Err, "damaged result") {
		t.Errorf("job 001: err %q, want a damaged result", r.Err)
	}
	if r := decodeRun(j, blobs["003"]); r.Err != "" || r.Exit != 137 || len(r.Events) != 2 {
		t.Errorf("job 003 (program killed by SIGKILL): exit %d, err %q, %d events; want 137, no error, the log", r.Exit, r.Err, len(r.Events))
	}
	if r := decodeRun(j, blobs["004"]); !strings.HasPrefix(r.Err, "vtrace killed by the VM's") {
		t.Errorf("job 004 (vtrace killed, log cut): err %q, want the guard named", r.Err)
	}
	if r := decodeRun(j, blobs["002"]); !strings.HasPrefix(r.Err, "no result") {
		t.Errorf("job 002 (cut short): err %q, want no result", r.Err)
	}
}
