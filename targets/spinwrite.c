/*
 * spinwrite.c - the vfork child writes one local of its parent 100,000
 * times before it execs (issue 13, "bounded logs").
 * Expected verdict: CLEAN (the parent never reads the word again); the
 * log stays small: the 100,000 writes to one word are one stack_write
 * event with a count, not 100,000 events.
 *
 * spawn() keeps a volatile counter in its frame; the child, on the
 * parent's stack in that very frame, counts it up (a child spinning on a
 * shared variable, as one waiting on a timer would), then execs
 * /bin/true. The parent waits and exits with the child's status.
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) static pid_t spawn(void)
{
	/* An array: a single 8-byte local is kept with push/pop at clang -O2,
	 * and the parent's `pop %rcx` would read it back. */
	volatile long spins[4] = { 0 };
	pid_t pid = vfork();

	if (pid == 0) {
		for (long i = 0; i < 100000; i++)
			spins[0] = i;
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	return pid;
}

int main(void)
{
	int status;
	pid_t pid;

	setvbuf(stdout, NULL, _IONBF, 0);
	pid = spawn();
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		perror("vfork/waitpid");
		return 1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
