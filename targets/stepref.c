/*
 * stepref.c - the reference single-step rate: a plain C PTRACE_SINGLESTEP
 * loop over the spin.c workload. Not a vfork target (no verdict).
 *
 * usage: stepref [-c CPU] [-y] [N]
 *   N    instructions for spin_work() (default 1000000, as in spin.c)
 *   -c   pin this process (and therefore the child it forks) to CPU;
 *        default: the CPU it starts on; -c -1: do not pin
 *   -y   wait as vtrace --step does on one CPU: sched_yield() after each
 *        PTRACE_SINGLESTEP, then waitpid(WNOHANG), a blocking waitpid
 *        only when no stop has come (not the raw loop bench.sh measures
 *        against: a C loop of vtrace's own design, to tell what vtrace's
 *        Go code costs from what the way it waits saves)
 *
 * Pinning tracer and tracee to one CPU is how vtrace single-steps, and on
 * these VMs it changes the rate a lot (FACTS.md: 1.3-4x), so the
 * reference is pinned unless told otherwise.
 *
 * The child asks to be traced, stops itself with SIGSTOP, runs
 * spin_work(N) and _exits. The parent single-steps it from that stop to
 * its exit and prints, on one line:
 *   steps=<n> seconds=<s> steps_per_sec=<r> cpu=<c or -1>
 * steps counts every PTRACE_SINGLESTEP issued (the last one runs the exit
 * syscall), so it is N plus raise()'s return path and _exit(): measured
 * +~50 steps for static builds, +600..700 for dynamic ones (lazy binding
 * of _exit@plt). Exits 0; 1 on a tracing error, 2 on a usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "spin.h"

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static pid_t xwaitpid(pid_t pid, int *status)
{
	pid_t r;

	do
		r = waitpid(pid, status, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		die("waitpid");
	return r;
}

static double now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime");
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned long n = SPIN_DEFAULT_INSNS, steps = 0;
	int cpu = -2, opt, status, sig = 0;     /* -2: not given */
	int yield = 0;
	double t0, t1;
	pid_t pid;

	while ((opt = getopt(argc, argv, "c:y")) != -1) {
		char *end;

		if (opt == 'y') {
			yield = 1;
		} else if (opt == 'c') {
			cpu = (int)strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || cpu < -1) {
				fprintf(stderr, "stepref: bad CPU %s\n", optarg);
				return 2;
			}
		} else {
			fprintf(stderr, "usage: %s [-c CPU] [-y] [N]\n", argv[0]);
			return 2;
		}
	}
	if (optind < argc) {
		char *end;

		n = strtoul(argv[optind], &end, 0);
		if (optind + 1 < argc || *argv[optind] == '\0' || *end != '\0') {
			fprintf(stderr, "usage: %s [-c CPU] [-y] [N]\n", argv[0]);
			return 2;
		}
	}

	if (cpu == -2) {
		cpu = sched_getcpu();
		if (cpu < 0)
			die("sched_getcpu");
	}
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof set, &set) != 0)
			die("sched_setaffinity");
	}

	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) == -1)
			_exit(126);
		if (raise(SIGSTOP) != 0)
			_exit(126);
		_exit((int)(spin_work(n) & 0x7f));
	}

	xwaitpid(pid, &status);
	if (!WIFSTOPPED(status) || WSTOPSIG(status) != SIGSTOP) {
		fprintf(stderr, "stepref: child did not stop (status %#x)\n", status);
		return 1;
	}
	if (ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)(long)PTRACE_O_EXITKILL) == -1)
		die("PTRACE_SETOPTIONS");

	t0 = now();
	for (;;) {
		if (ptrace(PTRACE_SINGLESTEP, pid, NULL, (void *)(long)sig) == -1)
			die("PTRACE_SINGLESTEP");
		steps++;
		if (yield) {
			pid_t r;

			sched_yield();
			do
				r = waitpid(pid, &status, WNOHANG);
			while (r < 0 && errno == EINTR);
			if (r < 0)
				die("waitpid");
			if (r == 0)
				xwaitpid(pid, &status);
		} else {
			xwaitpid(pid, &status);
		}
		if (WIFEXITED(status) || WIFSIGNALED(status))
			break;
		if (!WIFSTOPPED(status)) {
			fprintf(stderr, "stepref: unexpected status %#x\n", status);
			return 1;
		}
		/* pass on any real signal; SIGTRAP is our own step trap */
		sig = WSTOPSIG(status) == SIGTRAP ? 0 : WSTOPSIG(status);
	}
	t1 = now();

	if (WIFSIGNALED(status)) {
		fprintf(stderr, "stepref: child killed by signal %d\n", WTERMSIG(status));
		return 1;
	}
	printf("steps=%lu seconds=%.6f steps_per_sec=%.0f cpu=%d\n",
	       steps, t1 - t0, steps / (t1 - t0), cpu);
	return 0;
}
