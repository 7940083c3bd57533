/*
 * spawn.c - posix_spawn("/bin/true") and waitpid.
 * Expected verdict: CLEAN.
 *
 * The C library does the vfork-style spawn itself (glibc: clone3 or clone
 * with CLONE_VM|CLONE_VFORK on a separately mapped stack; musl: clone with
 * CLONE_VM|CLONE_VFORK on a stack buffer inside posix_spawn's frame). The
 * exact syscall per build is listed in the README.
 */
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

int main(void)
{
	char *argv[] = { "/bin/true", NULL };
	int status, err;
	pid_t pid;

	err = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
	if (err != 0) {
		fprintf(stderr, "posix_spawn: %s\n", strerror(err));
		return 1;
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
