/*
 * rawvfork.c - vfork through the C library's generic syscall() wrapper.
 * Expected verdict: VIOLATION (in every build, even where the output
 * looks right).
 *
 * syscall() is an ordinary library function: `call syscall` pushes a return
 * address, the kernel's vfork runs inside syscall(), and both processes
 * leave syscall() through that slot. (libc's real vfork() pops its return
 * address into a register before the syscall for exactly this reason.) The
 * child returns first, and its `call _exit` pushes a new return address
 * into the very slot syscall()'s return address lived in. When the parent
 * resumes and returns from syscall(), it jumps to the instruction after
 * the child's `call _exit`, not to the one after `call syscall`.
 * On i386, glibc's syscall() also keeps %ebx/%esi/%edi/%ebp on the stack
 * and enters the kernel through __kernel_vsyscall in the vDSO, whose saved
 * registers the child's calls overwrite as well.
 * What the parent does next differs per build (README.md): gcc -O2 happens
 * to place the parent's branch right after `call _exit`, so the program
 * seems to work although the parent consumed a clobbered slot.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	long pid;
	int status;

	setvbuf(stdout, NULL, _IONBF, 0);
	printf("parent: pid %d calling syscall(SYS_vfork)\n", (int)getpid());
	pid = syscall(SYS_vfork);
	if (pid == 0)
		_exit(0);
	printf("parent: syscall(SYS_vfork) returned %ld\n", pid);
	if (waitpid((pid_t)pid, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	printf("parent: reaped child, status %d\n", status);
	return 0;
}
