/*
 * printchild.c - the parent prints text its vfork child wrote into the
 * parent's frame (issue 11, item 6).
 * Expected verdict: WARNING (parent_read_child_write), in fast and --step
 * mode, in every build.
 *
 * The child formats a line into `msg`, a local of the function that called
 * vfork (a live parent frame), and _exits. The parent passes `msg` to
 * strlen and printf: it reads only inside those callees, through a
 * pointer, never with an instruction of its own frame. The program prints
 * "parent: the child left 'written by the child' (22 bytes)": the parent
 * demonstrably read the child's bytes, so a tracer that watches only the
 * parent's own instructions, or only its stack slots, misses a read that
 * happened. (Undefined behaviour by POSIX: the child may only store vfork's
 * return value.)
 * The child formats through a volatile function pointer: called directly,
 * clang -O2 turns snprintf of a constant into stores, sees that nothing on
 * the child's path reads `msg` before _exit, and deletes them - that build
 * then prints '' and its child writes nothing (measured: objdump shows only
 * `xor %edi,%edi; call _exit` on the child's path).
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int (*volatile format)(char *, size_t, const char *, ...) = snprintf;

__attribute__((noinline)) static int run(void)
{
	char msg[64];
	int status;
	pid_t pid;

	pid = vfork();
	if (pid == 0) {
		format(msg, sizeof msg, "written by the child");
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return 1;
	printf("parent: the child left '%s' (%zu bytes)\n", msg, strlen(msg));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(void)
{
	return run();
}
