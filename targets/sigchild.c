/*
 * sigchild.c - the vfork child dies from a signal before it can exec.
 * Expected verdict: CLEAN (no stack damage; the child's death by SIGSEGV
 * is an event to report, not a vfork violation).
 *
 * The child writes through a null pointer and gets a real SIGSEGV. The
 * kernel ends the vfork as soon as the child dies, the parent resumes,
 * reaps the child, reports the signal and exits 0 if the child was killed
 * by SIGSEGV as expected, 1 otherwise.
 *
 * Optional argument `raise`: the child calls raise(SIGSEGV) instead. glibc
 * (2.36) sends it with tgkill(getpid(), gettid()), both asked of the
 * kernel, so only the child dies, as above. musl's raise() uses tkill()
 * on the thread id cached in the thread descriptor, which the vfork child
 * shares with its parent: the signal goes to the suspended parent, the
 * child goes on to _exit(99), and the parent dies of SIGSEGV as soon as it
 * resumes (shell status 139). A bug in the child's libc use, not a stack
 * violation - see README.md.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int *volatile null_ptr;        /* volatile: the store must happen */

int main(int argc, char **argv)
{
	int use_raise = argc > 1 && strcmp(argv[1], "raise") == 0;
	int status;
	pid_t pid;

	setvbuf(stdout, NULL, _IONBF, 0);
	pid = vfork();
	if (pid == 0) {
		if (use_raise)
			raise(SIGSEGV);
		else
			*null_ptr = 1;    /* SIGSEGV */
		_exit(99);                /* not reached */
	}
	if (pid < 0) {
		perror("vfork");
		return 1;
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	if (WIFSIGNALED(status))
		printf("parent: child %d killed by signal %d\n", (int)pid, WTERMSIG(status));
	else
		printf("parent: child %d exited with %d\n", (int)pid, WEXITSTATUS(status));
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV ? 0 : 1;
}
