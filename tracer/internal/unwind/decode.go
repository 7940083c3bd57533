package unwind

import (
	"bytes"
	"sync"

	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/disasm"
)

// The machine-code analyses (stepCode, keepUnwritten) decode whole
// functions — a posix_spawn story's caller __spawnix from its start — and a
// program that spawns in a loop has the same frames unwound at every vfork:
// decoding was a third of its unwinding. Decoded instructions are kept by
// address; an entry serves only code whose bytes are the instruction's
// (x86 decoding depends on nothing else), so any change of the code, or
// another file at the address, decodes afresh.

type decodeKey struct {
	a  *arch.Arch
	at uint64
}

type decoded struct {
	in  *disasm.Insn
	raw [16]byte // the instruction's bytes (in.Len of them)
}

// decodeCacheMax bounds the cache (entries); when full it starts over.
const decodeCacheMax = 1 << 15

var decodeCache struct {
	sync.Mutex
	m map[decodeKey]decoded
}

// decodeAt is disasm.Decode(code, at, a), remembered. Instructions that do
// not decode are not kept.
func decodeAt(code []byte, at uint64, a *arch.Arch) (*disasm.Insn, error) {
	k := decodeKey{a, at}
	decodeCache.Lock()
	e, ok := decodeCache.m[k]
	decodeCache.Unlock()
	if ok && e.in.Len <= len(code) && bytes.Equal(code[:e.in.Len], e.raw[:e.in.Len]) {
		return e.in, nil
	}
	in, err := disasm.Decode(code, at, a)
	if err != nil || in == nil || in.Len <= 0 || in.Len > len(e.raw) {
		return in, err
	}
	e = decoded{in: in}
	copy(e.raw[:], code[:in.Len])
	decodeCache.Lock()
	if decodeCache.m == nil || len(decodeCache.m) >= decodeCacheMax {
		decodeCache.m = make(map[decodeKey]decoded)
	}
	decodeCache.m[k] = e
	decodeCache.Unlock()
	return in, nil
}
