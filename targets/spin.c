/*
 * spin.c - benchmark workload: a vfork child that computes for a while.
 * Expected verdict: CLEAN.
 *
 * usage: spin [N]   N = instructions for the child's loop (default
 * 1000000). The child runs spin_work(N) from spin.h (exactly N/4
 * iterations of a 4-instruction loop on x86) and _exits with the low 7
 * bits of the result; the parent waits and prints that status. Used to
 * compare a tracer's single-step rate with stepref.c's raw loop.
 * Exits 0 (2 on a usage error).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "spin.h"

int main(int argc, char **argv)
{
	unsigned long n = SPIN_DEFAULT_INSNS;
	int status;
	pid_t pid;
	char *end;

	if (argc > 1) {
		n = strtoul(argv[1], &end, 0);
		if (argc > 2 || *argv[1] == '\0' || *end != '\0') {
			fprintf(stderr, "usage: %s [N]\n", argv[0]);
			return 2;
		}
	}
	pid = vfork();

	if (pid == 0)
		_exit((int)(spin_work(n) & 0x7f));
	if (pid < 0) {
		perror("vfork");
		return 1;
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	printf("spin: n=%lu child status=%d\n", n, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}
