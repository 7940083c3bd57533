/*
 * rr3270_popfw.c - a syscall trampoline that runs `pushw; popfw` after
 * vfork returns and smashes the parent's return address
 * (rr-debugger/rr#3270, fixed by rr#3271). See docs/catalogue.md.
 * Expected verdict: VIOLATION in every build; the return slot is smashed
 * (and the parent dies) on i386 only.
 *
 * rr's preload library turns syscalls into calls of a trampoline
 * (_syscall_hook_trampoline) that calls syscall_hook(), which makes the
 * syscall. For vfork both processes return through syscall_hook()'s
 * frame; that was tolerated because nothing wrote the stack there after
 * the syscall - except the trampoline's `pushw (saved_flags); popfw`,
 * which restores the flags through a 2-byte push. In the child, that push
 * lands on the upper half of the word that still held syscall_hook()'s
 * return address for the parent, suspended inside the hook. When the
 * parent resumed and returned, it "ran off into the weeds". 32-bit only:
 * on amd64 the two bytes pushed over are the top of a 64-bit user address,
 * which are zero anyway.
 *
 * The same structure, written anew:
 *   tramp_vfork()  like glibc's vfork wrapper, keeps its return address in
 *                  a register (pop %rdi / pop %ecx) and returns with a jmp,
 *                  so no slot of its own is at stake; reserves 16 KiB
 *                  (rr ran the hook on a stack of its own; the gap keeps
 *                  the application's later calls away from the hook's
 *                  slot in the same way - with 256 bytes, the dynamic
 *                  linker's lazy binding of _exit in the child, which
 *                  saves the AVX state on the stack, overwrote the whole
 *                  slot in the dynamic amd64 builds: measured); calls
 *                  hook_vfork(); then
 *                  `pushw (saved_flags); popfw` and returns to its caller.
 *   hook_vfork()   makes the vfork syscall and returns (rr's syscall_hook
 *                  plus its raw syscall).
 * saved_flags holds 0, as the child's copy of rr's did ("the new task has
 * a new set of thread locals that's all zero-initialized").
 *
 * What happens (from the code; checked with gdb on the parent stopped at
 * hook_vfork's `ret`):
 *  - the child returns from hook_vfork() - past a live parent frame whose
 *    return slot the parent will still pop - then its pushw writes the two
 *    bytes just below its stack pointer: slot+2..slot+4 on i386,
 *    slot+6..slot+8 on amd64, the upper half of hook_vfork's return slot;
 *  - i386: 0x5655xxxx becomes 0x0000xxxx; the parent's `ret` jumps there
 *    and dies of SIGSEGV (an address below mmap_min_addr);
 *  - amd64: the upper two bytes of 0x00005555xxxxxxxx were already zero:
 *    the slot is unchanged, the parent returns normally and the program
 *    exits 0. Still a violation: the child returned past hook_vfork().
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int tramp_vfork(void);

#if defined(__x86_64__)
__asm__(
	".text\n"
	"saved_flags: .word 0\n"
	".globl hook_vfork\n"
	".type hook_vfork, @function\n"
	"hook_vfork:\n"
	".cfi_startproc\n"
	"	mov $58, %eax\n"            /* vfork */
	"	syscall\n"
	"	ret\n"
	".cfi_endproc\n"
	".size hook_vfork, .-hook_vfork\n"
	".globl tramp_vfork\n"
	".type tramp_vfork, @function\n"
	"tramp_vfork:\n"
	".cfi_startproc\n"
	"	pop %rdi\n"                 /* the return address stays in %rdi */
	".cfi_adjust_cfa_offset -8\n"
	".cfi_register %rip, %rdi\n"
	"	sub $16384, %rsp\n"
	".cfi_adjust_cfa_offset 16384\n"
	"	lea saved_flags(%rip), %rsi\n"
	"	call hook_vfork\n"
	"	pushw (%rsi)\n"
	".cfi_adjust_cfa_offset 2\n"
	"	popfw\n"
	".cfi_adjust_cfa_offset -2\n"
	"	add $16384, %rsp\n"
	".cfi_adjust_cfa_offset -16384\n"
	"	jmp *%rdi\n"
	".cfi_endproc\n"
	".size tramp_vfork, .-tramp_vfork\n");
#elif defined(__i386__)
__asm__(
	".text\n"
	"saved_flags: .word 0\n"
	".globl hook_vfork\n"
	".type hook_vfork, @function\n"
	"hook_vfork:\n"
	".cfi_startproc\n"
	"	mov $190, %eax\n"           /* vfork */
	"	int $0x80\n"
	"	ret\n"
	".cfi_endproc\n"
	".size hook_vfork, .-hook_vfork\n"
	".globl tramp_vfork\n"
	".type tramp_vfork, @function\n"
	"tramp_vfork:\n"
	".cfi_startproc\n"
	"	pop %ecx\n"                 /* the return address stays in %ecx */
	".cfi_adjust_cfa_offset -4\n"
	".cfi_register %eip, %ecx\n"
	"	sub $16384, %esp\n"
	".cfi_adjust_cfa_offset 16384\n"
	"	call 0f\n"                  /* %edx = &saved_flags, position-independent */
	".cfi_adjust_cfa_offset 4\n"
	"0:	pop %edx\n"
	".cfi_adjust_cfa_offset -4\n"
	"	lea saved_flags-0b(%edx), %edx\n"
	"	call hook_vfork\n"
	"	pushw (%edx)\n"
	".cfi_adjust_cfa_offset 2\n"
	"	popfw\n"
	".cfi_adjust_cfa_offset -2\n"
	"	add $16384, %esp\n"
	".cfi_adjust_cfa_offset -16384\n"
	"	jmp *%ecx\n"
	".cfi_endproc\n"
	".size tramp_vfork, .-tramp_vfork\n");
#else
#error "rr3270_popfw.c: only x86-64 and i386 are supported"
#endif

int main(void)
{
	int pid, status;

	setvbuf(stdout, NULL, _IONBF, 0);
	pid = tramp_vfork();
	if (pid == 0)
		_exit(0);
	printf("parent: back from the trampoline, child %d\n", pid);
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return 1;
	return 0;
}
