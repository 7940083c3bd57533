// A process made by clone(CLONE_VM | SIGCHLD) — no CLONE_THREAD, no
// CLONE_VFORK: the kernel reports a fork event, yet it runs in its
// parent's memory, where vtrace's int3s are. After its vfork child stored
// 42 into g, the parent (followed for its reads of g) calls joiner(),
// which clones such a process running outer(1) on a stack of its own and
// waits for it. The clone must run as natively ("42 42"): an int3 of
// vtrace's it runs into is vtrace's, not a SIGTRAP that kills it.
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int g = 7;
volatile int sink;
pid_t pid;
static char stack[1 << 16] __attribute__((aligned(16)));

int outer(int inclone);

static int cloned(void *arg) {
	(void)arg;
	sink = outer(1);
	return 0;
}

__attribute__((noinline)) void joiner(int inclone) {
	if (inclone)
		return;
	int st;
	pid_t c = clone(cloned, stack + sizeof stack, CLONE_VM | SIGCHLD, 0);
	if (c < 0 || waitpid(c, &st, 0) != c) {
		perror("clone");
		exit(8);
	}
	if (st != 0)
		printf("clone status %#x\n", st);
}

__attribute__((noinline)) pid_t spawn(void) {
	pid_t p = vfork();
	if (p == 0) {
		g = 42;
		_exit(0);
	}
	sink = 5;
	return p;
}

__attribute__((noinline)) int outer(int inclone) {
	if (!inclone)
		pid = spawn();
	sink = 1;
	joiner(inclone);
	return g;
}

int main(void) {
	int v = outer(0);
	int st;
	waitpid(pid, &st, 0);
	printf("%d %d\n", v, sink);
	return 0;
}
