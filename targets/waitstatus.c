/*
 * waitstatus.c - the child writes the parent's status word with the very
 * bytes the parent's waitpid() stores there afterwards (issue 11, right on
 * real programs).
 * Expected verdict: CLEAN; prints "child exited 0", exits 0.
 *
 * vtrace follows the parent while a word still holds the child's bytes,
 * and tells "rewritten" from "still the child's" by comparing values: a
 * write of equal bytes is invisible that way. The child sets `status` to
 * 0 and _exits with 0; the parent's waitpid(pid, &status, 0) stores 0
 * there (exit status 0), and the parent reads the kernel's value, not the
 * child's. vtrace must know that waitpid (the wait4 system call, stepped,
 * or the libc function, run at full speed) filled those bytes in.
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	volatile int status = 12345;
	pid_t pid = vfork();

	if (pid == 0) {
		status = 0;
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, (int *)&status, 0) < 0) {
		perror("vfork/waitpid");
		return 1;
	}
	printf("child exited %d\n", WEXITSTATUS(status));
	return WEXITSTATUS(status);
}
