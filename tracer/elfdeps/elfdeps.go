// Package elfdeps says where the dynamic loader finds what a program needs
// at run time: its program interpreter (PT_INTERP) and the directories it
// searches by default for the libraries the program names (DT_NEEDED).
// The engine's symbol prefetch and the VM harness (which copies a dynamic
// i386 program's loader and libraries into the initramfs) share it.
package elfdeps

import (
	"debug/elf"
	"strings"
)

// LibDirs are the dynamic loader's default directories for an ELF class,
// where a library named by DT_NEEDED is looked for without ld.so.cache
// (Debian's layout: libc6-i386 installs into /lib32).
func LibDirs(class elf.Class) []string {
	if class == elf.ELFCLASS32 {
		return []string{"/lib32", "/usr/lib32", "/lib/i386-linux-gnu", "/usr/lib/i386-linux-gnu", "/lib", "/usr/lib"}
	}
	return []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}
}

// Interp returns a dynamic executable's program interpreter (PT_INTERP).
func Interp(f *elf.File) (string, bool) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP || p.Filesz > 4096 {
			continue
		}
		buf := make([]byte, p.Filesz)
		if _, err := p.ReadAt(buf, 0); err == nil {
			return strings.TrimRight(string(buf), "\x00"), true
		}
	}
	return "", false
}
