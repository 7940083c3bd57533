/*
 * throwvfork.cc - the vfork child leaves the vfork-calling function by a C++
 * exception (issue 11, item 5; built with g++ and clang++ where a C++
 * compiler applies: not musl-gcc).
 * Expected verdict: VIOLATION (child_returned_past_frame), fast and --step.
 *
 * spawn() vforks; the child throws. The unwinder (libgcc's
 * _Unwind_RaiseException, called from __cxa_throw) finds main()'s handler
 * and installs its context: it loads main's stack pointer (the
 * `mov ...,%rsp` of its eh_return epilogue), which is above spawn()'s
 * frame. That load is the child leaving spawn() - no ret, but leaving the
 * frame all the same. The handler then _exits. Before that, __cxa_throw
 * allocated the exception with malloc: the child also changed the
 * parent's heap (libc bookkeeping of a child that should never have
 * thrown). The per-build landing comes from gdb, as for longjmpvfork.
 */
#include <cstdio>
#include <sys/wait.h>
#include <unistd.h>

struct leave_spawn {};

__attribute__((noinline)) static pid_t spawn()
{
	pid_t pid = vfork();

	if (pid == 0)
		throw leave_spawn();    // the child leaves spawn() through the unwinder
	return pid;
}

int main()
{
	int status;
	pid_t pid;

	setvbuf(stdout, nullptr, _IONBF, 0);
	try {
		pid = spawn();
	} catch (const leave_spawn &) {
		_exit(0);               // the child, in main()'s handler
	}
	std::printf("parent: spawn returned %d\n", (int)pid);
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return 1;
	return 0;
}
