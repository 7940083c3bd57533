/*
 * vforksigmask.c - what posix_spawn implementations do around their
 * CLONE_VM|CLONE_VFORK child, done by hand with vfork(): the parent blocks
 * every signal before the vfork; the child resets to SIG_DFL every signal
 * its parent handles, restores the signal mask and execs.
 * Inspired by musl's src/process/posix_spawn.c (child(): the handler reset
 * loop, then the mask) and glibc's sysdeps/unix/sysv/linux/spawni.c
 * (__spawni_child), and by their tests of the same promises (glibc
 * posix/tst-spawn*: the SETSIGDEF/SETSIGMASK attributes); written anew.
 * Expected verdict: CLEAN, in every build.
 *
 * From first principles: the child is a new task with its own signal mask
 * (sigprocmask in it changes only its own) and, since vfork does not pass
 * CLONE_SIGHAND, its own copy of the signal handler table: sigaction() in
 * the child changes nothing of the parent's. Why the dance: between the
 * unblocking and the exec a signal could arrive in the child, and the
 * parent's handler would run on the parent's memory (golang/go#20427), so
 * the child first resets the handlers, then unblocks. Every store the child
 * makes goes to its own locals (below the parent's stack pointer, or
 * slots of the caller's frame the parent never reads after the vfork) and
 * to errno (sigaction on the reserved signals 32/33 fails in glibc;
 * libc bookkeeping, the parent does not read errno afterwards).
 * The parent then checks that its handler for SIGUSR1 is still installed,
 * restores its mask, and raises SIGUSR1: its handler runs once.
 *
 * Exit 0 when the child exec'd /bin/true and exited 0, the parent's handler
 * survived and ran once, and the parent's mask is back to what it was;
 * 1 otherwise.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t handled;

static void on_usr1(int sig)
{
	(void)sig;
	handled++;
}

/* spawn_true runs /bin/true the way posix_spawn does and returns its pid. */
__attribute__((noinline)) static pid_t spawn_true(const sigset_t *restore)
{
	pid_t pid = vfork();
	if (pid == 0) {
		struct sigaction dfl, cur;
		int sig;

		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		for (sig = 1; sig < NSIG; sig++) {
			if (sigaction(sig, NULL, &cur) != 0)
				continue; /* 32, 33 in glibc: reserved */
			if (cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN)
				sigaction(sig, &dfl, NULL);
		}
		sigprocmask(SIG_SETMASK, restore, NULL);
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	return pid;
}

int main(void)
{
	struct sigaction sa, now;
	sigset_t all, old, after;
	int status, ok = 1;
	pid_t pid;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		return 1;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid = spawn_true(&old);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return 1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("child did not run /bin/true\n");
		ok = 0;
	}
	if (sigaction(SIGUSR1, NULL, &now) != 0 || now.sa_handler != on_usr1) {
		printf("the child's reset reached the parent's SIGUSR1 handler\n");
		ok = 0;
	}
	sigprocmask(SIG_SETMASK, NULL, &after);
	if (sigismember(&after, SIGUSR1) || sigismember(&after, SIGTERM)) {
		printf("the parent's mask stayed blocked\n");
		ok = 0;
	}
	raise(SIGUSR1);
	if (handled != 1) {
		printf("SIGUSR1 handled %d times, want 1\n", (int)handled);
		ok = 0;
	}
	printf("parent: handler kept, mask restored, child ran /bin/true: %s\n", ok ? "yes" : "no");
	return ok ? 0 : 1;
}
