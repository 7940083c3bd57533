/*
 * cloneflags.c - vfork-style clone and clone3 with many, unusual flags
 * (issue 11, item 9). Expected verdict: CLEAN. The flags a tracer reports
 * must name every bit the way `strace -f` decodes the same call.
 *
 *   cloneflags          clone(fn, own stack, CLONE_VM|CLONE_VFORK|CLONE_FS|
 *                       CLONE_FILES|CLONE_SIGHAND|CLONE_SYSVSEM|
 *                       CLONE_SETTLS|CLONE_PARENT_SETTID|
 *                       CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|CLONE_IO|
 *                       SIGCHLD, ...)
 *   cloneflags newpid   the same plus CLONE_NEWPID (0x20000000; needs
 *                       CAP_SYS_ADMIN: exits 77 on EPERM)
 *   cloneflags clone3   raw clone3 with CLONE_VM|CLONE_VFORK|
 *                       CLONE_PARENT_SETTID|CLONE_CHILD_SETTID|
 *                       CLONE_CHILD_CLEARTID|CLONE_CLEAR_SIGHAND
 *                       (0x100000000: a flag above 32 bits, clone3 only),
 *                       exit_signal SIGCHLD, own stack
 *
 * In every mode the child runs on a stack of its own (malloc'd) and execs
 * /bin/true at once: it never runs in the parent's frames. The values, from
 * <linux/sched.h>: CLONE_VM 0x100, CLONE_FS 0x200, CLONE_FILES 0x400,
 * CLONE_SIGHAND 0x800, CLONE_VFORK 0x4000, CLONE_SYSVSEM 0x40000,
 * CLONE_SETTLS 0x80000, CLONE_PARENT_SETTID 0x100000,
 * CLONE_CHILD_CLEARTID 0x200000, CLONE_CHILD_SETTID 0x1000000,
 * CLONE_NEWPID 0x20000000, CLONE_IO 0x80000000, CLONE_CLEAR_SIGHAND
 * 0x100000000.
 * The kernel itself writes parent memory for three of them, on behalf of
 * the flags the parent chose: the child's tid into parent_tid (before
 * either process runs on), into child_tid (when the child starts), and 0
 * into child_tid again when the child execs (CLONE_CHILD_CLEARTID: the mm
 * is still shared). child_tid starts at 0 and ends at 0, and the parent
 * reads neither: no child write reaches the parent. CLONE_SETTLS passes
 * the parent's own thread pointer (amd64: %fs base; i386: the user_desc
 * of the %gs entry), so the child's TLS is the one it would have shared
 * anyway.
 * Exits 0 when the child's status is 0 (it exec'd /bin/true).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__i386__)
#include <asm/ldt.h>
#endif

/* Numbers from <linux/sched.h>, which musl does not ship. */
#define F_VM             0x00000100ULL
#define F_FS             0x00000200ULL
#define F_FILES          0x00000400ULL
#define F_SIGHAND        0x00000800ULL
#define F_VFORK          0x00004000ULL
#define F_SYSVSEM        0x00040000ULL
#define F_SETTLS         0x00080000ULL
#define F_PARENT_SETTID  0x00100000ULL
#define F_CHILD_CLEARTID 0x00200000ULL
#define F_CHILD_SETTID   0x01000000ULL
#define F_NEWPID         0x20000000ULL
#define F_IO             0x80000000ULL
#define F_CLEAR_SIGHAND  0x100000000ULL

#define STACK_SIZE (64 * 1024)

struct clone3_args {                      /* struct clone_args, version 0 */
	uint64_t flags, pidfd, child_tid, parent_tid;
	uint64_t exit_signal, stack, stack_size, tls;
};

extern char **environ;
static pid_t parent_tid, child_tid;

static int child_fn(void *arg)
{
	char *argv[] = { "/bin/true", NULL };

	(void)arg;
	execve(argv[0], argv, environ);
	_exit(127);
}

static void __attribute__((noreturn, used)) child3_main(void)
{
	child_fn(NULL);
	_exit(127);
}

/* raw clone3: the child calls child3_main() on its new stack at once. */
static long clone3_exec(struct clone3_args *args)
{
	void (*fn)(void) = child3_main;
	long ret;

#if defined(__x86_64__)
	__asm__ volatile(
		"syscall\n\t"
		"testq %%rax, %%rax\n\t"
		"jnz 1f\n\t"
		"call *%[fn]\n\t"
		"hlt\n"
		"1:"
		: "=a"(ret)
		: "0"((long)SYS_clone3), "D"(args), "S"(sizeof *args), [fn] "r"(fn)
		: "rcx", "r11", "memory", "cc");
#elif defined(__i386__)
	__asm__ volatile(
		"int $0x80\n\t"
		"testl %%eax, %%eax\n\t"
		"jnz 1f\n\t"
		"call *%[fn]\n\t"
		"hlt\n"
		"1:"
		: "=a"(ret)
		: "0"((long)SYS_clone3), "b"(args), "c"(sizeof *args), [fn] "r"(fn)
		: "memory", "cc");
#else
#error "cloneflags.c: only x86-64 and i386 are supported"
#endif
	return ret;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "clone";
	char *stack = aligned_alloc(16, STACK_SIZE);
	int status;
	long pid;

	if (stack == NULL) {
		perror("aligned_alloc");
		return 1;
	}
	if (strcmp(mode, "clone3") == 0) {
		struct clone3_args args;

		memset(&args, 0, sizeof args);
		args.flags = F_VM | F_VFORK | F_PARENT_SETTID | F_CHILD_SETTID |
			     F_CHILD_CLEARTID | F_CLEAR_SIGHAND;
		args.parent_tid = (uint64_t)(uintptr_t)&parent_tid;
		args.child_tid = (uint64_t)(uintptr_t)&child_tid;
		args.exit_signal = SIGCHLD;
		args.stack = (uint64_t)(uintptr_t)stack;     /* lowest address */
		args.stack_size = STACK_SIZE;
		pid = clone3_exec(&args);
		if (pid < 0) {
			fprintf(stderr, "clone3: %s\n", strerror((int)-pid));
			return pid == -ENOSYS ? 77 : 1;
		}
	} else {
		unsigned long flags = F_VM | F_VFORK | F_FS | F_FILES | F_SIGHAND |
			F_SYSVSEM | F_SETTLS | F_PARENT_SETTID | F_CHILD_CLEARTID |
			F_CHILD_SETTID | F_IO | SIGCHLD;
		void *tls;
#if defined(__x86_64__)
		__asm__("mov %%fs:0, %0" : "=r"(tls));    /* the thread pointer */
#else
		static struct user_desc desc;
		unsigned int gs;

		__asm__("mov %%gs, %0" : "=r"(gs));
		desc.entry_number = gs >> 3;
		if (syscall(SYS_get_thread_area, &desc) != 0) {
			perror("get_thread_area");
			return 1;
		}
		tls = &desc;
#endif
		if (strcmp(mode, "newpid") == 0)
			flags |= F_NEWPID;
		pid = clone(child_fn, stack + STACK_SIZE, (int)flags, NULL, &parent_tid, tls, &child_tid);
		if (pid < 0) {
			perror("clone");
			return errno == EPERM ? 77 : 1;
		}
	}
	if (waitpid((pid_t)pid, &status, __WALL) < 0) {
		perror("waitpid");
		return 1;
	}
	free(stack);
	printf("parent: %s child exited with %d\n", mode, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
