/*
 * vforkattrs.c - the idea of LTP's vfork01, written anew (issue 11, item
 * 10): the vfork child checks that it has its parent's credentials, umask
 * and directories, then execs. Expected verdict: CLEAN; the story must show
 * the many words the child wrote in a live parent frame.
 *
 * check_attrs() fills `struct attrs parent` before the vfork; the child
 * fills `struct attrs child` - a local of the same, live frame - with
 * getresuid, getresgid, umask and stat of "/" and "." (two struct stat of
 * 144 bytes on amd64, 88 on i386), compares, and execs /bin/true (match) or
 * _exit(1)s (mismatch). The parent waits and reports; it never reads
 * `child`. So nothing the parent uses was changed (clean), but the child did
 * change many words of a live parent frame: of each struct stat at least
 * st_dev, st_ino, st_nlink, st_mode/st_uid/st_gid, st_blksize, st_blocks
 * and the three timestamps are nonzero for a directory, against the zeroes
 * check_attrs() put there - more than 10 words per struct on amd64, whatever
 * the compiler. A story that says the child ran "without touching any live
 * parent frame" is false here; stack_write events must show the words.
 * Exit 0 when the child exec'd /bin/true (the attributes matched).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct attrs {
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;
	mode_t mask;
	struct stat root, cwd;
};

static int get_attrs(struct attrs *a)
{
	if (getresuid(&a->ruid, &a->euid, &a->suid) != 0 ||
	    getresgid(&a->rgid, &a->egid, &a->sgid) != 0)
		return -1;
	a->mask = umask(0);
	umask(a->mask);
	if (stat("/", &a->root) != 0 || stat(".", &a->cwd) != 0)
		return -1;
	return 0;
}

static int same_attrs(const struct attrs *p, const struct attrs *c)
{
	return p->ruid == c->ruid && p->euid == c->euid && p->suid == c->suid &&
	       p->rgid == c->rgid && p->egid == c->egid && p->sgid == c->sgid &&
	       p->mask == c->mask &&
	       p->root.st_dev == c->root.st_dev && p->root.st_ino == c->root.st_ino &&
	       p->cwd.st_dev == c->cwd.st_dev && p->cwd.st_ino == c->cwd.st_ino;
}

__attribute__((noinline)) static int check_attrs(void)
{
	struct attrs parent, child;
	int status;
	pid_t pid;

	memset(&parent, 0, sizeof parent);
	memset(&child, 0, sizeof child);
	if (get_attrs(&parent) != 0)
		return 1;
	pid = vfork();
	if (pid == 0) {
		if (get_attrs(&child) == 0 && same_attrs(&parent, &child))
			execl("/bin/true", "true", (char *)NULL);
		_exit(1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return 1;
	printf("parent: child %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ?
	       "had the parent's attributes and exec'd /bin/true" : "saw different attributes");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(void)
{
	return check_attrs();
}
