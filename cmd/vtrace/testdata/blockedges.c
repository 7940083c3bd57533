// The edges of fast mode's parent blocks (tracer/parentblock.go): after
// its vfork child stored 42 into the global g, the parent is followed for
// its own frames' reads of g, with blocks that run calls and returns at
// full speed. Each mode is a way that could go wrong; --step is the
// reference, and the expected verdicts follow from the rule both modes
// share: a read by the parent's own frames is a warning, a read inside a
// function the parent calls is not looked at.
//
//   sigcall   the parent loops calling h(), which reads g (a callee's
//             read: clean), while a forked sender keeps sending SIGURG:
//             a signal that comes where a block stands at its call must
//             not make h's frame the parent's own.
//   samesp    f(1) vforks and returns without reading g; main then calls
//             f(0), which reads g in a frame at the very stack pointer
//             f(1)'s had (a callee of main: clean).
//   recur     f recurses once before it vforks; only the innermost f reads
//             g after its load through a register (warning).
//   thread    outer() vforks, then calls joiner(), whose thread runs
//             outer(1) straight to outer's read of g while the parent
//             waits in pthread_join; back in the parent, outer reads g
//             (warning).
//   hijack    h() rewrites the return slot of its caller F, which returns
//             into other(), which reads g (warning; exit status 3).
//   callnext  F does `call 1f; 1: pop`, then reads g (warning).
//
// x86-64 only (the functions that matter are written in assembly, with
// their call-frame information).
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int g = 7;
int sink, sink2, pidsave, mode;
volatile int vsink;

__attribute__((noinline)) int h(void) { return g; }

__attribute__((noinline)) pid_t spawn(void) {
	pid_t p = vfork();
	if (p == 0) {
		g = 42;
		_exit(0);
	}
	return p;
}

// ---- sigcall: loop L calls h 3000 times.
void L(void);
__asm__(".text\n.globl L\n.type L,@function\nL:\n.cfi_startproc\n"
	"push %rbx\n.cfi_def_cfa_offset 16\n"
	"push %r12\n.cfi_def_cfa_offset 24\n"
	"sub $8, %rsp\n.cfi_def_cfa_offset 32\n"
	"lea sink(%rip), %r12\n"
	"mov $3000, %ebx\n"
	"1: mov (%r12), %eax\n"
	"call h\n"
	"movl $1, sink2(%rip)\n"
	"movl $2, sink2(%rip)\n"
	"dec %ebx\n"
	"jne 1b\n"
	"add $8, %rsp\n.cfi_def_cfa_offset 24\n"
	"pop %r12\n.cfi_def_cfa_offset 16\n"
	"pop %rbx\n.cfi_def_cfa_offset 8\n"
	"ret\n.cfi_endproc\n.size L, .-L\n");

// ---- samesp: fs(1) vforks; fs(0) reads g.
int fs(int first);
__asm__(".text\n.globl fs\n.type fs,@function\nfs:\n.cfi_startproc\n"
	"push %rbx\n.cfi_def_cfa_offset 16\n.cfi_offset %rbx, -16\n"
	"mov %edi, %ebx\n"
	"xor %edx, %edx\n"
	"test %ebx, %ebx\n"
	"je 1f\n"
	"call vfork@PLT\n"
	"test %eax, %eax\n"
	"jne 2f\n"
	"movl $42, g(%rip)\n"
	"xor %edi, %edi\n"
	"call _exit@PLT\n"
	"2: mov %eax, %edx\n"
	"1: movl $5, sink(%rip)\n"
	"movl $6, sink(%rip)\n"
	"test %ebx, %ebx\n"
	"jne 3f\n"
	"mov g(%rip), %eax\n"
	"pop %rbx\n.cfi_remember_state\n.cfi_def_cfa_offset 8\n"
	"ret\n.cfi_restore_state\n"
	"3: mov %edx, %eax\n"
	"pop %rbx\n.cfi_def_cfa_offset 8\n"
	"ret\n.cfi_endproc\n.size fs, .-fs\n");

// ---- recur: fr(1) calls fr(0), which vforks; both load through %rdx,
// the innermost reads g.
int fr(int n);
__asm__(".text\n.globl fr\n.type fr,@function\nfr:\n.cfi_startproc\n"
	"push %rbx\n.cfi_def_cfa_offset 16\n.cfi_offset %rbx, -16\n"
	"mov %edi, %ebx\n"
	"test %ebx, %ebx\n"
	"jne 5f\n"
	"call vfork@PLT\n"
	"test %eax, %eax\n"
	"je 9f\n"
	"mov %eax, pidsave(%rip)\n"
	"movl $1, sink(%rip)\n"
	"movl $2, sink(%rip)\n"
	"movl $3, sink(%rip)\n"
	"lea sink(%rip), %rdx\n"
	"jmp 7f\n"
	"5: lea -1(%rbx), %edi\n"
	"call fr\n"
	"lea sink(%rip), %rdx\n"
	"7: mov (%rdx), %ecx\n"
	"test %ebx, %ebx\n"
	"jne 8f\n"
	"mov g(%rip), %eax\n"
	"mov %eax, sink(%rip)\n"
	"8: mov pidsave(%rip), %eax\n"
	"pop %rbx\n.cfi_remember_state\n.cfi_def_cfa_offset 8\n"
	"ret\n.cfi_restore_state\n"
	"9: movl $42, g(%rip)\n"
	"xor %edi, %edi\n"
	"call _exit@PLT\n"
	".cfi_endproc\n.size fr, .-fr\n");

// ---- thread: outer(0) vforks, then joiner's thread runs outer(1).
int outer(int inthread);
static void *thr(void *a) {
	vsink = outer(1);
	return a;
}
__attribute__((noinline)) void joiner(void) {
	pthread_t t;
	pthread_create(&t, 0, thr, 0);
	pthread_join(t, 0);
}
__asm__(".text\n.globl outer\n.type outer,@function\nouter:\n.cfi_startproc\n"
	"sub $8, %rsp\n.cfi_def_cfa_offset 16\n"
	"test %edi, %edi\n"
	"jne 1f\n"
	"call spawn\n"
	"mov %eax, pidsave(%rip)\n"
	"movl $1, sink(%rip)\n"
	"call joiner\n"
	"movl $2, sink(%rip)\n"
	"1: mov g(%rip), %eax\n"
	"add $8, %rsp\n.cfi_def_cfa_offset 8\n"
	"ret\n.cfi_endproc\n.size outer, .-outer\n");

// ---- hijack and callnext: F vforks; then h() rewrites F's return slot
// (hijack), or F pushes its pc with call 1f (callnext) and reads g.
void other(void) {
	int v = g;
	waitpid(pidsave, 0, 0);
	printf("hijacked %d\n", v);
	fflush(stdout);
	_exit(3);
}
__attribute__((noinline)) void hj(unsigned long *slot) {
	if (mode == 'h')
		*slot = (unsigned long)other;
}
int F(void);
__asm__(".text\n.globl F\n.type F,@function\nF:\n.cfi_startproc\n"
	"push %rbx\n.cfi_def_cfa_offset 16\n.cfi_offset %rbx, -16\n"
	"lea 8(%rsp), %rbx\n"
	"call vfork@PLT\n"
	"test %eax, %eax\n"
	"je 9f\n"
	"mov %eax, pidsave(%rip)\n"
	"mov %rbx, %rdi\n"
	"call hj\n"
	"cmpl $0x63, mode(%rip)\n"
	"jne 2f\n"
	"call 1f\n"
	"1: pop %rax\n"
	"movl $1, sink(%rip)\n"
	"mov g(%rip), %eax\n"
	"mov %eax, sink(%rip)\n"
	"2: movl $2, sink2(%rip)\n"
	"pop %rbx\n.cfi_remember_state\n.cfi_def_cfa_offset 8\n"
	"ret\n.cfi_restore_state\n"
	"9: movl $42, g(%rip)\n"
	"xor %edi, %edi\n"
	"call _exit@PLT\n"
	".cfi_endproc\n.size F, .-F\n");

int main(int argc, char **argv) {
	const char *m = argc > 1 ? argv[1] : "";
	int st;
	if (strcmp(m, "sigcall") == 0) {
		pid_t parent = getpid(), sender = fork();
		if (sender == 0)
			for (;;) {
				kill(parent, SIGURG);
				usleep(20);
			}
		pid_t p = spawn();
		L();
		kill(sender, SIGKILL);
		waitpid(sender, &st, 0);
		waitpid(p, &st, 0);
		printf("%d\n", sink2);
	} else if (strcmp(m, "samesp") == 0) {
		int pid = fs(1);
		int v = fs(0);
		waitpid(pid, &st, 0);
		printf("%d\n", v);
	} else if (strcmp(m, "recur") == 0) {
		fr(1);
		waitpid(pidsave, &st, 0);
		printf("%d\n", sink);
	} else if (strcmp(m, "thread") == 0) {
		int v = outer(0);
		waitpid(pidsave, &st, 0);
		printf("%d %d\n", v, vsink);
	} else if (strcmp(m, "hijack") == 0 || strcmp(m, "callnext") == 0) {
		mode = m[0];
		F();
		waitpid(pidsave, &st, 0);
		printf("%d\n", sink);
	} else {
		fprintf(stderr, "usage: blockedges sigcall|samesp|recur|thread|hijack|callnext\n");
		return 2;
	}
	return 0;
}
