/*
 * TestStoriesGiveWay (docs/reliability.md, "who waits for whom"). Found by
 * the review (h-review): vtrace hung here on every engine until held
 * stories got their turn (tracer/giveway.go): main(), followed into
 * pthread_join while the thread's vfork is held, sleeps; the thread's
 * story then runs nested, and main()'s story goes on to see main() read
 * `x`. Build: cc -O0 -pthread.
 *
 * threadjoin.c - a thread vforks while main()'s vfork child runs; main()
 * then joins that thread before it reads what its child left.
 * Prints "x 42 thread 3", exits 0. Ground truth: main() reads the `x` its
 * child changed (a warning, parent_read_child_write); the thread's vfork
 * is clean.
 *
 * The thread shares the memory of main()'s story, so vtrace holds its
 * vfork while main()'s child runs there (the two stories would share the
 * int3s). The child changes main()'s local `x` and _exits; vtrace follows
 * main() on, which joins the thread whose vfork is held: main() sleeps in
 * futex for a thread that only ran once main()'s story ended (a hang).
 * Now, main() asleep and nothing running, the held vfork runs nested (no
 * child runs in this memory any more), and main()'s story sees the read.
 * The child tells the thread to go (main()'s vfork comes first); the
 * thread answers that it is about to vfork; the child gives it 50 ms.
 * Running the held vfork as soon as main() is followed (tried: in
 * storyOnce, before followParent) fixes this order and hangs the other:
 * a thread's story first, main()'s vfork held meanwhile and nested at the
 * thread's parent phase, main() joins the thread its enclosing story
 * still holds stopped. That order is threadfirst.c: there main()'s nested
 * story gives way.
 */
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static int ready[2], go[2];

static void *worker(void *unused)
{
	int status = 0;
	pid_t pid;

	char b;

	(void)unused;
	if (read(go[0], &b, 1) != 1 || write(ready[1], "v", 1) != 1)
		return (void *)1L;
	pid = vfork();
	if (pid == 0)
		_exit(3);
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return (void *)2L;
	return (void *)(long)WEXITSTATUS(status);
}

int main(void)
{
	volatile int x = 1;
	pthread_t t;
	void *ret;
	pid_t pid;

	if (pipe(ready) < 0 || pipe(go) < 0 || pthread_create(&t, NULL, worker, NULL) != 0)
		return 1;
	pid = vfork();
	if (pid == 0) {
		char b;

		if (write(go[1], "g", 1) != 1 || read(ready[0], &b, 1) != 1)
			_exit(1);
		usleep(50000);
		x = 42;
		_exit(0);
	}
	if (pid < 0 || pthread_join(t, &ret) != 0 || waitpid(pid, NULL, 0) < 0)
		return 1;
	printf("x %d thread %ld\n", x, (long)ret);
	return 0;
}
