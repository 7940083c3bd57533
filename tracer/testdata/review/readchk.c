/* Review reproducer (h-review): gcc -O2 -g -D_FORTIFY_SOURCE=2 (calls
 * __read_chk); expected CLEAN in every mode (TestLibcFortified). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	(void)argv;
	int fds[2];
	char buf[8];
	if (pipe(fds) < 0)
		return 1;
	memset(buf, 0, sizeof buf);
	pid_t pid = vfork();
	if (pid == 0) {
		/* the child sends "abcdefg" and leaves the same bytes in buf */
		if (write(fds[1], "abcdefg", 8) != 8)
			_exit(1);
		memcpy(buf, "abcdefg", 8);
		_exit(0);
	}
	volatile size_t vn = 8; size_t n = vn; (void)argc;
	if (read(fds[0], buf, n) != 8)
		return 2;
	printf("%s\n", buf);
	return 0;
}
