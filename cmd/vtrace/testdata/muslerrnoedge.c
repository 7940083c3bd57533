/*
 * muslerrnoedge.c - musl, static: the thread pointer at the end of the
 * data's file-backed mapping, errno_val (52 bytes above it on x86-64) in
 * the anonymous bss mapping beyond. PAD (a -D at build time) moves both;
 * the test picks one that puts the two on either side of the mappings'
 * boundary.
 *
 *   muslerrnoedge where   prints "tp errno end": the thread pointer,
 *                         &errno, and the end of the mapping holding tp
 *   muslerrnoedge         posix_spawn of a missing program: the child's
 *                         failing exec sets errno (libc's bookkeeping,
 *                         no warning); prints the error; exits 0
 */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>

extern char **environ;

char pad[PAD + 1];

int main(int argc, char **argv)
{
	unsigned long tp;

	__asm__ volatile("mov %%fs:0,%0" : "=r"(tp));
	if (argc > 1 && strcmp(argv[1], "where") == 0) {
		FILE *maps = fopen("/proc/self/maps", "r");
		unsigned long lo, hi;
		char line[512];

		while (maps && fgets(line, sizeof line, maps))
			if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && tp >= lo && tp < hi)
				printf("%lx %lx %lx\n", tp, (unsigned long)&errno, hi);
		return 0;
	}
	char *av[] = {"x", NULL};
	pid_t pid;
	int r = posix_spawn(&pid, "/nonexistent/x", NULL, NULL, av, environ);
	printf("posix_spawn: %s\n", strerror(r));
	return 0;
}
