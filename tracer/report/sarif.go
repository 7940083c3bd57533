package report

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/vtrace/vtrace/tracer/event"
)

// SARIF renders a run as SARIF 2.1.0 for code scanning (GitHub's among
// others): one rule per finding kind (each event.Reason), and one result
// per call site and finding kind — not per story. A loop that vforks
// 10,000 times has one bug at one line: code scanning would otherwise show
// 10,000 identical alerts at that line (it keeps results apart by rule,
// location and fingerprint, all the same here). Each result is placed at
// the vfork call's source line, tells the first story that showed the
// finding (relatedLocations: the child's writers and returns, the
// parent's landing; a code flow from the call through the child's writes
// to the landing), and counts the others.
type SARIF struct {
	runDocument
	opts     SARIFOptions
	sites    Sites
	findings map[findingKey]*sarifFinding
	order    []findingKey
	execs    map[string]string // module base name → path it was exec'd from
}

// SARIFOptions place results in the repository.
type SARIFOptions struct {
	// Source maps a source file name as the log has it (DWARF's name,
	// "badvfork.c") to its path relative to the repository root
	// ("targets/badvfork.c"); "" or a nil Source keeps the name.
	Source func(file string) string
	// SourceRoot, when set, is the repository's absolute path: the
	// %SRCROOT% base of every source uri.
	SourceRoot string
}

type findingKey struct {
	site   string
	reason event.Reason
}

type sarifFinding struct {
	site  *Site
	first *Story
	count int
}

// NewSARIF returns a SARIF renderer.
func NewSARIF(opts SARIFOptions) *SARIF {
	s := &SARIF{opts: opts, findings: map[findingKey]*sarifFinding{}, execs: map[string]string{}}
	s.runDocument = newRunDocument(s.story)
	return s
}

func (s *SARIF) story(st *Story) {
	site := s.sites.Add(st)
	if st.Verdict == nil {
		return
	}
	for _, r := range st.Verdict.Reasons {
		k := findingKey{site.Key, r}
		f := s.findings[k]
		if f == nil {
			f = &sarifFinding{site: site, first: st}
			s.findings[k] = f
			s.order = append(s.order, k)
		}
		f.count++
	}
}

// Emit adds one event.
func (s *SARIF) Emit(ev event.Event) error {
	if e, ok := ev.(*event.Exec); ok {
		s.execs[path.Base(e.Path)] = e.Path
	}
	return s.runDocument.Emit(ev)
}

// Rule is one kind of finding: a SARIF reportingDescriptor, and what the
// HTML and the docs say about it.
type Rule struct {
	Reason event.Reason
	Name   string // PascalCase, as SARIF tools show it
	Short  string
	Full   string
	Help   string
}

// Rules are every finding kind, in the order of event.Reason's constants.
var Rules = []Rule{
	{event.ReasonReturnedPast, "VforkChildReturnedPastFrame",
		"The vfork child returned from the function that called vfork()",
		"While the parent is suspended in vfork(), the child runs on the parent's stack. When it returns from the function that called vfork(), it leaves a frame the parent will return through again: every call the child makes next overwrites the parent's return addresses and saved registers.",
		"After vfork() the child may only call execve() or _exit(). Make the child call one of them in the function that called vfork() (and never return from it), or use posix_spawn()."},
	{event.ReasonConsumedSlot, "VforkParentConsumedClobberedSlot",
		"The parent used a return address or saved register the vfork child overwrote",
		"When the parent woke from vfork(), it returned through, or restored a register from, a stack slot the child had changed: its control flow or its registers now hold the child's values (a return into the wrong place, a wild pointer).",
		"The child wrote into the parent's live frames. Keep the child's work to execve() or _exit() in the function that called vfork(), with no calls that push onto the shared stack, or use posix_spawn()."},
	{event.ReasonClobberedSlot, "VforkChildClobberedSlot",
		"The vfork child overwrote a return address or saved register of a live parent frame",
		"The child changed a return-address or saved-register slot of a frame the parent still has. This time the parent did not use it before vtrace stopped following it, but the stack it returns through is corrupt.",
		"Find the writer named in the result: a call or a push in the child on the parent's stack. The child should call only execve() or _exit()."},
	{event.ReasonReadChildWrite, "VforkParentReadChildWrite",
		"The parent read a stack word the vfork child changed",
		"The child wrote a local of a frame it shares with the parent, and the parent read that word after it woke: it sees the child's value, not its own.",
		"Do not let the vfork child write the parent's locals; pass what the child needs in registers or read-only data, or use posix_spawn()."},
	{event.ReasonCalledExit, "VforkChildCalledExit",
		"The vfork child called exit() instead of _exit()",
		"exit() runs atexit handlers and flushes stdio buffers, in memory the child shares with the parent: buffered output is written twice and handlers run in the wrong process.",
		"End a vfork child with _exit() (or execve()), never exit()."},
	{event.ReasonWroteGlobal, "VforkChildWroteGlobal",
		"The vfork child wrote a global variable",
		"The vfork child shares all of the parent's memory: a global it writes is the parent's global.",
		"Do not write globals in a vfork child; call only execve() or _exit()."},
	{event.ReasonReadGlobal, "VforkParentReadChildGlobal",
		"The parent read a global variable the vfork child wrote",
		"The parent read a global after the vfork child changed it: it sees the child's value.",
		"Do not write globals in a vfork child; call only execve() or _exit()."},
}

// sarif* are the parts of a SARIF 2.1.0 log vtrace writes, in the field
// order the specification lists them.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool               sarifTool                   `json:"tool"`
	Invocations        []sarifInvocation           `json:"invocations"`
	OriginalURIBaseIDs map[string]sarifArtifactLoc `json:"originalUriBaseIds,omitempty"`
	Results            []sarifResult               `json:"results"`
	Properties         map[string]any              `json:"properties,omitempty"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	ShortDescription     sarifText      `json:"shortDescription"`
	FullDescription      sarifText      `json:"fullDescription"`
	Help                 sarifText      `json:"help"`
	DefaultConfiguration sarifRuleConf  `json:"defaultConfiguration"`
	Properties           map[string]any `json:"properties"`
}

type sarifRuleConf struct {
	Level string `json:"level"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool                `json:"executionSuccessful"`
	Notifications       []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level   string    `json:"level"`
	Message sarifText `json:"message"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Level               string            `json:"level"`
	Message             sarifText         `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
	RelatedLocations    []sarifLocation   `json:"relatedLocations,omitempty"`
	CodeFlows           []sarifCodeFlow   `json:"codeFlows,omitempty"`
	Properties          map[string]any    `json:"properties,omitempty"`
}

type sarifLocation struct {
	ID               *int                   `json:"id,omitempty"`
	PhysicalLocation *sarifPhysical         `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogicalLocation `json:"logicalLocations,omitempty"`
	Message          *sarifText             `json:"message,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifactLoc `json:"artifactLocation"`
	Region           *sarifRegion     `json:"region,omitempty"`
	Address          *sarifAddress    `json:"address,omitempty"`
}

type sarifArtifactLoc struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId,omitempty"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifAddress struct {
	AbsoluteAddress    uint64 `json:"absoluteAddress"`
	FullyQualifiedName string `json:"fullyQualifiedName,omitempty"`
	Kind               string `json:"kind"`
}

type sarifLogicalLocation struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

type sarifCodeFlow struct {
	Message     *sarifText        `json:"message,omitempty"`
	ThreadFlows []sarifThreadFlow `json:"threadFlows"`
}

type sarifThreadFlow struct {
	Locations []sarifFlowLocation `json:"locations"`
}

type sarifFlowLocation struct {
	Location       sarifLocation `json:"location"`
	NestingLevel   int           `json:"nestingLevel"`
	ExecutionOrder int           `json:"executionOrder"`
}

// srcRoot is the uriBaseId of every source location.
const srcRoot = "%SRCROOT%"

// Render writes the SARIF log.
func (s *SARIF) Render(w io.Writer) error {
	run := s.run()
	for _, st := range s.unfinished() {
		if st.Vfork != nil {
			s.story(st)
		}
	}
	driver := sarifDriver{Name: "vtrace", InformationURI: "https://github.com/vtrace/vtrace"}
	if run.Start != nil {
		driver.Version = run.Start.Version
	}
	ruleIndex := map[event.Reason]int{}
	for i, r := range Rules {
		ruleIndex[r.Reason] = i
		level := sarifLevel(r.Reason.Severity())
		driver.Rules = append(driver.Rules, sarifRule{
			ID: string(r.Reason), Name: r.Name,
			ShortDescription: sarifText{Text: r.Short}, FullDescription: sarifText{Text: r.Full},
			Help:                 sarifText{Text: r.Help, Markdown: r.Help},
			DefaultConfiguration: sarifRuleConf{Level: level},
			Properties: map[string]any{"tags": []string{"vfork", "memory-safety", "correctness"},
				"precision": "very-high", "problem.severity": severityWord(r.Reason.Severity())},
		})
	}
	out := sarifRun{Tool: sarifTool{Driver: driver}, Results: []sarifResult{}}
	inv := sarifInvocation{ExecutionSuccessful: run.Verdict != nil}
	for _, n := range run.Notes {
		inv.Notifications = append(inv.Notifications, sarifNotification{Level: "note", Message: sarifText{Text: n.Msg}})
	}
	if run.Verdict == nil {
		inv.Notifications = append(inv.Notifications, sarifNotification{Level: "warning",
			Message: sarifText{Text: "the log ends before the run's verdict: the run did not finish"}})
	}
	out.Invocations = []sarifInvocation{inv}
	if s.opts.SourceRoot != "" {
		out.OriginalURIBaseIDs = map[string]sarifArtifactLoc{srcRoot: {URI: fileURI(s.opts.SourceRoot)}}
	}
	props := map[string]any{}
	if run.Start != nil {
		props["argv"] = run.Start.Argv
		props["mode"] = run.Start.Mode
	}
	if v := run.Verdict; v != nil {
		props["verdict"], props["vforks"] = v.Verdict, v.Vforks
		if v.Incomplete != "" {
			props["incomplete"] = v.Incomplete
		}
	}
	out.Properties = props
	order := append([]findingKey(nil), s.order...)
	sort.SliceStable(order, func(i, j int) bool { return ruleIndex[order[i].reason] < ruleIndex[order[j].reason] })
	for _, k := range order {
		f := s.findings[k]
		out.Results = append(out.Results, s.result(f, k.reason, ruleIndex[k.reason]))
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{out}}); err != nil {
		return fmt.Errorf("sarif: %w", err)
	}
	return nil
}

func sarifLevel(j event.Judgement) string {
	if j == event.Violation {
		return "error"
	}
	return "warning"
}

func severityWord(j event.Judgement) string {
	if j == event.Violation {
		return "error"
	}
	return "warning"
}

// result is one finding at one call site.
func (s *SARIF) result(f *sarifFinding, r event.Reason, index int) sarifResult {
	st := f.first
	msg := Finding(st, r)
	msg = strings.ToUpper(msg[:1]) + msg[1:]
	msg += fmt.Sprintf(" (vfork #%d", st.ID())
	if f.site.Count > 1 {
		msg += fmt.Sprintf("; %d of the %d vforks at this call site", f.count, f.site.Count)
	}
	msg += ")."
	call := f.site.Call
	site := s.location(call.Sym, call.PC, "")
	res := sarifResult{
		RuleID: string(r), RuleIndex: index, Level: sarifLevel(r.Severity()),
		Message:   sarifText{Text: msg},
		Locations: []sarifLocation{site},
		PartialFingerprints: map[string]string{
			"vtraceCallSite/v1": fingerprint(string(r), moduleOf(call.Sym), f.site.Key),
		},
		Properties: map[string]any{"callSite": f.site.Key, "stories": f.count, "vforksAtCallSite": f.site.Count},
	}
	related, flow := s.storyFlow(st, site)
	res.RelatedLocations = related
	if len(flow) > 1 {
		res.CodeFlows = []sarifCodeFlow{{Message: &sarifText{Text: fmt.Sprintf("vfork #%d: from the call to where the parent landed", st.ID())},
			ThreadFlows: []sarifThreadFlow{{Locations: flow}}}}
	}
	return res
}

// storyFlow lays out a story: its related locations (the child's returns
// and writers, the parent's reads and landing) and the code flow from the
// vfork call through them.
func (s *SARIF) storyFlow(st *Story, call sarifLocation) ([]sarifLocation, []sarifFlowLocation) {
	var related []sarifLocation
	var flow []sarifFlowLocation
	step := func(loc sarifLocation, nesting int) {
		flow = append(flow, sarifFlowLocation{Location: loc, NestingLevel: nesting, ExecutionOrder: len(flow) + 1})
	}
	relate := func(loc sarifLocation) {
		if loc.PhysicalLocation == nil || len(related) >= 10 {
			return
		}
		id := len(related) + 1
		loc.ID = &id
		related = append(related, loc)
	}
	callMsg := call
	callMsg.Message = &sarifText{Text: "vfork() is called here: the parent is suspended while the child runs on its stack"}
	step(callMsg, 0)

	// The child's returns and slot writes, in the order they happened.
	type childStep struct {
		t   int64
		loc sarifLocation
	}
	var steps []childStep
	for _, r := range st.Returns {
		steps = append(steps, childStep{r.T, s.location(r.By.Sym, r.By.PC,
			fmt.Sprintf("the child returns from %s into %s", Fn(r.FrameFn), Val(r.To, r.ToSym)))})
	}
	for _, w := range st.SlotWrites {
		in := w.By
		if in == nil {
			in = w.During
		}
		if in == nil {
			continue
		}
		steps = append(steps, childStep{w.T, s.location(in.Sym, in.PC,
			fmt.Sprintf("the child overwrites %s (%s → %s), %s", slotName(w), Val(w.Old, w.OldSym), Val(w.New, w.NewSym), writtenBy(w)))})
	}
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].t < steps[j].t })
	for i, cs := range steps {
		if i < 20 {
			step(cs.loc, 1)
		}
		relate(cs.loc)
	}
	if e := st.End; e != nil && e.PC != nil {
		step(s.location(e.Sym, *e.PC, "the child is killed by "+e.Signal+" here"), 1)
	}
	for _, c := range st.Consumes {
		what := "reads the changed word"
		switch c.Kind {
		case event.SlotRet:
			what = "returns through the overwritten return slot"
		case event.SlotSavedReg:
			what = "restores %" + c.Reg + " from the overwritten slot"
		}
		loc := s.location(c.By.Sym, c.By.PC, fmt.Sprintf("the parent %s (%s, was %s)", what, c.Value, c.Was))
		step(loc, 0)
		relate(loc)
	}
	if l := st.Landing; l != nil && l.How == event.LandRetClobbered {
		exp := "its caller"
		if l.Expected != nil {
			exp = Val(*l.Expected, l.ExpectedSym)
		}
		loc := s.location(l.Sym, l.PC, fmt.Sprintf("the parent lands at %s instead of %s", Val(l.PC, l.Sym), exp))
		step(loc, 0)
		relate(loc)
	}
	return related, flow
}

// location places a code address: at its source line when DWARF named
// one, else in its binary at its address.
func (s *SARIF) location(y *event.Sym, pc event.Addr, msg string) sarifLocation {
	var loc sarifLocation
	if msg != "" {
		loc.Message = &sarifText{Text: msg}
	}
	if y != nil && y.Sym != "" {
		loc.LogicalLocations = []sarifLogicalLocation{{Name: y.Sym, Kind: "function"}}
	}
	switch {
	case y != nil && y.File != "" && y.Line > 0:
		uri := y.File
		if s.opts.Source != nil {
			if rel := s.opts.Source(y.File); rel != "" {
				uri = rel
			}
		}
		loc.PhysicalLocation = &sarifPhysical{ArtifactLocation: sarifArtifactLoc{URI: uri, URIBaseID: srcRoot},
			Region: &sarifRegion{StartLine: y.Line}}
	case y != nil && y.Module != "":
		bin := y.Module
		if p, ok := s.execs[bin]; ok {
			bin = p
		}
		loc.PhysicalLocation = &sarifPhysical{ArtifactLocation: sarifArtifactLoc{URI: bin},
			Address: &sarifAddress{AbsoluteAddress: uint64(pc), FullyQualifiedName: y.String(), Kind: "instruction"}}
	}
	return loc
}

// fingerprint identifies a finding across runs: its kind, the binary and
// the call site as symbol+offset — no address, pid or time, so the same
// bug in the same build has the same fingerprint however ASLR placed it.
func fingerprint(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:16])
}

func moduleOf(y *event.Sym) string {
	if y == nil {
		return ""
	}
	return y.Module
}

// fileURI turns an absolute directory into a file URI ending in "/", as
// SARIF wants a uriBaseId's uri.
func fileURI(dir string) string {
	u := "file://" + path.Clean("/"+strings.ReplaceAll(dir, "\\", "/"))
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return u
}
