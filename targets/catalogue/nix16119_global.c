/*
 * nix16119_global.c - a vfork child overwrites a global of its parent
 * (NixOS/nix#16119, band-aid in nix#16120 "Don't trample parent's
 * havePrivateMountNs in restoreMountNamespace"). See docs/catalogue.md.
 * Expected verdict: WARNING (child_wrote_global, parent_read_child_global)
 * in every build.
 *
 * Nix ran restoreMountNamespace() in the vfork child of runProgram2() (to
 * leave the build sandbox's mount namespace before exec'ing). That function
 * also reset the process-global `havePrivateMountNs`: the child shares the
 * parent's memory, so the parent lost track of its own private mount
 * namespace - "the child was modifying parent's state". Nothing on the
 * stack is involved: the word is in the program's .data.
 *
 * The same pattern, written anew: run_program() vforks; the child calls
 * restore_mount_namespace(), which would setns() back (left out here: it
 * needs privileges and changes nothing vtrace looks at) and clears the
 * global `have_private_mount_ns`, then execs /bin/true. The parent, after
 * waitpid, checks the flag - still its own state in its view - and finds
 * it cleared. The store is in restore_mount_namespace() (objdump: amd64
 * `movl $0x0,0x...(%rip)`; i386 `movl $0x0,0x54(%eax)` at -O0,
 * `mov %edx,0x2c(%eax)` with %edx = 0 at -O2, %eax = the GOT address);
 * the word lives in the executable's writable data mapping (the global is
 * the program's own, dynamic or static). The parent reads it
 * back after the child exec'd: a parent read of a child's global write.
 * Prints "parent: have_private_mount_ns is 0 after the child ran (was 1)"
 * and exits 1.
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int have_private_mount_ns = 1;

__attribute__((noinline)) static void restore_mount_namespace(void)
{
	if (have_private_mount_ns) {
		/* nix: setns(fdSavedMountNamespace, CLONE_NEWNS), chroot, chdir */
		have_private_mount_ns = 0;
	}
}

__attribute__((noinline)) static pid_t run_program(const char *path)
{
	pid_t pid = vfork();

	if (pid == 0) {
		restore_mount_namespace();
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	return pid;
}

int main(void)
{
	int status;
	pid_t pid = run_program("/bin/true");

	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return 2;
	if (!have_private_mount_ns) {
		printf("parent: have_private_mount_ns is 0 after the child ran (was 1)\n");
		return 1;
	}
	printf("parent: have_private_mount_ns still 1\n");
	return 0;
}
