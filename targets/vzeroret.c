/*
 * vzeroret.c - the vfork child returns past the vfork-calling function
 * through `vzeroupper; ret` (issue 11, item 4).
 * Expected verdict: VIOLATION (child_returned_past_frame,
 * parent_consumed_clobbered_slot), fast and --step, in every build.
 *
 * vz_vfork() is a leaf written in assembly (as compilers emit it for a
 * function that used AVX registers, and as glibc's AVX2 string functions
 * end): it makes the vfork system call itself, then `vzeroupper; ret`.
 * Both processes leave it through the same return slot:
 *
 *	vz_vfork:  mov $58,%eax        (i386: mov $190,%eax)
 *	           syscall              (i386: int $0x80)
 *	           vzeroupper           c5 f8 77 - three bytes, no ModRM
 *	           ret
 *
 * The child runs first: its `ret` pops vz_vfork's return slot (it returns
 * past the frame of the function that made the vfork), and in main its
 * `call _exit` pushes a new return address into that very slot. The
 * parent resumes at the instruction after the syscall, runs the same
 * vzeroupper and `ret`, and lands after main's `call _exit` instead of
 * after `call vz_vfork` - the rawvfork story, reached through an
 * instruction a decoder must know is 3 bytes long (x86asm decodes
 * vzeroupper 1-2 bytes too long: a tracer that predicts the next pc from
 * that length skips the `ret` and misses the return).
 * Where the parent lands depends on the code after main's `call _exit`
 * (per build); the slot and its consumption do not. vzeroupper needs AVX:
 * on a CPU without it the child dies of SIGILL (the program exits 2).
 */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int vz_vfork(void);

#if defined(__x86_64__)
__asm__(
	".text\n"
	".globl vz_vfork\n"
	".type vz_vfork, @function\n"
	"vz_vfork:\n"
	".cfi_startproc\n"
	"	mov $58, %eax\n"
	"	syscall\n"
	"	vzeroupper\n"
	"	ret\n"
	".cfi_endproc\n"
	".size vz_vfork, .-vz_vfork\n");
#elif defined(__i386__)
__asm__(
	".text\n"
	".globl vz_vfork\n"
	".type vz_vfork, @function\n"
	"vz_vfork:\n"
	".cfi_startproc\n"
	"	mov $190, %eax\n"
	"	int $0x80\n"
	"	vzeroupper\n"
	"	ret\n"
	".cfi_endproc\n"
	".size vz_vfork, .-vz_vfork\n");
#else
#error "vzeroret.c: only x86-64 and i386 are supported"
#endif

int main(void)
{
	int pid, status;

	setvbuf(stdout, NULL, _IONBF, 0);
	pid = vz_vfork();
	if (pid == 0)
		_exit(0);
	printf("parent: vz_vfork returned %d\n", pid);
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return 1;
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGILL ? 2 : 0;
}
