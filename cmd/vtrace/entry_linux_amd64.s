#include "textflag.h"

// vtraceEntry is vtrace's entry point (the Makefile links with
// -ldflags=-E=main.vtraceEntry): before Go's runtime starts, and installs
// its own handlers over whatever vtrace inherited, it reads the handler
// of every signal (rt_sigaction with no new action) into initialSigs,
// then starts the runtime as the usual entry does. Registers are free
// here; the stack is the kernel's, left as it is for the runtime.
TEXT ·vtraceEntry(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$1, R12
loop:
	MOVQ	$13, AX			// SYS_rt_sigaction
	MOVQ	R12, DI			// the signal
	XORQ	SI, SI			// no new action
	LEAQ	·sigactBuf(SB), DX	// the old one
	MOVQ	$8, R10			// sizeof(sigset_t)
	SYSCALL
	CMPQ	AX, $0
	JNE	next
	MOVQ	·sigactBuf(SB), AX	// sa_handler
	LEAQ	·initialSigs(SB), BX
	MOVQ	AX, (BX)(R12*8)
next:
	INCQ	R12
	CMPQ	R12, $65
	JLT	loop
	MOVQ	$1, ·initialSigsRead(SB)
	JMP	_rt0_amd64_linux(SB)
