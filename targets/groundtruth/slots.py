# Ground truth for a vfork story, from gdb alone (no vtrace):
#
#   gdb -q -batch -x targets/groundtruth/slots.py --args PROGRAM [ARGS...]
#
# At each vfork event (`catch vfork`: the parent stopped in the kernel, the
# child not yet run) it records every return-address and saved-register slot
# of the parent's frames as gdb's own unwinder sees them (the modules' CFI,
# else gdb's prologue analysis), single-steps the parent once - it resumes
# only after its child exec'd or exited; gdb detached the child - reads the
# slots again and prints those that changed, then lets the program go on
# and prints how it ended. Lines start with "GT" (grep them out of gdb's
# chatter). targets/expect cites what this printed for the issue-11 and
# catalogue targets; targets/README.md ("Ground truth") says how to read it.
#
# Limits, as measured: gdb cannot unwind musl's static libc (no CFI: frames
# past the first are "??") nor glibc i386's clone() at the instruction after
# its int $0x80 (its CFI does not cover the pushes); there the slot of
# interest was read by hand with a breakpoint on the parent's `ret`.
import re

import gdb

MAX_VFORKS = 4


def frame_slots():
    """[(level, function, pc, [(register, slot address)])], innermost first."""
    out = []
    frame, level = gdb.newest_frame(), 0
    while frame is not None and level < 12:
        try:
            info = gdb.execute("info frame level %d" % level, to_string=True)
        except gdb.error:
            break
        saved = re.search(r"Saved registers:\s*(.*)", info, re.S)
        slots = re.findall(r"(\w+) at (0x[0-9a-f]+)", saved.group(1)) if saved else []
        out.append((level, frame.name() or "??", frame.pc(), [(r, int(a, 16)) for r, a in slots]))
        frame, level = frame.older(), level + 1
    return out


def word(addr):
    size = gdb.lookup_type("long").sizeof
    raw = gdb.selected_inferior().read_memory(addr, size).tobytes()
    return int.from_bytes(raw, "little")


def symbol(value):
    try:
        s = gdb.execute("info symbol %#x" % value, to_string=True).strip()
    except gdb.error:
        return ""
    return "" if s.startswith("No symbol") else s.split(" in section")[0]


def alive():
    return gdb.selected_inferior().pid != 0


last = {}  # how the inferior last stopped or ended (gdb events)
gdb.events.stop.connect(lambda ev: last.update(signal=getattr(ev, "stop_signal", None)))
gdb.events.exited.connect(lambda ev: last.update(exit_code=getattr(ev, "exit_code", None)))


for setting in ("pagination off", "confirm off", "follow-fork-mode parent",
                "detach-on-fork on", "startup-with-shell off"):
    gdb.execute("set " + setting)
gdb.execute("catch vfork")
gdb.execute("run", to_string=True)
n = 0
while alive() and n < MAX_VFORKS:
    n += 1
    before = {}
    for level, name, pc, slots in frame_slots():
        print("GT vfork %d frame #%d %s pc=%#x %s" % (n, level, name, pc,
              " ".join("%s@%#x" % s for s in slots)))
        for reg, addr in slots:
            before[addr] = (level, name, reg, word(addr))
    gdb.execute("stepi", to_string=True)
    if not alive():
        break
    for addr, (level, name, reg, old) in sorted(before.items()):
        new = word(addr)
        if new != old:
            print("GT vfork %d CHANGED frame #%d %s %s slot %#x: %#x (%s) -> %#x (%s)"
                  % (n, level, name, reg, addr, old, symbol(old), new, symbol(new)))
    pc = gdb.newest_frame().pc()
    print("GT vfork %d parent resumed at %#x %s" % (n, pc, symbol(pc)))
    last.clear()
    try:
        gdb.execute("continue", to_string=True)
    except gdb.error as err:
        print("GT continue: %s" % err)
        break
    if last.get("signal"):
        pc = gdb.newest_frame().pc()
        print("GT end: %s at %#x %s" % (last["signal"], pc, symbol(pc)))
        break
    if not alive():
        print("GT end: exited with %s" % last.get("exit_code"))
        break
