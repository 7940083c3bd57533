/*
 * hwcallwriter.c - a call inside a callee run at full speed pushes its
 * return address over a live slot of the suspended parent (issue 11,
 * item 8: the writer a hardware watchpoint names).
 * Expected verdict: VIOLATION on amd64 (i386: a correct vfork, CLEAN).
 *
 * spawn() (assembly: `sub $8,%rsp; call vfork; add $8,%rsp; ret`, with
 * CFI) vforks; the child returns from it into main() - past a live frame
 * - and calls inner() (assembly: `pop %rax; call leaf; push %rax; ret`,
 * with leaf's `ret` right after it). main's `call inner` pushes over
 * spawn()'s return slot; inner takes its return address off the stack, so
 * its `call leaf`, run at full speed in fast mode, pushes inner+6 into that
 * very slot. A data watchpoint on the slot traps with the pc at leaf: the
 * writer is the call that ends at the pushed value (inner+6), not inner's
 * `ret`, the instruction that happens to end where leaf begins. The
 * child's `call _exit` writes the slot last: the parent returns from
 * spawn() past main's `call _exit` (which it never made) and ends main
 * from there (exit 0 in the builds here).
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__)
pid_t spawn(void);
void inner(void);
__asm__(
	".text\n"
	".globl spawn\n"
	".type spawn, @function\n"
	"spawn:\n"
	".cfi_startproc\n"
	"	sub $8, %rsp\n"
	".cfi_def_cfa_offset 16\n"
	"	call vfork@PLT\n"
	"	add $8, %rsp\n"
	".cfi_def_cfa_offset 8\n"
	"	ret\n"
	".cfi_endproc\n"
	".size spawn, .-spawn\n"
	".globl inner\n"
	".type inner, @function\n"
	"inner:\n"
	".cfi_startproc\n"
	"	pop %rax\n"
	".cfi_register %rip, %rax\n"
	".cfi_def_cfa_offset 0\n"
	"	call leaf\n"
	"	push %rax\n"
	".cfi_def_cfa_offset 8\n"
	"	ret\n"
	".cfi_endproc\n"
	".size inner, .-inner\n"
	".type leaf, @function\n"
	"leaf:\n"
	".cfi_startproc\n"
	"	ret\n"
	".cfi_endproc\n"
	".size leaf, .-leaf\n");
#endif

int main(void)
{
	int status;
	pid_t pid;

	setvbuf(stdout, NULL, _IONBF, 0);
#if defined(__x86_64__)
	pid = spawn();
	if (pid == 0) {
		inner();
		_exit(0);
	}
#else
	/* i386: a correct vfork (the amd64 assembly is the point of the target). */
	pid = vfork();
	if (pid == 0)
		_exit(0);
#endif
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return 1;
	return 0;
}
