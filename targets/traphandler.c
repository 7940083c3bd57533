/*
 * traphandler.c - a program with a SIGTRAP handler of its own, vforking
 * (issue 13, "signals exactly as natively").
 * Expected verdict: CLEAN; the handler runs 4 times, natively and under
 * vtrace in every mode (fast, --step, --watchpoints off).
 *
 * Debuggers-in-the-program, JITs and test harnesses catch SIGTRAP. The
 * program counts its handler's runs: an int3 and a raise(SIGTRAP) before
 * any vfork, then a vfork whose child execs /bin/true, and in the parent,
 * right after vfork returns - while vtrace follows it - another int3 and
 * raise(SIGTRAP). It prints the count and exits 0 when it is 4.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t hits;

static void on_trap(int sig)
{
	(void)sig;
	hits++;
}

int main(void)
{
	struct sigaction sa;
	int status;
	pid_t pid;

	setvbuf(stdout, NULL, _IONBF, 0);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_trap;
	sigaction(SIGTRAP, &sa, NULL);
	__asm__ volatile("int3");
	raise(SIGTRAP);
	pid = vfork();
	if (pid == 0) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	__asm__ volatile("int3");
	raise(SIGTRAP);
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		perror("vfork/waitpid");
		return 1;
	}
	printf("SIGTRAP handler ran %d times\n", (int)hits);
	return hits == 4 ? 0 : 1;
}
