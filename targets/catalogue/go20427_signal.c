/*
 * go20427_signal.c - a signal handler runs in the vfork child, on the
 * shared stack, and changes the parent's state (the class of
 * golang/go#20427, "runtime: memory corruption crashes with os/exec on
 * Linux kernel 4.4", fixed in Go 1.9 by blocking signals around the
 * fork, golang.org/cl/45471). See docs/catalogue.md.
 * Expected verdict: WARNING (child_wrote_global,
 * parent_read_child_global) in every build.
 *
 * Go's os/exec starts children with clone(CLONE_VM|CLONE_VFORK) on the
 * parent's stack. Until 1.9 signals stayed unblocked in the child, so a
 * signal arriving between the clone and the exec ran the Go runtime's
 * handler in the child - with the parent's memory, the parent's signal
 * stack and the parent's idea of which thread (M, G) it was running on -
 * and the parent later crashed on state the handler had changed. Any
 * program that installs handlers and vforks has the same exposure.
 *
 * The same pattern, written anew: main() installs a SIGUSR1 handler that
 * counts deliveries in a global (as a runtime's bookkeeping does), then
 * vforks. The child sends SIGUSR1 to itself (`kill(getpid(), ...)`: a
 * signal for the child's own pid, standing for one that happens to arrive
 * before the exec) and execs /bin/true. The kernel delivers it to the
 * child: the handler runs in the child, on the shared stack (the signal
 * frame goes below the child's stack pointer, which is below the parent's
 * live frames: dead stack, harmless), and increments `signals_seen` - a
 * word in the parent's .bss. The parent, which never received a signal,
 * reads signals_seen == 1 after waitpid. (kill(getpid()) and not raise():
 * musl's raise signals the thread id cached in the thread structure, the
 * parent's - see targets/sigchild.c.)
 * Prints "parent: handled 1 signal(s) it was never sent" and exits 1.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t signals_seen;

static void on_usr1(int sig)
{
	(void)sig;
	signals_seen++;
}

int main(void)
{
	struct sigaction sa;
	int status;
	pid_t pid;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0) {
		perror("sigaction");
		return 2;
	}
	pid = vfork();
	if (pid == 0) {
		kill(getpid(), SIGUSR1);
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return 2;
	if (signals_seen != 0) {
		printf("parent: handled %d signal(s) it was never sent\n", (int)signals_seen);
		return 1;
	}
	printf("parent: no signal seen\n");
	return 0;
}
