/*
 * TestFollowedDiesInNestedStory: a task a story waits for dies while a
 * story nested in that wait runs. Build: cc -O0. Prints "inner 0" then
 * "mid 0", exits 0.
 *
 * Found wrapping `make -j4` (40 recipes of pipelines): vtrace hung in 9 of
 * 15 runs, every tracee stopped, its tracer in wait4 for a dash that was
 * gone. The story of that dash's vfork followed it (its child changed its
 * globals) through a call run at full speed; meanwhile another dash's vfork
 * ran its story, nested in that wait, and the first dash exited during it
 * — as a program exec'd by a vfork child it had no exit stop: its death was
 * reaped there and handled at once (an enclosing story's task), and once
 * the nested story was over the enclosing one waited in wait4 for a task
 * that no longer existed.
 *
 * main() vforks a child that execs this program as "mid" (so that mid, like
 * make's shells, has no exit stop) and waits for it. mid vforks a child
 * that changes the global `g` (mid never reads it: it is followed for it)
 * and execs this program as "inner"; mid then calls finish(), which sleeps
 * 200 ms and _exits. inner sleeps 50 ms (mid is in finish() by then),
 * vforks a child that sleeps 500 ms and _exits, and waits for it: mid
 * dies during inner's story. Ground truth: the three stories are clean;
 * main() prints "mid 0" (mid's status) and exits 0, inner prints "inner 0"
 * and exits 0.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int g;

__attribute__((noinline)) static void finish(void)
{
	usleep(200000);
	_exit(0);
}

static int inner(void)
{
	int st;
	pid_t pid;

	usleep(50000); /* mid is in finish() by now */
	pid = vfork();
	if (pid == 0) {
		usleep(500000);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return 2;
	printf("inner %d\n", WEXITSTATUS(st));
	return 0;
}

static int mid(char *self)
{
	char *av[] = {self, "inner", NULL};
	pid_t pid = vfork();

	if (pid == 0) {
		g = 1;
		execv(self, av);
		_exit(127);
	}
	if (pid < 0)
		return 1;
	finish();
	return 0;
}

int main(int argc, char **argv)
{
	char *av[] = {argv[0], "mid", NULL};
	int st;
	pid_t pid;

	if (argc > 1 && strcmp(argv[1], "inner") == 0)
		return inner();
	if (argc > 1 && strcmp(argv[1], "mid") == 0)
		return mid(argv[0]);
	pid = vfork();
	if (pid == 0) {
		execv(argv[0], av);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return 1;
	usleep(700000); /* inner has printed */
	printf("mid %d\n", WEXITSTATUS(st));
	return 0;
}
