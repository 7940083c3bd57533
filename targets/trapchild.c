/*
 * trapchild.c - the vfork child gets a SIGTRAP of its own (issue 13,
 * "signals exactly as natively").
 * Expected verdict: CLEAN; the child dies of SIGTRAP, natively and under
 * vtrace in every mode (fast, --step, --watchpoints off).
 *
 * A SIGTRAP is also how ptrace reports single-steps and breakpoints, so a
 * tracer can take the program's own for one of its own and swallow it:
 * the child then "exits 0". Without an argument the child executes an
 * int3 (SIGTRAP, si_code SI_KERNEL); with `kill` it sends itself SIGTRAP
 * with kill(getpid(), ...) (SI_USER; getpid() is a system call in glibc
 * 2.36 and musl, so it is the child's pid); with `timer` it arms a POSIX
 * timer whose signal is SIGTRAP (SI_TIMER, 2 ms) and spins in a loop of
 * register-only instructions and jumps (none raises a SIGTRAP of its own)
 * until the timer's SIGTRAP arrives at whichever instruction; under
 * --step that SIGTRAP must not be taken for a step's. No handler: the
 * default action kills the child. The parent reaps it, prints how it ended and exits 0
 * when that was SIGTRAP, 1 otherwise.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int use_kill = argc > 1 && strcmp(argv[1], "kill") == 0;
	int use_timer = argc > 1 && strcmp(argv[1], "timer") == 0;
	int status;
	pid_t pid;

	setvbuf(stdout, NULL, _IONBF, 0);
	pid = vfork();
	if (pid == 0) {
		if (use_kill)
			kill(getpid(), SIGTRAP);
		else if (use_timer) {
			struct sigevent ev;
			struct itimerspec its;
			timer_t tm;

			memset(&ev, 0, sizeof(ev));
			memset(&its, 0, sizeof(its));
			ev.sigev_notify = SIGEV_SIGNAL;
			ev.sigev_signo = SIGTRAP;
			its.it_value.tv_nsec = 2000000;
			if (timer_create(CLOCK_MONOTONIC, &ev, &tm) != 0 || timer_settime(tm, 0, &its, NULL) != 0)
				_exit(98);
			/* 3 x 10^8 rounds: far longer than 2 ms natively */
			__asm__ volatile("mov $300000000, %%ecx\n1: dec %%ecx\n\tjnz 1b" ::: "ecx", "cc");
		} else
			__asm__ volatile("int3");
		_exit(99);              /* only if the SIGTRAP was swallowed */
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		perror("vfork/waitpid");
		return 1;
	}
	if (WIFSIGNALED(status)) {
		printf("child killed by signal %d\n", WTERMSIG(status));
		return WTERMSIG(status) == SIGTRAP ? 0 : 1;
	}
	printf("child exited %d\n", WEXITSTATUS(status));
	return 1;
}
