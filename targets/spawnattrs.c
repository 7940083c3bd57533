/*
 * spawnattrs.c - posix_spawn with file actions and attributes, checked from
 * inside the spawned program.
 * Inspired by glibc's posix/tst-spawn3 (an addopen of stdout and an adddup2
 * of stdout onto stderr, the spawned shell echoing its pid into the file)
 * and by the attribute tests of glibc posix/tst-spawn*.c and musl
 * libc-test's functional/spawn.c; written anew.
 * Expected verdict: CLEAN, in every build (both variants).
 *
 *   spawnattrs         POSIX_SPAWN_SETPGROUP (pgroup 0: the child leads a
 *                      new process group), SETSIGMASK (empty) and SETSIGDEF
 *                      (SIGUSR1, which the parent handles)
 *   spawnattrs setsid  POSIX_SPAWN_SETSID instead of SETPGROUP (the child
 *                      leads a new session, and so a new process group)
 *
 * Both add the file actions: open a temporary file as stdout (O_TRUNC),
 * dup2 stdout onto stderr, close a descriptor of the parent's. The program
 * spawned is /bin/sh running only builtins (no fork in it):
 *   read the fields of /proc/$$/stat; echo "$$ pgrp session" >&2
 * and the parent checks, from the file, that the pid is posix_spawn's, the
 * process group (and session) are what the attributes asked for, and that
 * stderr reached the file (the dup2). The parent's own SIGUSR1 handler and
 * signal mask are unchanged afterwards.
 *
 * From first principles: glibc 2.36 runs the child (clone3/clone with
 * CLONE_VM|CLONE_VFORK) on a stack it mmaps, where __spawni_child runs
 * sigaction for every signal (SETSIGDEF and handled signals to SIG_DFL),
 * sigprocmask, setpgid or setsid, the file actions, then execve; musl 1.2.3
 * runs it on a buffer in posix_spawn's own frame, below every live word of
 * the caller. Neither writes a word the parent later reads (glibc's only
 * channel into the parent, args.err, is written on failure only; musl's
 * error pipe is read by the kernel). The parent blocks all signals around
 * the clone, as both do.
 *
 * Exit 0 when every check holds, 1 otherwise, 2 when the set-up failed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void on_usr1(int sig) { (void)sig; }

int main(int argc, char **argv)
{
	int setsid_mode = argc > 1 && strcmp(argv[1], "setsid") == 0;
	char path[] = "/tmp/vtrace-spawnattrs-XXXXXX";
	char *sh_argv[] = { "sh", "-c",
		"read p c s pp pg se rest < /proc/$$/stat; echo \"$$ $pg $se\" >&2", NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	struct sigaction sa, now;
	sigset_t empty, def;
	long got_pid, got_pgrp, got_sid;
	char buf[128];
	int fd, extra, status, err, ok = 1;
	ssize_t n;
	pid_t pid;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		return 2;
	fd = mkstemp(path);
	extra = open("/dev/null", O_RDONLY);
	if (fd < 0 || extra < 0)
		return 2;

	if (posix_spawn_file_actions_init(&fa) != 0 ||
	    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, path, O_WRONLY | O_TRUNC, 0) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO) != 0 ||
	    posix_spawn_file_actions_addclose(&fa, extra) != 0)
		return 2;
	sigemptyset(&empty);
	sigemptyset(&def);
	sigaddset(&def, SIGUSR1);
	if (posix_spawnattr_init(&at) != 0 ||
	    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
				     (setsid_mode ? POSIX_SPAWN_SETSID : POSIX_SPAWN_SETPGROUP)) != 0 ||
	    posix_spawnattr_setsigmask(&at, &empty) != 0 ||
	    posix_spawnattr_setsigdefault(&at, &def) != 0 ||
	    posix_spawnattr_setpgroup(&at, 0) != 0)
		return 2;

	err = posix_spawn(&pid, "/bin/sh", &fa, &at, sh_argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (err != 0) {
		printf("posix_spawn: %s\n", strerror(err));
		return 1;
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("the shell failed\n");
		ok = 0;
	}

	n = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	unlink(path);
	buf[n > 0 ? n : 0] = '\0';
	if (sscanf(buf, "%ld %ld %ld", &got_pid, &got_pgrp, &got_sid) != 3) {
		printf("no line from the shell on its stderr: %s\n", buf);
		return 1;
	}
	if (got_pid != pid || got_pgrp != pid) {
		printf("pid %ld pgrp %ld, want %d for both\n", got_pid, got_pgrp, (int)pid);
		ok = 0;
	}
	if (setsid_mode ? got_sid != pid : got_sid != getsid(0)) {
		printf("session %ld, want %d\n", got_sid, setsid_mode ? (int)pid : (int)getsid(0));
		ok = 0;
	}
	if (sigaction(SIGUSR1, NULL, &now) != 0 || now.sa_handler != on_usr1) {
		printf("the parent's SIGUSR1 handler was reset\n");
		ok = 0;
	}
	printf("spawned %s: %s\n", setsid_mode ? "in a new session" : "in a new process group",
	       ok ? "as asked" : "NOT as asked");
	return ok ? 0 : 1;
}
