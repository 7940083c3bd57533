/*
 * threadvfork.c - vfork + execve from a thread other than the main one.
 * Expected verdict: CLEAN.
 *
 * Only the calling thread is suspended during the vfork; the child borrows
 * that thread's stack. The worker waits for /bin/true, main() joins the
 * worker and exits 0 if the child exited 0.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void *worker(void *unused)
{
	char *argv[] = { "/bin/true", NULL };
	int status;
	pid_t pid;

	(void)unused;
	pid = vfork();
	if (pid == 0) {
		execve(argv[0], argv, environ);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return (void *)(intptr_t)-1;
	return (void *)(intptr_t)(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

int main(void)
{
	pthread_t t;
	void *res;
	int err;

	err = pthread_create(&t, NULL, worker, NULL);
	if (err != 0) {
		fprintf(stderr, "pthread_create: %s\n", strerror(err));
		return 1;
	}
	err = pthread_join(t, &res);
	if (err != 0) {
		fprintf(stderr, "pthread_join: %s\n", strerror(err));
		return 1;
	}
	printf("main: worker's child exited with %d\n", (int)(intptr_t)res);
	return (intptr_t)res == 0 ? 0 : 1;
}
