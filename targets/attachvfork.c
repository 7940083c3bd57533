/*
 * attachvfork.c - a running process for `vtrace attach` to seize (the
 * tests in cmd/vtrace/attach_test.go). Not a matrix row: it waits.
 *
 *   attachvfork FILE [NTHREADS [CHILDFILE]]
 *
 * It starts NTHREADS extra threads (default 0) that sleep until the
 * process ends, prints "ready" on stdout, waits until FILE exists
 * (polling every 10 ms), then makes the seed's bad vfork: createproc() and
 * go() is badvfork.c's main() (the child returns from createproc() and
 * main's printf and exit calls overwrite createproc's return-address slot).
 * At -O0 with glibc it ends as the seed does: "child proc:0", "0", and
 * death by SIGSEGV (shell status 139), whether traced or not.
 *
 * With ATTACHVFORK_USR1=1 in its environment it blocks SIGUSR1 from the
 * start and unblocks it once FILE exists: a SIGUSR1 sent meanwhile is
 * pending (when vtrace attaches, say) until then; its handler writes
 * "usr1" on stdout.
 *
 * With CHILDFILE, the vfork is a harmless one that takes its time instead:
 * the child waits until CHILDFILE exists (vtrace's story is in flight
 * meanwhile, the parent held), then calls _exit(0); the parent prints 1
 * and exits 0.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int createproc();
int go();
static int createproc_hold(const char *childfile);

static void *sleeper(void *unused)
{
	(void)unused;
	for (;;)
		pause();
	return NULL;
}

static void usr1(int sig)
{
	(void)sig;
	write(1, "usr1\n", 5);
}

static void waitfor(const char *file)
{
	while (access(file, F_OK) != 0)
		usleep(10000);
}

int main(int argc, char **argv)
{
	int i, n, blocked;
	pthread_t t;
	sigset_t set;

	if (argc < 2) {
		fprintf(stderr, "usage: attachvfork FILE [NTHREADS [CHILDFILE]]\n");
		return 2;
	}
	blocked = getenv("ATTACHVFORK_USR1") != NULL;
	n = argc > 2 ? atoi(argv[2]) : 0;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (blocked) {
		signal(SIGUSR1, usr1);
		sigprocmask(SIG_BLOCK, &set, NULL); /* inherited by the threads */
	}
	for (i = 0; i < n; i++)
		if (pthread_create(&t, NULL, sleeper, NULL) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 2;
		}
	printf("ready\n");
	fflush(stdout);
	waitfor(argv[1]);
	if (blocked)
		sigprocmask(SIG_UNBLOCK, &set, NULL);
	if (argc > 3) {
		printf("%d\n", createproc_hold(argv[3]) > 0);
		exit(0);
	}
	go();
}

static int createproc_hold(const char *childfile)
{
	pid_t pid = vfork();

	if (pid == 0) {
		waitfor(childfile);
		_exit(0);
	}
	return pid;
}

int go()
{
pid_t pid=createproc();
printf("%d\n", pid);
exit(0);
}
int createproc()
{
pid_t pid;
if(!(pid=vfork())) {
printf("child proc:%d\n", pid);
return pid;
}
else return -1;
}
