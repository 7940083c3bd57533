/*
 * vforkpending.c - a signal pending in the parent is not pending in its
 * vfork child.
 * Inspired by LTP's testcases/kernel/syscalls/vfork/vfork02.c (SIGUSR1
 * blocked and sent to the parent; the vfork child's sigpending() must not
 * show it); written anew.
 * Expected verdict: CLEAN, in every build.
 *
 * main blocks SIGUSR1 (it has a handler), kill()s itself with it, and
 * calls check_pending(). There, `pend`, a local of the vfork caller's
 * frame, is filled by the parent's sigpending() before the vfork (SIGUSR1's
 * bit set). The child calls sigpending(&pend) - the kernel stores the
 * child's own pending set, empty, over the parent's: a word of a live
 * parent frame changed (a stack_write) - tests the bit and _exit()s
 * (0: not pending, as POSIX and Linux say for a new process). The parent
 * waits, then calls sigpending(&pend) itself: the kernel rewrites the word
 * with the parent's set before the parent reads it (sigismember), so what
 * the parent reads is the kernel's, not the child's (issue 11 item 2's rule,
 * with rt_sigpending instead of wait4). Then main unblocks SIGUSR1 and its
 * handler runs once.
 *
 * Exit 0 when the child saw nothing pending, the parent still had SIGUSR1
 * pending after the child ran, and the handler ran once; 1 otherwise.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t handled;

static void on_usr1(int sig)
{
	(void)sig;
	handled++;
}

__attribute__((noinline)) static int check_pending(void)
{
	sigset_t pend;
	int status, before, after;
	pid_t pid;

	if (sigpending(&pend) != 0)
		return 1;
	before = sigismember(&pend, SIGUSR1);
	pid = vfork();
	if (pid == 0) {
		if (sigpending(&pend) != 0)
			_exit(2);
		_exit(sigismember(&pend, SIGUSR1) ? 1 : 0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return 1;
	if (sigpending(&pend) != 0)
		return 1;
	after = sigismember(&pend, SIGUSR1);
	printf("SIGUSR1 pending: parent before %d, child %s, parent after %d\n", before,
	       WEXITSTATUS(status) == 0 ? "no" : "yes (or sigpending failed)", after);
	return !(before == 1 && WEXITSTATUS(status) == 0 && after == 1);
}

int main(void)
{
	struct sigaction sa = { 0 };
	sigset_t usr1;
	int bad;

	sa.sa_handler = on_usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	if (sigaction(SIGUSR1, &sa, NULL) != 0 || sigprocmask(SIG_BLOCK, &usr1, NULL) != 0 ||
	    kill(getpid(), SIGUSR1) != 0)
		return 1;
	bad = check_pending();
	sigprocmask(SIG_UNBLOCK, &usr1, NULL);
	if (handled != 1) {
		printf("handler ran %d times, want 1\n", (int)handled);
		bad = 1;
	}
	return bad;
}
