#!/bin/sh
# Regenerates the symbols tests' own golden files. Run from this directory.
#
# The tests also use the seed program's builds of ../../disasm/testdata and
# their objdump listings (see gen.sh there): symbol and PLT names.
#
#   gcc-O2-g          targets/badvfork.c, gcc -O2 -g (amd64 PIE): DWARF line
#                     tables, two sequences (main is in .text.startup)
#   gcc-O2-g.lines    addr2line's answer for every instruction of .text:
#                     "0xADDR FILE:LINE", "??:0" or "FILE:?" when it has none
#   static-ifunc-amd64, static-ifunc-i386, static-pie-ifunc-amd64
#                     ifunc.c + twin.c without libc: IRELATIVE PLT stubs
#                     (8 bytes each in a static executable, 16 in a static
#                     PIE), and a local and a global symbol of the same name
#   *.objdump         objdump -d --no-show-raw-insn of each of those
#   *.relocs          readelf -rW: which resolver fills which GOT slot
#   gcc-O2-g.notes    readelf -n (the build-id)
#   maps-gcc-O2.txt, maps-gcc-m32-O0.txt
#                     /proc/PID/maps of ../../disasm/testdata/gcc-O2 and
#                     gcc-m32-O0 stopped at main (ASLR off): taken with the
#                     unwind tests' snapshot tool, which needs ptrace; the
#                     program is killed there, before it could vfork.
#
# Tool versions are in tools.txt; others change addresses and the goldens.
set -eu
src=../../../targets/badvfork.c
gcc -O2 -g -fdebug-prefix-map="$(cd ../../.. && pwd)"=/vtrace -o gcc-O2-g "$src"
objdump -d --no-show-raw-insn gcc-O2-g >gcc-O2-g.objdump
readelf -n gcc-O2-g >gcc-O2-g.notes
addrs=$(awk '/^Disassembly of section/ { sec = $4 }
	sec == ".text:" && /^ +[0-9a-f]+:\t/ { sub(":", "", $1); print "0x" $1 }' gcc-O2-g.objdump)
# shellcheck disable=SC2086 # one argument per address
addr2line -a -e gcc-O2-g $addrs | paste -d ' ' - - |
	sed 's/^0x0*/0x/; s| [^ ]*/| |' >gcc-O2-g.lines

ifunc() {
	out=$1
	shift
	gcc -O1 -nostdlib "$@" -o "$out" ifunc.c twin.c
	objdump -d --no-show-raw-insn "$out" >"$out.objdump"
	readelf -rW "$out" >"$out.relocs"
}
ifunc static-ifunc-amd64 -static -fno-pie -no-pie
ifunc static-ifunc-i386 -m32 -static -fno-pie -no-pie
ifunc static-pie-ifunc-amd64 -static-pie -fPIE

(cd ../../unwind/testdata &&
	go run ./snapshot -bin ../../disasm/testdata/gcc-O2 -maps ../../symbols/testdata/maps-gcc-O2.txt -run main@0x1070 &&
	go run ./snapshot -bin ../../disasm/testdata/gcc-m32-O0 -maps ../../symbols/testdata/maps-gcc-m32-O0.txt -run main@0x11ad)
{
	gcc --version | head -1
	objdump --version | head -1
	addr2line --version | head -1
} >tools.txt
