#!/bin/sh
# Regenerates the golden binaries and their objdump listings.
#
# Run from this directory (or via `go generate ./tracer/disasm/`). The
# binaries are built from the seed program, targets/badvfork.c, without -g:
#
#   gcc-O0, gcc-O2      gcc, amd64, PIE (the Debian default)
#   clang-O0, clang-O2  clang, amd64, PIE
#   gcc-m32-O0, gcc-m32-O2  gcc -m32 (i386, PIE)
#
# Next to each binary, <name>.objdump is `objdump -d --no-show-raw-insn`
# output, the golden the test compares FormatATT against. The tools used are
# recorded in tools.txt; regenerating with other versions changes code
# and possibly the text.
set -eu
src=../../../targets/badvfork.c
build() {
	out=$1
	shift
	"$@" -o "$out" "$src"
	objdump -d --no-show-raw-insn "$out" >"$out.objdump"
}
build gcc-O0 gcc -O0
build gcc-O2 gcc -O2
build gcc-m32-O0 gcc -m32 -O0
build gcc-m32-O2 gcc -m32 -O2
if command -v clang >/dev/null; then
	build clang-O0 clang -O0
	build clang-O2 clang -O2
fi
{
	gcc --version | head -1
	command -v clang >/dev/null && clang --version | head -1
	objdump --version | head -1
} >tools.txt
