// The vfork child's watchpoints after a story nested in one of its calls:
// the child (in F1's frame, which it shares with its parent) calls
// spawn_inner(), which vforks a grandchild (a story nested in the child's
// call, with the child its parent: vtrace may use the child's debug
// registers for that story's own words) — then calls wret(), which stores
// into F1's return slot and puts the old value back before it returns.
// Only a watchpoint on the slot sees that store (the slot is unchanged
// when wret returns); --step sees it by stepping. argv[1] "0": no
// grandchild. x86-64 assembly for F1 and wret.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

long nested;
long F1(void);

__attribute__((noinline)) void spawn_inner(void) {
	volatile long local = 1;
	if (nested) {
		pid_t p = vfork();
		if (p == 0) {
			local = 2; // a word of this frame, live across waitpid
			_exit(0);
		}
		int st;
		waitpid(p, &st, 0);
	}
	local = 3;
}

__asm__(".text\n"
	".globl nop_leaf\n.type nop_leaf,@function\nnop_leaf:\n.cfi_startproc\nret\n.cfi_endproc\n.size nop_leaf,.-nop_leaf\n"
	// wret: 32(%rsp) is F1's return-address slot (F1's frame is 24
	// bytes below it, and the call to wret pushed 8).
	".globl wret\n.type wret,@function\nwret:\n.cfi_startproc\n"
	"mov 32(%rsp), %rcx\n"
	"movq $0x5555, 32(%rsp)\n"
	"call nop_leaf\n"
	"mov %rcx, 32(%rsp)\n"
	"ret\n.cfi_endproc\n.size wret,.-wret\n"
	".globl F1\n.type F1,@function\nF1:\n.cfi_startproc\n"
	"push %rbx\n.cfi_def_cfa_offset 16\n.cfi_offset %rbx,-16\n"
	"push %r12\n.cfi_def_cfa_offset 24\n.cfi_offset %r12,-24\n"
	"sub $8, %rsp\n.cfi_def_cfa_offset 32\n"
	"call vfork@PLT\n"
	"test %eax, %eax\n"
	"jne 9f\n"
	"call spawn_inner\n"
	"call wret\n"
	"xor %edi, %edi\n"
	"call _exit@PLT\n"
	"9: add $8, %rsp\n.cfi_def_cfa_offset 24\n"
	"pop %r12\n.cfi_def_cfa_offset 16\n"
	"pop %rbx\n.cfi_def_cfa_offset 8\n"
	"ret\n.cfi_endproc\n.size F1,.-F1\n");

int main(int argc, char **argv) {
	nested = argc > 1 ? atol(argv[1]) : 1;
	long p = F1();
	int st = 0;
	if (waitpid(p, &st, 0) < 0)
		return 9;
	printf("child status %d\n", st);
	return WEXITSTATUS(st);
}
