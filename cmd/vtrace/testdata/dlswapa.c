/* dlswapa.c - dlswap.c's first library (amd64): g() vforks; the child
 * pushes five words and calls _exit(3). */
__asm__(".text\n.globl g\n.type g,@function\ng:\n push %rbx\n call vfork@PLT\n test %eax,%eax\n jnz 1f\n"
	" push %rbx\n push %rbx\n push %rbx\n push %rbx\n push %rbx\n mov $3,%edi\n call _exit@PLT\n"
	"1:\n pop %rbx\n ret\n .size g,.-g\n");
