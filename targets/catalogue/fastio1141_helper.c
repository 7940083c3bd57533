/*
 * fastio1141_helper.c - a vfork helper function that returns before the
 * exec (cppfastio/fast_io#1141, "vfork and execve must be in the same
 * function"; the follow-up #1144 moved to libc's vfork() because
 * "the libc syscall() function does not handle vfork correctly" either).
 * See docs/catalogue.md. Expected verdict: VIOLATION at -O0, CLEAN at -O2
 * (targets/expect, per build).
 *
 * fast_io's posix_vfork() made the vfork system call through its own
 * inline-assembly system_call<__NR_vfork>() and returned the pid to
 * vfork_execveat_common_impl(), whose child branch then called
 * execveat_inside_vfork(). "fast_io::native_process crashes on linux with
 * optimizations off": at -O0 system_call() and posix_vfork() are real
 * functions, the child returns from both - past two live frames of its
 * suspended parent - and its next calls push over their return slots;
 * with optimization both helpers are inlined into one function and the
 * vfork happens where the child execs, which is correct.
 *
 * The same structure, written anew in C:
 *   raw_vfork()    the system call in inline assembly (system_call<>)
 *   helper_vfork() checks the result and returns the pid (posix_vfork)
 *   spawn()        calls helper_vfork(); the child calls
 *                  exec_inside_vfork(), which execs /bin/true and, on
 *                  failure, stores the error in the parent's `volatile int
 *                  t_errno` (fast_io's error channel) and exits 127
 * Both helpers are `static inline`, as in fast_io: gcc and clang do not
 * inline at -O0 and do at -O2 (checked: objdump of the -O2 builds shows the
 * syscall instruction inside spawn() and no call to the helpers).
 *
 * At -O0 (from the code, checked with gdb on the parent stopped at
 * raw_vfork's `ret`): the child returns from raw_vfork() and from
 * helper_vfork() into spawn(); its `call exec_inside_vfork` and that
 * function's own calls push return addresses and locals over the dead
 * frames of the two helpers, the parent's frames #0 and #1. When the
 * parent resumes, it returns through those slots.
 * Exit 0 when the parent got back a pid and /bin/true exited 0.
 */
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static inline long raw_vfork(void)
{
	long ret;

#if defined(__x86_64__)
	__asm__ volatile("syscall" : "=a"(ret) : "0"((long)SYS_vfork) : "rcx", "r11", "memory");
#elif defined(__i386__)
	__asm__ volatile("int $0x80" : "=a"(ret) : "0"((long)SYS_vfork) : "memory");
#else
#error "fastio1141_helper.c: only x86-64 and i386 are supported"
#endif
	return ret;
}

static inline long raw_execve(const char *path, char *const argv[], char *const envp[])
{
	long ret;

#if defined(__x86_64__)
	__asm__ volatile("syscall" : "=a"(ret)
			 : "0"((long)SYS_execve), "D"(path), "S"(argv), "d"(envp)
			 : "rcx", "r11", "memory");
#else
	__asm__ volatile("int $0x80" : "=a"(ret)
			 : "0"((long)SYS_execve), "b"(path), "c"(argv), "d"(envp)
			 : "memory");
#endif
	return ret;
}

static inline pid_t helper_vfork(void)
{
	long pid = raw_vfork();

	if (pid < 0)
		return -1;
	return (pid_t)pid;
}

extern char **environ;

static void exec_inside_vfork(const char *path, volatile int *t_errno)
{
	char *argv[] = { (char *)path, NULL };
	long ret = raw_execve(path, argv, environ);

	*t_errno = (int)-ret;       /* only reached when execve failed */
	_exit(127);
}

__attribute__((noinline)) static pid_t spawn(const char *path)
{
	volatile int t_errno = 0;
	pid_t pid = helper_vfork();

	if (pid == 0)
		exec_inside_vfork(path, &t_errno);
	if (t_errno != 0)
		return -1;
	return pid;
}

int main(void)
{
	int status;
	pid_t pid;

	setvbuf(stdout, NULL, _IONBF, 0);
	pid = spawn("/bin/true");
	printf("parent: spawn returned %d\n", (int)pid);
	if (pid <= 0 || waitpid(pid, &status, 0) < 0)
		return 1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
