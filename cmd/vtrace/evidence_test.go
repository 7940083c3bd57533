package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vtrace/vtrace/tracer/event"
)

// The documents `vtrace run --sarif/--html` and `vtrace report` write,
// checked by the programs that read them: Microsoft's SARIF multitool, and
// a real headless Chromium.

var (
	multitoolOnce sync.Once
	multitoolPath string
	multitoolSkip string
	multitoolErr  error
)

// multitoolVersion is the @microsoft/sarif-multitool the tests validate
// with (scripts/install-deps.sh installs the same into build/tools).
const multitoolVersion = "5.7.0"

// sarifMultitool returns the SARIF multitool, installing it with npm into
// build/tools/sarif-multitool on first use. It skips the test only when
// npm is not installed or the npm registry cannot be reached.
func sarifMultitool(t *testing.T) string {
	t.Helper()
	multitoolOnce.Do(func() {
		dir := filepath.Join(repoRoot(), "build", "tools", "sarif-multitool")
		// The native program, not node_modules/.bin's wrapper: the wrapper
		// runs it through a shell, where --level "Error;Warning" splits.
		native := filepath.Join(dir, "node_modules", "@microsoft", "sarif-multitool-linux", "Sarif.Multitool")
		if _, err := os.Stat(native); err != nil {
			npm, err := exec.LookPath("npm")
			if err != nil {
				multitoolSkip = "npm is not installed (scripts/install-deps.sh installs it): cannot install @microsoft/sarif-multitool"
				return
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				multitoolErr = err
				return
			}
			cmd := exec.Command(npm, "install", "--no-audit", "--no-fund", "--prefix", dir, "@microsoft/sarif-multitool@"+multitoolVersion)
			out, err := cmd.CombinedOutput()
			if err != nil {
				if regexp.MustCompile(`ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH|ECONNRESET`).Match(out) {
					multitoolSkip = "the npm registry is unreachable: " + strings.TrimSpace(string(out))
					return
				}
				multitoolErr = fmt.Errorf("npm install @microsoft/sarif-multitool: %v\n%s", err, out)
				return
			}
		}
		// npm may not run the package's postinstall (chmod u+x) script.
		fi, err := os.Stat(native)
		if err != nil {
			multitoolErr = fmt.Errorf("npm installed @microsoft/sarif-multitool without its Linux program: %w", err)
			return
		}
		if fi.Mode()&0o100 == 0 {
			_ = os.Chmod(native, fi.Mode()|0o100)
		}
		multitoolPath = native
	})
	if multitoolSkip != "" {
		t.Skip(multitoolSkip)
	}
	if multitoolErr != nil {
		t.Fatal(multitoolErr)
	}
	return multitoolPath
}

// validateSARIF runs `sarif-multitool validate` and returns every result
// it reports (schema errors are JSON1xxx, rule findings SARIFnnnn/GHnnnn),
// read from its own SARIF output: it exits 0 whatever it finds.
func validateSARIF(t *testing.T, file string) []string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "validation.sarif")
	cmd := exec.Command(sarifMultitool(t), "validate", "--level", "Error;Warning;Note", "-o", out, file)
	console, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sarif-multitool validate: %v\n%s", err, console)
	}
	t.Logf("sarif-multitool validate %s:\n%s", filepath.Base(file), console)
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("sarif-multitool wrote no output: %v\n%s", err, console)
	}
	var log struct {
		Runs []struct {
			Results []struct {
				RuleID  string `json:"ruleId"`
				Level   string `json:"level"`
				Message struct {
					Arguments []string `json:"arguments"`
				} `json:"message"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(raw, &log); err != nil {
		t.Fatalf("multitool output: %v", err)
	}
	var found []string
	for _, r := range log.Runs {
		for _, res := range r.Results {
			found = append(found, fmt.Sprintf("%s %s %v", res.Level, res.RuleID, res.Message.Arguments))
		}
	}
	return found
}

// sarifDoc is the part of a SARIF log GitHub code scanning requires.
type sarifDoc struct {
	Version string `json:"version"`
	Schema  string `json:"$schema"`
	Runs    []struct {
		Tool struct {
			Driver struct {
				Name  string `json:"name"`
				Rules []struct {
					ID               string                 `json:"id"`
					ShortDescription struct{ Text string }  `json:"shortDescription"`
					FullDescription  struct{ Text string }  `json:"fullDescription"`
					Help             struct{ Text string }  `json:"help"`
					Default          struct{ Level string } `json:"defaultConfiguration"`
				} `json:"rules"`
			} `json:"driver"`
		} `json:"tool"`
		Results []sarifRes `json:"results"`
	} `json:"runs"`
}

type sarifLoc struct {
	ID       int `json:"id"`
	Physical *struct {
		Artifact struct {
			URI       string `json:"uri"`
			URIBaseID string `json:"uriBaseId"`
		} `json:"artifactLocation"`
		Region *struct {
			StartLine int `json:"startLine"`
		} `json:"region"`
	} `json:"physicalLocation"`
	Message *struct{ Text string } `json:"message"`
}

type sarifRes struct {
	RuleID       string                `json:"ruleId"`
	RuleIndex    int                   `json:"ruleIndex"`
	Level        string                `json:"level"`
	Message      struct{ Text string } `json:"message"`
	Locations    []sarifLoc            `json:"locations"`
	Related      []sarifLoc            `json:"relatedLocations"`
	Fingerprints map[string]string     `json:"partialFingerprints"`
	CodeFlows    []struct {
		ThreadFlows []struct {
			Locations []struct {
				Location sarifLoc `json:"location"`
			} `json:"locations"`
		} `json:"threadFlows"`
	} `json:"codeFlows"`
}

// checkGitHubFields checks what GitHub code scanning requires of an
// uploaded SARIF file (docs: "SARIF support for code scanning"): version
// 2.1.0; a tool name; rules with an id and their descriptions and help;
// results with a ruleId, a message text, exactly one location with a
// repository-relative uri and region.startLine, and partialFingerprints.
func checkGitHubFields(t *testing.T, d *sarifDoc) {
	t.Helper()
	if d.Version != "2.1.0" || d.Schema == "" || len(d.Runs) != 1 {
		t.Fatalf("version %q, $schema %q, %d runs", d.Version, d.Schema, len(d.Runs))
	}
	run := d.Runs[0]
	if run.Tool.Driver.Name != "vtrace" {
		t.Errorf("tool.driver.name %q", run.Tool.Driver.Name)
	}
	ids := map[string]int{}
	for i, r := range run.Tool.Driver.Rules {
		ids[r.ID] = i
		if r.ID == "" || r.ShortDescription.Text == "" || r.FullDescription.Text == "" || r.Help.Text == "" ||
			(r.Default.Level != "error" && r.Default.Level != "warning") {
			t.Errorf("rule %d incomplete: %+v", i, r)
		}
	}
	for i, res := range run.Results {
		if idx, ok := ids[res.RuleID]; !ok || idx != res.RuleIndex {
			t.Errorf("result %d: ruleId %q ruleIndex %d not a rule", i, res.RuleID, res.RuleIndex)
		}
		if res.Message.Text == "" || len(res.Fingerprints) == 0 || len(res.Locations) != 1 {
			t.Errorf("result %d: message %q, %d fingerprints, %d locations", i, res.Message.Text, len(res.Fingerprints), len(res.Locations))
			continue
		}
		p := res.Locations[0].Physical
		if p == nil || p.Region == nil || p.Region.StartLine < 1 || p.Artifact.URI == "" ||
			strings.HasPrefix(p.Artifact.URI, "/") || strings.Contains(p.Artifact.URI, "://") {
			t.Errorf("result %d: location is not a repository-relative file and line: %+v", i, p)
		}
		for _, r := range res.Related {
			if r.ID < 1 || r.Physical == nil || r.Message == nil {
				t.Errorf("result %d: related location without id, place or message: %+v", i, r)
			}
		}
	}
}

func readSARIF(t *testing.T, path string) *sarifDoc {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d sarifDoc
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("SARIF is not JSON: %v", err)
	}
	return &d
}

// The seed's SARIF, written by `vtrace run --sarif`: valid for the
// multitool (no errors, no warnings), with GitHub's required fields, one
// result per finding kind at the call site badvfork.c:28 (targets/
// badvfork.c in the repository), the writers at main's printf and exit
// calls (lines 22, 23) among its related locations, a code flow from the
// call to the landing, and the same fingerprints in a second run under
// ASLR.
func TestSARIF(t *testing.T) {
	requirePtrace(t)
	dir := t.TempDir()
	var docs []*sarifDoc
	for i := 0; i < 2; i++ {
		file := filepath.Join(dir, fmt.Sprintf("run%d.sarif", i))
		_, _, code := liveRun(t, "--sarif", file, "--", targetPath(t, "gcc-O0", "badvfork"))
		if code != exitViolation {
			t.Fatalf("exit %d", code)
		}
		if i == 0 {
			if found := validateSARIF(t, file); len(found) > 0 {
				t.Errorf("sarif-multitool validate found:\n%s", strings.Join(found, "\n"))
			}
		}
		docs = append(docs, readSARIF(t, file))
	}
	d := docs[0]
	checkGitHubFields(t, d)
	// The seed's first story's reasons, each one result at the call site.
	want := []string{"child_returned_past_frame", "parent_consumed_clobbered_slot", "child_clobbered_slot", "child_called_exit"}
	res := d.Runs[0].Results
	if len(res) != len(want) {
		t.Fatalf("%d results, want %d (one per finding kind at the one call site)", len(res), len(want))
	}
	for i, r := range res {
		if r.RuleID != want[i] {
			t.Errorf("result %d: rule %s, want %s", i, r.RuleID, want[i])
		}
		p := r.Locations[0].Physical
		if p.Artifact.URI != "targets/badvfork.c" || p.Region.StartLine != 28 || p.Artifact.URIBaseID != "%SRCROOT%" {
			t.Errorf("result %d at %s:%d (base %s), want targets/badvfork.c:28", i, p.Artifact.URI, p.Region.StartLine, p.Artifact.URIBaseID)
		}
		if fp, fp2 := r.Fingerprints, docs[1].Runs[0].Results[i].Fingerprints; fmt.Sprint(fp) != fmt.Sprint(fp2) {
			t.Errorf("result %d: fingerprints differ between two runs: %v %v", i, fp, fp2)
		}
	}
	lines := map[int]bool{}
	for _, r := range res[0].Related {
		if r.Physical.Region != nil {
			lines[r.Physical.Region.StartLine] = true
		}
	}
	if !lines[22] || !lines[23] {
		t.Errorf("related locations miss the writers at badvfork.c:22 (printf) and :23 (exit): %v", lines)
	}
	flows := res[0].CodeFlows
	if len(flows) != 1 || len(flows[0].ThreadFlows) != 1 {
		t.Fatalf("code flows: %+v", flows)
	}
	steps := flows[0].ThreadFlows[0].Locations
	first, last := steps[0].Location, steps[len(steps)-1].Location
	if first.Physical.Region.StartLine != 28 || !strings.Contains(last.Message.Text, "the parent lands at createproc instead of main+18") {
		t.Errorf("code flow from %+v to %+v", first.Message, last.Message)
	}

	// A negative control: the validator does report a broken file.
	raw, _ := os.ReadFile(filepath.Join(dir, "run0.sarif"))
	broken := filepath.Join(dir, "broken.sarif")
	_ = os.WriteFile(broken, bytes.Replace(raw, []byte(`"name": "vtrace",`), nil, 1), 0o644)
	if found := validateSARIF(t, broken); len(found) == 0 {
		t.Errorf("the multitool found nothing wrong with a tool without its required name: it does not validate")
	}
}

// chromium returns the browser the HTML test drives, or skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (scripts/install-deps.sh installs the Debian package)")
	return ""
}

// The seed's stack picture, loaded in a real headless Chromium: the page
// fetches nothing; story 1 (the violation; story 2 is clean and not drawn)
// shows every slot the child wrote highlighted, each with an arrow to a
// writer box, each slot the parent consumed with an arrow to the landing,
// which names createproc and main+18; the timeline runs from the vfork to
// the landing. A screenshot is saved as build/test-artifacts/html-seed.png.
func TestHTMLInChromium(t *testing.T) {
	requirePtrace(t)
	browser := chromium(t)
	page := filepath.Join(t.TempDir(), "seed.html")
	log, _, _ := liveRun(t, "--html", page, "--", targetPath(t, "gcc-O0", "badvfork"))
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := event.ReadLog(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	written, consumed := map[string]bool{}, map[string]bool{}
	for _, ev := range evs {
		switch e := ev.(type) {
		case *event.SlotWrite:
			if e.Vfork == 1 {
				written[e.Slot.String()] = true
			}
		case *event.ParentConsume:
			if e.Vfork == 1 {
				consumed[e.Addr.String()] = true
			}
		}
	}
	if len(written) == 0 || len(consumed) == 0 {
		t.Fatalf("the seed's first story has no slot writes or consumes: %v %v", written, consumed)
	}

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()

	type domFacts struct {
		Stories   int                 `json:"stories"`
		Slots     []string            `json:"slots"`
		Changed   []string            `json:"changed"`
		Consumed  []string            `json:"consumed"`
		Writers   []string            `json:"writers"`
		Arrows    []map[string]string `json:"arrows"`
		Landing   string              `json:"landing"`
		Timeline  []string            `json:"timeline"`
		Fill      map[string]string   `json:"fill"`
		Resources int                 `json:"resources"`
		Visible   bool                `json:"visible"`
	}
	// The first action starts the browser and must not carry a timeout
	// (chromedp ties the browser's life to that context); the later ones do.
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+page)); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 60*time.Second)
	defer tcancel()
	if err := chromedp.Do(tctx, chromedp.WaitVisible(chromedp.CSS(`#story-1 svg.stack`))); err != nil {
		t.Fatalf("chromium: the picture never showed: %v", err)
	}
	dom, err := chromedp.Run(tctx, chromedp.Evaluate[domFacts](`(() => {
			const s = document.querySelector('#story-1');
			const q = (sel) => Array.from(s.querySelectorAll(sel));
			const fill = {};
			for (const g of q('g.slot')) fill[g.dataset.addr] = getComputedStyle(g.querySelector('rect.cell')).fill;
			const box = s.querySelector('svg.stack').getBoundingClientRect();
			return {
				stories: document.querySelectorAll('section.story').length,
				slots: q('g.slot').map(g => g.dataset.addr),
				changed: q('g.slot.changed').map(g => g.dataset.addr),
				consumed: q('g.slot.consumed').map(g => g.dataset.addr),
				writers: q('g.writer').map(g => g.id),
				arrows: q('path.arrow').map(p => ({cls: p.getAttribute('class'), from: p.dataset.from, to: p.dataset.to})),
				landing: (s.querySelector('.landing-text') || {}).textContent || '',
				timeline: q('ol.timeline li').map(li => li.className + ': ' + li.textContent),
				fill: fill,
				resources: performance.getEntriesByType('resource').length,
				visible: box.width > 800 && box.height > 200,
			};
		})()`))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	shot, err := chromedp.Run(tctx, chromedp.FullScreenshot(100)) // quality 100: a PNG
	if err != nil {
		t.Fatalf("chromium screenshot: %v", err)
	}
	artefact := filepath.Join(repoRoot(), "build", "test-artifacts", "html-seed.png")
	if err := os.MkdirAll(filepath.Dir(artefact), 0o755); err == nil {
		if err := os.WriteFile(artefact, shot, 0o644); err != nil {
			t.Errorf("screenshot: %v", err)
		}
		t.Logf("screenshot: %s (%d bytes)", artefact, len(shot))
	}

	if dom.Stories != 1 || !dom.Visible || dom.Resources != 0 {
		t.Errorf("%d stories drawn (want 1: the clean story 2 is not), picture visible %v, %d resources fetched (want 0)",
			dom.Stories, dom.Visible, dom.Resources)
	}
	has := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	writers := map[string]bool{}
	for _, w := range dom.Writers {
		writers[w] = true
	}
	for a := range written {
		if !has(dom.Changed, a) {
			t.Errorf("slot %s written by the child is not highlighted (changed: %v)", a, dom.Changed)
		}
		if dom.Fill[a] == dom.Fill[dom.Slots[len(dom.Slots)-1]] {
			t.Errorf("slot %s is drawn like the unchanged outermost slot (fill %s)", a, dom.Fill[a])
		}
		arrow := false
		for _, ar := range dom.Arrows {
			arrow = arrow || (ar["from"] == a && strings.Contains(ar["cls"], "writer") && writers[ar["to"]])
		}
		if !arrow {
			t.Errorf("no arrow from slot %s to a writer: %v", a, dom.Arrows)
		}
	}
	for a := range consumed {
		arrow := false
		for _, ar := range dom.Arrows {
			arrow = arrow || (ar["from"] == a && strings.Contains(ar["cls"], "landing"))
		}
		if !has(dom.Consumed, a) || !arrow {
			t.Errorf("consumed slot %s: marked %v, arrow to the landing %v", a, has(dom.Consumed, a), arrow)
		}
	}
	if !strings.Contains(dom.Landing, "createproc") || !strings.Contains(dom.Landing, "main+18") {
		t.Errorf("landing %q does not name createproc and main+18", dom.Landing)
	}
	if n := len(dom.Timeline); n < 4 || !strings.HasPrefix(dom.Timeline[0], "vfork:") || !strings.HasPrefix(dom.Timeline[n-1], "landing:") {
		t.Errorf("timeline: %q", dom.Timeline)
	}
}
