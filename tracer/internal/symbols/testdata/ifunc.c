/*
 * ifunc.c - a freestanding program (no libc: -nostdlib, its own _start)
 * whose calls go through IRELATIVE PLT stubs, as a static glibc program's
 * calls to strcpy or memcpy do, in a few KB instead of 800. It is never
 * run (nothing applies its IRELATIVE relocations): the symbols tests only
 * read it. As in glibc, each ifunc is a global STT_GNU_IFUNC symbol ("add")
 * at the address of a local resolver function ("add_ifunc").
 */
typedef int binop(int, int);

static int add_impl(int a, int b) { return a + b; }
static int sub_impl(int a, int b) { return a - b; }
static binop *add_ifunc(void) { return add_impl; }
static binop *sub_ifunc(void) { return sub_impl; }
int add(int, int) __attribute__((ifunc("add_ifunc")));
int sub(int, int) __attribute__((ifunc("sub_ifunc")));

/* A local twin of twin.c's global function of the same name. */
static int __attribute__((noinline)) twin(int a) { return a * 3; }
int twin_global(int);

int r;

void _start(void)
{
	r = add(r, 2);
	r = sub(r, 1);
	r = twin(r) + twin_global(r);
	for (;;)
		;
}
