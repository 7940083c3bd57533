/*
 * badvfork.c - the seed article's program ("神奇的vfork"), verbatim except
 * for the includes it relied on implicitly and ASCII quotes for the
 * article's typographic ones. Do not tidy it: it is the ground truth.
 * Expected verdict: VIOLATION.
 *
 * The child returns from createproc(), the function that called vfork();
 * main() then goes on in the child and its calls overwrite createproc's
 * return-address slot, which the parent still needs. Where the parent then
 * lands depends on the build (second vfork, restart through _start, fault
 * in a PLT stub...): see README.md. The -O2 glibc-dynamic and musl builds
 * restart forever - run them only under a pids cgroup and a timeout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int createproc();
int main()
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
