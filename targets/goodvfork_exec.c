/*
 * goodvfork_exec.c - textbook vfork: the child only calls execve, and
 * _exit(127) if that fails. Expected verdict: CLEAN.
 *
 * The parent waits and exits with the child's exit status (0 for
 * /bin/true).
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int main(void)
{
	char *argv[] = { "/bin/true", NULL };
	int status;
	pid_t pid = vfork();

	if (pid == 0) {
		execve(argv[0], argv, environ);
		_exit(127);
	}
	if (pid < 0) {
		perror("vfork");
		return 1;
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
