/*
 * globalreset.c - the vfork child changes a global of its parent; the
 * parent resets it in a function of its own before it reads it.
 * Inspired by NixOS nix#16119's fix pattern (targets/catalogue/
 * nix16119_global.c shows the bug: a vfork child clears a parent global the
 * parent then reads) and by the way programs guard against it: the parent
 * re-establishes its state after the vfork (here by calling
 * restore_state(), an ordinary, not inlined function) before it uses it.
 * Written anew for vtrace.
 * Expected verdict: CLEAN, in every build.
 *
 * From first principles: the child stores 0 into `ready` (a global of the
 * program's .data: the child shares the parent's memory) and execs
 * /bin/true. The parent, resumed, calls restore_state(), which stores 1
 * into `ready`, then reads `ready` in main: it reads its own store, not the
 * child's. Nothing the child wrote is used. (The child's store is still a
 * write of parent memory outside the stack, reported as such - a
 * global_write - without a warning.)
 * The program prints "ready = 1" and exits 0; it would print 0 and exit 1
 * if the parent read the child's value.
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

volatile int ready = 1;

__attribute__((noinline)) void restore_state(void)
{
	ready = 1;
}

int main(void)
{
	int status;
	pid_t pid = vfork();

	if (pid == 0) {
		ready = 0; /* not allowed by vfork(2): a write of parent memory */
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	restore_state();
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return 2;
	printf("ready = %d\n", ready);
	return ready == 1 ? 0 : 1;
}
