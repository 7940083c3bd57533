/*
 * popen.c - popen("echo hi"), read its output, pclose.
 * Expected verdict: CLEAN.
 *
 * Prints what the command wrote ("hi") and exits with its status.
 */
#include <stdio.h>
#include <sys/wait.h>

int main(void)
{
	char line[64];
	int status;
	FILE *f = popen("echo hi", "r");

	if (f == NULL) {
		perror("popen");
		return 1;
	}
	while (fgets(line, sizeof line, f) != NULL)
		printf("read: %s", line);
	status = pclose(f);
	if (status == -1) {
		perror("pclose");
		return 1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
