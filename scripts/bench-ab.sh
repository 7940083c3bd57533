#!/usr/bin/env bash
# bench-ab.sh - two vtrace binaries side by side, runs interleaved (A, B,
# A, B, ...) so that both see the same load: the way to tell whether a
# change made vtrace faster on a machine whose speed moves from minute to
# minute. Prints, per workload, the median wall time, CPU time (user +
# system of vtrace and the traced program) and peak RSS of each binary,
# and B ÷ A.
#
#   scripts/bench-ab.sh OLD_VTRACE NEW_VTRACE
#
# Workloads (gcc-O0 targets): the seed badvfork in fast mode with its full
# report (--no-aslr --cpu C), spawnloop N, python3 running N
# subprocess.run(["true"]), GNU make running N recipe lines — the last
# three under default flags.
# Knobs: AB_RUNS (15, the seed), AB_WORK_RUNS (5), AB_SPAWN_N (500),
# AB_PY_N (100), AB_MAKE_N (200), BENCH_CPU (1), TARGETS.
set -uo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
[[ $# == 2 ]] || { echo "usage: $0 OLD_VTRACE NEW_VTRACE" >&2; exit 2; }
A=$1 B=$2
T=${TARGETS:-build/targets/gcc-O0}
CPU=${BENCH_CPU:-1}
RUNS=${AB_RUNS:-15} WRUNS=${AB_WORK_RUNS:-5}
SPAWN_N=${AB_SPAWN_N:-500} PY_N=${AB_PY_N:-100} MAKE_N=${AB_MAKE_N:-200}
W=$(mktemp -d /tmp/vtrace-ab.XXXXXX)
trap 'rm -rf "$W"' EXIT
# Measure copies of both binaries, as bench.sh does: a file the Go linker
# has just written runs slower than a copy of it (0.7 ms of CPU per seed
# run, 0.3 ms per `vtrace version`, same page faults: docs/bench.md, "The
# seed's fixed costs, second round"), which would favour whichever of A
# and B is a copy.
cp "$A" "$W/A" && cp "$B" "$W/B" || exit 2
A0=$A B0=$B A=$W/A B=$W/B
# A new binary is a new vtrace for the symbol index: one run of the seed
# each builds its entries, so that the seed's runs below all read them.
"$A" run --no-aslr --cpu "$CPU" "$T/badvfork" >/dev/null 2>&1
"$B" run --no-aslr --cpu "$CPU" "$T/badvfork" >/dev/null 2>&1
printf 'import subprocess, sys\nfor _ in range(int(sys.argv[1])):\n    subprocess.run(["true"], check=True)\n' >"$W/sub.py"
{ echo "all:"; for ((k = 1; k <= MAKE_N; k++)); do printf '\ttrue %d\n' "$k"; done; } >"$W/Makefile"

# ab NAME RUNS ARGS...: RUNS interleaved runs of "$A run ARGS" and "$B run ARGS"
ab() {
  local name=$1 n=$2 i
  shift 2
  for ((i = 1; i <= n; i++)); do
    echo "A $(python3 scripts/benchtime.py /dev/null /dev/null "$A" run "$@")"
    echo "B $(python3 scripts/benchtime.py /dev/null /dev/null "$B" run "$@")"
  done >"$W/$name.txt"
  python3 - "$W/$name.txt" "$name" "$n" <<'PY'
import statistics, sys
path, name, n = sys.argv[1], sys.argv[2], sys.argv[3]
v = {"A": [], "B": []}
for line in open(path):
    k, wall, cpu, kb, rc = line.split()
    v[k].append((int(wall), int(cpu), int(kb)))
def med(k, i):
    return statistics.median(x[i] for x in v[k])
w = [med(k, 0) / 1000 for k in "AB"]
c = [med(k, 1) / 1000 for k in "AB"]
r = [med(k, 2) / 1024 for k in "AB"]
print(f"| {name} (median of {n}) | {w[0]:.1f} / {w[1]:.1f} ms ({w[1]/w[0]:.2f}) | "
      f"{c[0]:.1f} / {c[1]:.1f} ms ({c[1]/c[0]:.2f}) | {r[0]:.1f} / {r[1]:.1f} MB ({r[1]/r[0]:.2f}) |")
PY
}
echo "A = $A0 ($("$A" version 2>&1 | awk '{print $2}')), B = $B0 ($("$B" version 2>&1 | awk '{print $2}')); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| workload | wall A / B (B÷A) | CPU A / B (B÷A) | peak RSS A / B (B÷A) |"
echo "|---|---|---|---|"
ab "badvfork, fast, full report" "$RUNS" --no-aslr --cpu "$CPU" "$T/badvfork"
ab "spawnloop $SPAWN_N" "$WRUNS" "$T/spawnloop" "$SPAWN_N"
ab "python3 $PY_N × subprocess.run" "$WRUNS" python3 "$W/sub.py" "$PY_N"
ab "make, $MAKE_N recipe lines" "$WRUNS" make -s -f "$W/Makefile"
echo
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
