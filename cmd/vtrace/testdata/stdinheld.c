/*
 * TestStoriesGiveWay: a story whose child waits on stdin, which a process
 * vtrace does not trace writes a while later, while vtrace holds another
 * vfork of the same memory, must not give way: the world wakes the child,
 * so the program is not blocked. Build: cc -O0 -pthread. Run with one byte
 * on stdin, written after ~600 ms (the test writes it; by hand:
 * `(sleep 0.6; echo x) | ./stdinheld`). Prints "y 7", exits 0.
 *
 * A thread vforks; its child tells main() it runs, reads one byte of
 * stdin, changes the thread's local `y` and _exits. main() vforks
 * meanwhile (held: the same memory; its child _exits). The thread reads
 * `y`: 7. Ground truth: the thread's story is a warning
 * (parent_read_child_write), main()'s is clean; nothing deadlocks. (vtrace
 * took the read for a deadlock after 150 ms and cut the thread's story
 * short, "blocked": verdict CLEAN, the warning missed.)
 *
 * Built with -DWAIT_POLL, -DWAIT_SELECT or -DWAIT_EPOLL, the child first
 * waits for stdin to be readable that way (vtrace took those waits, and a
 * read of a socket, for deadlocks as well). stdin may be a pipe or a
 * socket.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

/* wait_input waits until stdin is readable: 0 when it is. */
static int wait_input(void)
{
#if defined(WAIT_POLL)
	struct pollfd p = {.fd = 0, .events = POLLIN};

	return poll(&p, 1, -1) == 1 && (p.revents & POLLIN) ? 0 : -1;
#elif defined(WAIT_SELECT)
	fd_set r;

	FD_ZERO(&r);
	FD_SET(0, &r);
	return select(1, &r, NULL, NULL, NULL) == 1 ? 0 : -1;
#elif defined(WAIT_EPOLL)
	struct epoll_event ev = {.events = EPOLLIN}, out;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0 || epoll_wait(ep, &out, 1, -1) != 1)
		return -1;
	return close(ep);
#else
	return 0;
#endif
}

static int go[2];

static void *worker(void *unused)
{
	volatile int y = 1;
	pid_t pid;
	char b;

	(void)unused;
	pid = vfork();
	if (pid == 0) {
		if (write(go[1], "g", 1) != 1 || wait_input() != 0 || read(0, &b, 1) != 1)
			_exit(1);
		y = 7;
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, NULL, 0) < 0)
		return (void *)-1L;
	return (void *)(long)y;
}

int main(void)
{
	pthread_t t;
	void *ret;
	pid_t pid;
	char b;

	if (pipe(go) < 0 || pthread_create(&t, NULL, worker, NULL) != 0)
		return 1;
	if (read(go[0], &b, 1) != 1)
		return 1;
	pid = vfork();
	if (pid == 0)
		_exit(0);
	if (pid < 0 || waitpid(pid, NULL, 0) < 0 || pthread_join(t, &ret) != 0)
		return 1;
	printf("y %ld\n", (long)ret);
	return 0;
}
