/*
 * clonevforkcopy.c - clone(CLONE_VFORK|SIGCHLD) WITHOUT CLONE_VM: the
 * parent waits for the child as with vfork, but the child has a copy of the
 * parent's memory, as after fork().
 * Inspired by the clone(2) man page's CLONE_VFORK paragraph ("If CLONE_VM
 * is not set, the child runs in a separate copy of the memory") and by the
 * projects that use CLONE_VFORK alone to wait until their child has exec'd
 * or exited (it is what PTRACE_EVENT_VFORK reports too: kernel_clone()
 * raises it for CLONE_VFORK whatever CLONE_VM says); written anew.
 * Expected verdict: CLEAN, in every build.
 *
 * spawn() makes the raw clone system call through syscall() with no new
 * stack; the child returns from syscall() and from spawn() into main - on
 * its OWN copy of the stack - stores 99 into main's `local` and 42 into the
 * global `counter`, prints them, and calls exit(3) (atexit handlers and
 * stdio run on its copy; stdout is unbuffered, so nothing is printed
 * twice). Everything the seed program (badvfork) does wrong, done where it
 * is harmless: none of it reaches the parent, which is held until the
 * child exits and then finds its frames, `local` (5) and `counter` (1) as
 * they were. A vfork tracer must see that the child shares no memory with
 * its parent (no CLONE_VM) and not judge it by vfork's rules.
 *
 * Exit 0 when the parent's local and global are unchanged and the child
 * exited 3; 1 otherwise.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int counter = 1;

/* spawn: clone(CLONE_VFORK | SIGCHLD, no new stack); both return here. */
__attribute__((noinline)) static long spawn(void)
{
	return syscall(SYS_clone, CLONE_VFORK | SIGCHLD, 0, 0, 0, 0);
}

int main(void)
{
	volatile int local = 5;
	int status;
	long pid;

	setvbuf(stdout, NULL, _IONBF, 0);
	pid = spawn();
	if (pid == 0) {
		local = 99;
		counter = 42;
		printf("child: local %d, counter %d (its own copies)\n", local, counter);
		exit(3);
	}
	if (pid < 0 || waitpid((pid_t)pid, &status, 0) != pid)
		return 1;
	printf("parent: local %d, counter %d, child exited %d\n", local, counter,
	       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return !(local == 5 && counter == 1 && WIFEXITED(status) && WEXITSTATUS(status) == 3);
}
