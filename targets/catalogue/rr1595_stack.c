/*
 * rr1595_stack.c - clone(CLONE_VM|CLONE_VFORK) given a child stack inside
 * the caller's own frame (rr-debugger/rr#1595: the CLONE_VFORK test as
 * first written). See docs/catalogue.md.
 * Expected verdict and facts per build in targets/expect.
 *
 * The test declared `char *child_stack[16384]` (meant: char[16384]) and
 * passed `child_stack` to clone(). The stack argument is the *top* of the
 * child's stack - the stack grows down - so the child's stack began at the
 * bottom of the array and grew into what lay below it: the rest of the
 * caller's frame and the frames of the calls it was making, clone()'s own.
 * "While configuring the child stack, the clone libc wrapper was
 * clobbering its own flags parameter, setting it to zero" (i386, where
 * the arguments are on the stack), and waitpid returned ECHILD.
 *
 * The same mistake, written anew with the flags of a vfork: spawn_on()'s
 * only local is the array, and it passes its lowest address as the stack
 * top. Just below it lies the return slot of spawn_on's `call clone`
 * (and, on i386, clone's stack-passed arguments). glibc's clone() stores fn
 * and arg just below the new stack top before the syscall; in the child it
 * pops them and calls fn, whose return address and frame go below the top
 * again - over clone()'s return slot, the slot of the parent's frame #0,
 * which the parent pops when it resumes. What each build does (gdb, parent
 * stopped at the vfork and right after it; strace -f):
 *  - amd64 glibc with the array at the bottom of the frame (gcc -O2,
 *    clang -O0/-O2, static or not): clone's own store of `arg` lands on its
 *    return slot before the syscall (the slot holds the "/bin/true" pointer
 *    at the vfork); the child's `call *%rax` writes clone+64 there and
 *    execs; the parent returns into clone's child path and calls exit()
 *    with its child's pid as status (exit code = pid & 255, no output).
 *  - amd64 gcc -O0 (array 16 bytes above the stack pointer): the slot still
 *    holds spawn_on's return address at the vfork; child_fn's and execl's
 *    frames overwrite it with the "/bin/true" pointer; the child execs; the
 *    parent returns into .rodata: SIGSEGV (SEGV_ACCERR).
 *  - musl: __clone's return slot becomes 0: the parent dies at address 0.
 *  - i386 glibc: clone's stores onto the new stack and its own register
 *    pushes overlap, so the child's `call *%ebx` calls the "/bin/true"
 *    string and dies of SIGSEGV (SEGV_ACCERR at its address) - after the
 *    call pushed clone+102 into clone's return slot; the parent returns
 *    there, into the child's exit path, and exits with the pid as status.
 * In every build the parent consumes a return slot its child rewrote.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int child_fn(void *exe)
{
	execl((const char *)exe, (const char *)exe, (char *)NULL);
	_exit(127);
}

__attribute__((noinline)) static pid_t spawn_on(const char *exe)
{
	char *child_stack[16384];       /* the bug: meant char[16384], and its end */

	return clone(child_fn, child_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, (void *)exe);
}

int main(void)
{
	int status;
	pid_t pid;

	setvbuf(stdout, NULL, _IONBF, 0);
	pid = spawn_on("/bin/true");
	printf("parent: clone returned %d\n", (int)pid);
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		printf("parent: waitpid: %s\n", strerror(errno));
		return 1;
	}
	printf("parent: child exited with %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}
