/*
 * longjmpvfork.c - the vfork child leaves the vfork-calling function with
 * longjmp, not ret (issue 11, item 5).
 * Expected verdict: VIOLATION (child_returned_past_frame), fast and --step,
 * in every build.
 *
 * main() setjmp()s, then calls spawn(), which vforks. The child longjmps
 * back to main's setjmp and _exits from there; the parent waits. Leaving a
 * frame is leaving it, whatever the instruction: longjmp (glibc's
 * __longjmp, musl's longjmp) loads main's stack pointer from the jmp_buf
 * (`mov ...,%rsp` / `%esp`), which is above spawn()'s frame - spawn's frame
 * and return slot are now free stack for the child. The `by` of the return
 * past the frame is that load, inside longjmp (in fast mode, where longjmp
 * runs at full speed, the call to longjmp it happened during).
 * What happens next follows the rawvfork pattern, per build: main's
 * `call _exit` in the child pushes its return address at main's stack
 * pointer - 8 (- 4 on i386), which is spawn()'s return slot wherever main
 * called spawn() with the same stack pointer it had at setjmp (every amd64
 * build here: the parent then returns from spawn() into main's setjmp
 * branch, right after `call _exit`); on i386 the argument pushes for
 * _exit(0) may move the push below the slot. The expectation per build
 * (targets/expect) comes from running each build under gdb: the parent
 * stopped at spawn()'s `ret`, the word at its stack pointer compared with
 * the address after `call spawn`.
 */
#include <setjmp.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static jmp_buf back;

__attribute__((noinline)) static pid_t spawn(void)
{
	pid_t pid = vfork();

	if (pid == 0)
		longjmp(back, 1);       /* the child leaves spawn() without a ret */
	return pid;
}

int main(void)
{
	int status;
	pid_t pid;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (setjmp(back) != 0)
		_exit(0);               /* the child, back in main() */
	pid = spawn();
	printf("parent: spawn returned %d\n", (int)pid);
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return 1;
	return 0;
}
