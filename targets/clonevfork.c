/*
 * clonevfork.c - clone(fn, own stack, CLONE_VM|CLONE_VFORK|SIGCHLD).
 * Expected verdict: CLEAN.
 *
 * This is what posix_spawn does internally: the child shares the parent's
 * memory and the parent is suspended until the child execs or exits, but
 * the child runs child_fn() on its own malloc'd stack, so it never touches
 * the parent's frames. Default: the child execs /bin/true. Argument `exit`:
 * the child just calls _exit(5). The parent exits 0 if the child's status
 * is the expected one.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define STACK_SIZE (64 * 1024)

extern char **environ;

static int child_fn(void *arg)
{
	char *argv[] = { "/bin/true", NULL };

	if (arg != NULL)                  /* "exit" mode */
		_exit(5);
	execve(argv[0], argv, environ);
	_exit(127);
}

int main(int argc, char **argv)
{
	int exit_mode = argc > 1 && strcmp(argv[1], "exit") == 0;
	int want = exit_mode ? 5 : 0;
	char *stack = malloc(STACK_SIZE);
	int status;
	pid_t pid;

	if (stack == NULL) {
		perror("malloc");
		return 1;
	}
	/* the stack grows down: pass its highest address */
	pid = clone(child_fn, stack + STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD,
		    exit_mode ? (void *)1 : NULL);
	if (pid < 0) {
		perror("clone");
		return 1;
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	free(stack);
	printf("parent: child exited with %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return WIFEXITED(status) && WEXITSTATUS(status) == want ? 0 : 1;
}
