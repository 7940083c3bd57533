package symbols

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// PROCMAP_QUERY (Linux 6.11) asks an open /proc/PID/maps about one
// mapping (a VMA) at a time, in binary: its bounds, permissions, offset
// and backing file (device, inode), without the name unless asked, and
// with permission filters the kernel applies itself. A Maps checks with
// it that its memory's writable and executable mappings are still those
// of the last text it read (unchanged), at a fraction of the kernel's cost
// of formatting the text again — the path of each file mapped (d_path,
// mangle_path) is most of that cost, and is not asked for (LoadSpaceMaps
// gives the figures).

// procmapQuery is the ioctl's request: _IOWR('f', 17, struct procmap_query).
const procmapQuery = 0xC0686611

// The query flags (uapi linux/fs.h, enum procmap_query_flags).
const (
	pmRead           = 0x01 // PROCMAP_QUERY_VMA_READABLE
	pmWrite          = 0x02 // PROCMAP_QUERY_VMA_WRITABLE
	pmExec           = 0x04 // PROCMAP_QUERY_VMA_EXECUTABLE
	pmShared         = 0x08 // PROCMAP_QUERY_VMA_SHARED (VM_MAYSHARE: the 's' of the text)
	pmCoveringOrNext = 0x10 // PROCMAP_QUERY_COVERING_OR_NEXT_VMA
)

// procmapQueryArg is struct procmap_query.
type procmapQueryArg struct {
	size, queryFlags, queryAddr uint64 // in
	vmaStart, vmaEnd, vmaFlags  uint64 // out
	vmaPageSize, vmaOffset      uint64 // out
	inode                       uint64 // out
	devMajor, devMinor          uint32 // out
	vmaNameSize, buildIDSize    uint32 // in/out (0: not asked)
	vmaNameAddr, buildIDAddr    uint64 // in
}

// vmaKey is what PROCMAP_QUERY tells of a mapping without its name: what
// the text's line says but the path.
type vmaKey struct {
	start, end, flags, offset, inode uint64
	major, minor                     uint32
}

// keyOf is the vmaKey of a line of the text; false for the one line the
// query never shows: the vsyscall page, which is the kernel's (the gate
// area, listed after the process's own mappings).
func keyOf(m Mapping) (vmaKey, bool) {
	if m.Path == "[vsyscall]" {
		return vmaKey{}, false
	}
	k := vmaKey{start: m.Start, end: m.End, offset: m.Offset, inode: m.Inode, major: m.Major, minor: m.Minor}
	for i, bit := range []uint64{pmRead, pmWrite, pmExec, pmShared} {
		if i < len(m.Perms) && m.Perms[i] != '-' && m.Perms[i] != 'p' {
			k.flags |= bit
		}
	}
	return k, true
}

// queryNext is the first mapping that ends above addr and has the
// permissions filter asks for (pmWrite, pmExec; PROCMAP_QUERY with
// COVERING_OR_NEXT_VMA: the kernel skips the others itself); found is
// false past the last one (ENOENT).
func queryNext(fd int, addr, filter uint64) (k vmaKey, found bool, err error) {
	q := procmapQueryArg{size: uint64(unsafe.Sizeof(procmapQueryArg{})), queryFlags: pmCoveringOrNext | filter, queryAddr: addr}
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), procmapQuery, uintptr(unsafe.Pointer(&q)))
		switch e {
		case 0:
			return vmaKey{start: q.vmaStart, end: q.vmaEnd, flags: q.vmaFlags, offset: q.vmaOffset, inode: q.inode,
				major: q.devMajor, minor: q.devMinor}, true, nil
		case unix.ENOENT:
			return vmaKey{}, false, nil
		case unix.EINTR:
			continue
		}
		return vmaKey{}, false, e
	}
}

// queryUnsupported reports whether err says the kernel has no
// PROCMAP_QUERY (before 6.11: ENOTTY; EINVAL for a request it does not
// know the size of).
func queryUnsupported(err error) bool {
	return err == unix.ENOTTY || err == unix.EINVAL || err == unix.E2BIG
}

// The mappings a Maps checks (unchanged), each kind in a walk of its own:
// the writable ones — what the memory watch reads (Space.DataRanges: the
// modules' data, the heap, the thread's block) and where the stacks are —
// and the executable ones — the code vtrace decodes and names, and the
// modules (a library loaded or unloaded maps or unmaps code). A mapping
// with both is in both walks.
var checkedKinds = [2]uint64{pmWrite, pmExec}

// unchanged reports whether the writable and the executable mappings of
// m's memory are, one by one, those of keys (the last text read's, by
// kind: checkedKinds): same bounds, permissions, offset, device and
// inode, and no other. The kernel keeps no count of changes it shows, so
// each is asked about; a mapping that is neither writable nor executable
// — a read-only file or segment, a guard page — is not (python3: 66 of
// its 121 mappings are read-only segments of its modules, which come and
// go with their code): the watch reads writable memory and vtrace decodes
// executable code, and a module's extent changes with its code. What the
// Space then keeps of the last text is the name of an address in such a
// mapping alone: a read-only file mapped since (say a corrupted return
// landing in it) is not named.
func (m *Maps) unchanged(keys *[2][]vmaKey) (bool, error) {
	for i, filter := range checkedKinds {
		var addr uint64
		for _, want := range keys[i] {
			k, found, err := queryNext(m.fd, addr, filter)
			if err != nil || !found || k != want {
				return false, err
			}
			addr = k.end
		}
		if _, found, err := queryNext(m.fd, addr, filter); found || err != nil {
			return false, err
		}
	}
	return true, nil
}
