/*
 * spawnloop.c - benchmark workload: N x (posix_spawn /bin/true + waitpid).
 * Expected verdict: CLEAN.
 *
 * usage: spawnloop [N]   (default 10000). Stops at the first failure.
 * Prints "spawnloop: N spawns" and exits 0 when all N children exited 0;
 * 1 on the first failure, 2 on a usage error.
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv)
{
	char *cargv[] = { "/bin/true", NULL };
	long n = 10000, i;
	char *end;

	if (argc > 1) {
		n = strtol(argv[1], &end, 0);
		if (argc > 2 || *argv[1] == '\0' || *end != '\0' || n < 0) {
			fprintf(stderr, "usage: %s [N]   (N >= 0, default 10000)\n", argv[0]);
			return 2;
		}
	}

	for (i = 0; i < n; i++) {
		int status, err;
		pid_t pid;

		err = posix_spawn(&pid, cargv[0], NULL, NULL, cargv, environ);
		if (err != 0) {
			fprintf(stderr, "posix_spawn #%ld: %s\n", i, strerror(err));
			return 1;
		}
		if (waitpid(pid, &status, 0) < 0) {
			perror("waitpid");
			return 1;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "child #%ld: status %d\n", i, status);
			return 1;
		}
	}
	printf("spawnloop: %ld spawns\n", n);
	return 0;
}
