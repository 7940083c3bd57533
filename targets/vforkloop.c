/*
 * vforkloop.c - a correct vfork() in a loop inside main() (issue 11, item 7).
 * Expected verdict: CLEAN; every story complete, none nested in another,
 * and the run ends by itself.
 *
 *   vforkloop [N [exec|exit]]   N rounds (default 500) of
 *                               pid = vfork(); child: execl /bin/true
 *                               (default) or _exit(0); parent: waitpid
 *
 * In the -O0 builds `pid` is a local of main() and the child stores
 * vfork's 0 into it (`mov %eax,-0x..(%rbp)`) before it execs: a changed
 * word of a live parent frame that the parent then overwrites with its own
 * return value before reading it. main() never returns, so "follow the
 * parent until it returns above that word" would follow it forever; the
 * word is dead as soon as the parent's store rewrites it. Each story must
 * end there (or when nothing changed can still be read), before the next
 * vfork - stories of one process never nest. The -O2 builds keep `pid` in
 * a register: the child writes nothing of the parent's.
 * Exit 0 when every child exited 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 500;
	int exec_mode = !(argc > 2 && strcmp(argv[2], "exit") == 0);
	int i, status, bad = 0;
	pid_t pid;

	for (i = 0; i < rounds; i++) {
		pid = vfork();
		if (pid == 0) {
			if (exec_mode)
				execl("/bin/true", "true", (char *)NULL);
			_exit(exec_mode ? 127 : 0);
		}
		if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad++;
	}
	printf("parent: %d vforks, %d failed\n", rounds, bad);
	return bad != 0;
}
