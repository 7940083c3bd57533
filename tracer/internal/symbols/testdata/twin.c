/* twin.c - the global "twin" (ifunc.c has a static one). */
int __attribute__((noinline)) twin(int a) { return a + 7; }
int twin_global(int a) { return twin(a); }
