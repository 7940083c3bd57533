/*
 * embox2050_slot.c - an -O2 local the compiler keeps in a stack slot that
 * the vfork child's code also uses (embox/embox#2050, fixed by #2051).
 * See docs/catalogue.md. Expected verdict, per build (targets/expect):
 * WARNING (parent_read_child_write) where the compiler shares the slot,
 * CLEAN where it does not.
 *
 * embox's telnetd created a session in telnet_create_new_session(): it
 * filled `struct telnet_session *ts` before vfork() and set ts's fields
 * after it, in the parent only. Built with -O2, `ts` became NULL after the
 * vfork: gcc had kept `ts` in a stack slot and reused that slot for values
 * of the child's branch, which the child wrote before exec'ing. The fix
 * rewrote telnetd so that nothing the parent needs lives across the vfork.
 *
 * The same mechanism, written anew for this machine: create_session()
 * computes three values before the vfork that only the parent uses after
 * it (session_id, peer, deadline); the child's branch computes seven values
 * of its own and keeps them across calls. The compiler must not let those
 * share storage - but it only knows that if it knows the call returns
 * twice. Here vfork is called under another name (an asm label), so the
 * compiler sees an ordinary call, as it did in embox; with too few
 * callee-saved registers for all the values, gcc -O2 spills the parent's
 * values to stack slots and gives the child's spills the same slots, since
 * in its view the two branches never run both. (Called as vfork(), which
 * gcc and clang know returns twice, the same code keeps them apart in
 * every build: measured, the program then exits 0 at -O2 too.)
 * Ground truth (objdump -d of create_session in each build, and the
 * program's own check of the session it got back):
 *  - gcc -O2 amd64 (gcc-O2, gcc-O2-static, musl-O2): `peer` is spilled to
 *    0x8(%rsp) before the vfork; the child's branch starts with
 *    `mov %rsi,0x8(%rsp)` (it keeps `client` there), and the parent later
 *    loads `mov 0x8(%rsp),%rcx` into ts->peer: the session gets 1, the
 *    child's value, instead of 0.
 *  - clang -O2 amd64 (clang-O2, clang-O2-nopie): `session_id` is spilled to
 *    0x8(%rsp); the child stores note(c) there (`mov %rax,0x8(%rsp)`), the
 *    parent copies 0x8(%rsp) into ts->id: 1 instead of 0.
 *  - gcc -O2 i386: `peer` again, at a slot of the same frame.
 * In every -O2 build the program prints "session corrupted" and exits 1.
 * At -O0 every local has a slot of its own: the child writes only slots
 * the parent never reads (and `pid`, which the parent rewrites), and the
 * program exits 0.
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

/* vfork, under a name that does not tell the compiler it returns twice */
extern pid_t spawn_vfork(void) __asm__("vfork");

struct telnet_session {
	long id, peer, deadline;
	pid_t pid;
};

/* An opaque call (a logging hook, as telnetd's MD() debug prints are): the
 * compiler cannot see through it, so values live across it need callee-
 * saved registers or stack slots. */
static long note_impl(long v) { return v & 1; }
static long (*volatile note)(long) = note_impl;

__attribute__((noinline)) static long create_session(struct telnet_session *ts,
		long client, long a, long b, long c, long d, long e)
{
	long session_id = note(client * a), peer = note(b * c), deadline = note(d * e);
	pid_t pid = spawn_vfork();

	if (pid == 0) {
		long x1 = note(client), x2 = note(a), x3 = note(b), x4 = note(c),
		     x5 = note(d), x6 = note(e), x7 = note(client + a);
		note(x1 + x2 + x3 + x4 + x5 + x6 + x7);
		note(x2 + x3 + x4 + x5 + x6 + x7 + x1);
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	long check = note(client) + note(a) + note(b) + note(c) + note(d) + note(e);
	ts->pid = pid;
	ts->id = session_id;
	ts->peer = peer;
	ts->deadline = deadline;
	return check;
}

int main(int argc, char **argv)
{
	struct telnet_session s = { 0, 0, 0, 0 };
	long client = argc;           /* 1: keeps the values out of the compiler's reach */
	long check;
	int status;

	(void)argv;
	check = create_session(&s, client, client + 1, client + 2, client + 3, client + 4, client + 5);
	if (s.pid <= 0 || waitpid(s.pid, &status, 0) < 0) {
		printf("parent: no child to wait for\n");
		return 1;
	}
	/* What the session must hold: note(x) is x & 1. */
	if (s.id != ((client * (client + 1)) & 1) || s.peer != (((client + 2) * (client + 3)) & 1) ||
	    s.deadline != (((client + 4) * (client + 5)) & 1) ||
	    check != (client & 1) * 3 + ((client + 1) & 1) * 3) {
		printf("parent: session corrupted: id %ld peer %ld deadline %ld check %ld\n",
		       s.id, s.peer, s.deadline, check);
		return 1;
	}
	printf("parent: session %ld for child %d intact\n", s.id, (int)s.pid);
	return 0;
}
