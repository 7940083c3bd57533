/* TestStoriesGiveWay (docs/reliability.md, "who waits for whom"). Found by
 * the review (h-review): vtrace hung here from 2b234da (vforkEvent nests
 * the grandchild's vfork story while the vfork child C, whose byte G waits
 * for, sits in a postponed stop) until stories gave way
 * (tracer/giveway.go): G's story is cut short ("blocked"), C goes on.
 * A vfork child C forks F; F vforks G, which waits for a byte C writes
 * after its fork. Natively: prints "F exited 0", exits 0. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	int fds[2];
	if (pipe(fds) < 0)
		return 1;
	pid_t c = vfork();
	if (c == 0) {
		pid_t f = fork();
		if (f == 0) {
			pid_t g = vfork();
			if (g == 0) {
				char b = 0;
				if (read(fds[0], &b, 1) != 1)
					_exit(3);
				_exit(b == 'x' ? 0 : 4);
			}
			int st = 0;
			waitpid(g, &st, 0);
			_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 5);
		}
		usleep(200000);
		write(fds[1], "x", 1);
		_exit(0);
	}
	waitpid(c, NULL, 0);
	int st = 0;
	wait(&st);
	printf("F exited %d\n", WEXITSTATUS(st));
	return 0;
}
