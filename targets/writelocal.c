/*
 * writelocal.c - the vfork child writes a local variable of the function
 * that called vfork, then _exits. Expected verdict: WARNING.
 *
 * The child never returns, so no return address is damaged, but it stores
 * 42 into `value`, which lives in main()'s stack frame; the parent reads
 * it after the child has gone and prints 42, not 1. POSIX calls this
 * undefined behaviour. `value` is volatile so it stays in the stack frame
 * (and is really written and read) at every optimisation level.
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	volatile int value = 1;
	pid_t pid;

	pid = vfork();
	if (pid == 0) {
		value = 42;               /* write into the parent's frame */
		_exit(0);
	}
	if (pid < 0) {
		perror("vfork");
		return 1;
	}
	waitpid(pid, NULL, 0);
	printf("parent: value = %d\n", value);
	return 0;
}
