/*
 * spin.h - the benchmark workload shared by spin.c and stepref.c.
 *
 * spin_work(n) executes about n instructions in a loop the compiler cannot
 * remove. On x86-64 and i386 the loop is four instructions of inline
 * assembly (imul, add, dec, jnz), so the count is the same at every
 * optimisation level and with every compiler: the loop runs n/4 times
 * (at least once). Elsewhere a plain C loop with a volatile sink is used
 * and the count depends on the compiler.
 */
#ifndef VTRACE_SPIN_H
#define VTRACE_SPIN_H

#define SPIN_DEFAULT_INSNS 1000000UL

static inline unsigned spin_work(unsigned long n_insns)
{
	unsigned x = 1;                       /* LCG state */
	unsigned iters = (unsigned)(n_insns / 4);

	if (iters == 0)
		iters = 1;                    /* dec/jnz must not start at 0 */
#if defined(__x86_64__) || defined(__i386__)
	__asm__ volatile(
		"1:\n\t"
		"imul $1103515245, %0, %0\n\t"
		"add  $12345, %0\n\t"
		"dec  %1\n\t"
		"jnz  1b"
		: "+r"(x), "+r"(iters)
		:
		: "cc");
#else
	{
		volatile unsigned sink;
		while (iters--)
			x = x * 1103515245u + 12345u;
		sink = x;
		(void)sink;
	}
#endif
	return x;
}

#endif
