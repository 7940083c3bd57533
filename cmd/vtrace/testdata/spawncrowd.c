/*
 * spawncrowd.c - N processes (default 16) released at once, each making 4
 * vforks: posix_spawn of /bin/true, and vfork whose child writes a local
 * of its parent for an odd k (the parent returns it: a warning) and
 * _exits. Stories of different processes overlap: a vfork event arrives
 * while another process's story waits for its child's first stop, and
 * that child's stop may come while the nested story waits for its own.
 * Prints "spawncrowd: T" (the sum of the exit codes) and exits 0.
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>

extern char **environ;

__attribute__((noinline)) static int sp(int k)
{
	char *av[] = { "/bin/true", NULL };
	pid_t p;
	int st;

	if (posix_spawn(&p, "/bin/true", NULL, NULL, av, environ) != 0 || waitpid(p, &st, 0) != p)
		return 100;
	return WEXITSTATUS(st) + k;
}

__attribute__((noinline)) static int vf(int k)
{
	volatile int loc = k;
	pid_t p = vfork();
	int st;

	if (p == 0) {
		if (k % 2)
			loc = 7;
		_exit(0);
	}
	waitpid(p, &st, 0);
	return loc;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 16, pfd[2], tot = 0, st;
	char x;

	if (pipe(pfd) != 0)
		return 2;
	for (int c = 0; c < n; c++) {
		if (fork() == 0) {
			int s = 0;
			close(pfd[1]);
			if (read(pfd[0], &x, 1) != 0) /* all start together, at EOF */
				_exit(100);
			for (int i = 0; i < 4; i++)
				s += (i & 1) ? vf(c + i) : sp(c);
			_exit(s & 0x7f);
		}
	}
	close(pfd[0]);
	usleep(100000);
	close(pfd[1]);
	while (wait(&st) > 0)
		tot += WEXITSTATUS(st);
	printf("spawncrowd: %d\n", tot);
	return 0;
}
