/*
 * vforkexecvp.c - vfork + execvp of shell scripts found through PATH,
 * _exit(errno) when the exec fails.
 * Inspired by glibc's posix/tst-vfork3 (scripts in a temporary directory
 * put first in PATH, one with a #! line and one without, each run several
 * times by vfork + execvp/execlp); written anew.
 * Expected verdict: CLEAN, in every build.
 *
 * The parent writes two scripts into a new directory under /tmp:
 * with-hashbang ("#!/bin/sh" line) and no-hashbang (no #! line), sets
 * PATH=/nonexistent/vtrace-x:<dir>:/bin:/usr/bin, and runs each twice with
 * vfork(); child: execvp (execlp for the second run); _exit(errno).
 *
 * From first principles: the child only calls execvp/execlp and _exit.
 * Inside execvp the libc builds each candidate path in a buffer on the
 * child's own stack (below the parent's stack pointer: glibc's __execvpe
 * VLA, musl's __execvpe array) and makes a failing execve for the
 * nonexistent PATH entry (errno := ENOENT in the parent's TLS - libc
 * bookkeeping; the parent does not read errno). For no-hashbang, execve
 * fails with ENOEXEC: glibc (maybe_script_execute) builds a new argv on the
 * child's stack and execs /bin/sh with the script - the child ends by exec,
 * the script exits 0; musl does not run a shell for ENOEXEC, returns -1, and
 * the child _exit(ENOEXEC = 8)s. Both are the libcs' documented behaviour,
 * and the program accepts the one of its libc. The parent reads only
 * vfork's return value (its own store) and waitpid's status (the kernel's).
 * Every child is a correct vfork child.
 *
 * Exit 0 when every child ended as its libc says it must, 1 otherwise,
 * 2 when the set-up failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef __GLIBC__
#define NOEXEC_STATUS 0 /* glibc runs /bin/sh no-hashbang */
#else
#define NOEXEC_STATUS ENOEXEC /* musl: execvp fails, the child _exits errno */
#endif

static char dir[] = "/tmp/vtrace-execvp-XXXXXX";

static int write_script(const char *name, const char *text)
{
	char path[sizeof dir + 32];
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0700);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || close(fd) != 0)
		return -1;
	return 0;
}

/* run_script runs name through PATH in a vfork child and returns its exit
 * status, -1 when it did not exit. */
__attribute__((noinline)) static int run_script(const char *name, int use_execlp)
{
	int status;
	pid_t pid = vfork();

	if (pid == 0) {
		if (use_execlp) {
			execlp(name, name, "arg", (char *)NULL);
		} else {
			char *argv[] = { (char *)name, "arg", NULL };
			execvp(name, argv);
		}
		_exit(errno);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static void cleanup(void)
{
	char path[sizeof dir + 32];

	snprintf(path, sizeof path, "%s/with-hashbang", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/no-hashbang", dir);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	char pathvar[sizeof dir + 64];
	int ok = 1, i, st;

	if (mkdtemp(dir) == NULL)
		return 2;
	atexit(cleanup);
	if (write_script("with-hashbang", "#!/bin/sh\nexit 0\n") != 0 ||
	    write_script("no-hashbang", "exit 0\n") != 0)
		return 2;
	snprintf(pathvar, sizeof pathvar, "/nonexistent/vtrace-x:%s:/bin:/usr/bin", dir);
	if (setenv("PATH", pathvar, 1) != 0)
		return 2;

	for (i = 0; i < 2; i++) {
		st = run_script("with-hashbang", i);
		if (st != 0) {
			printf("with-hashbang (%s): status %d, want 0\n", i ? "execlp" : "execvp", st);
			ok = 0;
		}
		st = run_script("no-hashbang", i);
		if (st != NOEXEC_STATUS) {
			printf("no-hashbang (%s): status %d, want %d\n", i ? "execlp" : "execvp", st, NOEXEC_STATUS);
			ok = 0;
		}
	}
	printf("4 scripts run through PATH: %s\n", ok ? "as the libc says" : "NOT as the libc says");
	return ok ? 0 : 1;
}
