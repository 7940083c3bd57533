/*
 * sigchldfollow.c - a parent with a SIGCHLD handler, followed by vtrace
 * while the signal arrives (issue 13, "signals exactly as natively").
 * Expected verdict: CLEAN; the handler runs once, natively and under
 * vtrace in every mode; exit 0.
 *
 * spawn() keeps a local array the vfork child writes and the parent never
 * reads, so vtrace follows the parent until it returns from spawn(). The
 * child _exits at once: its SIGCHLD is pending when the parent wakes, and
 * is delivered while vtrace single-steps the parent. A single-step that
 * delivers a signal stops at the handler's first instruction with a
 * SIGTRAP of si_code 5 (the kernel's signal_delivered()): that trap is
 * the tracer's, not the program's - taken for the program's own, it was
 * delivered and killed the program with SIGTRAP.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t chld;

static void on_chld(int sig)
{
	(void)sig;
	chld++;
}

__attribute__((noinline)) static pid_t spawn(void)
{
	volatile long scratch[4] = { 0 };
	pid_t pid = vfork();

	if (pid == 0) {
		scratch[1] = 42; /* a word of spawn()'s frame; the parent never reads it */
		_exit(0);
	}
	return pid;
}

int main(void)
{
	struct sigaction sa;
	int status;
	pid_t pid;

	setvbuf(stdout, NULL, _IONBF, 0);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_chld;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	pid = spawn();
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		perror("vfork/waitpid");
		return 1;
	}
	printf("SIGCHLD handler ran %d time(s)\n", (int)chld);
	return chld == 1 ? 0 : 1;
}
