/* Blocked and ignored signals (docs/reliability.md): SIGUSR1 blocked and
 * raised stays pending; SIGUSR2 ignored and raised is discarded; SIGTERM
 * caught by a handler; a vfork child that _exits. The output and the exit
 * status must be the same natively and under vtrace. */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t caught;
static void on_term(int sig) { caught = sig; }

int main(void)
{
	sigset_t set, pend;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, 0);
	signal(SIGUSR2, SIG_IGN);
	signal(SIGTERM, on_term);
	raise(SIGUSR1);
	raise(SIGUSR2);
	raise(SIGTERM);
	pid_t pid = vfork();
	if (pid == 0)
		_exit(7);
	int status;
	waitpid(pid, &status, 0);
	sigpending(&pend);
	printf("usr1 pending %d, term caught %d, child %d\n", sigismember(&pend, SIGUSR1), caught == SIGTERM,
	       WEXITSTATUS(status));
	return 3;
}
