/*
 * deepvfork.c - vfork two frames deep.
 * Expected verdict: VIOLATION.
 *
 * main() calls outer(), which calls inner(), which calls vfork(). The
 * child returns from inner() and then from outer() (both frames the
 * suspended parent still needs) and goes on in main(), whose calls to
 * printf() overwrite the return-address slots of outer() and inner().
 * When the parent resumes it returns from inner() through a clobbered
 * slot. noinline keeps the two frames real at -O2. stdout is unbuffered so
 * each line is written by the process that printed it. Where the parent
 * ends up differs per build (README.md): mostly SIGSEGV, but the musl -O0
 * parent runs the child's path and exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) pid_t inner(void)
{
	pid_t pid = vfork();

	if (pid == 0)
		printf("child: vfork returned 0 in inner()\n");
	return pid;                       /* the child returns: bad */
}

__attribute__((noinline)) pid_t outer(void)
{
	pid_t pid = inner();

	printf("%s: back in outer(), pid %d\n", pid ? "parent" : "child", (int)pid);
	return pid;                       /* the child returns again */
}

int main(void)
{
	pid_t pid;

	setvbuf(stdout, NULL, _IONBF, 0);
	pid = outer();
	if (pid == 0) {
		printf("child: back in main(), calling _exit\n");
		_exit(0);
	}
	printf("parent: back in main(), child %d\n", (int)pid);
	waitpid(pid, NULL, 0);
	return 0;
}
