#!/usr/bin/env bash
# bench.sh - vtrace's performance goals (issue 15), measured in one run on
# this machine, each against a reference run in the same run: absolute rates
# differ a lot between machines of the same kind and with the load of the
# moment; only the ratios are comparable.
#
#   make bench            (builds vtrace and the targets first)
#   ./scripts/bench.sh    (expects build/vtrace and build/targets/gcc-O0/*)
#
# The goals (docs/bench.md has the method and a result):
#  1. the seed program badvfork, fast mode, full report on stderr
#     (`vtrace run --no-aslr --cpu C`): median wall and median CPU time
#     (user + system of vtrace and the traced program) against
#     `strace -f -o /dev/null`, BENCH_RUNS (30) interleaved runs each.
#     Goal: <= 1.0x strace -f in wall and in CPU. (untraced, --step and a
#     gdb script that extracts the same facts are measured beside.)
#  2. real workloads traced with default flags (`vtrace run PROGRAM`, no
#     flag at all: the text report on stderr, no log) against the same
#     workload untraced: (a) python3 running
#     2,000 x subprocess.run(["true"]), (b) GNU make running 500 recipe
#     lines (`true N`), (c) spawnloop 10000 (10,000 posix_spawns). Each
#     must complete (exit 0, a verdict line, no "run stopped" by a budget). Goal: wall <=
#     1.5x untraced. strace -f is measured beside on 1/BENCH_STRACE_DIV
#     (10) of each workload (against untraced at that size: strace -f on
#     the full spawnloop alone takes minutes), and the ptrace floor on the
#     whole workload: scripts/ptracefloor.c, a C follower with the ptrace
#     options vtrace gives spawned tasks, that resumes every stop at once
#     and reads nothing: what the event, start and signal stops vtrace
#     takes cost by themselves here (vtrace's own breakpoint and watchpoint
#     traps are its work above that). Beside goal 2, with no goal of its
#     own: GNU make running BENCH_SH_N (400) recipe lines of two commands
#     (`/usr/bin/true N; /usr/bin/true N`), each through /bin/sh, whose vfork child (dash's)
#     changes the shell's memory: the parent is followed to its next
#     command (tracer/parentblock.go).
#  3. single-step rate: `vtrace run --step --cpu C` on `spin N` (a vfork
#     child running N instructions) vs the raw C PTRACE_SINGLESTEP loop
#     `stepref -c C N`. BENCH_STEP_ROUNDS (15) vtrace runs, each between two
#     stepref runs; each round's ratio is vtrace's whole-run rate against
#     the mean of those two, and the median ratio counts. Goal: >= 0.95,
#     and the same median on CPU time (steps per second of user+system of
#     each side, its tracee included) >= 0.95 too: under load the wall
#     ratio favours vtrace (docs/bench.md), the CPU one moves little.
#  4. memory: (a) vtrace's peak RSS at spawnloop 10000 (the run of 2c)
#     <= 1.2x its peak RSS at spawnloop 100; (b) peak RSS streaming a
#     >= 1M-instruction `--step --trace-insns` trace to a file <= 50 MB.
#
# Every command is run by scripts/benchtime.py, which measures wall time
# around the command alone, CPU time and peak RSS from wait4's rusage.
#
# Knobs (environment):
#   BENCH_CPU=N         CPU the seed and step runs are pinned to (default: 1, or 0 on a 1-CPU machine)
#   BENCH_RUNS=30       runs per tool for (1) (median, interleaved); BENCH_GDB_RUNS=3 for gdb
#   BENCH_WORK_ROUNDS=1 rounds of (2): untraced, vtrace, the ptrace floor, per workload (median ratio)
#   BENCH_PY_N=2000 BENCH_MAKE_N=500 BENCH_SPAWN_N=10000 BENCH_SH_N=400   sizes of (2)
#   BENCH_STRACE_DIV=10 strace -f runs on 1/DIV of each workload of (2)
#   BENCH_STEP_N=200000 BENCH_STEP_ROUNDS=15   for (3)
#   BENCH_RSS_N=1000000 instructions traced for (4b); BENCH_RSS_SMALL=100 spawns for (4a)
#   BENCH_OUT=build/bench  logs and raw numbers; BENCH_KEEP=1 keeps the big trace file
#   VTRACE=build/vtrace  TARGETS=build/targets/gcc-O0
# Run time: about 5 minutes on an idle 2-vCPU VM (the step rate and the
# 1M-step trace are most of it), 9-13 minutes on one loaded by other jobs. Exit status:
# 0 when every goal passes, 1 when one falls short, 2 when a measurement
# could not be made.
set -uo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

VTRACE=${VTRACE:-build/vtrace}
T=${TARGETS:-build/targets/gcc-O0}
OUT=${BENCH_OUT:-build/bench}
NPROC=$(nproc)
CPU=${BENCH_CPU:-$((NPROC > 1 ? 1 : 0))}
STEP_NS=${BENCH_STEP_N:-200000}
RUNS=${BENCH_RUNS:-30}
GDB_RUNS=${BENCH_GDB_RUNS:-3}
STEP_ROUNDS=${BENCH_STEP_ROUNDS:-15}
RSS_N=${BENCH_RSS_N:-1000000}
RSS_SMALL=${BENCH_RSS_SMALL:-100}
SPAWN_N=${BENCH_SPAWN_N:-10000}
PY_N=${BENCH_PY_N:-2000}
MAKE_N=${BENCH_MAKE_N:-500}
SH_N=${BENCH_SH_N:-400}
WORK_ROUNDS=${BENCH_WORK_ROUNDS:-1}
SDIV=${BENCH_STRACE_DIV:-10}
TRACE=/tmp/vtrace-bench-trace.$$.jsonl

for f in "$VTRACE" "$T/badvfork" "$T/spin" "$T/stepref" "$T/spawnloop"; do
  [[ -x $f ]] || { echo "bench: $f missing (run 'make bench', or make build targets)" >&2; exit 2; }
done
for c in strace gdb python3 make true gcc; do
  command -v "$c" >/dev/null || { echo "bench: $c missing (scripts/install-deps.sh)" >&2; exit 2; }
done
mkdir -p "$OUT"
rm -rf "$OUT"/*.jsonl "$OUT"/*.out "$OUT"/*.err "$OUT"/work
# measure a private copy: build/vtrace may be rebuilt while the bench runs
VTRACE_SRC=$VTRACE
cp "$VTRACE" "$OUT/vtrace" && VTRACE=$OUT/vtrace || exit 2
VTRACE_ID="$("$VTRACE" version 2>&1 | awk '{print $2}') (copy of $VTRACE_SRC, sha256 $(sha256sum "$VTRACE" | cut -c1-12))"
# the ptrace floor of goal 2 (scripts/ptracefloor.c): a C follower that
# stops where vtrace stops and reads nothing
FLOOR=$OUT/ptracefloor
gcc -O2 -o "$FLOOR" scripts/ptracefloor.c || { echo "bench: cannot build scripts/ptracefloor.c" >&2; exit 2; }

NOTES=()
note() { NOTES+=("$*"); echo "bench: NOTE: $*" >&2; }
say() { echo "bench: $*" >&2; }

# timed OUT ERR CMD... : run CMD (scripts/benchtime.py), stdout to OUT,
# stderr to ERR; sets US (wall µs), CPUUS (user+system µs of CMD and the
# descendants it reaped), KB (peak RSS) and RC.
US=0 CPUUS=0 KB=0 RC=0
timed() {
  local r
  r=$(python3 scripts/benchtime.py "$@") || { note "benchtime failed: $*"; US=0 CPUUS=0 KB=0 RC=255; return; }
  read -r US CPUUS KB RC <<<"$r"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
median_f() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {printf "%.3f", (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# spread VALUES...: "min / lower quartile / upper quartile / max" (nearest rank)
spread() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {q1 = int((NR+3)/4); q3 = NR+1-q1; printf "%.3f / %.3f / %.3f / %.3f", a[1], a[q1], a[q3], a[NR]}'; }
ms() { awk -v u="$1" 'BEGIN {printf "%.1f ms", u/1000}'; }
sec() { awk -v u="$1" 'BEGIN {printf "%.2f s", u/1e6}'; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "nan"; else printf "%.3f", a/b}'; }
# pass VALUE OP GOAL -> PASS or SHORT
pass() { awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN {ok = (op == "<=") ? (v <= g) : (v >= g); if (v == "nan") ok = 0; print ok ? "PASS" : "SHORT"}'; }
comma() { sed -E ':a; s/^([0-9]+)([0-9]{3})/\1,\2/; ta' <<<"$1"; }
# jfield FILE EVENT FIELD: FIELD of the first EVENT line of a JSONL log
jfield() {
  python3 - "$@" <<'PY'
import json, sys
path, event, field = sys.argv[1:4]
with open(path) as f:
    for line in f:
        if '"event":"%s"' % event not in line:
            continue
        v = json.loads(line).get(field)
        print("" if v is None else v)
        break
PY
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
MACHINE="Linux $(uname -r), $NPROC CPU(s), ${MODEL:-unknown CPU}"
say "machine: $MACHINE; load average $LOAD0"
say "vtrace $VTRACE_ID; seed and step runs pinned to CPU $CPU; logs in $OUT"
T0=$SECONDS

# ---------------------------------------------------------- goal 1: the seed
say "(1) badvfork: $RUNS interleaved runs each of untraced, vtrace fast (full report), vtrace --step, strace -f; then $GDB_RUNS of gdb"
declare -a W_NAT W_FAST W_STEP W_STRACE W_GDB C_NAT C_FAST C_STRACE
for ((i = 1; i <= RUNS; i++)); do
  timed /dev/null "$OUT/nat.err" --cpu "$CPU" "$T/badvfork"
  W_NAT+=("$US") C_NAT+=("$CPUUS")
  [[ $RC == 139 ]] || note "untraced badvfork exited $RC (expected 139, SIGSEGV)"
  timed /dev/null "$OUT/fast.err" "$VTRACE" run --no-aslr --cpu "$CPU" "$T/badvfork"
  W_FAST+=("$US") C_FAST+=("$CPUUS")
  [[ $RC == 1 ]] && grep -q '^verdict: VIOLATION' "$OUT/fast.err" ||
    note "vtrace fast on badvfork: exit $RC, stderr ends '$(tail -c 200 "$OUT/fast.err")' (expected 1 and a VIOLATION verdict)"
  timed /dev/null "$OUT/step.err" "$VTRACE" run -q --no-aslr --step --cpu "$CPU" "$T/badvfork"
  W_STEP+=("$US")
  [[ $RC == 1 && $(cat "$OUT/step.err") == violation ]] ||
    note "vtrace --step on badvfork: exit $RC, stderr '$(head -c 200 "$OUT/step.err")' (expected 1, 'violation')"
  timed /dev/null "$OUT/strace.err" --cpu "$CPU" strace -f -o /dev/null "$T/badvfork"
  W_STRACE+=("$US") C_STRACE+=("$CPUUS")
  [[ $RC == 139 ]] || note "strace -f badvfork exited $RC (expected 139)"
done
# gdb's runs (a second each) in a loop of their own
for ((i = 1; i <= GDB_RUNS; i++)); do
  timed "$OUT/gdb.$i.out" "$OUT/gdb.$i.err" --cpu "$CPU" gdb -q -nx -batch -x scripts/bench-gdb.py --args "$T/badvfork"
  W_GDB+=("$US")
  nf=$(grep -c '^gdb-fact:' "$OUT/gdb.$i.out")
  [[ $RC == 0 && $nf == 5 ]] || note "gdb run $i: exit $RC, $nf facts (expected 0 and 5), see $OUT/gdb.$i.out"
done
"$VTRACE" run --no-aslr --cpu "$CPU" -o "$OUT/badvfork.fast.jsonl" "$T/badvfork" >/dev/null 2>"$OUT/badvfork.fast.txt"
M_NAT=$(median "${W_NAT[@]}") M_FAST=$(median "${W_FAST[@]}") M_STEP=$(median "${W_STEP[@]}")
M_STRACE=$(median "${W_STRACE[@]}") M_GDB=$(median "${W_GDB[@]}")
MC_NAT=$(median "${C_NAT[@]}") MC_FAST=$(median "${C_FAST[@]}") MC_STRACE=$(median "${C_STRACE[@]}")
R1W=$(div "$M_FAST" "$M_STRACE") R1C=$(div "$MC_FAST" "$MC_STRACE") R_GDB=$(div "$M_FAST" "$M_GDB")
say "    wall medians: untraced $(ms "$M_NAT"), vtrace fast $(ms "$M_FAST"), --step $(ms "$M_STEP"), strace -f $(ms "$M_STRACE"), gdb $(ms "$M_GDB")"
say "    CPU medians: untraced $(ms "$MC_NAT"), vtrace fast $(ms "$MC_FAST"), strace -f $(ms "$MC_STRACE")"

# ------------------------------------------------- goal 2: real workloads
W=$OUT/work
mkdir -p "$W/make" "$W/make-small"
cat >"$W/subprocesses.py" <<'PY'
import subprocess, sys
for _ in range(int(sys.argv[1])):
    subprocess.run(["true"], check=True)
PY
mkmake() { # mkmake DIR N: a Makefile of one target with N recipe lines
  { echo "all:"; for ((k = 1; k <= $2; k++)); do printf '\ttrue %d\n' "$k"; done; } >"$1/Makefile"
}
mkmake "$W/make" "$MAKE_N"
mkmake "$W/make-small" $((MAKE_N / SDIV))
TRUE_BIN=$(type -P true) # the program: true is a builtin of the shell
mkshell() { # mkshell DIR N: N recipe lines of two commands each, run by /bin/sh
  mkdir -p "$1"
  { echo "all:"; for ((k = 1; k <= $2; k++)); do printf '\t%s %d; %s %d\n' "$TRUE_BIN" "$k" "$TRUE_BIN" "$k"; done; } >"$1/Makefile"
}
mkshell "$W/shell" "$SH_N"
mkshell "$W/shell-small" $((SH_N / SDIV))
declare -A WK_CMD WK_SMALL WK_NAME WK_N
WK_NAME[py]="python3: $(comma "$PY_N") × subprocess.run([\"true\"])"; WK_N[py]=$PY_N
WK_CMD[py]="python3 $W/subprocesses.py $PY_N"; WK_SMALL[py]="python3 $W/subprocesses.py $((PY_N / SDIV))"
WK_NAME[make]="GNU make, $(comma "$MAKE_N") recipe lines"; WK_N[make]=$MAKE_N
WK_CMD[make]="make -s -C $W/make"; WK_SMALL[make]="make -s -C $W/make-small"
WK_NAME[spawn]="spawnloop $(comma "$SPAWN_N") (posix_spawn)"; WK_N[spawn]=$SPAWN_N
WK_CMD[spawn]="$T/spawnloop $SPAWN_N"; WK_SMALL[spawn]="$T/spawnloop $((SPAWN_N / SDIV))"
WK_NAME[sh]="GNU make, $(comma "$SH_N") recipe lines of two commands through /bin/sh"; WK_N[sh]=$SH_N
WK_CMD[sh]="make -s -C $W/shell"; WK_SMALL[sh]="make -s -C $W/shell-small"
declare -A WK_OK WK_NAT WK_V WK_VC WK_NC WK_R WK_RC WK_S WK_SNAT WK_VKB WK_VF WK_F WK_FR
for k in py make spawn sh; do
  say "(2) ${WK_NAME[$k]}: $WORK_ROUNDS round(s) of untraced, \`vtrace run\` (default flags) and the ptrace floor; strace -f on 1/$SDIV"
  nat=() vt=() natc=() vtc=() ratios=() cratios=() fl=() fratios=()
  WK_OK[$k]=completed
  for ((r = 1; r <= WORK_ROUNDS; r++)); do
    # shellcheck disable=SC2086 # the commands are word lists
    timed "$OUT/$k.nat.out" "$OUT/$k.nat.err" ${WK_CMD[$k]}
    [[ $RC == 0 ]] || note "$k untraced: exit $RC $(head -c 200 "$OUT/$k.nat.err")"
    nat+=("$US") natc+=("$CPUUS")
    # shellcheck disable=SC2086
    # no flag at all: the text report on stderr is all vtrace writes
    timed "$OUT/$k.vtrace.out" "$OUT/$k.vtrace.err" "$VTRACE" run ${WK_CMD[$k]}
    vline=$(grep '^verdict: ' "$OUT/$k.vtrace.err" | tail -1)
    if [[ $RC != 0 || -z $vline || $vline == *"run stopped"* ]]; then
      WK_OK[$k]="DID NOT COMPLETE (exit $RC)"
      note "$k under vtrace: exit $RC, stderr ends '$(tail -c 300 "$OUT/$k.vtrace.err")'"
    fi
    vt+=("$US") vtc+=("$CPUUS")
    WK_VKB[$k]=$KB
    ratios+=("$(div "${vt[-1]}" "${nat[-1]}")") cratios+=("$(div "${vtc[-1]}" "${natc[-1]}")")
    # shellcheck disable=SC2086
    timed "$OUT/$k.floor.out" "$OUT/$k.floor.err" "$FLOOR" ${WK_CMD[$k]}
    if [[ $RC == 0 ]]; then
      fl+=("$US") fratios+=("$(div "$US" "${nat[-1]}")")
      floor="ptrace floor $(sec "$US"): ${fratios[-1]}×"
    else
      note "$k under the ptrace floor: exit $RC $(head -c 200 "$OUT/$k.floor.err")"
      floor="ptrace floor failed (exit $RC)"
    fi
    say "    untraced $(sec "${nat[-1]}") (CPU $(sec "${natc[-1]}")), vtrace $(sec "${vt[-1]}") (CPU $(sec "${vtc[-1]}"), RSS $(mb "${WK_VKB[$k]}") MB): ${ratios[-1]}× wall; $floor"
  done
  WK_F[$k]=0 WK_FR[$k]=nan
  if ((${#fl[@]})); then WK_F[$k]=$(median "${fl[@]}") WK_FR[$k]=$(median_f "${fratios[@]}"); fi
  WK_VF[$k]=$(sed -nE 's/^verdict: .* — ([0-9]+) vfork\(s\).*/\1/p' "$OUT/$k.vtrace.err" | tail -1)
  WK_NAT[$k]=$(median "${nat[@]}") WK_V[$k]=$(median "${vt[@]}") WK_NC[$k]=$(median "${natc[@]}") WK_VC[$k]=$(median "${vtc[@]}")
  WK_R[$k]=$(median_f "${ratios[@]}") WK_RC[$k]=$(median_f "${cratios[@]}")
  # shellcheck disable=SC2086
  timed "$OUT/$k.small.out" "$OUT/$k.small.err" ${WK_SMALL[$k]}
  WK_SNAT[$k]=$US
  # shellcheck disable=SC2086
  timed "$OUT/$k.strace.out" "$OUT/$k.strace.err" strace -f -o /dev/null ${WK_SMALL[$k]}
  [[ $RC == 0 ]] || note "$k under strace -f: exit $RC $(head -c 200 "$OUT/$k.strace.err")"
  WK_S[$k]=$US
  say "    strace -f on 1/$SDIV: $(sec "$US") vs untraced $(sec "${WK_SNAT[$k]}"): $(div "$US" "${WK_SNAT[$k]}")×"
done

# ------------------------------------------- goal 4a: RSS flat in vforks
say "(4a) peak RSS of \`vtrace run\` on spawnloop $RSS_SMALL (against the spawnloop $SPAWN_N run above)"
timed "$OUT/rss-small.out" "$OUT/rss-small.err" "$VTRACE" run "$T/spawnloop" "$RSS_SMALL"
[[ $RC == 0 ]] || note "vtrace spawnloop $RSS_SMALL: exit $RC"
RSS_SMALL_KB=$KB
R4A=$(div "${WK_VKB[spawn]}" "$RSS_SMALL_KB")
say "    $(mb "$RSS_SMALL_KB") MB at $RSS_SMALL vforks, $(mb "${WK_VKB[spawn]}") MB at $SPAWN_N: ${R4A}×"

# ------------------------------------------------- goal 3: --step rate
# stepref runs before and after vtrace (the machine's step rate drifts with
# the load on the other CPUs); the reference rate is the mean of the two.
# Many short rounds rather than a few long ones: on a shared VM the rate of
# both moves by 10-30 % between runs seconds apart (docs/bench.md, "`--step`
# against the C loop, second round"), and a median of 3 fell either side of
# the goal by chance.
declare -A S_V S_VUS S_R S_RES S_RATIO S_RATIO_PH S_RATIO_CPU S_SPREAD S_SPREAD_CPU S_RSPS S_VSPS S_LOAD
stepref_run() { # stepref_run N TAG: sets SR_STEPS SR_SPS SR_CSPS (steps per CPU second, parent and child)
  timed "$OUT/stepref.$1.$2.out" "$OUT/stepref.$1.$2.err" "$T/stepref" -c "$CPU" "$1"
  local line
  line=$(cat "$OUT/stepref.$1.$2.out")
  [[ $RC == 0 && $line == steps=* ]] || { note "stepref $1 ($2): exit $RC: $line $(head -c 200 "$OUT/stepref.$1.$2.err")"; line="steps=0 steps_per_sec=0"; }
  SR_STEPS=$(sed -E 's/.*steps=([0-9]+).*/\1/' <<<"$line")
  SR_SPS=$(sed -E 's/.*steps_per_sec=([0-9.]+).*/\1/' <<<"$line")
  SR_CSPS=$(div "$SR_STEPS" "$(awk -v u="$CPUUS" 'BEGIN {print u/1e6}')")
  say "    stepref ($2): $line (whole process $(sec "$US"), CPU $(sec "$CPUUS"))"
}
for N in $STEP_NS; do
  say "(3) single-step rate, N=$N: $STEP_ROUNDS rounds of vtrace --step --cpu $CPU, each between two runs of stepref -c $CPU"
  l0=$(cut -d' ' -f1 /proc/loadavg)
  stepref_run "$N" 0
  S_R[$N]=$SR_STEPS prev=$SR_SPS cprev=$SR_CSPS
  ratios=() phratios=() cratios=() vus_all=() rsps_all=("$SR_SPS") vsps_all=()
  for ((r = 1; r <= STEP_ROUNDS; r++)); do
    log=$OUT/spin.step.$N.$r.jsonl
    timed /dev/null "$OUT/spin.step.$N.$r.err" "$VTRACE" run --step -q --cpu "$CPU" --timeout 0 -o "$log" "$T/spin" "$N"
    vus=$US vcpu=$CPUUS
    [[ $RC == 0 ]] || note "vtrace --step spin $N (round $r): exit $RC, stderr '$(head -c 200 "$OUT/spin.step.$N.$r.err")'"
    check_budget "$log"
    steps=$(jfield "$log" child_end steps)
    [[ -n $steps ]] || { note "vtrace --step spin $N: no child_end steps in $log"; steps=0; }
    # stepping phase alone, from the log's own clock: vfork event -> child_end
    tv=$(jfield "$log" vfork t) te=$(jfield "$log" child_end t)
    ph=$(( (${te:-0} - ${tv:-0}) / 1000 ))
    vsps=$(div "$steps" "$(awk -v u="$vus" 'BEGIN {print u/1e6}')")
    vcsps=$(div "$steps" "$(awk -v u="$vcpu" 'BEGIN {print u/1e6}')")
    say "    vtrace ($r): steps=$steps wall $(sec "$vus") -> $(printf %.0f "$vsps") steps/s (vfork→child_end $(sec "$ph")); CPU $(sec "$vcpu")"
    stepref_run "$N" "$r"
    [[ $SR_STEPS == "${S_R[$N]}" ]] || note "stepref $N counted ${S_R[$N]} then $SR_STEPS steps"
    ref=$(awk -v a="$prev" -v b="$SR_SPS" 'BEGIN {printf "%.0f", (a+b)/2}')
    cref=$(awk -v a="$cprev" -v b="$SR_CSPS" 'BEGIN {printf "%.0f", (a+b)/2}')
    ratios+=("$(div "$vsps" "$ref")")
    cratios+=("$(div "$vcsps" "$cref")")
    phratios+=("$(div "$(div "$steps" "$(awk -v u="$ph" 'BEGIN {print u/1e6}')")" "$ref")")
    say "    ratio ${ratios[-1]} (vtrace whole run ÷ stepref $ref steps/s, the mean of the runs around it); on CPU time ${cratios[-1]}"
    vus_all+=("$vus") rsps_all+=("$SR_SPS") vsps_all+=("$vsps")
    prev=$SR_SPS cprev=$SR_CSPS
    S_V[$N]=$steps
    d=$(( steps - S_R[$N] ))
    ((d < -1000 || d > 1000)) && note "N=$N: vtrace counted $steps steps, stepref ${S_R[$N]} (difference $d)"
  done
  S_RATIO[$N]=$(median_f "${ratios[@]}") S_RATIO_PH[$N]=$(median_f "${phratios[@]}")
  S_RATIO_CPU[$N]=$(median_f "${cratios[@]}")
  S_SPREAD[$N]=$(spread "${ratios[@]}") S_SPREAD_CPU[$N]=$(spread "${cratios[@]}")
  S_RSPS[$N]="$(printf %.0f "$(median_f "${rsps_all[@]}")") ($(printf %.0f "$(printf '%s\n' "${rsps_all[@]}" | sort -g | head -1)")–$(printf %.0f "$(printf '%s\n' "${rsps_all[@]}" | sort -g | tail -1)"))"
  S_VSPS[$N]="$(printf %.0f "$(median_f "${vsps_all[@]}")") ($(printf %.0f "$(printf '%s\n' "${vsps_all[@]}" | sort -g | head -1)")–$(printf %.0f "$(printf '%s\n' "${vsps_all[@]}" | sort -g | tail -1)"))"
  S_VUS[$N]=$(median "${vus_all[@]}")
  S_LOAD[$N]="$l0 → $(cut -d' ' -f1 /proc/loadavg)"
  say "    median ratio ${S_RATIO[$N]} (min / quartiles / max ${S_SPREAD[$N]}); on CPU time ${S_RATIO_CPU[$N]} (${S_SPREAD_CPU[$N]})"
  # Under load the C loop, asleep in waitpid at every step, loses its CPU
  # to other tasks more often than vtrace, which yields and stays
  # runnable: the wall ratio then says more about the load than about
  # either tracer, in vtrace's favour. So the goal passes only when the
  # ratio on CPU time passes too.
  S_RES[$N]=$(pass "${S_RATIO[$N]}" ">=" 0.95)
  if [[ ${S_RES[$N]} == PASS && $(pass "${S_RATIO_CPU[$N]}" ">=" 0.95) == SHORT ]]; then
    S_RES[$N]=SHORT
    note "(3) N=$N: the wall ratio ${S_RATIO[$N]} passes but the ratio on CPU time is ${S_RATIO_CPU[$N]} (load ${S_LOAD[$N]}): SHORT, the wall's pass is the load's doing"
  fi
done

# ------------------------------------------- goal 4b: RSS of a 1M-step trace
say "(4b) peak RSS: vtrace --step --trace-insns -o $TRACE spin $RSS_N"
timed /dev/null "$OUT/rss.err" "$VTRACE" run --step --trace-insns -q --cpu "$CPU" --timeout 0 -o "$TRACE" "$T/spin" "$RSS_N"
RSS_US=$US
[[ $RC == 0 ]] || note "vtrace --trace-insns spin $RSS_N: exit $RC, stderr '$(head -c 200 "$OUT/rss.err")'"
RSS_KB=$KB
RSS_MB=$(awk -v k="$RSS_KB" 'BEGIN {printf "%.1f", k/1024}')
TRACE_BYTES=$(stat -c %s "$TRACE" 2>/dev/null || echo 0)
TRACE_LINES=$(wc -l <"$TRACE" 2>/dev/null || echo 0)
TRACE_STEPS=$(grep -c '"event":"child_step"' "$TRACE" 2>/dev/null || echo 0)
check_budget "$TRACE"
say "    peak RSS ${RSS_MB} MB, trace $((TRACE_BYTES / 1048576)) MiB, $TRACE_LINES lines ($TRACE_STEPS child_step), wall $(sec "$RSS_US")"
if [[ ${BENCH_KEEP:-0} == 1 ]]; then say "    kept $TRACE"; else rm -f "$TRACE"; fi

# ---------------------------------------------------------------- report
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$((SECONDS - T0))
row() { echo "| $1 | $2 | $3 | $4 | $5 |"; }
{
  echo
  echo "## vtrace benchmark — $START"
  echo
  echo "Machine: $MACHINE; load average $LOAD0 at start, $LOAD1 at end; bench took ${ELAPSED} s."
  echo "vtrace $VTRACE_ID, $(strace -V | head -1), $(gdb --version | head -1), $(python3 --version), $(make --version | head -1); targets: $T."
  echo
  echo "| goal | measured | goal | ratio | result |"
  echo "|---|---|---|---|---|"
  row "(1) badvfork, fast mode, full report: wall ÷ strace -f (median of $RUNS, pinned to CPU $CPU)" \
    "$(ms "$M_FAST") vs $(ms "$M_STRACE") (untraced $(ms "$M_NAT"))" "≤ 1.0" "$R1W" "$(pass "$R1W" "<=" 1.0)"
  row "(1) badvfork, fast mode, full report: CPU ÷ strace -f (user+sys, median of $RUNS)" \
    "$(ms "$MC_FAST") vs $(ms "$MC_STRACE") (untraced $(ms "$MC_NAT"))" "≤ 1.0" "$R1C" "$(pass "$R1C" "<=" 1.0)"
  for k in py make spawn sh; do
    sr=$(div "${WK_S[$k]}" "${WK_SNAT[$k]}") res=$(pass "${WK_R[$k]}" "<=" 1.5) goal="≤ 1.5" g="(2)"
    [[ ${WK_OK[$k]} == completed ]] || res=SHORT
    # The shell's own vforks (dash: its child changes the shell's memory,
    # and the parent is followed to its next command): beside goal 2, no
    # goal of its own.
    [[ $k == sh ]] && goal="— (beside goal 2)" res="—" g="(2, beside)"
    row "$g ${WK_NAME[$k]}: \`vtrace run\` ÷ untraced, wall" \
      "$(sec "${WK_V[$k]}") vs $(sec "${WK_NAT[$k]}"); CPU $(sec "${WK_VC[$k]}") vs $(sec "${WK_NC[$k]}") (${WK_RC[$k]}×); ${WK_VF[$k]} vforks, ${WK_OK[$k]}; ptrace floor $(sec "${WK_F[$k]}") (${WK_FR[$k]}×); strace -f on 1/$SDIV: $(sec "${WK_S[$k]}") vs $(sec "${WK_SNAT[$k]}") (${sr}×)" \
      "$goal" "${WK_R[$k]}" "$res"
  done
  for N in $STEP_NS; do
    row "(3) --step rate, spin $(comma "$N"): vtrace ÷ stepref (median of $STEP_ROUNDS rounds)" \
      "vtrace $(comma "${S_V[$N]}") steps in $(sec "${S_VUS[$N]}") (median), ${S_VSPS[$N]} steps/s; stepref ${S_RSPS[$N]} steps/s; round ratios min / quartiles / max ${S_SPREAD[$N]}; on CPU time ${S_RATIO_CPU[$N]} (${S_SPREAD_CPU[$N]}); load ${S_LOAD[$N]}" \
      "≥ 0.95" "${S_RATIO[$N]}" "${S_RES[$N]}"
  done
  row "(4a) peak RSS at $(comma "$SPAWN_N") vforks ÷ at $(comma "$RSS_SMALL")" \
    "$(mb "${WK_VKB[spawn]}") MB vs $(mb "$RSS_SMALL_KB") MB" "≤ 1.2" "$R4A" "$(pass "$R4A" "<=" 1.2)"
  row "(4b) peak RSS, --step --trace-insns spin $(comma "$RSS_N") → JSONL file" \
    "$RSS_MB MB ($((TRACE_BYTES / 1048576)) MiB file, $(comma "$TRACE_LINES") lines, $(sec "$RSS_US"))" "≤ 50 MB" "$(div "$RSS_MB" 50)" "$(pass "$RSS_MB" "<=" 50)"
  echo
  echo "Beside the goals:"
  echo
  echo "| run | wall |"
  echo "|---|---|"
  echo "| badvfork \`vtrace run -q --no-aslr --step\` (median of $RUNS) | $(ms "$M_STEP") |"
  echo "| badvfork gdb script (median of $GDB_RUNS; vtrace fast ÷ gdb $R_GDB) | $(ms "$M_GDB") |"
  for N in $STEP_NS; do
    echo "| vtrace --step spin $N, median of $STEP_ROUNDS rounds (whole run; median ratio on the vfork→child_end phase alone: ${S_RATIO_PH[$N]}) | $(sec "${S_VUS[$N]}") |"
  done
  if ((${#NOTES[@]})); then
    echo
    echo "Notes:"
    for n in "${NOTES[@]}"; do echo "- $n"; done
  fi
} >"$OUT/results.md"
cat "$OUT/results.md"
((${#NOTES[@]})) && say "${#NOTES[@]} note(s): see the Notes list"
say "results in $OUT/results.md"
grep -q '| SHORT |$' "$OUT/results.md" && exit 1
exit 0
