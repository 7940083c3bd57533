package symbols

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"golang.org/x/sys/unix"

	"github.com/vtrace/vtrace/tracer/internal/arch"
)

// Mapping is one line of /proc/PID/maps.
type Mapping struct {
	Start, End uint64
	Perms      string
	Offset     uint64
	// Major, Minor and Inode name the file mapped (its device and inode;
	// zero for anonymous memory).
	Major, Minor uint32
	Inode        uint64
	Path         string
}

// module is a file mapped into the space, with its load bias.
type module struct {
	bin        *Binary
	bias       uint64
	start, end uint64 // span of all its mappings
	name       string // base name
	path       string
	err        error // why the file could not be read (bin nil)

	// load opens a module on first use (the vDSO: most runs never ask
	// about an address in it).
	load     func() (*Binary, uint64, bool)
	loadOnce sync.Once
}

// binary returns the module's Binary (nil if it could not be opened).
func (m *module) binary() *Binary {
	if m.load != nil {
		m.loadOnce.Do(func() {
			if bin, bias, ok := m.load(); ok {
				m.bin, m.bias = bin, bias
			}
		})
	}
	return m.bin
}

// Space is a process's address space: its mappings and the modules mapped.
type Space struct {
	arch     *arch.Arch
	maps     []Mapping
	mods     []*module // sorted by start
	exeIndex int
}

// SameCode reports whether o maps the same executable mappings as sp:
// the same addresses, permissions, offsets and files, so that code read
// from one is the code of the other. A library unloaded and another
// loaded at its address (dlclose, dlopen) is not the same code.
func (sp *Space) SameCode(o *Space) bool {
	if sp == o {
		return true
	}
	if sp == nil || o == nil {
		return false
	}
	i, j := 0, 0
	for {
		for i < len(sp.maps) && !strings.Contains(sp.maps[i].Perms, "x") {
			i++
		}
		for j < len(o.maps) && !strings.Contains(o.maps[j].Perms, "x") {
			j++
		}
		if i == len(sp.maps) || j == len(o.maps) {
			return i == len(sp.maps) && j == len(o.maps)
		}
		if sp.maps[i] != o.maps[j] {
			return false
		}
		i, j = i+1, j+1
	}
}

// LoadSpace reads /proc/PID/maps and opens every mapped ELF file.
//
// The engine reloads the space at every vfork (libraries may have been
// loaded since), and a program that spawns in a loop shows the same maps
// each time: a Space made for the same process from the same maps text is
// reused. The text names each file's device and inode, so the same text
// means the same files.
func LoadSpace(pid int) (*Space, error) {
	text, err := readMapsText(pid)
	if err != nil {
		return nil, err
	}
	return loadSpaceText(pid, text)
}

// Maps is /proc/PID/maps kept open: the kernel binds the file to the
// process's memory (its mm) when it is opened, and each read from offset 0
// formats that memory's mappings as they are now. It is only valid for as
// long as the memory it was opened on is the one meant: a process that
// execs gets another, which an open Maps does not follow; a memory no
// task uses any more reads as empty (ErrMapsGone). Reading it again saves
// the open and the path lookup (a third of a read of the maps of a
// program that spawns in a loop, which the engine reloads at every vfork).
//
// A Maps also answers whether the mappings are still those of its last
// read without reading the text again (LoadSpaceMaps, unchanged).
type Maps struct {
	fd  int
	buf []byte
	// last is the Space of the last text read, keys its writable and
	// its executable mappings as PROCMAP_QUERY tells them (checkedKinds;
	// last nil: none to compare with).
	last *Space
	keys [2][]vmaKey
	// noQuery is set when the kernel has no PROCMAP_QUERY: the text is
	// read every time.
	noQuery bool
	// texts counts the text reads.
	texts int
}

// MapsStats counts the maps texts read through an open Maps and the
// Spaces reused without one (vtrace's profiling build prints them).
var MapsStats struct{ Texts, Reused atomic.Int64 }

// ErrMapsGone is what an open Maps that reads as empty returns: the
// memory it was opened on has no task left.
var ErrMapsGone = errors.New("maps: the address space is gone")

// OpenMaps opens /proc/PID/maps: the mappings of pid's memory of now, in
// every later read.
func OpenMaps(pid int) (*Maps, error) {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/maps", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/proc/" + strconv.Itoa(pid) + "/maps", Err: err}
	}
	return &Maps{fd: fd}, nil
}

// Close closes the file.
func (m *Maps) Close() error {
	if m.fd < 0 {
		return nil
	}
	err := unix.Close(m.fd)
	m.fd = -1
	return err
}

// text reads the whole file from its start, into a buffer kept for the
// next read: the result is valid until then.
func (m *Maps) text() ([]byte, error) {
	if m.fd < 0 {
		return nil, os.ErrClosed
	}
	if m.buf == nil {
		m.buf = make([]byte, 16<<10)
	}
	m.texts++
	MapsStats.Texts.Add(1)
	n := 0
	for {
		k, err := unix.Pread(m.fd, m.buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if k == 0 {
			break
		}
		n += k
		if n == len(m.buf) {
			m.buf = slices.Grow(m.buf[:n], n)[:2*n]
		}
	}
	if n == 0 {
		return nil, ErrMapsGone
	}
	return m.buf[:n], nil
}

// LoadSpaceMaps is LoadSpace through an open Maps of pid's memory (pid is
// a task of that memory, for the files the maps name: the program, the
// vDSO).
//
// When the kernel has PROCMAP_QUERY, the Space of the last read is
// returned again if every writable and every executable mapping is still
// what that text said of its bounds, permissions, offset and file (device
// and inode) (unchanged): the text is read only when one differs, or when
// there is one more or fewer. What this cannot see: a change of a mapping
// that is neither writable nor executable, alone (a read-only file mapped
// or unmapped; the Space keeps the last text's); a change of name alone
// (a mapped file renamed or unlinked, an anonymous mapping named anew with
// prctl PR_SET_VMA_ANON_NAME; the Space keeps the last read's name). Like
// the text, it cannot tell a file from another that got its inode number
// after it was deleted, mapped at the same place.
//
// The check is one system call per mapping asked about, and one more at
// the end of each walk (the kernel skips the other mappings itself). On
// the AMD EPYC VM of docs/bench.md (a C microbenchmark, 2,000 reads each):
// python3's 121 mappings, 31 writable and 22 executable, 50 µs, against
// 80 µs asking about every mapping and 133 µs for the text (the long paths
// of its modules: d_path, mangle_path); sleep's 37, 8 and 4 of them,
// 15 µs against 26 and 33.
func LoadSpaceMaps(m *Maps, pid int) (*Space, error) {
	if m.last != nil && !m.noQuery && m.fd >= 0 {
		same, err := m.unchanged(&m.keys)
		if same {
			MapsStats.Reused.Add(1)
			return m.last, nil
		}
		if queryUnsupported(err) {
			m.noQuery = true
		}
	}
	m.last = nil
	for i := range m.keys {
		m.keys[i] = m.keys[i][:0]
	}
	text, err := m.text()
	if err != nil {
		return nil, err
	}
	sp, err := loadSpaceText(pid, text)
	if err != nil || m.noQuery {
		return sp, err
	}
	// The keys come from the text itself, not from asking the kernel
	// again: a mapping changed since the read then differs at the next
	// check, never the other way round.
	for _, mp := range sp.maps {
		k, ok := keyOf(mp)
		if !ok {
			continue
		}
		for i, kind := range checkedKinds {
			if k.flags&kind != 0 {
				m.keys[i] = append(m.keys[i], k)
			}
		}
	}
	m.last = sp
	return sp, nil
}

// loadSpaceText is LoadSpace from the maps text of pid (not kept).
func loadSpaceText(pid int, text []byte) (*Space, error) {
	if sp := spaces.get(pid, text); sp != nil {
		return sp, nil
	}
	maps, err := parseMaps(text)
	if err != nil {
		return nil, err
	}
	sp := newSpace(maps, "", func(path string) (*Binary, error) {
		if path == vdsoPath {
			for _, m := range maps {
				if m.Path == vdsoPath {
					return openVDSO(pid, m)
				}
			}
		}
		return openMapped(pid, path)
	})
	// The main program's arch is every module's: one process cannot map
	// 64- and 32-bit code together. Only when the mapped files disagree (an
	// ELF file mapped as data) does the executable's path decide.
	sp.arch = sp.commonArch()
	if sp.arch == nil {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		sp.arch = sp.archOf(strings.TrimSuffix(exe, " (deleted)"))
	}
	if sp.arch == nil {
		// The executable may be reached through another path (a symlink,
		// a chroot): take the arch of the main program's ELF directly.
		if bin, err := OpenBinary(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
			sp.arch = bin.Arch
		}
	}
	spaces.put(pid, text, sp)
	return sp, nil
}

// readMapsText reads /proc/PID/maps in few read calls: the kernel formats
// the text anew for each (os.ReadFile starts with 512 bytes and a stat).
func readMapsText(pid int) ([]byte, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 0, 16<<10)
	for {
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF || n == 0 && err == nil {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf))
		}
	}
}

// spaces remembers the last few Spaces by their process and maps text.
var spaces spaceCache

type spaceCache struct {
	sync.Mutex
	entries [8]struct {
		pid   int
		text  string
		space *Space
	}
	next int
}

func (c *spaceCache) get(pid int, text []byte) *Space {
	c.Lock()
	defer c.Unlock()
	for _, e := range c.entries {
		if e.space != nil && e.pid == pid && e.text == string(text) {
			return e.space
		}
	}
	return nil
}

func (c *spaceCache) put(pid int, text []byte, sp *Space) {
	c.Lock()
	defer c.Unlock()
	e := &c.entries[c.next]
	e.pid, e.text, e.space = pid, string(text), sp
	c.next = (c.next + 1) % len(c.entries)
}

// commonArch is the arch of every opened module, or nil if they differ or
// none was opened.
func (sp *Space) commonArch() *arch.Arch {
	var a *arch.Arch
	for _, mod := range sp.mods {
		if mod.bin == nil {
			continue
		}
		if a != nil && mod.bin.Arch != a {
			return nil
		}
		a = mod.bin.Arch
	}
	return a
}

// archOf is the arch of the module mapped from path (nil if none).
func (sp *Space) archOf(path string) *arch.Arch {
	for _, mod := range sp.mods {
		if mod.bin != nil && mod.path == path {
			return mod.bin.Arch
		}
	}
	return nil
}

// newSpace builds a Space from parsed maps: every file mapped (a path
// starting with /) and the vDSO become modules, opened with open (the vDSO
// when first used), each with its load bias taken from its first mapping.
// The Space's arch is that of the module at path exe (nil if exe is not
// mapped under that name).
func newSpace(maps []Mapping, exe string, open func(path string) (*Binary, error)) *Space {
	sp := &Space{maps: maps, exeIndex: -1}
	byPath := map[string]*module{}
	for _, m := range maps {
		if !strings.HasPrefix(m.Path, "/") && m.Path != vdsoPath {
			continue
		}
		if mod, ok := byPath[m.Path]; ok {
			mod.end = max(mod.end, m.End)
			mod.start = min(mod.start, m.Start)
			continue
		}
		if m.Path == vdsoPath {
			byPath[m.Path] = &module{start: m.Start, end: m.End, name: m.Path, path: m.Path,
				load: func() (*Binary, uint64, bool) {
					bin, err := open(m.Path)
					if err != nil {
						return nil, 0, false
					}
					bias, ok := bin.biasFor(m.Start, m.Offset)
					return bin, bias, ok
				}}
			continue
		}
		bin, err := open(m.Path)
		if err != nil {
			byPath[m.Path] = &module{start: m.Start, end: m.End, name: filepath.Base(m.Path), err: err}
			continue
		}
		bias, ok := bin.biasFor(m.Start, m.Offset)
		if !ok {
			continue
		}
		mod := &module{bin: bin, bias: bias, start: m.Start, end: m.End, name: filepath.Base(m.Path), path: m.Path}
		byPath[m.Path] = mod
	}
	for _, mod := range byPath {
		sp.mods = append(sp.mods, mod)
	}
	sort.Slice(sp.mods, func(i, j int) bool { return sp.mods[i].start < sp.mods[j].start })
	if exe != "" {
		sp.arch = sp.archOf(exe)
	}
	return sp
}

// vdsoPath is how /proc/PID/maps names the vDSO.
const vdsoPath = "[vdso]"

// openMapped opens a mapped file, through /proc/PID/root when the tracee
// sees another root.
func openMapped(pid int, path string) (*Binary, error) {
	b, err := OpenBinary(path)
	if err == nil {
		return b, nil
	}
	return OpenBinary(fmt.Sprintf("/proc/%d/root%s", pid, path))
}

// ParseMaps parses the text of /proc/PID/maps.
func ParseMaps(r io.Reader) ([]Mapping, error) {
	text, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return parseMaps(text)
}

func parseMaps(text []byte) ([]Mapping, error) {
	out := make([]Mapping, 0, bytes.Count(text, []byte{'\n'})+1)
	for len(text) > 0 {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		m, ok, err := parseMapsLine(string(line))
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// parseMapsLine parses one line: "start-end perms offset dev inode [path]".
// ok is false for a line of fewer than five fields.
func parseMapsLine(line string) (m Mapping, ok bool, err error) {
	var fs [5]string
	rest := line
	n := 0
	for ; n < 5; n++ {
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			return m, false, nil
		}
		j := strings.IndexAny(rest, " \t")
		if j < 0 {
			j = len(rest)
		}
		fs[n], rest = rest[:j], rest[j:]
	}
	lo, hi, found := strings.Cut(fs[0], "-")
	if !found {
		return m, false, fmt.Errorf("bad maps line %q", line)
	}
	var err1, err2, err3 error
	m.Start, err1 = strconv.ParseUint(lo, 16, 64)
	m.End, err2 = strconv.ParseUint(hi, 16, 64)
	m.Offset, err3 = strconv.ParseUint(fs[2], 16, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return m, false, fmt.Errorf("bad maps line %q", line)
	}
	m.Perms = fs[1]
	if major, minor, ok := strings.Cut(fs[3], ":"); ok {
		ma, err1 := strconv.ParseUint(major, 16, 32)
		mi, err2 := strconv.ParseUint(minor, 16, 32)
		if err1 != nil || err2 != nil {
			return m, false, fmt.Errorf("bad maps line %q", line)
		}
		m.Major, m.Minor = uint32(ma), uint32(mi)
	}
	if m.Inode, err1 = strconv.ParseUint(fs[4], 10, 64); err1 != nil {
		return m, false, fmt.Errorf("bad maps line %q", line)
	}
	m.Path = strings.TrimLeft(rest, " \t")
	return m, true, nil
}

// Arch is the architecture of the main program (nil if unknown).
func (sp *Space) Arch() *arch.Arch { return sp.arch }

// Mappings returns the parsed /proc/PID/maps.
func (sp *Space) Mappings() []Mapping { return sp.maps }

// MappingAt returns the mapping containing addr.
func (sp *Space) MappingAt(addr uint64) (Mapping, bool) {
	i := sort.Search(len(sp.maps), func(i int) bool { return sp.maps[i].End > addr })
	if i < len(sp.maps) && sp.maps[i].Start <= addr {
		return sp.maps[i], true
	}
	return Mapping{}, false
}

func (sp *Space) moduleAt(addr uint64) *module {
	i := sort.Search(len(sp.mods), func(i int) bool { return sp.mods[i].end > addr })
	if i < len(sp.mods) && sp.mods[i].start <= addr {
		return sp.mods[i]
	}
	return nil
}

// Symbolize names a runtime address.
func (sp *Space) Symbolize(addr uint64) Sym {
	mod := sp.moduleAt(addr)
	if mod == nil {
		if m, ok := sp.MappingAt(addr); ok && m.Path != "" {
			return Sym{Module: m.Path, Off: addr - m.Start}
		}
		return Sym{}
	}
	y := Sym{Module: mod.name, Off: addr - mod.start}
	bin := mod.binary()
	if bin == nil {
		return y
	}
	link := addr - mod.bias
	if name, off, past, ok := bin.symbolAt(link); ok {
		y.Name, y.Off, y.PastEnd = name, off, past
	}
	y.File, y.Line = bin.Line(link)
	return y
}

// IsCode reports whether addr lies in an executable segment of a module.
func (sp *Space) IsCode(addr uint64) bool {
	if m, ok := sp.MappingAt(addr); ok {
		return strings.Contains(m.Perms, "x")
	}
	return false
}

// InModule reports whether addr lies in a loaded module (an ELF file or
// the vDSO), not in anonymous memory such as a JIT's code.
func (sp *Space) InModule(addr uint64) bool { return sp.moduleAt(addr) != nil }

// Lookup finds a symbol's runtime address; module "" searches all modules,
// otherwise it is matched against the module's base name prefix ("libc").
func (sp *Space) Lookup(module, name string) (uint64, bool) {
	for _, mod := range sp.mods {
		if module != "" && !strings.HasPrefix(mod.name, module) || mod.binary() == nil {
			continue
		}
		if a, ok := mod.bin.Lookup(name); ok {
			return a + mod.bias, true
		}
	}
	return 0, false
}

// FuncCode returns the runtime start and the bytes (as in the file) of the
// function that contains a runtime pc, when a symbol with a size covers it
// or, where none does (a library's hidden function, its debug file
// absent), when pc lies just past the end of a function's call-frame
// information (cfiGapFunc: glibc's clone3 at its syscall).
func (sp *Space) FuncCode(pc uint64) (uint64, []byte, bool) {
	mod := sp.moduleAt(pc)
	if mod == nil || mod.binary() == nil {
		return 0, nil, false
	}
	start, end, ok := mod.bin.funcBounds(pc - mod.bias)
	if !ok {
		start, end, ok = mod.bin.cfiGapFunc(pc, mod.bias)
	}
	if !ok {
		return 0, nil, false
	}
	code, ok := mod.bin.codeAt(start, end)
	if !ok {
		return 0, nil, false
	}
	return start + mod.bias, code, true
}

// FDEForPC returns the call-frame information entry covering a runtime pc.
func (sp *Space) FDEForPC(pc uint64) (*frame.FrameDescriptionEntry, error) {
	mod := sp.moduleAt(pc)
	if mod == nil || mod.binary() == nil {
		return nil, &frame.ErrNoFDEForPC{PC: pc}
	}
	return mod.bin.FDEForPC(pc, mod.bias)
}

// Unreadable names each file mapped with code that could not be read as
// an ELF file, and why: its code has no symbols and no CFI (its frames are
// unwound from the machine code). A data file mapped without exec
// permission is not code and not named. The list is fixed when the Space
// is made (only the vDSO is opened later, and it is never named).
func (sp *Space) Unreadable() []Unreadable {
	var out []Unreadable
	for _, mod := range sp.mods {
		if mod.bin != nil || mod.err == nil {
			continue
		}
		for _, m := range sp.maps {
			if strings.Contains(m.Perms, "x") && m.Start >= mod.start && m.End <= mod.end && filepath.Base(m.Path) == mod.name {
				out = append(out, Unreadable{Path: m.Path, Err: mod.err})
				break
			}
		}
	}
	return out
}

// Unreadable is a mapped file with code that could not be read.
type Unreadable struct {
	Path string
	Err  error
}

// EmptySpace is a Space that knows no mapping: what vtrace falls back to
// when a process's maps cannot be read (it is gone).
func EmptySpace(a *arch.Arch) *Space { return &Space{arch: a, exeIndex: -1} }

// ProcessArch returns the architecture of the program a process runs, from
// the ELF header of /proc/PID/exe alone (20 bytes read, nothing mapped).
func ProcessArch(pid int) (*arch.Arch, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hdr [20]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return nil, fmt.Errorf("read ELF header of process %d: %w", pid, err)
	}
	if string(hdr[:4]) != "\x7fELF" || hdr[5] != 1 { // little-endian ELF
		return nil, fmt.Errorf("process %d: not a little-endian ELF program", pid)
	}
	a := arch.ForELFMachine(uint16(hdr[18]) | uint16(hdr[19])<<8)
	if a == nil {
		return nil, fmt.Errorf("process %d: not an amd64 or i386 program", pid)
	}
	return a, nil
}
