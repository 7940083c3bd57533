#!/usr/bin/env python3
"""benchtime.py - run one command and measure it, for scripts/bench.sh.

usage: benchtime.py OUT ERR [--cpu N] CMD [ARGS...]

Runs CMD with stdout to OUT and stderr to ERR (stdin from /dev/null), and
prints one line on stdout:

    wall_us cpu_us maxrss_kb rc

wall_us: wall time from just before the spawn to the end of wait4, in
microseconds (a monotonic clock); cpu_us: user + system time of CMD and of
every descendant it waited for (wait4's rusage: for vtrace and strace that
includes the traced program, which they reap); maxrss_kb: wait4's ru_maxrss
(the largest resident set of CMD and those descendants); rc: the exit
status as a shell reports it (128+N when killed by signal N).

--cpu N pins CMD (and what it starts) to CPU N: the affinity is set here,
before the spawn, which the child inherits. (`taskset -c N CMD` would add
taskset's own exec to CMD's times: 0.5-0.8 ms of CPU, a tenth of strace
-f's on the seed.)

The timing is taken inside this process, around the command alone, so
Python's own start-up is not in it.
"""
import os
import sys
import time


def main():
    if len(sys.argv) < 4:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    out, err, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    if len(argv) >= 3 and argv[0] == "--cpu":
        os.sched_setaffinity(0, {int(argv[1])})
        argv = argv[2:]
    fa = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
    ]
    t0 = time.perf_counter_ns()
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=fa)
    except OSError as e:
        print(f"benchtime: {argv[0]}: {e}", file=sys.stderr)
        return 2
    _, status, ru = os.wait4(pid, 0)
    t1 = time.perf_counter_ns()
    rc = os.waitstatus_to_exitcode(status)
    if rc < 0:
        rc = 128 - rc
    cpu = ru.ru_utime + ru.ru_stime
    print(f"{(t1 - t0) // 1000} {int(cpu * 1e6)} {ru.ru_maxrss} {rc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
