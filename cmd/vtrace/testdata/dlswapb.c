/* dlswapb.c - dlswap.c's second library (amd64): as dlswapa.c, but the
 * child's exit status comes from a movabs whose immediate covers the pc
 * of dlswapa's `call _exit`: _exit(7). */
__asm__(".text\n.globl g\n.type g,@function\ng:\n push %rbx\n call vfork@PLT\n test %eax,%eax\n jnz 1f\n"
	" push %rbx\n push %rbx\n push %rbx\n push %rbx\n push %rbx\n nop\n nop\n nop\n"
	" movabs $0x0707070707070707,%rax\n mov %eax,%edi\n call _exit@PLT\n"
	"1:\n pop %rbx\n ret\n .size g,.-g\n");
