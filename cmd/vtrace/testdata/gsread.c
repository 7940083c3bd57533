/*
 * gsread.c - amd64: the parent reads, through %gs, a word its vfork child
 * may have written. %gs's base is set with arch_prctl(ARCH_SET_GS): a
 * %gs-relative access is that base plus its offset, not thread-local
 * storage (which is %fs on amd64), and the base is the one the parent
 * has at its read, not at the vfork.
 *
 *   gsread         base g before the vfork; the child writes g[1]; the
 *                  parent reads %gs:8 = g[1]: a warning; prints 7
 *   gsread after   base set to g only after the vfork: the same read, a
 *                  warning; prints 7
 *   gsread moved   base g at the vfork, h after it: the parent reads
 *                  h[1], which no child wrote: clean; prints 3
 * Exits 0.
 */
#include <asm/prctl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

long g[4];
long h[4] = {0, 3, 0, 0};

static int setgs(long *base)
{
	return syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)base) != 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	long v;

	if (strcmp(mode, "after") != 0 && setgs(g))
		return 2;
	pid_t pid = vfork();
	if (pid == 0) {
		g[1] = 7;
		_exit(0);
	}
	if ((strcmp(mode, "after") == 0 && setgs(g)) || (strcmp(mode, "moved") == 0 && setgs(h)))
		return 2;
	__asm__ volatile("mov %%gs:8, %0" : "=r"(v));
	printf("%ld\n", v);
	return pid > 0 ? 0 : 1;
}
