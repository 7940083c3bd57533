/*
 * dlswap.c - two vforks from the same code address, with other code there
 * the second time (review of h-py2's blockMemo; the decoded-instruction
 * cache had the same flaw).
 *
 * main() dlopens dlswapa.so, calls its g() — which vforks itself; the child
 * runs five pushes and _exit(3) in g's frame — then dlcloses it and dlopens
 * dlswapb.so, mapped at the same address (same layout), whose g() runs the
 * same pushes, then `movabs $0x0707070707070707,%rax; mov %eax,%edi` and
 * _exit(%edi): 7. The movabs's immediate starts where dlswapa's g() had its
 * `call _exit`: a tracer that kept what it decoded there plants a block
 * exit's int3 inside the immediate, and the child exits with 204.
 * Prints each child's exit status, and whether g() was at the same address.
 * Usage: dlswap DIR (the directory of the two libraries).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
	const char *libs[2] = {"dlswapa.so", "dlswapb.so"};
	void *at[2];
	char path[4096];

	if (argc < 2)
		return 2;
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/%s", argv[1], libs[i]);
		void *h = dlopen(path, RTLD_NOW);
		if (!h) {
			fprintf(stderr, "%s\n", dlerror());
			return 2;
		}
		int (*g)(void) = (int (*)(void))dlsym(h, "g");
		int pid = g(), st;
		at[i] = (void *)g;
		if (pid < 0 || waitpid(pid, &st, 0) != pid)
			return 2;
		printf("%s: child exit %d\n", libs[i], WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		dlclose(h);
	}
	printf("same address: %s\n", at[0] == at[1] ? "yes" : "no");
	return 0;
}
