// Command snapshot captures what the unwind tests replay: a program stopped
// at breakpoints in its own executable, with its raw NT_PRSTATUS register
// set, its /proc/PID/maps and its stack from 128 bytes below the stack
// pointer to the top of the stack mapping. It lives under testdata, so it is no part of the build;
// gen.sh beside it runs it (it needs ptrace: run it where vtrace runs).
//
//	go run ./snapshot -bin FILE -o OUT.json -run 'name@0x1199,name2@0x1040' ...
//	go run ./snapshot -bin FILE -maps MAPS.txt -run 'main@0x1159'
//
// Each -run is one fresh process (ASLR off, empty environment) stopped at
// each breakpoint of its list in turn; addresses are link-time (objdump's).
// The maps recorded are those at the first stop of the first run.
// "name@0x1199>0x11c5" moves the pc to 0x11c5 after the capture, to reach
// code that would otherwise run only after a vfork (the program never gets
// to make one: it is killed after its last stop). A stop named "-" is not
// captured.
package main

import (
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"github.com/vtrace/vtrace/tracer/internal/arch"
	"github.com/vtrace/vtrace/tracer/internal/ptrace"
	"github.com/vtrace/vtrace/tracer/internal/symbols"
	"golang.org/x/sys/unix"
)

// Snapshot is the file format (hex strings for addresses: they read like
// objdump and /proc/PID/maps).
type Snapshot struct {
	Comment string `json:"comment"`
	Binary  string `json:"binary"`   // path relative to the JSON file
	BuildID string `json:"build_id"` // of Binary when captured
	Arch    string `json:"arch"`
	Bias    string `json:"bias"` // load bias of Binary
	Maps    string `json:"maps"`
	Stops   []Stop `json:"stops"`
}

// Stop is one breakpoint hit.
type Stop struct {
	Name      string `json:"name"`
	LinkPC    string `json:"link_pc"`
	PrStatus  string `json:"prstatus"` // raw NT_PRSTATUS, hex
	StackAddr string `json:"stack_addr"`
	Stack     string `json:"stack"` // hex bytes from StackAddr
}

type stopSpec struct {
	name           string
	addr, redirect uint64
}

type runList []string

func (r *runList) String() string     { return strings.Join(*r, " ") }
func (r *runList) Set(s string) error { *r = append(*r, s); return nil }

func main() {
	bin := flag.String("bin", "", "program to run (relative to the output's directory in the JSON)")
	out := flag.String("o", "", "output JSON file")
	mapsOut := flag.String("maps", "", "also write the maps text to this file")
	comment := flag.String("comment", "", "comment stored in the file")
	var runs runList
	flag.Var(&runs, "run", "comma-separated name@addr[>redirect] stops of one process")
	flag.Parse()
	if *bin == "" || *out == "" && *mapsOut == "" || len(runs) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := ptrace.Run(-1, func(t *ptrace.Thread) error { return capture(t, *bin, *out, *mapsOut, *comment, runs) }); err != nil {
		fmt.Fprintln(os.Stderr, "snapshot:", err)
		os.Exit(1)
	}
}

func capture(t *ptrace.Thread, bin, out, mapsOut, comment string, runs []string) error {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	b, err := symbols.OpenBinary(abs)
	if err != nil {
		return err
	}
	snap := Snapshot{Comment: comment, Binary: bin, BuildID: b.BuildID, Arch: b.Arch.Name}
	if out != "" {
		if snap.Binary, err = filepath.Rel(filepath.Dir(out), bin); err != nil {
			return err
		}
	}
	for _, r := range runs {
		var specs []stopSpec
		for _, s := range strings.Split(r, ",") {
			sp, err := parseStop(s)
			if err != nil {
				return err
			}
			specs = append(specs, sp)
		}
		maps, bias, stops, err := runOnce(t, abs, specs)
		if err != nil {
			return err
		}
		if snap.Maps == "" {
			snap.Maps, snap.Bias = maps, fmt.Sprintf("%#x", bias)
		} else if snap.Bias != fmt.Sprintf("%#x", bias) {
			return fmt.Errorf("bias changed between runs (ASLR?)")
		}
		snap.Stops = append(snap.Stops, stops...)
	}
	if mapsOut != "" {
		if err := os.WriteFile(mapsOut, []byte(snap.Maps), 0o644); err != nil {
			return err
		}
	}
	if out == "" {
		return nil
	}
	data, err := json.MarshalIndent(snap, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(data, '\n'), 0o644)
}

func parseStop(s string) (stopSpec, error) {
	name, rest, ok := strings.Cut(s, "@")
	if !ok {
		return stopSpec{}, fmt.Errorf("stop %q: want name@addr", s)
	}
	at, to, redirect := strings.Cut(rest, ">")
	sp := stopSpec{name: name}
	var err error
	if sp.addr, err = strconv.ParseUint(at, 0, 64); err != nil {
		return sp, err
	}
	if redirect {
		if sp.redirect, err = strconv.ParseUint(to, 0, 64); err != nil {
			return sp, err
		}
	}
	return sp, nil
}

func runOnce(t *ptrace.Thread, bin string, specs []stopSpec) (string, uint64, []Stop, error) {
	pid, err := t.Start(ptrace.StartSpec{Path: bin, Argv: []string{filepath.Base(bin)}, Env: []string{},
		Files: []*os.File{nil, os.Stderr, os.Stderr}, NoASLR: true})
	if err != nil {
		return "", 0, nil, err
	}
	defer func() {
		ptrace.Kill(pid, unix.SIGKILL)
		for {
			if st, err := t.Wait(); err != nil || st.PID == pid && (st.Status.Exited() || st.Status.Signaled()) {
				return
			}
		}
	}()
	if _, err := t.Wait(); err != nil { // the exec SIGTRAP
		return "", 0, nil, err
	}
	mapsText, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return "", 0, nil, err
	}
	bias, err := loadBias(bin, string(mapsText))
	if err != nil {
		return "", 0, nil, err
	}
	var stops []Stop
	for _, sp := range specs {
		addr := sp.addr + bias
		var orig [1]byte
		if err := t.ReadMem(pid, addr, orig[:]); err != nil {
			return "", 0, nil, err
		}
		if err := t.WriteMem(pid, addr, []byte{0xcc}); err != nil {
			return "", 0, nil, err
		}
		if err := t.Cont(pid, 0); err != nil {
			return "", 0, nil, err
		}
		st, err := t.Wait()
		if err != nil {
			return "", 0, nil, err
		}
		if !st.Status.Stopped() || st.Status.StopSignal() != unix.SIGTRAP {
			return "", 0, nil, fmt.Errorf("%s: unexpected stop %#x", sp.name, st.Status)
		}
		var regs arch.Regs
		if err := t.Regs(pid, &regs); err != nil {
			return "", 0, nil, err
		}
		if regs.PC() != addr+1 {
			return "", 0, nil, fmt.Errorf("%s: trapped at %#x, not %#x", sp.name, regs.PC()-1, addr)
		}
		if err := t.WriteMem(pid, addr, orig[:]); err != nil {
			return "", 0, nil, err
		}
		regs.SetPC(addr)
		if err := t.SetRegs(pid, &regs); err != nil {
			return "", 0, nil, err
		}
		if len(stops) == 0 {
			// The maps of the first stop: the libraries are loaded by now.
			if mapsText, err = os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid)); err != nil {
				return "", 0, nil, err
			}
		}
		raw, err := prStatus(pid)
		if err != nil {
			return "", 0, nil, err
		}
		// From below the stack pointer (the amd64 red zone; the CFI of an
		// epilogue may still point at slots just popped) to the top.
		sp0 := regs.SP() - redZone
		end := stackEnd(string(mapsText), regs.SP())
		if end == 0 || end-sp0 > 64<<10 {
			return "", 0, nil, fmt.Errorf("%s: sp %#x not in a small stack mapping", sp.name, regs.SP())
		}
		stack := make([]byte, end-sp0)
		if err := t.ReadMem(pid, sp0, stack); err != nil {
			return "", 0, nil, err
		}
		if sp.name != "-" {
			stops = append(stops, Stop{Name: sp.name, LinkPC: fmt.Sprintf("%#x", sp.addr),
				PrStatus: hex.EncodeToString(raw), StackAddr: fmt.Sprintf("%#x", sp0), Stack: hex.EncodeToString(stack)})
		}
		if sp.redirect != 0 {
			regs.SetPC(sp.redirect + bias)
			if err := t.SetRegs(pid, &regs); err != nil {
				return "", 0, nil, err
			}
		}
	}
	return string(mapsText), bias, stops, nil
}

const redZone = 128

// prStatus reads the raw NT_PRSTATUS register set.
func prStatus(pid int) ([]byte, error) {
	buf := make([]byte, 27*8)
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETREGSET, uintptr(pid), 1, uintptr(unsafe.Pointer(&iov)), 0, 0)
	if errno != 0 {
		return nil, errno
	}
	return buf[:iov.Len], nil
}

// loadBias finds the executable's first mapping and its first PT_LOAD.
func loadBias(bin, maps string) (uint64, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var first *elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			first = p
			break
		}
	}
	if first == nil {
		return 0, fmt.Errorf("%s: no PT_LOAD", bin)
	}
	ms, err := symbols.ParseMaps(strings.NewReader(maps))
	if err != nil {
		return 0, err
	}
	for _, m := range ms {
		if m.Path == bin && m.Offset == 0 {
			return m.Start - first.Vaddr&^0xfff, nil
		}
	}
	return 0, fmt.Errorf("%s not mapped", bin)
}

func stackEnd(maps string, sp uint64) uint64 {
	ms, _ := symbols.ParseMaps(strings.NewReader(maps))
	for _, m := range ms {
		if sp >= m.Start && sp < m.End {
			return m.End
		}
	}
	return 0
}
