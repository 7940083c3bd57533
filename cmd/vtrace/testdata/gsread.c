/*
 * gsread.c - amd64: the parent reads, through %gs, a global its vfork
 * child wrote. %gs's base is set to the global array with arch_prctl
 * (ARCH_SET_GS): a %gs-relative access is that base plus its offset, not
 * thread-local storage (which is %fs on amd64).
 *
 * Expected: a warning (child_wrote_global, parent_read_child_global on
 * g); prints 7, exits 0.
 */
#include <asm/prctl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

long g[4];

int main(void)
{
	long v;

	if (syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)g) != 0)
		return 2;
	pid_t pid = vfork();
	if (pid == 0) {
		g[1] = 7;
		_exit(0);
	}
	__asm__ volatile("mov %%gs:8, %0" : "=r"(v));
	printf("%ld\n", v);
	return pid > 0 ? 0 : 1;
}
