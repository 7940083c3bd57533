/* Review reproducer (h-review): a failed waitpid (ECHILD) leaves the
 * child's value in status; amd64 fast mode said clean before
 * TestLibcIntResult's fix. Expected: WARNING parent_read_child_write. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	volatile int status = 12345;
	pid_t pid = vfork();

	if (pid == 0) {
		status = 7;
		_exit(0);
	}
	/* not a child: -1 (ECHILD), status untouched: it still holds the child's 7 */
	if (waitpid(getpid(), (int *)&status, 0) >= 0)
		return 2;
	waitpid(pid, NULL, 0);
	printf("status %d\n", status);
	return 0;
}
