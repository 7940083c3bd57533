/* 60,000 frames of recursion, then a vfork whose child execs at once
 * (docs/reliability.md). vtrace unwinds 64 frames and snapshots 1 MiB of
 * the live stack, and says so in notes; the story is clean. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int down(int n)
{
	volatile char pad[16];
	pad[0] = (char)n;
	if (n > 0)
		return down(n - 1) + pad[0] - (char)n;
	pid_t pid = vfork();
	if (pid == 0) {
		execl("/bin/true", "true", (char *)0);
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
	return WEXITSTATUS(status);
}

int main(void)
{
	int r = down(60000);
	printf("depth 60000: child status %d\n", r);
	return r;
}
