/* A vfork issued with %rsp in unmapped memory (docs/reliability.md): the
 * child _exits straight away by a raw syscall, the parent restores its
 * stack pointer and goes on. Natively: prints "parent: child N", exits 0.
 * vtrace cannot read the parent's stack at the vfork: the story is
 * unchecked, and both tasks must be let go, not held. Built by the test
 * (cc -O0), amd64 only. */
#include <stdio.h>

int main(void)
{
	long ret;
	__asm__ volatile(
		"mov %%rsp, %%r12\n\t"
		"mov $0x10, %%rsp\n\t" /* unmapped */
		"mov $58, %%eax\n\t"   /* SYS_vfork */
		"syscall\n\t"
		"test %%rax, %%rax\n\t"
		"jnz 1f\n\t"
		"xor %%edi, %%edi\n\t"
		"mov $60, %%eax\n\t"   /* SYS_exit */
		"syscall\n\t"
		"1: mov %%r12, %%rsp\n\t"
		: "=a"(ret)
		:
		: "rcx", "r11", "r12", "rdi", "memory");
	printf("parent: child %ld\n", ret > 0 ? 1L : ret);
	return 0;
}
