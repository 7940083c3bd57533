/*
 * ptracefloor.c - the floor of any ptrace tracer that follows a command's
 * whole process tree the way vtrace does: the options vtrace gives the
 * tasks a workload spawns (every fork, vfork, clone and exec is an event
 * stop; each new task starts with its SIGSTOP; no exit stops, which vtrace
 * keeps only where a story needs them), every stop resumed at once, no
 * register or memory read. What a
 * workload costs under it is what ptrace's stops alone cost on this
 * machine; what vtrace costs above it is vtrace's own work (bench.sh,
 * goal 2). Not a tracer anyone should use: it reads nothing.
 *
 * usage: ptracefloor COMMAND [ARG...]
 * Exits with the command's status (128+N for a signal N), 127 when it
 * cannot be run, 1 on a tracing error — once every task it traces is gone
 * (unlike vtrace, which lets what the command leaves behind run on
 * untraced: the bench's workloads leave nothing).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

/* started[pid]: the task has stopped before. A task's first stop is its
 * start's SIGSTOP, which may be reported before its parent's event stop.
 * Cleared when the task is reaped: pids are reused (pid_max is at most
 * 4M, PID_MAX_LIMIT). */
#define PIDS (1 << 22)
static unsigned char started[PIDS];

static int first_stop(pid_t p) {
  if (p <= 0 || p >= PIDS || started[p]) return 0;
  started[p] = 1;
  return 1;
}

static void forget(pid_t p) {
  if (p > 0 && p < PIDS) started[p] = 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: ptracefloor COMMAND [ARG...]\n");
    return 2;
  }
  pid_t root = fork();
  if (root < 0) {
    perror("ptracefloor: fork");
    return 1;
  }
  if (root == 0) {
    if (ptrace(PTRACE_TRACEME, 0, 0, 0) < 0) _exit(127);
    raise(SIGSTOP);
    execvp(argv[1], argv + 1);
    fprintf(stderr, "ptracefloor: %s: %s\n", argv[1], strerror(errno));
    _exit(127);
  }
  int st;
  if (waitpid(root, &st, 0) != root || !WIFSTOPPED(st)) {
    if (WIFEXITED(st)) return WEXITSTATUS(st); /* 127: PTRACE_TRACEME failed */
    fprintf(stderr, "ptracefloor: the command did not stop at its start\n");
    return 1;
  }
  long opts = PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |
              PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL;
  if (ptrace(PTRACE_SETOPTIONS, root, 0, opts) < 0 || ptrace(PTRACE_CONT, root, 0, 0) < 0) {
    perror("ptracefloor: ptrace");
    return 1;
  }
  first_stop(root);
  int rc = 1;
  for (;;) {
    pid_t p = waitpid(-1, &st, __WALL);
    if (p < 0) {
      if (errno == EINTR) continue;
      break; /* ECHILD: every task is gone */
    }
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      if (p == root) rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      forget(p);
      continue;
    }
    int sig = WSTOPSIG(st);
    if (first_stop(p) && sig == SIGSTOP)
      sig = 0; /* a new task's start */
    else if (sig == SIGTRAP && st >> 16) {
      unsigned long former;
      /* an exec by a thread other than the leader: its former tid is gone
       * with no exit reported */
      if (st >> 16 == PTRACE_EVENT_EXEC && ptrace(PTRACE_GETEVENTMSG, p, 0, &former) == 0 &&
          (pid_t)former != p)
        forget((pid_t)former);
      sig = 0; /* an event stop */
    }
    ptrace(PTRACE_CONT, p, 0, sig);
  }
  return rc;
}
