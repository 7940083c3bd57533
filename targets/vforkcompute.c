/*
 * vforkcompute.c - two correct vfork+exec, then a compute loop in main()
 * (issue 11, item 7). Expected verdict: CLEAN, both stories complete; the
 * run ends by itself.
 *
 *   vforkcompute [N]   N iterations of the loop (default 4,000,000: a few
 *                      tens of ms natively: 48 million instructions at
 *                      -O0, 12 per iteration)
 *
 * As in vforkloop, the -O0 children store vfork's 0 into main()'s `pid`,
 * and the parent overwrites it. After the second vfork main() computes for
 * a while and never returns: a tracer that follows the parent "until it
 * returns above the changed word" single-steps every iteration (the issue
 * measured 4.45 million steps and a run cut by the timeout). Nothing the
 * child changed can be read once the parent has rewritten `pid`, so the
 * story ends there, and the loop runs at full speed.
 * Prints the loop's result; exits 0 when both children exited 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 4000000;
	volatile unsigned long acc = 0;
	int i, status, bad = 0;
	pid_t pid;
	long k;

	for (i = 0; i < 2; i++) {
		pid = vfork();
		if (pid == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad++;
	}
	for (k = 0; k < n; k++)
		acc = acc * 31 + (unsigned long)k;
	printf("parent: computed %lu\n", (unsigned long)acc);
	return bad != 0;
}
