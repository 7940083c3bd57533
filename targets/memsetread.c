/*
 * memsetread.c - the child writes a buffer of its parent's frame; the
 * parent memsets it in a callee, then reads it (issue 11, item 3).
 * Expected verdict: CLEAN, in every build.
 *
 * The child builds an argument for /bin/true in `buf` (a local of the
 * function that called vfork, so a live parent frame) and execs. The parent
 * then clears `buf` with memset - called through a volatile function
 * pointer, so that the clearing is a real call into libc in every build,
 * never stores the compiler inlines - and only then reads it: with its own
 * instructions (`buf[0]`, `buf[8]`, loads from its frame) and inside
 * strlen. Every byte the parent reads was rewritten by memset after the
 * child ran: none of them still holds what the child wrote, so the parent
 * never read a child write. A tracer that remembers "the child changed this
 * word" past the callee's rewrite reports a read that did not happen.
 * Prints "parent: buf[0] 0, buf[8] 0, 0 bytes after memset" and exits with
 * the child's status (0).
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *(*volatile clear)(void *, int, size_t) = memset;

__attribute__((noinline)) static int run(void)
{
	char buf[64];
	int status;
	pid_t pid;

	pid = vfork();
	if (pid == 0) {
		strcpy(buf, "--scribbled-by-the-child");
		execl("/bin/true", "true", buf, (char *)NULL);
		_exit(127);
	}
	clear(buf, 0, sizeof buf);
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return 1;
	printf("parent: buf[0] %d, buf[8] %d, %zu bytes after memset\n", buf[0], buf[8], strlen(buf));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(void)
{
	return run();
}
