package report

import (
	"fmt"
	"strconv"

	"github.com/vtrace/vtrace/tracer/event"
)

// Words for the parent's memory outside the stack (global_write,
// global_diff, global_read; tracer/memory.go).

// GlobalName names a word outside the stack: the variable and its module
// ("have_private_mount_ns", "errno in libc.so.6's TLS", "execl@got"), else
// where it is ("[heap]+0x10", "libc.so.6+0x1d4760").
func GlobalName(area event.MemArea, mapping string, y *event.Sym, addr event.Addr) string {
	// Concatenation, not fmt: a report names hundreds of words.
	if y != nil && y.Sym != "" {
		name := y.Sym
		if y.Off != 0 {
			name += "+" + strconv.FormatUint(y.Off, 10)
		}
		if area == event.AreaTLS && y.Module != "" {
			return name + " (TLS of " + y.Module + ")"
		}
		if y.Module != "" {
			return name + " (" + y.Module + ")"
		}
		return name
	}
	if y != nil && y.Module != "" {
		return y.Module + "+0x" + strconv.FormatUint(y.Off, 16)
	}
	switch area {
	case event.AreaHeap:
		return "heap word " + addr.String()
	case event.AreaTLS:
		return "TLS word " + addr.String()
	}
	return mapping + " word " + addr.String()
}

// LibcWhat says what libc's bookkeeping was.
func LibcWhat(u event.LibcUse) string {
	switch u {
	case event.LibcErrno:
		return "errno, set by a failing call"
	case event.LibcStdioLock:
		return "a stdio lock"
	case event.LibcSingleThreaded:
		return "libc's thread-state flag"
	case event.LibcMalloc:
		return "malloc's state"
	case event.LibcBinding:
		return "lazy binding of a PLT entry by the dynamic linker"
	}
	return string(u)
}

// programGlobals are the story's global writes that are not libc's
// bookkeeping.
func programGlobals(st *Story) []*event.GlobalWrite {
	var out []*event.GlobalWrite
	for _, w := range st.GlobalWrites {
		if w.Libc == "" {
			out = append(out, w)
		}
	}
	return out
}

// globalWriter: "by main+41 `…`", "during the call at …", "found when the
// child ended".
func globalWriter(w *event.GlobalWrite) string {
	switch {
	case w.By != nil && w.During != nil:
		return "by " + At(*w.By) + " inside the call at " + At(*w.During)
	case w.By != nil:
		return "by " + At(*w.By)
	case w.During != nil:
		return "during the call at " + At(*w.During)
	}
	return "found when the child ended"
}

// explainGlobals tells what the child did to memory outside the stack and
// what the parent read of it.
func explainGlobals(st *Story) string {
	ws := programGlobals(st)
	if len(ws) == 0 {
		return explainErrnoReads(st)
	}
	w := ws[0]
	s := fmt.Sprintf("The child wrote the parent's %s (%s → %s) %s", GlobalName(w.Area, w.Mapping, w.Sym, w.Addr), w.Old, w.New, globalWriter(w))
	if n := len(ws) - 1; n > 0 {
		s += fmt.Sprintf(", and %d more word(s) outside the stack", n)
	}
	s += ": it shares all of the parent's memory, not only the stack. "
	for i, r := range st.GlobalReads {
		if i == 2 {
			break
		}
		s += fmt.Sprintf("The parent then read %s at %s and got the child's value %s instead of its own %s. ",
			GlobalName(r.Area, r.Mapping, r.Sym, r.Addr), At(r.By), r.Value, r.Was)
	}
	if len(st.GlobalReads) == 0 {
		s += "The parent was not seen reading it back. "
	}
	return s
}

// explainErrnoReads tells the parent's reads of errno the child's libc
// set (the only libc bookkeeping the parent is followed for: it is the
// parent thread's own errno — the child has its thread pointer).
func explainErrnoReads(st *Story) string {
	s := ""
	for _, r := range st.GlobalReads {
		if r.Libc != event.LibcErrno {
			continue
		}
		if s == "" {
			s = "The child's libc set errno, which is the parent thread's own (the child runs with the parent's thread pointer): harmless bookkeeping, unless the parent relies on errno across the vfork. "
		}
		s += fmt.Sprintf("The parent read %s at %s and got the child's value %s instead of its own %s. ",
			GlobalName(r.Area, r.Mapping, r.Sym, r.Addr), At(r.By), r.Value, r.Was)
	}
	return s
}
