/*
 * jitvfork.c - vfork from machine code generated at run time (issue 11,
 * item 10). Expected verdict: CLEAN; the story must say that the parent's
 * frames were unknown, never that they stayed "intact".
 *
 * main() copies a few bytes of machine code into an anonymous executable
 * mapping (as a JIT does) and calls it. The code makes the vfork system
 * call itself; in the child (return value 0) it calls exit_group(7) at
 * once, in the parent it returns the child's pid:
 *
 *	amd64: mov $58,%eax; syscall; test %eax,%eax; jnz 1f;
 *	       mov $231,%eax; mov $7,%edi; syscall; 1: ret
 *	i386:  mov $190,%eax; int $0x80; test %eax,%eax; jnz 1f;
 *	       mov $252,%eax; mov $7,%ebx; int $0x80; 1: ret
 *
 * The child touches no memory at all: clean. But the vfork happens at a pc
 * no ELF module covers - no symbol, no CFI, no function start to read the
 * code from - so a tracer cannot know the parent's frames from the code's
 * metadata. Whatever it reports must follow from what it saw: either the
 * true frames (frame 1 is main(): the generated code is a leaf that keeps
 * its return address at the stack pointer) or "frames unknown" - not a
 * claim that frames it never knew were left intact.
 * Exit 0 when the child exited with 7.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

static const unsigned char code[] = {
#if defined(__x86_64__)
	0xb8, 0x3a, 0x00, 0x00, 0x00,   /* mov $58 (vfork),%eax */
	0x0f, 0x05,                     /* syscall */
	0x85, 0xc0,                     /* test %eax,%eax */
	0x75, 0x0c,                     /* jnz ret */
	0xb8, 0xe7, 0x00, 0x00, 0x00,   /* mov $231 (exit_group),%eax */
	0xbf, 0x07, 0x00, 0x00, 0x00,   /* mov $7,%edi */
	0x0f, 0x05,                     /* syscall */
	0xc3,                           /* ret */
#elif defined(__i386__)
	0xb8, 0xbe, 0x00, 0x00, 0x00,   /* mov $190 (vfork),%eax */
	0xcd, 0x80,                     /* int $0x80 */
	0x85, 0xc0,                     /* test %eax,%eax */
	0x75, 0x0c,                     /* jnz ret */
	0xb8, 0xfc, 0x00, 0x00, 0x00,   /* mov $252 (exit_group),%eax */
	0xbb, 0x07, 0x00, 0x00, 0x00,   /* mov $7,%ebx */
	0xcd, 0x80,                     /* int $0x80 */
	0xc3,                           /* ret */
#else
#error "jitvfork.c: only x86-64 and i386 are supported"
#endif
};

int main(void)
{
	void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int (*jit_vfork)(void);
	int pid, status;

	if (page == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	memcpy(page, code, sizeof code);
	if (mprotect(page, 4096, PROT_READ | PROT_EXEC) != 0) {
		perror("mprotect");
		return 1;
	}
	jit_vfork = (int (*)(void))page;
	pid = jit_vfork();
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		perror("vfork/waitpid");
		return 1;
	}
	printf("parent: generated code's child exited with %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return WIFEXITED(status) && WEXITSTATUS(status) == 7 ? 0 : 1;
}
