/*
 * vforkwait.c - the textbook vfork + execv + _exit(127) + waitpid, in a
 * function (issue 11, item 2).
 * Expected verdict: CLEAN, in every build.
 *
 *	pid = vfork();
 *	if (pid == 0) { execv(path, argv); _exit(127); }
 *	waitpid(pid, &status, 0);
 *
 * The child only builds execv's arguments and execs /bin/true; nothing it
 * writes is read by the parent. But clang -O2 gives argv[] and status one
 * stack slot (their lifetimes do not overlap in either process), so the
 * child's store of argv[0] lands in the word the parent later passes to
 * waitpid as &status. The parent never reads the child's value there: the
 * kernel's wait4 stores the child's exit status into that word before the
 * parent loads it. A read of a word counts only while the word still holds
 * what the child wrote; here the kernel rewrote it (the child's value is
 * gone), so the story is clean.
 * Ground truth (clang 14 -O2, amd64, objdump -d of spawn_wait):
 *	child:  mov %rdi,(%rsp) ; movq $0x0,0x8(%rsp)   argv[0], argv[1]
 *	        mov %rsp,%rsi ; call execv
 *	parent: mov %rsp,%rsi ; call waitpid            &status == %rsp
 *	        mov (%rsp),%eax                         reads 4 bytes
 * The kernel's wait4 stores the 4-byte status at (%rsp) before the parent
 * loads those same 4 bytes: the upper half of the word still holds the
 * child's pointer, but the parent never reads it.
 * gcc and the -O0 builds use separate slots; -O0 also stores vfork's
 * return into `pid` (the parent overwrites it with its own return value
 * before reading it). The verdict is the same in every build.
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) static int spawn_wait(const char *path)
{
	char *argv[2];
	int status;
	pid_t pid;

	pid = vfork();
	if (pid == 0) {
		argv[0] = (char *)path;
		argv[1] = NULL;
		execv(path, argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(void)
{
	int status = spawn_wait("/bin/true");

	printf("parent: /bin/true exited with %d\n", status);
	return status;
}
