# vtrace — see README.md. `make demo` and `make test` are the two commands a
# newcomer needs; both install missing system packages first.
SHELL   := /bin/bash
BUILD   ?= build
GO      ?= go
VTRACE  := $(BUILD)/vtrace
GOFILES := $(shell find cmd tracer targets -name '*.go' -not -name '*_test.go') go.mod go.sum
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: all build deps demo test test-go test-vm lint bench matrix fuzz mutation clean
all: build

deps:
	@./scripts/install-deps.sh

build: $(VTRACE)
$(VTRACE): $(GOFILES)
	@mkdir -p $(BUILD)
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.version=$(VERSION) -E main.vtraceEntry" -o $@ ./cmd/vtrace

include targets/targets.mk

# The seed article's program, traced live.
demo: deps build $(BUILD)/targets/gcc-O0/badvfork
	@echo "+ vtrace run -- $(BUILD)/targets/gcc-O0/badvfork"
	@$(VTRACE) run -- $(BUILD)/targets/gcc-O0/badvfork; rc=$$?; \
	 echo "(vtrace exit status $$rc: 1 violation; with none, the program's own status; README \"Exit status\")"

# Unit tests, integration tests on every target build, and the VM harness
# where the machine can run it.
# The output is summarised (cmd/internal/testsummary): each package's
# result, the output of every failed test, and every skipped test with its
# reason; the full test2json stream is kept in $(BUILD)/test.json.
test: deps build targets
	@$(GO) build -o $(BUILD)/testsummary ./cmd/internal/testsummary
	set -o pipefail; VTRACE_BIN=$(abspath $(VTRACE)) VTRACE_TARGETS=$(abspath $(BUILD)/targets) \
	  $(GO) test -json -count=1 -timeout 20m ./... | tee $(BUILD)/test.json | $(BUILD)/testsummary

# Only the tests that run inside the qemu VM (scripts/vm/; README "Tests in
# a VM"): the i386 seed, dynamic and static, and every target of the -m32
# -static builds. `make test` runs them too.
VM_BUILDS  := gcc-O0-m32 gcc-O0-m32-static gcc-O2-m32-static gcc-O0-static
test-vm: deps build $(addprefix targets-,$(VM_BUILDS))
	VTRACE_BIN=$(abspath $(VTRACE)) VTRACE_TARGETS=$(abspath $(BUILD)/targets) \
	  $(GO) test -count=1 -timeout 20m -run 'TestVM' -v ./cmd/vtrace

# The performance goals of issue 15, measured in one run against strace -f,
# the workloads untraced and the raw C single-step loop (about 5 minutes on
# an idle machine; see docs/bench.md). Separate from `test`: timings depend
# on the machine and its load.
bench: deps build targets
	./scripts/bench.sh

# Every build of every target traced, one table: slot before/after, writer,
# parent landing, fate, verdict — each row checked against targets/expect.
# i386 rows run natively where the kernel runs i386 programs, else in the
# qemu VM (WHERE says which); MATRIX_I386=vm forces the VM, =native the host.
MATRIX_I386 ?= auto
matrix: deps build targets
	$(GO) run ./cmd/vtrace-matrix -vtrace $(VTRACE) -targets $(BUILD)/targets -i386 $(MATRIX_I386)

# Go native fuzzing, each target for FUZZTIME (docs/reliability.md). `make
# test` runs every seed corpus once (testdata/fuzz and the seeds the
# targets add). -fuzzminimizetime=0: Go minimizes every input that finds
# new coverage for up to a minute by default, which with binaries of 16 KB
# as seeds left no time to fuzz.
FUZZTIME ?= 60s
FUZZ_TARGETS := ./tracer/internal/symbols:FuzzOpenBinary ./tracer/internal/symbols:FuzzParseMaps ./tracer/internal/symbols:FuzzDecodeIndex \
	./tracer/internal/unwind:FuzzUnwindCode ./tracer/internal/disasm:FuzzDecode ./tracer/event:FuzzLogReader \
	./tracer/internal/sockdiag:FuzzParseReply
# A target that fails without writing a failing input under
# testdata/fuzz/ is run once more: Go 1.26's fuzz coordinator can report
# its own -fuzztime deadline as "context deadline exceeded" (golang/go#75804,
# fixed in Go 1.27). A failing input fails at once.
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  dir=$$pkg/testdata/fuzz/$$fn; before=$$(ls $$dir 2>/dev/null | wc -l); \
	  for try in 1 2; do \
	    echo "+ fuzz $$fn ($$pkg) for $(FUZZTIME)"; \
	    if $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 0 $$pkg; then break; fi; \
	    if [ $$try = 2 ] || [ "$$(ls $$dir 2>/dev/null | wc -l)" != "$$before" ]; then exit 1; fi; \
	    echo "+ $$fn failed without a failing input (golang/go#75804): once more"; \
	  done; done

# Byte-mutated copies of small target binaries, each traced under a pids
# cap and a timeout: counts vtrace's internal errors and hangs (N copies,
# default 10,000; scripts/mutation.sh).
MUTATION_N ?= 10000
mutation: deps build $(BUILD)/targets/gcc-O0/goodvfork_exec
	$(GO) run ./cmd/internal/mutation -vtrace $(VTRACE) -n $(MUTATION_N) \
	  $(BUILD)/targets/gcc-O0/goodvfork_exec $(BUILD)/targets/gcc-O0/badvfork $(BUILD)/targets/musl-O0/goodvfork_exec

lint:
	@test -z "$$(gofmt -l cmd tracer)" || { gofmt -l cmd tracer; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 -checks all ./...

clean:
	rm -rf $(BUILD)
