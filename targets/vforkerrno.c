/*
 * vforkerrno.c - a correct vfork child changes its parent's errno.
 * Inspired by glibc's posix/tst-vfork3 (vfork + execvp through a PATH whose
 * first entries do not hold the program, _exit(errno) on failure); written
 * anew for vtrace.
 *
 *   vforkerrno        the parent saves errno (EBADF, from close(-1)) BEFORE
 *                     the vfork and never reads it afterwards.
 *                     Expected verdict: CLEAN.
 *   vforkerrno read   the parent reads errno AFTER the vfork, to report the
 *                     close(-1) that failed before it.
 *                     Expected verdict: WARNING (parent_read_child_global).
 *   vforkerrno open   after the vfork, the parent's own open() of a missing
 *                     file fails with ENOENT - the value the child left -
 *                     and the parent then reads errno: its own.
 *                     Expected verdict: CLEAN (a tracer that runs open() at
 *                     full speed sees errno unchanged, 2 before and after;
 *                     it must not take the read for the child's value).
 *
 * From first principles: the vfork child has no TLS of its own (vfork is
 * clone(CLONE_VM|CLONE_VFORK) without CLONE_SETTLS: the child's thread
 * pointer is its parent's), so errno in the child IS the parent thread's
 * errno (glibc: a TLS variable; musl: errno_val in struct pthread).
 * execvp("true") with PATH=/nonexistent/vtrace-a:/nonexistent/vtrace-b:/bin
 * makes two failing execve calls (ENOENT) before /bin/true runs: each sets
 * errno, and the successful exec leaves it at ENOENT. So even this correct
 * child (it only calls execvp and _exit) leaves the parent's errno changed.
 * That is libc bookkeeping and harmless as long as the parent does not
 * rely on errno across the vfork (the default case; printf's own internal
 * save of errno for %m changes nothing printed). In the `read` case the
 * parent does rely on it: it reports "close(-1) failed: No such file or
 * directory" instead of "Bad file descriptor" - natively, in every build -
 * a value the child wrote, read by the parent: a real, visible corruption.
 *
 * Exit: 0 when the parent reported EBADF and the child exited 0 (/bin/true
 * ran); 1 when the parent reported another errno (the `read` case, natively
 * in every build); 2 on an unexpected failure. `open`: 0 when the parent's
 * open() failed with ENOENT and the child exited 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* spawn_true vfork()s a child that execvp()s "true" and returns its pid. */
__attribute__((noinline)) static pid_t spawn_true(void)
{
	pid_t pid = vfork();
	if (pid == 0) {
		char *argv[] = { "true", NULL };
		execvp("true", argv);
		_exit(127);
	}
	return pid;
}

/* open_missing: the parent's own failing call after the vfork; it reads
 * the errno its open() set (ENOENT, equal to what the child left). */
static int open_missing(void)
{
	int status, fd;
	pid_t pid = spawn_true();

	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return 2;
	fd = open("/nonexistent/vtrace-config", O_RDONLY);
	if (fd >= 0 || errno != ENOENT)
		return 2;
	printf("no /nonexistent/vtrace-config (ENOENT): defaults\n");
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
	int read_after = argc > 1 && strcmp(argv[1], "read") == 0;
	int saved = 0, status;
	pid_t pid;

	if (setenv("PATH", "/nonexistent/vtrace-a:/nonexistent/vtrace-b:/bin:/usr/bin", 1) != 0)
		return 2;
	if (argc > 1 && strcmp(argv[1], "open") == 0)
		return open_missing();
	if (close(-1) == 0)
		return 2;
	if (!read_after)
		saved = errno; /* EBADF, saved while it is still close()'s */
	pid = spawn_true();
	if (read_after)
		saved = errno; /* what the child's execvp left there */
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return 2;
	printf("close(-1) failed: %s\n", strerror(saved));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return 2;
	return saved == EBADF ? 0 : 1;
}
