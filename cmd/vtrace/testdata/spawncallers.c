/*
 * spawncallers.c - posix_spawn from one function g() reached through
 * different callers at the same stack pointer: h1() and h2() have frames
 * of one size (their code differs, so no compiler folds them into one),
 * so main's calls through them reach the vfork inside posix_spawn with the
 * same %rsp and %rip, whatever the stack's alignment at start (it moves
 * with the environment and argv[0]). Only words of the stack (g's return
 * address) tell h1's call from h2's: vtrace's unwind memo (capture.go:
 * unwindMemo), which reuses a parent's last unwind when nothing it needed
 * changed, must see them change. Round i calls g through h1 (i%3 == 0),
 * h2 (1), h3 then h1 (2). Prints "spawncallers: N" and exits 0 when every
 * child exited 0.
 */
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

__attribute__((noinline)) int g(int k)
{
	char big[64];
	char *av[] = { "/bin/true", NULL };
	pid_t p;
	int st;

	memset(big, k, sizeof big);
	__asm__ volatile("" ::: "memory");
	if (posix_spawn(&p, "/bin/true", NULL, NULL, av, environ) != 0 || waitpid(p, &st, 0) != p)
		return 1000;
	return st + big[k & 63] - k;
}

__attribute__((noinline)) int h1(int k) { volatile char pad[8]; pad[0] = 0; return g(k) + pad[0]; }
__attribute__((noinline)) int h2(int k) { volatile char pad[8]; pad[0] = 0; return g(k) - pad[0]; }
__attribute__((noinline)) int h3(int k) { volatile char pad[40]; pad[0] = 0; return h1(k) + pad[0]; }

int main(void)
{
	int bad = 0, i;

	for (i = 0; i < 6; i++)
		bad += (i % 3 == 0) ? h1(i) : (i % 3 == 1) ? h2(i) : h3(i);
	printf("spawncallers: %d\n", i);
	return bad != 0;
}
