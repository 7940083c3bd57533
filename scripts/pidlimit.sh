#!/usr/bin/env bash
# usage: scripts/pidlimit.sh MAX CMD...
# Runs CMD in a fresh pids cgroup capped at MAX tasks (a fork storm stops
# at MAX; nothing it starts can outlive the cap), and kills whatever is
# left in the cgroup when CMD ends. cgroup v1 (/sys/fs/cgroup/pids) or v2
# (/sys/fs/cgroup with the pids controller). Needs root; exits 125 when no
# pids cgroup can be made.
set -eu
max=$1; shift
if [ -d /sys/fs/cgroup/pids ]; then
	root=/sys/fs/cgroup/pids
elif [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw pids /sys/fs/cgroup/cgroup.controllers; then
	root=/sys/fs/cgroup
else
	echo "pidlimit: no pids cgroup controller here" >&2; exit 125
fi
cg=$root/vtrace-pidlimit.$$
mkdir "$cg" || exit 125
echo "$max" > "$cg/pids.max"
cleanup() {
	for _ in 1 2 3 4 5; do
		procs=$(cat "$cg/cgroup.procs" 2>/dev/null) || break
		[ -z "$procs" ] && break
		kill -9 $procs 2>/dev/null || true
		sleep 0.1
	done
	rmdir "$cg" 2>/dev/null || true
}
trap cleanup EXIT
status=0
bash -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' _ "$cg" "$@" || status=$?
exit $status
