package symbols

import (
	"fmt"
	"os"
	"sync"
)

// The vDSO is an ELF image the kernel maps into every process ([vdso] in
// /proc/PID/maps) with no file behind it. It has symbols and CFI like any
// shared library: i386 programs enter the kernel through its
// __kernel_vsyscall, so a vfork made through glibc's syscall() on i386
// stops there, and without the vDSO's CFI the parent's stack cannot be
// unwound past it. The image is read from the process's memory; it is the
// same in every process of one arch on one kernel, so Binaries are cached by
// content.

var vdsoCache = struct {
	sync.Mutex
	m map[string]*Binary
}{m: map[string]*Binary{}}

// maxVDSO bounds what is read: the vDSO is two to four pages.
const maxVDSO = 1 << 20

// openVDSO reads the [vdso] mapping m of process pid.
func openVDSO(pid int, m Mapping) (*Binary, error) {
	if m.End <= m.Start || m.End-m.Start > maxVDSO {
		return nil, fmt.Errorf("[vdso] of %d bytes", m.End-m.Start)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, m.End-m.Start)
	if _, err := f.ReadAt(data, int64(m.Start)); err != nil {
		return nil, fmt.Errorf("read [vdso] of %d: %w", pid, err)
	}
	return vdsoBinary(data)
}

// vdsoBinary makes (or finds) the Binary of a vDSO image.
func vdsoBinary(data []byte) (*Binary, error) {
	vdsoCache.Lock()
	defer vdsoCache.Unlock()
	if b, ok := vdsoCache.m[string(data)]; ok {
		return b, nil
	}
	im, err := memImage(data)
	if err != nil {
		return nil, err
	}
	b, err := newBinary("[vdso]", im)
	if err != nil {
		return nil, err
	}
	vdsoCache.m[string(data)] = b
	return b, nil
}
