#!/usr/bin/env python3
"""bench-real.py - real spawn-heavy workloads: untraced, vtrace, strace -f.

usage: bench-real.py [-n ROUNDS] [-w NAME,...] [-m MODE,...] [VTRACE ...]

Builds the workloads under $BENCHREAL_DIR (default /tmp/rw; autoconf, gcc,
node, python3, bash, dash, busybox and git must be installed), then runs
ROUNDS rounds (default 5); each round runs every workload once in every
mode, interleaved, so that all see the same load. Modes: "untraced", one
per VTRACE binary given (default build/vtrace; named by its base name, or
NAME=PATH), each as `VTRACE run -- CMD` (default flags: the text report on
stderr), and "strace" (`strace -f -o /dev/null CMD`). Every run's exit
status and stdout must equal the untraced run's of that round (a
workload's stdout is deterministic); vtrace's stderr must hold a
`verdict:` line and no "run stopped". Prints, per workload and mode, the
median wall time and CPU time (user + system of everything reaped, from
wait4's rusage) and the ratios to untraced; a mismatch is printed and
makes the exit status 1.

vtrace's symbol index (README, "Symbol index") is kept in a directory of
the bench's own ($BENCHREAL_DIR/cache, as XDG_CACHE_HOME), and one round
is run first and not counted: every vtrace binary measured then reads
its index as a user's second run does. A shared ~/.cache/vtrace holds at
most 256 entries; other users of the machine (other builds of vtrace, the
tests) evict the big ones (node's is 8.7 MB, 150 ms of CPU to build on
another CPU), which made vtrace's CPU time here jump from run to run.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

D = os.environ.get("BENCHREAL_DIR", "/tmp/rw")

CONFIGURE_AC = """AC_INIT([rw], [1.0])
AC_PROG_CC
AC_CHECK_HEADERS([stdio.h stdlib.h string.h unistd.h fcntl.h sys/types.h sys/stat.h sys/wait.h sys/time.h sys/socket.h netinet/in.h arpa/inet.h poll.h pthread.h dlfcn.h signal.h errno.h limits.h stdint.h inttypes.h])
AC_CHECK_FUNCS([vfork fork posix_spawn memcpy strdup strndup getline pipe2 dup3 clock_gettime nanosleep poll select strerror mmap munmap])
AC_CHECK_TYPES([long long, size_t, ssize_t])
AC_CHECK_SIZEOF([long])
AC_CHECK_SIZEOF([void *])
AC_CHECK_LIB([m], [cos])
AC_CHECK_LIB([pthread], [pthread_create])
AC_CONFIG_HEADERS([config.h])
AC_OUTPUT
"""

MAKEFILE = """SRCS := $(sort $(wildcard f*.c)) main.c
OBJS := $(SRCS:.c=.o)
prog: $(OBJS)
\tgcc -o $@ $(OBJS)
\t./prog
%.o: %.c
\tgcc -O1 -c $< -o $@
clean:
\trm -f *.o prog
.PHONY: clean
"""

NODE8 = """const { exec } = require('child_process');
let left = 8, out = [];
for (let i = 0; i < 8; i++) {
  exec('echo ' + i + ' && true', (err, stdout) => {
    if (err) throw err;
    out[i] = stdout.trim();
    if (--left === 0) console.log(out.join(','));
  });
}
"""

PYTHREADS = """import subprocess, concurrent.futures
def job(i):
    return subprocess.run(["echo", str(i)], capture_output=True, text=True).stdout.strip()
with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
    r = list(ex.map(job, range(64)))
print(",".join(r))
"""

PYMP = """import multiprocessing as mp, subprocess
def job(i):
    return subprocess.run(["echo", str(i)], capture_output=True, text=True).stdout.strip()
if __name__ == "__main__":
    with mp.Pool(4) as p:
        print(",".join(p.map(job, range(32))))
"""

CMDSUB = """i=0; s=0
while [ $i -lt 1000 ]; do
  x=$(echo $i)
  s=$((s + x)); i=$((i+1))
done
echo $s
"""

PIPES = """n=0
for i in $(seq 1 100); do
  c=$(printf '%s\\n' a b c $i | grep -v b | sort | tr a-z A-Z | wc -l)
  n=$((n + c))
done
echo $n
"""

GIT = """set -e
d=$(mktemp -d /tmp/rw-git.XXXXXX)
git init -q $d; cd $d
git config user.email a@b; git config user.name t
printf '#!/bin/sh\\ngit diff --cached --name-only | grep -q . || exit 1\\n' > .git/hooks/pre-commit
printf '#!/bin/sh\\ngrep -q . "$1"\\n' > .git/hooks/commit-msg
chmod +x .git/hooks/pre-commit .git/hooks/commit-msg
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  echo $i > f$i; git add f$i; git commit -q -m "c$i"
done
git log --oneline | wc -l
git status --short | wc -l
cd /; rm -rf $d
"""


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def setup():
    os.makedirs(D + "/conf", exist_ok=True)
    write(D + "/conf/configure.ac", CONFIGURE_AC)
    write(D + "/conf/config.h.in", "#undef X\n")
    if not os.path.exists(D + "/conf/configure"):
        subprocess.run(["autoconf"], cwd=D + "/conf", check=True)
        subprocess.run(["autoheader"], cwd=D + "/conf", check=True)
    os.makedirs(D + "/mk", exist_ok=True)
    for i in range(1, 31):
        write(f"{D}/mk/f{i}.c", f"""#include <stdio.h>
#include <string.h>
struct s{i} {{ int a[{i}]; char name[32]; }};
int f{i}(int x) {{ struct s{i} s; memset(&s, 0, sizeof s);
  for (int k = 0; k < {i}; k++) s.a[k] = x * k;
  snprintf(s.name, sizeof s.name, "f%d", x); return s.a[{i}-1] + (int)strlen(s.name); }}
""")
    write(D + "/mk/main.c", "#include <stdio.h>\n" + "".join(f"int f{i}(int);\n" for i in range(1, 31))
          + "int main(void){int t=0;\n" + "".join(f"t+=f{i}({i});\n" for i in range(1, 31))
          + 'printf("%d\\n",t);return 0;}\n')
    write(D + "/mk/Makefile", MAKEFILE)
    write(D + "/node8.js", NODE8)
    write(D + "/pythreads.py", PYTHREADS)
    write(D + "/pymp.py", PYMP)
    write(D + "/cmdsub.sh", CMDSUB)
    write(D + "/pipes.sh", PIPES)
    write(D + "/git.sh", GIT)


def workloads():
    return [
        ("configure", ["sh", "-c", f"cd {D}/conf && rm -f config.h && ./configure"]),
        ("make-j2", ["sh", "-c", f"cd {D}/mk && make -s clean && make -s -j2"]),
        ("node-8exec", ["node", D + "/node8.js"]),
        ("py-threads", ["python3", D + "/pythreads.py"]),
        ("py-mp", ["python3", D + "/pymp.py"]),
        ("bash-cmdsub", ["bash", D + "/cmdsub.sh"]),
        ("dash-cmdsub", ["dash", D + "/cmdsub.sh"]),
        ("dash-pipes", ["dash", D + "/pipes.sh"]),
        ("busybox-pipes", ["busybox", "sh", D + "/pipes.sh"]),
        ("git-hooks", ["sh", D + "/git.sh"]),
    ]


def run(argv, errpath):
    with open(errpath, "w") as err:
        t0 = time.perf_counter_ns()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        t1 = time.perf_counter_ns()
        p.returncode = os.waitstatus_to_exitcode(status)
    return (t1 - t0) / 1e9, ru.ru_utime + ru.ru_stime, p.returncode, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("-w", default="")
    ap.add_argument("-m", default="")
    ap.add_argument("--warm", type=int, default=1, help="rounds run first and not counted")
    ap.add_argument("vtrace", nargs="*")
    a = ap.parse_args()
    setup()
    vts = []
    for v in a.vtrace or ["build/vtrace"]:
        name, _, path = v.rpartition("=")
        vts.append((name or os.path.basename(path), os.path.abspath(path)))
    modes = [("untraced", [])] + [(n, [p, "run", "--"]) for n, p in vts] + [
        ("strace", ["strace", "-f", "-o", "/dev/null"])]
    if a.m:
        keep = a.m.split(",")
        modes = [m for m in modes if m[0] == "untraced" or m[0] in keep]
    wls = [w for w in workloads() if not a.w or w[0] in a.w.split(",")]
    os.environ["XDG_CACHE_HOME"] = D + "/cache"
    res = {}
    bad = 0
    errdir = D + "/err"
    os.makedirs(errdir, exist_ok=True)
    for r in range(-a.warm, a.n):
        for wname, argv in wls:
            ref = None
            for mname, pre in modes:
                errpath = f"{errdir}/{wname}.{mname}.err"
                wall, cpu, rc, out = run(pre + argv, errpath)
                if r >= 0:
                    res.setdefault((wname, mname), []).append((wall, cpu))
                if ref is None:
                    ref = (rc, out)
                    continue
                msg = []
                if (rc, out) != ref:
                    msg.append(f"exit {rc} vs {ref[0]}, stdout {out[:80]!r} vs {ref[1][:80]!r}")
                if pre and pre[1:2] == ["run"]:
                    e = open(errpath, errors="replace").read()
                    if "verdict:" not in e or "run stopped" in e:
                        msg.append("no verdict or a budget stop: " + e[-300:])
                if msg:
                    bad += 1
                    print(f"MISMATCH round {r} {wname} {mname}: " + "; ".join(msg), file=sys.stderr)
            print(f"round {r} {wname} done", file=sys.stderr, flush=True)
    print("| workload | " + " | ".join(f"{m} wall / CPU" for m, _ in modes) + " | "
          + " | ".join(f"{m} ÷ untraced wall (CPU)" for m, _ in modes[1:]) + " |")
    print("|---" * (2 * len(modes)) + "|")
    for wname, _ in wls:
        med = {}
        for mname, _ in modes:
            v = res[(wname, mname)]
            med[mname] = (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
        u = med["untraced"]
        print(f"| {wname} | " + " | ".join(f"{med[m][0]:.3f} / {med[m][1]:.3f} s" for m, _ in modes) + " | "
              + " | ".join(f"{med[m][0] / u[0]:.2f}× ({med[m][1] / u[1]:.2f}×)" for m, _ in modes[1:]) + " |")
    print(f"{a.n} rounds; {bad} mismatches", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
