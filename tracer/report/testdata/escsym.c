/*
 * escsym.c - a vfork call site whose function's name holds terminal
 * control bytes: ESC "[31m" (red) and BEL. The symbol comes from the
 * program, so vtrace must print it escaped, never raw. The child writes a
 * local of the parent before _exit (a warning, like targets/writelocal.c).
 * gen.sh builds it and runs it with an argument holding an OSC "set window
 * title" sequence, which vtrace's start line must escape too.
 */
#include <sys/wait.h>
#include <unistd.h>

int spawn(void) __asm__("\"spawn\033[31m\007\"");

int spawn(void)
{
	volatile int status = 0;
	pid_t pid = vfork();

	if (pid == 0) {
		status = 42;
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	return status == 42 ? 0 : 1;
}

int main(void)
{
	return spawn();
}
