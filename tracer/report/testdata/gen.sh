#!/usr/bin/env bash
# gen.sh - regenerate the JSON Lines logs the golden tests of the text,
# markdown and workflow-command renderers read (text_test.go). Real runs of
# vtrace on real programs; run from the repository root after
# `make build targets`. The golden outputs are then refreshed with
#   go test ./tracer/report -run Golden -update
set -euo pipefail
cd "$(dirname "$0")/../../.."
T=build/targets
D=tracer/report/testdata
V=build/vtrace
run() { local out=$1; shift; "$V" run -q --no-aslr --color=never -o "$D/$out.jsonl" "$@" >/dev/null 2>&1 || true; }
# The seed: two vforks at one site, the first a violation.
run seed-gcc-O0 "$T/gcc-O0/badvfork"
# The -O2 seed restarts itself: 12 violating stories at one site, then
# the vfork budget stops the run.
run seed-gcc-O2-budget --max-vforks 12 "$T/gcc-O2/badvfork"
# 5 clean posix_spawns at one site.
run spawnloop-5 "$T/gcc-O2/spawnloop" 5
# A warning: the child writes the parent's local.
run writelocal "$T/gcc-O0/writelocal"
# A symbol with ESC and BEL bytes, an argument with an OSC title sequence.
gcc -g -O0 -o /tmp/escsym "$D/escsym.c"
run escsym /tmp/escsym $'\e]0;pwned\a'
# An unchecked story: the vfork is issued with %rsp in unmapped memory.
gcc -O0 -o /tmp/badrsp cmd/vtrace/testdata/badrsp.c
run unchecked /tmp/badrsp
