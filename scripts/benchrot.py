#!/usr/bin/env python3
"""benchrot.py - commands side by side, runs interleaved, medians.

usage: benchrot.py N NAME=COMMAND [NAME=COMMAND ...]

Runs N rounds; each round runs every COMMAND once, in the order given
(stdin and stdout /dev/null, stderr to $BENCHROT_DIR/NAME.err, default
/tmp), so that all of them see the same load. Prints, per command, the
median wall time, the median CPU time (user + system of the command and of
everything it reaped, from wait4's rusage) with its quartiles, and the
median of the minor page faults. COMMAND is split as a shell would
(shlex), without a shell: no pipes or redirections.

What docs/bench.md's A/B figures for the seed were measured with, e.g.

  scripts/benchrot.py 100 "old=/tmp/old run --no-aslr --cpu 1 build/targets/gcc-O0/badvfork" \\
      "new=/tmp/new run --no-aslr --cpu 1 build/targets/gcc-O0/badvfork" \\
      "strace=taskset -c 1 strace -f -o /dev/null build/targets/gcc-O0/badvfork"

Measure copies of freshly linked binaries (cp), not the linker's output
itself: that runs slower (docs/bench.md, "The seed's fixed costs, second
round"). The timing is taken in this process around each command alone.
"""
import os
import shlex
import statistics
import sys
import time


def main():
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    n = int(sys.argv[1])
    cmds = []
    for a in sys.argv[2:]:
        name, _, cmd = a.partition("=")
        cmds.append((name, shlex.split(cmd)))
    errdir = os.environ.get("BENCHROT_DIR", "/tmp")
    res = {name: [] for name, _ in cmds}
    for _ in range(n):
        for name, argv in cmds:
            fa = [
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.path.join(errdir, "benchrot." + name + ".err"),
                 os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            ]
            t0 = time.perf_counter_ns()
            pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=fa)
            _, _, ru = os.wait4(pid, 0)
            t1 = time.perf_counter_ns()
            res[name].append(((t1 - t0) / 1e6, (ru.ru_utime + ru.ru_stime) * 1e3, ru.ru_minflt))
    for name, _ in cmds:
        r = res[name]
        cpu = sorted(x[1] for x in r)
        print(f"{name:16s} wall {statistics.median(x[0] for x in r):7.2f} ms  "
              f"CPU {statistics.median(cpu):7.2f} ms (quartiles {cpu[len(cpu) // 4]:.2f} {cpu[3 * len(cpu) // 4]:.2f})  "
              f"minor faults {statistics.median(x[2] for x in r):.0f}")
    with open("/proc/loadavg") as f:
        print("load average at the end", " ".join(f.read().split()[:3]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
