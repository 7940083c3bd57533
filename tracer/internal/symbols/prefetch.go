package symbols

import (
	"os"
	"path/filepath"

	"github.com/vtrace/vtrace/tracer/elfdeps"
)

// Between a program's exec and its first vfork, the dynamic loader maps
// the program's libraries and the program runs; vtrace only waits. The
// first vfork story then needs the names and CFI of the program, of libc
// and of libc's separate debug file (its internal functions, such as
// __libc_start_call_main, are named only there): reading them took 1.5 ms
// of a 9 ms run of the seed program, while the tracee was held. Prefetch
// reads them during the wait instead, on another goroutine (another CPU).

// Prefetch reads now what the first symbolisation of the file would read:
// its code symbols (and PLT names), its debug file's symbols, and its
// compile units' address ranges. Safe while other goroutines use b: they
// wait for what is being read.
func (b *Binary) Prefetch() {
	b.symOnce.Do(b.loadSymbols)
	b.debugOnce.Do(b.loadDebugSymbols)
	if b.dwarfData() != nil {
		b.mu.Lock()
		if !b.cusDone {
			b.readUnits()
		}
		b.mu.Unlock()
	}
}

// PrefetchProgram opens and prefetches the program at path, its program
// interpreter and the shared libraries it names (DT_NEEDED), found where
// the dynamic loader looks by default. It guesses: a library found
// elsewhere (an rpath, LD_LIBRARY_PATH) is simply read later, when the
// process maps it; the Binary cache is keyed by real path, size and mtime,
// so a wrong guess is only wasted work. Meant to run on its own goroutine.
func PrefetchProgram(path string) {
	b := prefetchFile(path)
	if b == nil || b.img == nil {
		return
	}
	f := b.img
	if interp, ok := elfdeps.Interp(f.File); ok {
		prefetchFile(interp)
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return
	}
	for _, lib := range libs {
		for _, dir := range elfdeps.LibDirs(f.Class) {
			if p := filepath.Join(dir, lib); isRegularFile(p) {
				if lb := prefetchFile(p); lb != nil && lb.Arch == b.Arch {
					break
				}
			}
		}
	}
}

// prefetchFile opens the file by its real path (the one /proc/PID/maps
// shows) and prefetches it.
func prefetchFile(path string) *Binary {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil
	}
	if real, err = filepath.Abs(real); err != nil {
		return nil
	}
	b, err := OpenBinary(real)
	if err != nil {
		return nil
	}
	b.Prefetch()
	return b
}

func isRegularFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
