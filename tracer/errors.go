package tracer

import (
	"debug/elf"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/internal/ptrace"
)

// ErrCannotTrace wraps every reason a run could not start: the CLI maps it
// to exit code 126 (127 when the program does not exist; README "Exit
// status").
var ErrCannotTrace = errors.New("cannot trace")

// ErrNotPermitted is ptrace being refused by the system.
var ErrNotPermitted = ptrace.ErrNotPermitted

// ErrNoI386 means the kernel refuses to execute 32-bit x86 programs (some
// hypervisors allow 64-bit user code only; execve answers ENOEXEC).
var ErrNoI386 = errors.New("this kernel cannot run 32-bit (i386) programs")

// startError turns a failed fork/exec of the target into a one-line error
// a user can act on.
func startError(path string, err error) error {
	switch {
	case errors.Is(err, ptrace.ErrNotPermitted):
		return fmt.Errorf("%w: %s: %v (check kernel.yama.ptrace_scope, and in a container the seccomp profile and CAP_SYS_PTRACE)",
			ErrCannotTrace, path, err)
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: %s: no such file", ErrCannotTrace, path)
	case errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: %s: permission denied (is it an executable file?)", ErrCannotTrace, path)
	case errors.Is(err, unix.ENOEXEC):
		if f, ferr := elf.Open(path); ferr == nil {
			defer f.Close()
			if f.Class == elf.ELFCLASS32 && f.Machine == elf.EM_386 {
				return fmt.Errorf("%w: %s: %w (execve: exec format error; IA-32 emulation is off here)", ErrCannotTrace, path, ErrNoI386)
			}
			return fmt.Errorf("%w: %s: this kernel cannot execute this ELF file (%s, %s; execve: exec format error)", ErrCannotTrace, path, f.Class, f.Machine)
		}
		return fmt.Errorf("%w: %s: not an executable program (exec format error)", ErrCannotTrace, path)
	}
	return fmt.Errorf("%w: %s: %v", ErrCannotTrace, path, err)
}
