/*
 * system.c - system("true"). Expected verdict: CLEAN.
 *
 * The C library spawns /bin/sh -c true (glibc and musl both go through
 * their posix_spawn machinery). Exits with the command's status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

int main(void)
{
	int status = system("true");

	if (status == -1) {
		perror("system");
		return 1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
