/* Review reproducer (h-review): gcc -O0 -g; vtrace run -o log: the child's
 * child_end must say bp_hits 1 and x's store found_by step (TestForkChildInherited). */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char kstack[65536] __attribute__((aligned(16)));

static int kfn(void *a)
{
	(void)a;
	syscall(SYS_exit, 0);
	return 0;
}

static __attribute__((noinline)) int helper(void)
{
	/* CLONE_VM without CLONE_VFORK, exit signal SIGCHLD: a PTRACE_EVENT_FORK
	 * whose child shares this memory */
	pid_t k = clone(kfn, kstack + sizeof kstack, CLONE_VM | SIGCHLD, NULL);
	int st = 0;
	if (k < 0 || waitpid(k, &st, 0) != k)
		return -1;
	return 0;
}

int main(void)
{
	volatile int x = 1;
	pid_t pid = vfork();
	if (pid == 0) {
		if (helper() != 0)
			_exit(2);
		x = 42;
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	printf("x %d\n", x);
	return 0;
}
