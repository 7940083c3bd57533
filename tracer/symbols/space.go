package symbols

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"github.com/vtrace/vtrace/tracer/arch"
)

// Mapping is one line of /proc/PID/maps.
type Mapping struct {
	Start, End uint64
	Perms      string
	Offset     uint64
	Path       string
}

// module is a file mapped into the space, with its load bias.
type module struct {
	bin        *Binary
	bias       uint64
	start, end uint64 // span of all its mappings
	name       string
}

// Space is a process's address space: its mappings and the modules mapped.
type Space struct {
	arch     *arch.Arch
	maps     []Mapping
	mods     []*module // sorted by start
	exeIndex int
}

// LoadSpace reads /proc/PID/maps and opens every mapped ELF file.
func LoadSpace(pid int) (*Space, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	maps, err := ParseMaps(f)
	if err != nil {
		return nil, err
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	exe = strings.TrimSuffix(exe, " (deleted)")
	sp := newSpace(maps, exe, func(path string) (*Binary, error) { return openMapped(pid, path) })
	if sp.arch == nil {
		// The executable may be reached through another path (a symlink,
		// a chroot): take the arch of the main program's ELF directly.
		if bin, err := OpenBinary(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
			sp.arch = bin.Arch
		}
	}
	return sp, nil
}

// newSpace builds a Space from parsed maps: every file mapped (a path
// starting with /) becomes a module, opened with open, its load bias taken
// from its first mapping. The Space's arch is that of the module at path exe
// (nil if exe is not mapped under that name).
func newSpace(maps []Mapping, exe string, open func(path string) (*Binary, error)) *Space {
	sp := &Space{maps: maps, exeIndex: -1}
	byPath := map[string]*module{}
	for _, m := range maps {
		if !strings.HasPrefix(m.Path, "/") {
			continue
		}
		if mod, ok := byPath[m.Path]; ok {
			mod.end = max(mod.end, m.End)
			mod.start = min(mod.start, m.Start)
			continue
		}
		bin, err := open(m.Path)
		if err != nil {
			byPath[m.Path] = &module{start: m.Start, end: m.End, name: filepath.Base(m.Path)}
			continue
		}
		bias, ok := bin.biasFor(m.Start, m.Offset)
		if !ok {
			continue
		}
		mod := &module{bin: bin, bias: bias, start: m.Start, end: m.End, name: filepath.Base(m.Path)}
		byPath[m.Path] = mod
		if m.Path == exe {
			sp.arch = bin.Arch
		}
	}
	for _, mod := range byPath {
		sp.mods = append(sp.mods, mod)
	}
	sort.Slice(sp.mods, func(i, j int) bool { return sp.mods[i].start < sp.mods[j].start })
	return sp
}

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
func ParseMaps(r interface{ Read([]byte) (int, error) }) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 {
			continue
		}
		lo, hi, ok := strings.Cut(fs[0], "-")
		if !ok {
			return nil, fmt.Errorf("bad maps line %q", sc.Text())
		}
		var m Mapping
		var err1, err2, err3 error
		m.Start, err1 = strconv.ParseUint(lo, 16, 64)
		m.End, err2 = strconv.ParseUint(hi, 16, 64)
		m.Offset, err3 = strconv.ParseUint(fs[2], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("bad maps line %q", sc.Text())
		}
		m.Perms = fs[1]
		if len(fs) >= 6 {
			m.Path = pathField(sc.Text())
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// pathField returns what follows the fifth field of a maps line: the path,
// as is (it may hold runs of spaces, and ends in " (deleted)" for a file
// removed since it was mapped).
func pathField(line string) string {
	rest := line
	for i := 0; i < 5; i++ {
		rest = strings.TrimLeft(rest, " \t")
		j := strings.IndexAny(rest, " \t")
		if j < 0 {
			return ""
		}
		rest = rest[j:]
	}
	return strings.TrimLeft(rest, " \t")
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
	if mod.bin == nil {
		return y
	}
	link := addr - mod.bias
	if name, off, past, ok := mod.bin.symbolAt(link); ok {
		y.Name, y.Off, y.PastEnd = name, off, past
	}
	y.File, y.Line = mod.bin.Line(link)
	return y
}

// IsCode reports whether addr lies in an executable segment of a module.
func (sp *Space) IsCode(addr uint64) bool {
	if m, ok := sp.MappingAt(addr); ok {
		return strings.Contains(m.Perms, "x")
	}
	return false
}

// Lookup finds a symbol's runtime address; module "" searches all modules,
// otherwise it is matched against the module's base name prefix ("libc").
func (sp *Space) Lookup(module, name string) (uint64, bool) {
	for _, mod := range sp.mods {
		if mod.bin == nil || module != "" && !strings.HasPrefix(mod.name, module) {
			continue
		}
		if a, ok := mod.bin.Lookup(name); ok {
			return a + mod.bias, true
		}
	}
	return 0, false
}

// FDEForPC returns the call-frame information entry covering a runtime pc.
func (sp *Space) FDEForPC(pc uint64) (*frame.FrameDescriptionEntry, error) {
	mod := sp.moduleAt(pc)
	if mod == nil || mod.bin == nil {
		return nil, &frame.ErrNoFDEForPC{PC: pc}
	}
	return mod.bin.FDEForPC(pc, mod.bias)
}
