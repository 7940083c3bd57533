/*
 * fnptrvfork.c - the seed program, but vfork is called through a function
 * pointer. Expected verdict: VIOLATION.
 *
 * The pointer is volatile so the compiler cannot turn the indirect call
 * back into a direct call to vfork (and it also loses vfork's
 * returns_twice attribute, as real code that picks vfork at run time
 * would). As in badvfork.c the child returns from createproc(), main()
 * then runs on in the child and its calls overwrite createproc()'s
 * return-address slot, which the suspended parent still needs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static pid_t (*volatile spawn_fn)(void) = vfork;

int createproc(void);

int main(void)
{
	pid_t pid = createproc();

	printf("%d\n", pid);
	exit(0);
}

int createproc(void)
{
	pid_t pid;

	if (!(pid = spawn_fn())) {
		printf("child proc:%d\n", pid);
		return pid;
	}
	return -1;
}
