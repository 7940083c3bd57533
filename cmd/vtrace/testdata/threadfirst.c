/*
 * TestStoriesGiveWay (docs/reliability.md, "who waits for whom"): the
 * other order of threadjoin.c, where running a held vfork nested deadlocks
 * in turn and a story must give way (tracer/giveway.go). Build: cc -O0
 * -pthread. Prints "x 42 y 7", exits 0.
 *
 * A thread vforks first; while its child runs, main() vforks (held: the
 * same memory). The thread's child changes the thread's local `y` and
 * _exits; vtrace follows the thread, which waits for a byte main() writes
 * once its own vfork has returned: main()'s held vfork runs nested (the
 * thread's story is in its parent phase). main()'s child changes `x`;
 * main(), followed, writes the byte and joins the thread, whose stop its
 * enclosing story keeps: main()'s story gives way (cut short, "blocked",
 * `x` unchecked), and the thread's story goes on to see the thread read
 * `y` (a warning, parent_read_child_write). Ground truth: both parents
 * read what their child changed.
 */
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static int go[2], ready[2], done[2];

static void *worker(void *unused)
{
	volatile int y = 1;
	pid_t pid;
	char b;

	(void)unused;
	pid = vfork();
	if (pid == 0) {
		if (write(go[1], "g", 1) != 1 || read(ready[0], &b, 1) != 1)
			_exit(1);
		usleep(50000);
		y = 7;
		_exit(0);
	}
	if (pid < 0 || read(done[0], &b, 1) != 1 || waitpid(pid, NULL, 0) < 0)
		return (void *)-1L;
	return (void *)(long)y;
}

int main(void)
{
	volatile int x = 1;
	pthread_t t;
	void *ret;
	pid_t pid;
	char b;

	if (pipe(go) < 0 || pipe(ready) < 0 || pipe(done) < 0 || pthread_create(&t, NULL, worker, NULL) != 0)
		return 1;
	if (read(go[0], &b, 1) != 1 || write(ready[1], "r", 1) != 1)
		return 1;
	pid = vfork();
	if (pid == 0) {
		x = 42;
		_exit(0);
	}
	if (pid < 0 || write(done[1], "d", 1) != 1 || pthread_join(t, &ret) != 0 || waitpid(pid, NULL, 0) < 0)
		return 1;
	printf("x %d y %ld\n", x, (long)ret);
	return 0;
}
