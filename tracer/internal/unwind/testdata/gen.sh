#!/bin/sh
# Regenerates the stack snapshots the unwind tests replay.
#
# Run from this directory on an x86-64 Linux host where ptrace works (vtrace's
# own requirement). The programs are the seed program's golden builds of
# ../../disasm/testdata (targets/badvfork.c without -g; see gen.sh there):
# the tests read their .eh_frame through package symbols, so a snapshot is
# only valid for the exact binary it was taken from (its build-id is
# recorded and checked). Regenerate after ../../disasm/testdata/gen.sh.
#
# The program is stopped at breakpoints in its own executable, never in
# libc, so that all the CFI a test needs is in the checked-in binary; it is
# killed after its last stop, before it ever calls vfork. Addresses are
# link-time, from ../../disasm/testdata/<name>.objdump:
#
#   gcc-O0 (amd64)
#     0x1191 createproc's first instruction (push %rbp)
#     0x1199 createproc: call vfork@plt (frame set up: rbp saved at CFA-16)
#     0x1040 vfork@plt (CFA by DW_CFA_def_cfa_expression, rip&15 < 11)
#     0x104b vfork@plt+0xb, after push $0x1 (same expression, rip&15 >= 11)
#     0x1020 PLT0 (CFA rsp+16), 0x1026 PLT0 after its push (CFA rsp+24)
#     second run: at 0x1199 the pc is moved to 0x11c5 (createproc's
#     "return -1" path, so no vfork) and the program stops at 0x11cb, ret.
#   gcc-m32-O0 (i386)
#     0x11f1 createproc's first instruction
#     0x1209 createproc: call vfork@plt (ebp at CFA-8, ebx at CFA-12)
#     0x1060 vfork@plt, 0x106b after its push; 0x1020 PLT0, 0x1026
#     second run: 0x1209 -> 0x1234, stop at 0x123d (ret: its CFI says
#     DW_CFA_restore ebp, ebx).
#
# The snapshot command (./snapshot, not part of the build) records each
# stop's raw NT_PRSTATUS, /proc/PID/maps (at the first stop) and the stack
# from 128 bytes below %sp to the top of the stack mapping, with ASLR off and
# an empty environment. Reruns differ only in random bytes near the top of
# the stack (AT_RANDOM, the stack guard): the addresses are the same.
set -eu
dis=../../disasm/testdata
snap() {
	go run ./snapshot "$@"
}
snap -bin "$dis/gcc-O0" -o gcc-O0.json \
	-comment 'badvfork gcc -O0 (amd64), stopped in its own code; see gen.sh' \
	-run 'createproc-entry@0x1191,createproc-call-vfork@0x1199,vfork-plt@0x1040,vfork-plt-pushed@0x104b,plt0@0x1020,plt0-pushed@0x1026' \
	-run '-@0x1199>0x11c5,createproc-ret@0x11cb'
snap -bin "$dis/gcc-m32-O0" -o gcc-m32-O0.json \
	-comment 'badvfork gcc -m32 -O0 (i386), stopped in its own code; see gen.sh' \
	-run 'createproc-entry@0x11f1,createproc-call-vfork@0x1209,vfork-plt@0x1060,vfork-plt-pushed@0x106b,plt0@0x1020,plt0-pushed@0x1026' \
	-run '-@0x1209>0x1234,createproc-ret@0x123d'
{
	uname -srm
	go version
} >tools.txt
