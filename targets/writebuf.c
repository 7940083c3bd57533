/*
 * writebuf.c - the parent hands the kernel a buffer the child filled
 * (issue 11, right on real programs).
 * Expected verdict: WARNING (parent_read_child_write): prints "from the
 * child\n" (written by the parent), exits 0.
 *
 * The child fills a buffer of the parent's frame and _exits; the parent
 * never loads a byte of it itself: it passes it to write(2). The kernel
 * reads the child's bytes for the parent — the parent used what the child
 * left in its frame, just as if it had read it — but neither a single-step
 * of the parent nor a watchpoint on the words sees a read made in kernel
 * mode. vtrace knows write's buffer argument and its result.
 */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	char buf[16] = "...............";
	int status;
	pid_t pid = vfork();

	if (pid == 0) {
		memcpy(buf, "from the child\n", 15);
		_exit(0);
	}
	if (pid < 0)
		return 1;
	if (write(1, buf, 15) != 15)
		return 1;
	if (waitpid(pid, &status, 0) < 0)
		return 1;
	return 0;
}
