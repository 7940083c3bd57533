/*
 * nestedvfork.c - a vfork child that vforks again.
 * Expected verdict: CLEAN.
 *
 * The child (still borrowing the parent's memory and stack) calls
 * run_grandchild(), which vforks a grandchild that execs /bin/true, waits
 * for it and _exits with its status. Nobody returns from a function that
 * called vfork; the child's calls only use stack below the frame the parent
 * is suspended in (at -O0 the child also stores vfork's 0 into main's `pid`
 * slot, which the parent overwrites with its own return value - as in
 * every -O0 build of the good targets). Two vforks, the second one made by
 * a vfork child. The parent exits 0 if everything worked, 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void __attribute__((noreturn)) run_grandchild(void)
{
	char *argv[] = { "/bin/true", NULL };
	int status;
	pid_t pid = vfork();

	if (pid == 0) {
		execve(argv[0], argv, environ);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		_exit(126);
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 125);
}

int main(void)
{
	int status;
	pid_t pid = vfork();

	if (pid == 0)
		run_grandchild();
	if (pid < 0) {
		perror("vfork");
		return 1;
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "child failed: status %d\n", status);
		return 1;
	}
	printf("parent: child and grandchild done\n");
	return 0;
}
