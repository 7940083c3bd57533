#!/usr/bin/env bash
# bench.sh - vtrace's performance goals, measured in one run on this machine,
# against references run in the same run (absolute rates differ a lot between
# machines of the same kind; only the ratios are comparable).
#
#   make bench            (builds vtrace and the targets first)
#   ./scripts/bench.sh    (expects build/vtrace and build/targets/gcc-O0/*)
#
# What it measures (docs/bench.md has the method and a result):
#  1. single-step rate: `vtrace run --step` on `spin N` (a vfork child running
#     N instructions) vs the raw C PTRACE_SINGLESTEP loop `stepref N`, both
#     pinned to the same CPU. vtrace's rate = child_end.steps / whole-run wall
#     time of the vtrace process (start-up, exec, symbols and exit included);
#     stepref's = its own timer around the step loop. BENCH_STEP_ROUNDS (3)
#     vtrace runs, each between two stepref runs; each round's ratio is
#     against the mean of those two, and the median ratio counts (the VM's
#     step rate drifts by 10 % from minute to minute). Goal: >= 0.90.
#  2. the seed program badvfork: median wall time of vtrace fast mode,
#     vtrace --step, `strace -f`, and a gdb script that extracts the same
#     facts (scripts/bench-gdb.py, software watchpoints). Goals: vtrace fast
#     / strace -f <= 1.0, vtrace fast / gdb <= 0.1.
#  3. peak RSS (GNU time %M) of vtrace streaming a >= 1M-instruction
#     `--step --trace-insns` trace to a JSONL file. Goal: <= 50 MB.
#  4. cost per vfork on `spawnloop N` (N posix_spawns):
#     (traced wall - untraced wall) / N, vtrace fast vs strace -f.
#     Goal: ratio <= 2.
#
# Knobs (environment):
#   BENCH_CPU=N         CPU everything is pinned to (default: 1, or 0 on a 1-CPU machine)
#   BENCH_STEP_N="..."  instruction counts for (1) (default 1000000;
#                       BENCH_LONG=1 adds 3000000, ~2 more minutes)
#   BENCH_RUNS=30       runs per tool for (2) (median, interleaved); BENCH_GDB_RUNS=5
#                       for gdb (~1 s each, in a loop of their own after them)
#   BENCH_STEP_ROUNDS=3 vtrace runs for (1), each between two stepref runs
#                       (ratio per round against the mean of the two; median)
#   BENCH_RSS_N=1000000 instructions traced for (3)
#   BENCH_SPAWN_N=10000 spawns for (4); BENCH_SPAWN_RUNS=1 runs per tool (median)
#   BENCH_OUT=build/bench  logs and raw numbers; BENCH_KEEP=1 keeps the big trace file
#   VTRACE=build/vtrace  TARGETS=build/targets/gcc-O0
# The default run takes about 2.5 minutes on a 2-vCPU VM (strace -f on
# spawnloop alone ~45 s; BENCH_LONG=1 about 4.7 minutes). Exit status: 0 when
# every goal passes, 1 when one falls short, 2 when a measurement could not
# be made.
set -uo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

VTRACE=${VTRACE:-build/vtrace}
T=${TARGETS:-build/targets/gcc-O0}
OUT=${BENCH_OUT:-build/bench}
NPROC=$(nproc)
CPU=${BENCH_CPU:-$((NPROC > 1 ? 1 : 0))}
STEP_NS=${BENCH_STEP_N:-1000000}
[[ ${BENCH_LONG:-0} == 1 ]] && STEP_NS="$STEP_NS 3000000"
RUNS=${BENCH_RUNS:-30}
GDB_RUNS=${BENCH_GDB_RUNS:-5}
STEP_ROUNDS=${BENCH_STEP_ROUNDS:-3}
RSS_N=${BENCH_RSS_N:-1000000}
SPAWN_N=${BENCH_SPAWN_N:-10000}
SPAWN_RUNS=${BENCH_SPAWN_RUNS:-1}
TRACE=/tmp/vtrace-bench-trace.$$.jsonl

for f in "$VTRACE" "$T/badvfork" "$T/spin" "$T/stepref" "$T/spawnloop" /usr/bin/time; do
  [[ -x $f ]] || { echo "bench: $f missing (run 'make bench', or make build targets)" >&2; exit 2; }
done
for c in strace gdb python3 taskset; do
  command -v "$c" >/dev/null || { echo "bench: $c missing (scripts/install-deps.sh)" >&2; exit 2; }
done
mkdir -p "$OUT"
rm -f "$OUT"/*.jsonl "$OUT"/*.out "$OUT"/*.err
# measure a private copy: build/vtrace may be rebuilt while the bench runs
VTRACE_SRC=$VTRACE
cp "$VTRACE" "$OUT/vtrace" && VTRACE=$OUT/vtrace || exit 2
VTRACE_ID="$("$VTRACE" version 2>&1 | awk '{print $2}') (copy of $VTRACE_SRC, sha256 $(sha256sum "$VTRACE" | cut -c1-12))"

NOTES=()
note() { NOTES+=("$*"); echo "bench: NOTE: $*" >&2; }
say() { echo "bench: $*" >&2; }

# timed OUT ERR CMD... : run CMD, stdout to OUT, stderr to ERR; sets US (wall
# microseconds, from bash's EPOCHREALTIME around the fork/exec/wait) and RC.
US=0 RC=0
timed() {
  local out=$1 err=$2 s e
  shift 2
  s=$EPOCHREALTIME
  RC=0
  # (the group's 2>/dev/null only silences bash's own "Segmentation fault"
  # job message: badvfork dies of SIGSEGV by design)
  { "$@" >"$out" 2>"$err" || RC=$?; } 2>/dev/null
  e=$EPOCHREALTIME
  US=$(( 10#${e//[.,]/} - 10#${s//[.,]/} ))
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
median_f() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {printf "%.3f", (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ms() { awk -v u="$1" 'BEGIN {printf "%.1f ms", u/1000}'; }
sec() { awk -v u="$1" 'BEGIN {printf "%.2f s", u/1e6}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "nan"; else printf "%.3f", a/b}'; }
# pass VALUE OP GOAL -> PASS or SHORT
pass() { awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN {ok = (op == "<=") ? (v <= g) : (v >= g); if (v == "nan") ok = 0; print ok ? "PASS" : "SHORT"}'; }
comma() { sed -E ':a; s/^([0-9]+)([0-9]{3})/\1,\2/; ta' <<<"$1"; }
# jfield FILE EVENT FIELD: FIELD of the first EVENT line of a JSONL log
jfield() {
  python3 - "$@" <<'EOF'
import json, sys
path, event, field = sys.argv[1:4]
with open(path) as f:
    for line in f:
        if '"event":"%s"' % event not in line:
            continue
        v = json.loads(line).get(field)
        print("" if v is None else v)
        break
EOF
}
# check_budget LOG: note any budget event / incomplete verdict
check_budget() {
  if grep -q '"event":"budget"' "$1"; then
    note "$(basename "$1"): a budget stopped the run: $(grep -m1 '"event":"budget"' "$1")"
  fi
  grep -q '"event":"verdict"' "$1" || note "$(basename "$1"): no verdict line (vtrace did not finish the log)"
}

START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
say "vtrace $VTRACE_ID, CPU $CPU of $NPROC, load $LOAD0, logs in $OUT"
T0=$SECONDS

# ---------------------------------------------------------------- (2) seed
say "(2) badvfork: $RUNS runs each of untraced, vtrace fast, vtrace --step, strace -f; $GDB_RUNS of gdb"
declare -a W_NAT W_FAST W_STEP W_STRACE W_GDB
for ((i = 1; i <= RUNS; i++)); do
  timed /dev/null "$OUT/nat.err" taskset -c "$CPU" "$T/badvfork"
  W_NAT+=("$US")
  [[ $RC == 139 ]] || note "untraced badvfork exited $RC (expected 139, SIGSEGV)"
  timed /dev/null "$OUT/fast.err" "$VTRACE" run -q --no-aslr --cpu "$CPU" "$T/badvfork"
  W_FAST+=("$US")
  [[ $RC == 1 && $(cat "$OUT/fast.err") == violation ]] ||
    note "vtrace fast on badvfork: exit $RC, stderr '$(head -c 200 "$OUT/fast.err")' (expected 1, 'violation')"
  timed /dev/null "$OUT/step.err" "$VTRACE" run -q --no-aslr --step --cpu "$CPU" "$T/badvfork"
  W_STEP+=("$US")
  [[ $RC == 1 && $(cat "$OUT/step.err") == violation ]] ||
    note "vtrace --step on badvfork: exit $RC, stderr '$(head -c 200 "$OUT/step.err")' (expected 1, 'violation')"
  timed /dev/null "$OUT/strace.err" taskset -c "$CPU" strace -f -o /dev/null "$T/badvfork"
  W_STRACE+=("$US")
  [[ $RC == 139 ]] || note "strace -f badvfork exited $RC (expected 139)"
done
# gdb's runs (a second each) in a loop of their own, so that none sits
# between the runs of a few milliseconds above.
for ((i = 1; i <= GDB_RUNS; i++)); do
  timed "$OUT/gdb.$i.out" "$OUT/gdb.$i.err" taskset -c "$CPU" gdb -q -nx -batch -x scripts/bench-gdb.py --args "$T/badvfork"
  W_GDB+=("$US")
  nf=$(grep -c '^gdb-fact:' "$OUT/gdb.$i.out")
  [[ $RC == 0 && $nf == 5 ]] || note "gdb run $i: exit $RC, $nf facts (expected 0 and 5), see $OUT/gdb.$i.out"
done
# the facts the gdb script found, once, and the same facts from vtrace's log
grep '^gdb-fact:' "$OUT/gdb.1.out" | sed 's/^/  /' >&2
"$VTRACE" run --no-aslr --cpu "$CPU" -o "$OUT/badvfork.fast.jsonl" "$T/badvfork" >/dev/null 2>"$OUT/badvfork.fast.txt"
M_NAT=$(median "${W_NAT[@]}") M_FAST=$(median "${W_FAST[@]}") M_STEP=$(median "${W_STEP[@]}")
M_STRACE=$(median "${W_STRACE[@]}") M_GDB=$(median "${W_GDB[@]}")
R_STRACE=$(div "$M_FAST" "$M_STRACE") R_GDB=$(div "$M_FAST" "$M_GDB")
say "    medians: untraced $(ms "$M_NAT"), vtrace fast $(ms "$M_FAST"), vtrace --step $(ms "$M_STEP"), strace -f $(ms "$M_STRACE"), gdb $(ms "$M_GDB")"

# ---------------------------------------------------------- (1) step rate
# stepref runs before and after vtrace (the machine's step rate drifts with
# the load on the other CPUs); the reference rate is the mean of the two.
declare -A S_V S_VUS S_VUS_ALL S_R S_RSPS_AB S_RUS S_RATIO S_RATIO_PH S_RATIOS
stepref_run() { # stepref_run N TAG: sets SR_STEPS SR_SPS
  timed "$OUT/stepref.$1.$2.out" "$OUT/stepref.$1.$2.err" "$T/stepref" -c "$CPU" "$1"
  local line
  line=$(cat "$OUT/stepref.$1.$2.out")
  [[ $RC == 0 && $line == steps=* ]] || { note "stepref $1 ($2): exit $RC: $line $(head -c 200 "$OUT/stepref.$1.$2.err")"; line="steps=0 steps_per_sec=0"; }
  SR_STEPS=$(sed -E 's/.*steps=([0-9]+).*/\1/' <<<"$line")
  SR_SPS=$(sed -E 's/.*steps_per_sec=([0-9.]+).*/\1/' <<<"$line")
  say "    stepref ($2): $line (whole process $(sec "$US"))"
}
for N in $STEP_NS; do
  say "(1) single-step rate, N=$N: $STEP_ROUNDS rounds of vtrace --step --cpu $CPU, each between two runs of stepref -c $CPU"
  stepref_run "$N" 0
  S_R[$N]=$SR_STEPS prev=$SR_SPS
  rus="$(sec "$US")" rsps="$(printf %.0f "$SR_SPS")"
  ratios=() phratios=() vus_all=()
  for ((r = 1; r <= STEP_ROUNDS; r++)); do
    log=$OUT/spin.step.$N.$r.jsonl
    timed /dev/null "$OUT/spin.step.$N.$r.err" "$VTRACE" run --step -q --cpu "$CPU" --timeout 0 -o "$log" "$T/spin" "$N"
    vus=$US
    [[ $RC == 0 ]] || note "vtrace --step spin $N (round $r): exit $RC, stderr '$(head -c 200 "$OUT/spin.step.$N.$r.err")'"
    check_budget "$log"
    steps=$(jfield "$log" child_end steps)
    [[ -n $steps ]] || { note "vtrace --step spin $N: no child_end steps in $log"; steps=0; }
    # stepping phase alone, from the log's own clock: vfork event -> child_end
    tv=$(jfield "$log" vfork t) te=$(jfield "$log" child_end t)
    ph=$(( (${te:-0} - ${tv:-0}) / 1000 ))
    vsps=$(div "$steps" "$(awk -v u="$vus" 'BEGIN {print u/1e6}')")
    say "    vtrace ($r): steps=$steps wall $(sec "$vus") -> $(printf %.0f "$vsps") steps/s (vfork→child_end $(sec "$ph"))"
    stepref_run "$N" "$r"
    [[ $SR_STEPS == "${S_R[$N]}" ]] || note "stepref $N counted ${S_R[$N]} then $SR_STEPS steps"
    ref=$(awk -v a="$prev" -v b="$SR_SPS" 'BEGIN {printf "%.0f", (a+b)/2}')
    ratios+=("$(div "$vsps" "$ref")")
    phratios+=("$(div "$(div "$steps" "$(awk -v u="$ph" 'BEGIN {print u/1e6}')")" "$ref")")
    say "    ratio ${ratios[-1]} (vtrace whole run ÷ stepref $ref steps/s, the mean of the runs around it)"
    rus+=" / $(sec "$US")" rsps+=" / $(printf %.0f "$SR_SPS")"
    vus_all+=("$vus")
    prev=$SR_SPS
    S_V[$N]=$steps
    d=$(( steps - S_R[$N] ))
    ((d < -1000 || d > 1000)) && note "N=$N: vtrace counted $steps steps, stepref ${S_R[$N]} (difference $d)"
  done
  S_RATIO[$N]=$(median_f "${ratios[@]}") S_RATIO_PH[$N]=$(median_f "${phratios[@]}")
  S_RATIOS[$N]="${ratios[*]}" S_RUS[$N]=$rus S_RSPS_AB[$N]=$rsps
  S_VUS[$N]=$(median "${vus_all[@]}")
  S_VUS_ALL[$N]="$(for u in "${vus_all[@]}"; do sec "$u"; echo -n " "; done)"
done

# ---------------------------------------------------------------- (3) RSS
say "(3) peak RSS: vtrace --step --trace-insns -o $TRACE spin $RSS_N"
timed /dev/null "$OUT/rss.err" /usr/bin/time -f %M -o "$OUT/rss.time" "$VTRACE" run --step --trace-insns -q --cpu "$CPU" --timeout 0 -o "$TRACE" "$T/spin" "$RSS_N"
RSS_US=$US
[[ $RC == 0 ]] || note "vtrace --trace-insns spin $RSS_N: exit $RC, stderr '$(head -c 200 "$OUT/rss.err")'"
RSS_KB=$(tail -1 "$OUT/rss.time")
RSS_MB=$(awk -v k="$RSS_KB" 'BEGIN {printf "%.1f", k/1024}')
TRACE_BYTES=$(stat -c %s "$TRACE" 2>/dev/null || echo 0)
TRACE_LINES=$(wc -l <"$TRACE" 2>/dev/null || echo 0)
TRACE_STEPS=$(grep -c '"event":"child_step"' "$TRACE" 2>/dev/null || echo 0)
check_budget "$TRACE"
say "    peak RSS ${RSS_MB} MB, trace $((TRACE_BYTES / 1048576)) MiB, $TRACE_LINES lines ($TRACE_STEPS child_step), wall $(sec "$RSS_US")"
if [[ ${BENCH_KEEP:-0} == 1 ]]; then say "    kept $TRACE"; else rm -f "$TRACE"; fi

# ---------------------------------------------------------- (4) per vfork
say "(4) spawnloop $SPAWN_N: untraced, vtrace fast, strace -f ($SPAWN_RUNS run(s) each; strace takes ~1 min)"
declare -a P_NAT P_V P_S
for ((i = 1; i <= SPAWN_RUNS; i++)); do
  timed "$OUT/spawn.nat.out" "$OUT/spawn.nat.err" taskset -c "$CPU" "$T/spawnloop" "$SPAWN_N"
  P_NAT+=("$US")
  [[ $RC == 0 ]] || note "untraced spawnloop: exit $RC $(head -c 200 "$OUT/spawn.nat.err")"
  say "    untraced $(sec "$US")"
  timed "$OUT/spawn.vtrace.out" "$OUT/spawn.vtrace.err" "$VTRACE" run -q --cpu "$CPU" --max-vforks 0 --timeout 0 "$T/spawnloop" "$SPAWN_N"
  P_V+=("$US")
  [[ $RC == 0 && $(cat "$OUT/spawn.vtrace.out") == "spawnloop: $SPAWN_N spawns" ]] ||
    note "vtrace spawnloop: exit $RC, stdout '$(cat "$OUT/spawn.vtrace.out")', stderr '$(head -c 200 "$OUT/spawn.vtrace.err")'"
  say "    vtrace fast $(sec "$US") ($(cat "$OUT/spawn.vtrace.err"))"
  timed "$OUT/spawn.strace.out" "$OUT/spawn.strace.err" taskset -c "$CPU" strace -f -o /dev/null "$T/spawnloop" "$SPAWN_N"
  P_S+=("$US")
  [[ $RC == 0 ]] || note "strace spawnloop: exit $RC $(head -c 200 "$OUT/spawn.strace.err")"
  say "    strace -f $(sec "$US")"
done
M_PNAT=$(median "${P_NAT[@]}") M_PV=$(median "${P_V[@]}") M_PS=$(median "${P_S[@]}")
C_V=$(awk -v t="$M_PV" -v b="$M_PNAT" -v n="$SPAWN_N" 'BEGIN {printf "%.1f", (t-b)/n}')
C_S=$(awk -v t="$M_PS" -v b="$M_PNAT" -v n="$SPAWN_N" 'BEGIN {printf "%.1f", (t-b)/n}')
R_SPAWN=$(div "$C_V" "$C_S")

# ---------------------------------------------------------------- report
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$((SECONDS - T0))
FAIL=0
row() { # row MEASUREMENT VALUES GOAL RATIO VERDICT
  echo "| $1 | $2 | $3 | $4 | $5 |"
}
{
  echo
  echo "## vtrace benchmark — $START"
  echo
  echo "Machine: Linux $(uname -r), $NPROC CPU(s), $MODEL; load average $LOAD0 at start, $LOAD1 at end; everything pinned to CPU $CPU; bench took ${ELAPSED} s."
  echo "vtrace $VTRACE_ID, $(strace -V | head -1), $(gdb --version | head -1), targets: $T."
  echo
  echo "| measurement | measured | goal | ratio | result |"
  echo "|---|---|---|---|---|"
  for N in $STEP_NS; do
    vsps=$(awk -v s="${S_V[$N]}" -v u="${S_VUS[$N]}" 'BEGIN {printf "%.0f", s/(u/1e6)}')
    row "(1) single-step rate, spin $(comma "$N") (vtrace --step ÷ stepref, median of $STEP_ROUNDS rounds)" \
      "vtrace $(comma "${S_V[$N]}") steps in $(sec "${S_VUS[$N]}") wall (median) = $(comma "$vsps") steps/s; stepref $(comma "${S_R[$N]}") steps at ${S_RSPS_AB[$N]} steps/s; per-round ratios ${S_RATIOS[$N]}" \
      "≥ 0.90" "${S_RATIO[$N]}" "$(pass "${S_RATIO[$N]}" ">=" 0.90)"
  done
  row "(2) badvfork: vtrace fast ÷ strace -f (median of $RUNS)" "$(ms "$M_FAST") vs $(ms "$M_STRACE")" "≤ 1.0" "$R_STRACE" "$(pass "$R_STRACE" "<=" 1.0)"
  row "(2) badvfork: vtrace fast ÷ gdb script (median of $RUNS / $GDB_RUNS)" "$(ms "$M_FAST") vs $(ms "$M_GDB")" "≤ 0.1" "$R_GDB" "$(pass "$R_GDB" "<=" 0.1)"
  row "(3) peak RSS, --step --trace-insns spin $(comma "$RSS_N") → JSONL file" \
    "$RSS_MB MB ($((TRACE_BYTES / 1048576)) MiB file, $(comma "$TRACE_LINES") lines, $(sec "$RSS_US"))" "≤ 50 MB" "$(div "$RSS_MB" 50)" "$(pass "$RSS_MB" "<=" 50)"
  row "(4) cost per vfork, spawnloop $(comma "$SPAWN_N") (vtrace ÷ strace -f)" \
    "vtrace $C_V µs vs strace $C_S µs per spawn" "≤ 2" "$R_SPAWN" "$(pass "$R_SPAWN" "<=" 2)"
  echo
  echo "Raw wall times:"
  echo
  echo "| run | wall |"
  echo "|---|---|"
  echo "| badvfork untraced (median of $RUNS) | $(ms "$M_NAT") |"
  echo "| badvfork \`vtrace run -q --no-aslr\` (median of $RUNS) | $(ms "$M_FAST") |"
  echo "| badvfork \`vtrace run -q --no-aslr --step\` (median of $RUNS) | $(ms "$M_STEP") |"
  echo "| badvfork \`strace -f -o /dev/null\` (median of $RUNS) | $(ms "$M_STRACE") |"
  echo "| badvfork gdb script (median of $GDB_RUNS) | $(ms "$M_GDB") |"
  for N in $STEP_NS; do
    echo "| stepref $N, runs 0–$STEP_ROUNDS around the vtrace runs (whole process; its step loop: ${S_RSPS_AB[$N]} steps/s) | ${S_RUS[$N]} |"
    echo "| vtrace --step spin $N, rounds 1–$STEP_ROUNDS (whole run; median ratio on the vfork→child_end phase alone: ${S_RATIO_PH[$N]}) | ${S_VUS_ALL[$N]}|"
  done
  echo "| spawnloop $SPAWN_N untraced (median of $SPAWN_RUNS) | $(sec "$M_PNAT") |"
  echo "| spawnloop $SPAWN_N \`vtrace run -q --max-vforks 0 --timeout 0\` | $(sec "$M_PV") |"
  echo "| spawnloop $SPAWN_N \`strace -f -o /dev/null\` | $(sec "$M_PS") |"
  if ((${#NOTES[@]})); then
    echo
    echo "Notes:"
    for n in "${NOTES[@]}"; do echo "- $n"; done
  fi
} >"$OUT/results.md"
cat "$OUT/results.md"
grep -q '| SHORT |$' "$OUT/results.md" && FAIL=1
((${#NOTES[@]})) && say "${#NOTES[@]} note(s) above: see the Notes list"
say "results in $OUT/results.md"
exit $FAIL
