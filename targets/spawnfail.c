/*
 * spawnfail.c - posix_spawn that fails in the child (issue 11, item 1).
 * Expected verdict: CLEAN (glibc and musl, amd64 and i386).
 *
 *   spawnfail          posix_spawn("/nonexistent/x"): the child's execve
 *                      fails with ENOENT
 *   spawnfail addopen  posix_spawn("/bin/true") with a file action that opens
 *                      /nonexistent/dir/file: the child's open fails first
 *   spawnfail spawn2   the idea of glibc's posix/tst-spawn2, written anew:
 *                      posix_spawn and posix_spawnp of a missing program
 *                      must return ENOENT, leave *pid alone and leave no
 *                      child behind (waitpid(-1) fails with ECHILD)
 *
 * Exit 0 when every call failed the way POSIX and the libc say it must
 * (ENOENT), 1 otherwise.
 *
 * Why this is correct code, and what a tracer sees (from the libc sources):
 * glibc 2.36 (sysdeps/unix/sysv/linux/spawni.c) runs the child with
 * clone3/clone(CLONE_VM|CLONE_VFORK) on a stack it mmaps, passing it a
 * pointer to `struct posix_spawn_args args`, a local of __spawnix() on the
 * parent's stack. When a file action or the exec fails, the child stores
 * the error in args->err and _exit(127)s; the parent, resumed, reads
 * args.err and returns it. That write-then-read of a parent stack word is
 * the libc's error channel, on purpose and by design: it is what makes
 * posix_spawn report ENOENT at all. It must come out as a `libc_channel`
 * event (kind "spawn_error", by = the child's store in __spawni_child) and
 * a clean story, not as parent_read_child_write.
 * The child's failing syscalls also set errno, a TLS word of the parent's
 * thread (no CLONE_SETTLS): libc bookkeeping, not a finding either.
 * musl 1.2.3 (src/process/posix_spawn.c) sends the error through a
 * CLOEXEC pipe instead: its child writes only its own stack (a buffer in
 * posix_spawn's frame) and errno, and no libc_channel event is expected.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

static const char missing[] = "/nonexistent/x";

/* spawn_missing spawns a missing program with posix_spawn (or posix_spawnp)
 * and checks what POSIX and the libc promise for it. */
static int spawn_missing(int use_path)
{
	char *argv[] = { (char *)missing, NULL };
	pid_t pid = -1;
	int err;

	if (use_path)
		err = posix_spawnp(&pid, missing, NULL, NULL, argv, environ);
	else
		err = posix_spawn(&pid, missing, NULL, NULL, argv, environ);
	printf("%s(%s): %s\n", use_path ? "posix_spawnp" : "posix_spawn", missing, strerror(err));
	if (err != ENOENT)
		return 1;
	/* glibc leaves *pid alone when the child could not exec; musl too
	 * (it stores the pid only on success). */
	if (pid != -1) {
		printf("pid changed to %d\n", (int)pid);
		return 1;
	}
	/* The libc reaped its failed child itself: nothing is left to wait for. */
	if (waitpid(-1, NULL, 0) != -1 || errno != ECHILD) {
		printf("waitpid(-1): a child was left behind\n");
		return 1;
	}
	return 0;
}

static int spawn_bad_open(void)
{
	char *argv[] = { "/bin/true", NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid = -1;
	int err;

	if (posix_spawn_file_actions_init(&fa) != 0 ||
	    posix_spawn_file_actions_addopen(&fa, 5, "/nonexistent/dir/file", O_RDONLY, 0) != 0) {
		printf("file actions could not be set up\n");
		return 1;
	}
	err = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	printf("posix_spawn(/bin/true, open /nonexistent/dir/file): %s\n", strerror(err));
	return err == ENOENT ? 0 : 1;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc > 1 && strcmp(argv[1], "addopen") == 0)
		return spawn_bad_open();
	if (argc > 1 && strcmp(argv[1], "spawn2") == 0)
		return spawn_missing(0) | spawn_missing(1);
	return spawn_missing(0);
}
