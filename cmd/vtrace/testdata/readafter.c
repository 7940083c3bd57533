// The parent reads a global its vfork child changed only after two of its
// functions have returned and it has made calls on the way: vtrace follows
// it from its landing through those calls and returns (fast mode runs them
// at full speed, tracer/parentblock.go) to main's read. "read": the read
// is of the child's value (a warning); "rewrite": middle() stores the
// global first, the read is of the parent's own value (clean).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int flag = 7;
char buf[64];

__attribute__((noinline)) void touch(char *p, int n) {
	memset(p, 'x', n);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) pid_t spawn(void) {
	pid_t pid = vfork();
	if (pid == 0) {
		flag = 42; // the child's store into the parent's global
		_exit(0);
	}
	touch(buf, 8);
	return pid;
}

__attribute__((noinline)) pid_t middle(int rewrite) {
	pid_t pid = spawn();
	touch(buf + 8, 8);
	if (rewrite)
		flag = 9;
	return pid;
}

int main(int argc, char **argv) {
	int rewrite = argc > 1 && strcmp(argv[1], "rewrite") == 0;
	pid_t pid = middle(rewrite);
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return 2;
	printf("%d\n", flag);
	return 0;
}
