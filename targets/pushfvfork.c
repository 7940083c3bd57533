/*
 * pushfvfork.c - code that saves and restores the flags register (pushf,
 * popf) runs while vtrace single-steps it (issue 13, "signals exactly as
 * natively").
 * Expected verdict: CLEAN; natively and under vtrace in every mode the
 * child prints and exits 0, the parent prints the child's value and exits 0.
 *
 * While a tracer single-steps a task, the CPU's trap flag (TF, bit 8 of
 * the flags) is really set: a stepped `pushf` stores it into the program's
 * memory, and the `popf` that loads the word back sets TF as the program's
 * own (the kernel stops counting it as the tracer's: arch/x86/kernel/
 * step.c, is_setting_trap_flag). Once the tracer lets the task run free,
 * it traps after every instruction and, the tracer not having asked for
 * it, dies of SIGTRAP. Go's runtime.asyncPreempt saves the flags this way
 * (PUSHFQ ... POPFQ), so a Go program followed through a preemption died.
 * gdb clears TF in a word its step of pushf stored (i386-tdep.c,
 * displaced-step fixups); vtrace must too.
 *
 * Without an argument the vfork child (stepped: it runs on the parent's
 * stack) does pushf; popf, then calls write(), which vtrace runs at full
 * speed. With `parent`, the child changes a local of the parent
 * (`handoff`), so vtrace follows the parent after the child's _exit; the
 * parent does pushf; popf before it reads the local, and then runs free.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Inlined: vtrace steps the frame of the vfork caller instruction by
 * instruction, and runs calls out of it at full speed. */
static inline __attribute__((always_inline)) void flags_roundtrip(void)
{
#if defined(__x86_64__)
	__asm__ volatile("pushfq; popfq" ::: "memory", "cc");
#else
	__asm__ volatile("pushfl; popfl" ::: "memory", "cc");
#endif
}

int main(int argc, char **argv)
{
	int in_parent = argc > 1 && strcmp(argv[1], "parent") == 0;
	volatile int handoff = 0;
	int status;
	pid_t pid;

	setvbuf(stdout, NULL, _IONBF, 0);
	pid = vfork();
	if (pid == 0) {
		if (in_parent) {
			handoff = 42;
			_exit(0);
		}
		flags_roundtrip();
		write(1, "child ran\n", 10);
		_exit(0);
	}
	if (pid < 0)
		return 1;
	if (in_parent) {
		flags_roundtrip();
		printf("handoff %d\n", handoff);
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	if (WIFSIGNALED(status)) {
		printf("child killed by signal %d\n", WTERMSIG(status));
		return 1;
	}
	printf("child exited %d\n", WEXITSTATUS(status));
	return WEXITSTATUS(status);
}
