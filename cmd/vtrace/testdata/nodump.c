/* A program that makes itself not dumpable (prctl PR_SET_DUMPABLE 0, as
 * ssh-agent and gpg-agent do) and then vforks (docs/reliability.md).
 * Traced by a user without CAP_SYS_PTRACE, vtrace can no longer read its
 * memory (the kernel refuses PTRACE_PEEKDATA and /proc/PID/mem on a
 * task that is not dumpable): the story must be unchecked with the
 * reason, the run go on and end, nothing left stopped. The child _exits;
 * the parent waits for it. Natively: prints "parent: child exited 7". */
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	if (prctl(PR_SET_DUMPABLE, 0) != 0) {
		perror("prctl");
		return 2;
	}
	pid_t pid = vfork();
	if (pid == 0)
		_exit(7);
	if (pid < 0) {
		perror("vfork");
		return 2;
	}
	int status;
	if (waitpid(pid, &status, 0) != pid) {
		perror("waitpid");
		return 2;
	}
	printf("parent: child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}
