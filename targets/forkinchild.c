/*
 * forkinchild.c - the vfork child calls a function that fork()s (issue
 * 13, "vtrace must not change what it traces").
 * Expected verdict: CLEAN; natively and under vtrace in every mode the
 * grandchild exits 7, the child 0, and the program prints the same line
 * and exits 0.
 *
 * In fast mode vtrace runs a call the child makes at full speed to an
 * int3 it plants at the return address (the child shares the parent's
 * memory, so the parent's code holds it too). A fork made inside that call
 * copies the memory, int3 included: the fork child returns onto an int3
 * nobody planted for it and, if vtrace takes the trap for the program's,
 * dies of SIGTRAP. The fork child must find the program's own bytes.
 *
 * With `clonevfork`, fork_helper() makes the grandchild with
 * clone(CLONE_VFORK | SIGCHLD) instead: the kernel reports it as a vfork,
 * but without CLONE_VM the grandchild has a copy of the memory, int3
 * included, as after fork (and the child waits until it exits).
 *
 * With `vfork`, the grandchild makes a vfork of its own (its child exits
 * 5, it exits 5 + 2) while the child's story is still under way: the
 * child waits for the grandchild, so vtrace must not hold the grandchild's
 * vfork until the child's story ends (it waited for ever in --step mode,
 * and in fast mode the child exited 249).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int clonevfork;

/* Not inlined: the child calls it, so vtrace runs it at full speed. */
static __attribute__((noinline)) pid_t fork_helper(void)
{
	if (clonevfork)
		return (pid_t)syscall(SYS_clone, CLONE_VFORK | SIGCHLD, 0, 0, 0, 0);
	return fork();
}

int main(int argc, char **argv)
{
	int nested = argc > 1 && strcmp(argv[1], "vfork") == 0;
	int status;

	clonevfork = argc > 1 && strcmp(argv[1], "clonevfork") == 0;
	pid_t pid;

	setvbuf(stdout, NULL, _IONBF, 0);
	pid = vfork();
	if (pid == 0) {
		/* A status word of the child's own: the parent's `status`
		 * is rewritten by its waitpid, but where the kernel writes the
		 * bytes the child left there (zeros), vtrace, which compares
		 * values, would still count them as the child's. */
		int gstatus;
		pid_t g = fork_helper();
		if (g == 0 && nested) {
			pid_t h = vfork();
			if (h == 0)
				_exit(5);
			if (h < 0 || waitpid(h, &gstatus, 0) < 0 || !WIFEXITED(gstatus))
				_exit(1);
			_exit(WEXITSTATUS(gstatus) + 2);
		}
		if (g == 0)
			_exit(7); /* the grandchild, back from fork_helper() */
		if (g < 0 || waitpid(g, &gstatus, 0) < 0)
			_exit(1);
		/* 0 when the grandchild exited 7 */
		_exit(WIFEXITED(gstatus) ? WEXITSTATUS(gstatus) - 7 : 100 + WTERMSIG(gstatus));
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		perror("vfork/waitpid");
		return 1;
	}
	if (WIFEXITED(status)) {
		printf("child exited %d (0: the grandchild exited 7)\n", WEXITSTATUS(status));
		return WEXITSTATUS(status);
	}
	printf("child killed by signal %d\n", WTERMSIG(status));
	return 1;
}
