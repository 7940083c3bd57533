/*
 * goodvfork_exit.c - the vfork child does nothing but _exit(3).
 * Expected verdict: CLEAN.
 *
 * The parent waits, prints the child's status and exits with it: exit
 * status 3 shows that the child really ran, _exited, and the parent got
 * its status back (128+signal if the child was killed, 1 on an error).
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	int status;
	pid_t pid = vfork();

	if (pid == 0)
		_exit(3);
	if (pid < 0) {
		perror("vfork");
		return 1;
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	printf("parent: child exited with %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
