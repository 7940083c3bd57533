/*
 * exitvfork.c - the vfork child calls exit() instead of _exit().
 * Expected verdict: WARNING.
 *
 * exit() runs the process's atexit handlers and flushes stdio. In a vfork
 * child those are the parent's handlers and the parent's FILE buffers, in
 * the parent's memory. After fork() this would print the buffered line and
 * the handler's line twice; after vfork() the state is shared, so nothing
 * is duplicated - instead the child does the parent's work and uses it up:
 *   - the handler runs once, in the child, and never in the parent (glibc
 *     and musl both take each handler off the shared list as they run it);
 *   - the line the parent left in its stdout buffer is written by the child;
 *   - glibc's exit() also makes stdout unbuffered (in the shared FILE), so
 *     the parent's two last lines go out as two write()s as soon as they
 *     are printed; under musl they stay buffered until the parent's exit
 *     (one writev) - visible with strace -f -e trace=write,writev.
 * stdout is made fully buffered so this looks the same on a tty and a pipe.
 *
 * Output: "parent: before vfork", "atexit handler: running in child (pid
 * N)", "parent: back from vfork", "parent: child exited with 7, calling
 * exit(0)". Exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t parent_pid;

static void handler(void)
{
	printf("atexit handler: running in %s (pid %d)\n",
	       getpid() == parent_pid ? "parent" : "child", (int)getpid());
}

int main(void)
{
	int status;
	pid_t pid;

	setvbuf(stdout, NULL, _IOFBF, BUFSIZ);
	parent_pid = getpid();
	if (atexit(handler) != 0) {
		fprintf(stderr, "atexit failed\n");
		return 1;
	}
	printf("parent: before vfork\n");     /* stays in the buffer */
	pid = vfork();
	if (pid == 0)
		exit(7);                      /* should be _exit(7) */
	if (pid < 0) {
		perror("vfork");
		return 1;
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	fputs("parent: back from vfork\n", stdout);
	printf("parent: child exited with %d, calling exit(0)\n",
	       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	exit(0);
}
