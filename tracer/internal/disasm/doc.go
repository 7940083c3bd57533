// Package disasm decodes x86 instructions (amd64 and i386) for the tracer:
// what an instruction is (Class: call, ret, jump, push...), how long it is,
// which memory it will touch, and how objdump would print it.
//
// Decoding goes through golang.org/x/arch/x86/x86asm, with local
// corrections where x86asm v0.32 (still so in v0.33) is wrong or silent,
// each checked against objdump (binutils 2.40):
//
//   - vzeroupper/vzeroall are built locally: x86asm reads a ModRM byte
//     after them and made them 1-2 bytes too long;
//   - a VEX/EVEX memory operand with ModRM mod=00 r/m=101 is rip-relative
//     in 64-bit mode; x86asm leaves it absolute;
//   - endbr64/endbr32, rdssp, incssp, rdpkru and wrpkru, which x86asm does
//     not know, are recognised from their bytes;
//   - operand sizes x86asm omits (fldt/fstpt and fbld/fbstp: 10 bytes;
//     fxsave, fnstenv... by their layout) come from the Intel SDM.
//
// TestLengthSweep decodes every instruction of the C libraries' .text
// (glibc amd64 and i386, musl) and of the static target builds at objdump's
// boundaries and requires the same length for each; FuzzDecode feeds
// Decode, FormatATT and Effects arbitrary bytes.
//
// FormatATT renders an instruction exactly as objdump -d prints its
// instruction column (AT&T syntax with objdump's prefix, suffix, AVX-512
// mask, pseudo-op and x87 conventions and its annotations): the golden
// tests compare every instruction of the seed program's builds, and when
// this was written every .text line of Debian 12's glibc (amd64 and i386)
// matched.
//
// Effects lists, for a register set read before the instruction executes,
// the memory it will read and write (address, size, direction, %fs/%gs
// relative), including the implicit stack accesses of push, pop, call, ret
// and leave and the extent of rep-prefixed string instructions. It reports
// unknown when the instruction may touch memory it cannot describe.
//
// Silent marks the instructions a single-stepping tracer can skip the
// register read for: they change only registers and flags and always go on
// at PC+Len (no memory write, no stack access, no branch, no system call,
// nothing Effects cannot describe).
//
// Limits:
//   - Registers are the general-purpose ones in DWARF numbering
//     (arch.Arch.GPRDWARF); an address formed from anything else (VSIB
//     gather/scatter vectors) makes Effects report unknown.
//   - String instructions assume the direction flag is clear (the ABI
//     state at calls and returns); repz/repnz cmps and scas report the
//     full rcx count, an upper bound.
//   - Masked AVX-512 stores report the whole vector, a superset of what a
//     mask lets through; xsave and friends report only their fixed part
//     and unknown.
//   - A VEX/EVEX instruction preceded by a segment or address-size prefix
//     is decoded by x86asm as a lone prefix (Effects unknown, not silent).
//   - objdump shows fwait and the fn* instruction after it as one
//     (9b d9 /7 is "fstcw"); Decode returns the two instructions the CPU
//     executes and a single step stops between.
//   - A decoding error still yields an instruction (Len 1, "(bad)",
//     unknown effects) so that a caller stepping through arbitrary bytes
//     can carry on.
package disasm
