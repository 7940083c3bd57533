package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:9: qemu cannot be installed here\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"--- SKIP: TestA (0.00s)\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:3: want 2, got 3\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestB","Elapsed":0.5}`,
		`{"Action":"output","Package":"p","Test":"TestC","Output":"noise\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestC"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t0.6s\n"}`,
		`{"Action":"fail","Package":"p"}`,
	}, "\n")
	var out bytes.Buffer
	if code := summarize(strings.NewReader(in), &out); code != 1 {
		t.Errorf("exit %d, want 1 (TestB failed)", code)
	}
	got := out.String()
	for _, want := range []string{
		"--- FAIL: TestB (p, 0.50s)", "want 2, got 3", "FAIL\tp\t0.6s",
		"1 test(s) skipped:", "p.TestA: a_test.go:9: qemu cannot be installed here",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "noise") {
		t.Errorf("a passing test's output was printed:\n%s", got)
	}
	out.Reset()
	if code := summarize(strings.NewReader(`{"Action":"pass","Package":"p"}`), &out); code != 0 {
		t.Errorf("a clean run exits %d", code)
	}
}
