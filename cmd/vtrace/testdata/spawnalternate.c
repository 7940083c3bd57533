/*
 * spawnalternate.c - one process alternating glibc's posix_spawn (whose
 * child vtrace watches in its TLS block alone in fast mode: libc_spawn)
 * and a vfork whose child, the program's own code, writes a global the
 * parent then reads. Each kind of story must get its own plan of the
 * memory watch: the vfork children's writes are seen every time.
 *
 * Expected: every posix_spawn story clean; every vfork story a warning
 * (child_wrote_global, parent_read_child_global on `shared`). Prints the
 * sum of what the parent read; exits 0.
 */
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int shared;

int main(void)
{
	int sum = 0;

	for (int i = 1; i <= 3; i++) {
		char *argv[] = {"true", NULL};
		pid_t pid;
		int st;

		if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) != 0 || waitpid(pid, &st, 0) != pid)
			return 1;
		pid = vfork();
		if (pid == 0) {
			shared = i; /* the program's own code in a vfork child */
			_exit(0);
		}
		if (pid < 0 || waitpid(pid, &st, 0) != pid)
			return 1;
		sum += shared;
	}
	printf("%d\n", sum);
	return 0;
}
