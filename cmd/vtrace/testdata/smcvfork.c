/*
 * smcvfork.c - two vforks from the same code, rewritten in place between
 * them (TestCodeSwappedBetweenVforks; the case of dlswap.c without a
 * library: mprotect, write, mprotect back).
 *
 * g() (page-aligned, in the program's text) vforks; its child pushes five
 * words and calls _exit(3). main() calls it, then rewrites the child's
 * `mov $3,%edi` into `nop; nop; nop; movabs $0x0707070707070707,%rax;
 * mov %eax,%edi` followed by the same call to _exit, and calls g() again:
 * the child exits with 7. The movabs's immediate starts where the
 * first `call _exit` was: a tracer that kept what it decoded there plants
 * a block exit's int3 inside it, and the child exits with 204. Prints each
 * child's exit status. amd64 only.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

__asm__(".text\n.p2align 12\n.globl g\n.type g,@function\ng:\n push %rbx\n call vfork@PLT\n test %eax,%eax\n jnz 1f\n"
	" push %rbx\n push %rbx\n push %rbx\n push %rbx\n push %rbx\n mov $3,%edi\n call _exit@PLT\n"
	" nop\n nop\n nop\n nop\n nop\n nop\n nop\n nop\n nop\n nop\n nop\n"
	"1:\n pop %rbx\n ret\n .size g,.-g\n");
int g(void);

int main(void)
{
	for (int i = 0; i < 2; i++) {
		if (i == 1) {
			unsigned char *p = (unsigned char *)g + 0xf; /* mov $3,%edi, then call _exit */
			uintptr_t pg = (uintptr_t)g & ~4095UL;
			unsigned char code[] = {0x90, 0x90, 0x90, 0x48, 0xb8, 7, 7, 7, 7, 7, 7, 7, 7, 0x89, 0xc7, 0xe8, 0, 0, 0, 0};
			int32_t rel;

			if (mprotect((void *)pg, 4096, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
				return 2;
			memcpy(&rel, p + 6, 4);
			rel -= 10; /* the call moves 10 bytes on */
			memcpy(code + 16, &rel, 4);
			memcpy(p, code, sizeof code);
			if (mprotect((void *)pg, 4096, PROT_READ | PROT_EXEC) != 0)
				return 2;
		}
		int pid = g(), st;

		if (pid < 0 || waitpid(pid, &st, 0) != pid)
			return 2;
		printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	}
	return 0;
}
