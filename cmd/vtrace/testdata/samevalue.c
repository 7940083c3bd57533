/*
 * samevalue.c - a vfork child sets a local of the parent's frame; the
 * parent then copies a word over it, or out of it, with libc's memcpy
 * (a real call: its size is not a constant). With glibc, memcpy runs in a
 * hidden function (__memmove_*_unaligned_erms) that no symbol names when
 * libc's debug file is absent.
 *
 *   samevalue store   the parent stores the child's very value (1) again,
 *                     then reads its own: clean
 *   samevalue read    the parent reads the child's value: a warning
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  volatile int flag = 0;
  int one = 1, copy = 0;
  size_t n = argc > 5 ? 1 : sizeof flag;
  if (argc != 2) {
    fprintf(stderr, "usage: samevalue store|read\n");
    return 2;
  }
  pid_t pid = vfork();
  if (pid == 0) {
    flag = 1;
    _exit(0);
  }
  if (strcmp(argv[1], "store") == 0) {
    memcpy((void *)&flag, &one, n);
    copy = flag;
  } else {
    memcpy(&copy, (void *)&flag, n);
  }
  printf("%d\n", copy);
  return 0;
}
