/*
 * vforkpid.c - the vfork child reports its own pid through a pipe, twice:
 * once before the parent ever called getpid(), once after.
 * Inspired by glibc's posix/tst-vfork1 (which checked that vfork does not
 * leave a stale pid in glibc's old getpid cache: the child's getpid() must
 * be the pid vfork returned to the parent, and the parent's getpid() must
 * be its own afterwards); written anew.
 * Expected verdict: CLEAN, in every build.
 *
 * From first principles: each child calls getpid() (a syscall; glibc
 * 2.25+ and musl cache nothing), write()s the pid into a pipe from a local
 * of its own, and _exit()s with write's success. Its stores: vfork's 0 into
 * the caller's `pid` (gcc/clang -O0 keep it in a stack slot; the parent
 * stores its own vfork result over it before reading it - the one store
 * vfork(2) allows) and its local `p`, a slot the parent never reads. The
 * kernel reads `p` for the child's write(2) - the child's own read, not the
 * parent's. The parent reads the pid from the pipe (bytes the kernel wrote
 * into its own buffer), waits, and compares: child pid == vfork's return,
 * parent pid unchanged and different.
 *
 * Exit 0 when all holds ("all as expected"), 1 otherwise.
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static int fds[2];

/* child_pid vforks a child that writes its pid into the pipe; the parent
 * reads it, reaps the child and returns 0 when it matches. */
__attribute__((noinline)) static int child_pid(const char *round)
{
	pid_t pid, seen = 0;
	int status;

	pid = vfork();
	if (pid == 0) {
		pid_t p = getpid();
		_exit(write(fds[1], &p, sizeof p) != sizeof p);
	}
	if (pid < 0) {
		printf("%s vfork failed\n", round);
		return 1;
	}
	if (read(fds[0], &seen, sizeof seen) != sizeof seen ||
	    waitpid(pid, &status, 0) != pid || status != 0) {
		printf("%s child: no pid, or its write failed\n", round);
		return 1;
	}
	if (seen != pid || seen == getpid()) {
		printf("%s child: getpid() %d in the child, vfork returned %d, parent %d\n",
		       round, (int)seen, (int)pid, (int)getpid());
		return 1;
	}
	return 0;
}

int main(void)
{
	pid_t before, after;
	int bad;

	if (pipe(fds) != 0)
		return 1;
	bad = child_pid("1st"); /* no getpid() in the parent yet */
	before = getpid();
	bad |= child_pid("2nd");
	after = getpid();
	if (before != after) {
		printf("the parent's pid changed: %d -> %d\n", (int)before, (int)after);
		bad = 1;
	}
	if (!bad)
		printf("all as expected\n");
	return bad;
}
