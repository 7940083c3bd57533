/*
 * TestStoriesGiveWay: a nested story that follows its parent while that
 * parent waits long keeps an enclosing story's task from running — which
 * natively runs. Build: cc -O0. Prints "run took less than 2 s", exits 0.
 *
 * Found wrapping python3's test suite: test_subprocess's
 * test_run_with_shell_timeout_and_capture_output, subprocess.run('sleep 3',
 * shell=True, timeout=0.1), failed under vtrace in 3 runs of 6: python,
 * followed after its vfork for the errno its child left, stopped at a trap
 * while the story of dash's vfork (nested: another memory) followed dash
 * into its waitpid for sleep; python was held in its stop for the 3 s of
 * the sleep and its 0.1 s timeout never fired.
 *
 * main() calls run(), which calls spawn(): a correct vfork child that
 * tries execv of a missing path first (errno ENOENT left in the parent's
 * TLS: libc bookkeeping, not a finding, but the parent is followed up to
 * the return of run() to see whether it reads it) and then execs this
 * program as "inner". run() then spins 0.2 s and returns. The inner
 * program vforks a child that changes one of its globals (the inner
 * parent never reads it: it is followed for it) and execs sleep 3; the
 * inner parent waits for it. Natively run() takes 0.2 s. Ground truth:
 * both stories clean; the program must not be held for the sleep: it
 * measures run() and exits 1 if it took 2 s or more. (vtrace held main()
 * at the int3 at run()'s return until the inner story ended, 3 s: exit 1;
 * now the inner story gives way after 500 ms, blockHeld: about 0.75 s.)
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int touched;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

__attribute__((noinline)) static void busy(double secs)
{
	double end = now() + secs;

	while (now() < end)
		;
}

__attribute__((noinline)) static pid_t spawn(const char *self)
{
	char *argv[] = {(char *)self, "inner", NULL};
	pid_t pid = vfork();

	if (pid == 0) {
		execv("/nonexistent/heldrunnable", argv);
		execv(self, argv);
		_exit(127);
	}
	return pid;
}

__attribute__((noinline)) static pid_t run(const char *self)
{
	pid_t pid = spawn(self);

	busy(0.2);
	return pid;
}

static int inner(void)
{
	int st;
	pid_t pid = vfork();

	if (pid == 0) {
		touched = 1;
		execl("/bin/sleep", "sleep", "3", (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return 2;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 3;
}

int main(int argc, char **argv)
{
	double t0, took;
	pid_t pid;
	int st;

	if (argc > 1 && strcmp(argv[1], "inner") == 0)
		return inner();
	t0 = now();
	pid = run(argv[0]);
	took = now() - t0;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 2;
	printf("run took %s 2 s\n", took < 2 ? "less than" : "at least");
	return took >= 2;
}
