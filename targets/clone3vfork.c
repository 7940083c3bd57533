/*
 * clone3vfork.c - raw clone3 with CLONE_VM|CLONE_VFORK and the child's own
 * stack. Expected verdict: CLEAN.
 *
 * This is the syscall glibc >= 2.34 uses inside posix_spawn. Calling it
 * through syscall() would be wrong: the child would start on its new,
 * empty stack and syscall()'s `ret` would pop garbage. So the syscall is
 * issued from inline assembly, and in the child (return value 0) the same
 * assembly immediately calls child_main() on the new stack. child_main()
 * never returns: it execs /bin/true or _exits, so the child never runs a
 * single instruction in the parent's frames. struct clone_args is declared
 * here because musl ships no <linux/sched.h>.
 *
 * Argument `exit`: the child _exits(5) instead of exec'ing.
 * Exits 0 if the child's status is the expected one; 77 if the kernel (or
 * a seccomp filter) refuses clone3 with ENOSYS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_VM
#define CLONE_VM 0x00000100
#endif
#ifndef CLONE_VFORK
#define CLONE_VFORK 0x00004000
#endif

#define STACK_SIZE (64 * 1024)

struct vt_clone_args {                    /* = struct clone_args, version 0 */
	uint64_t flags, pidfd, child_tid, parent_tid;
	uint64_t exit_signal, stack, stack_size, tls;
};

extern char **environ;
static int exit_mode;

static void __attribute__((noreturn, used)) child_main(void)
{
	char *argv[] = { "/bin/true", NULL };

	if (exit_mode)
		_exit(5);
	execve(argv[0], argv, environ);
	_exit(127);
}

/* clone3 that runs child_main() in the child; returns the child's pid or -errno */
static long clone3_vfork(struct vt_clone_args *args)
{
	void (*fn)(void) = child_main;
	long ret;

#if defined(__x86_64__)
	__asm__ volatile(
		"syscall\n\t"
		"test %%rax, %%rax\n\t"
		"jnz 1f\n\t"
		"call *%[fn]\n\t"         /* child: on the new stack, never returns */
		"ud2\n"
		"1:"
		: "=a"(ret)
		: "0"((long)SYS_clone3), "D"(args), "S"(sizeof *args), [fn] "r"(fn)
		: "rcx", "r11", "memory", "cc");
#elif defined(__i386__)
	__asm__ volatile(
		"int $0x80\n\t"
		"test %%eax, %%eax\n\t"
		"jnz 1f\n\t"
		"call *%[fn]\n\t"
		"ud2\n"
		"1:"
		: "=a"(ret)
		: "0"((long)SYS_clone3), "b"(args), "c"(sizeof *args), [fn] "r"(fn)
		: "memory", "cc");
#else
#error "clone3vfork.c: only x86-64 and i386 are supported"
#endif
	return ret;
}

int main(int argc, char **argv)
{
	struct vt_clone_args args;
	char *stack;
	int status, want;
	long pid;

	exit_mode = argc > 1 && strcmp(argv[1], "exit") == 0;
	want = exit_mode ? 5 : 0;
	stack = aligned_alloc(16, STACK_SIZE);
	if (stack == NULL) {
		perror("aligned_alloc");
		return 1;
	}
	memset(&args, 0, sizeof args);
	args.flags = CLONE_VM | CLONE_VFORK;
	args.exit_signal = SIGCHLD;
	args.stack = (uint64_t)(uintptr_t)stack;     /* lowest address */
	args.stack_size = STACK_SIZE;

	pid = clone3_vfork(&args);
	if (pid < 0) {
		fprintf(stderr, "clone3: %s\n", strerror((int)-pid));
		return pid == -ENOSYS ? 77 : 1;
	}
	if (waitpid((pid_t)pid, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	free(stack);
	printf("parent: child exited with %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return WIFEXITED(status) && WEXITSTATUS(status) == want ? 0 : 1;
}
