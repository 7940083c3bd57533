# bench-gdb.py - what a gdb user has to script to get the facts `vtrace run`
# prints for the seed program (build/targets/<build>/badvfork), used by
# scripts/bench.sh as the "gdb" column of the comparison.
#
#   gdb -q -nx -batch -x scripts/bench-gdb.py --args build/targets/gcc-O0/badvfork
#
# Facts printed (one "gdb-fact:" line each):
#   1. at the vfork in createproc: the address of createproc's return-address
#      slot (from gdb's own unwinder, `info frame`) and its value (main+18);
#   2. following the vfork child, every write to that slot: the writing
#      instruction's pc and the new value (main+41 -> main+46, main+51 ->
#      main+56 = createproc+0);
#   3. after the child has ended: where the parent lands when createproc
#      executes its `ret`.
#
# gdb's hardware watchpoints never fire on some VMs (see FACTS.md), so this
# uses software watchpoints (gdb single-steps the child) to behave the same
# everywhere. A watchpoint stops *after* the write and gdb does not say which
# instruction wrote: the writer is derived here (a `call` whose return
# address is the new top of stack, else the instruction before the pc).
# Exits with status 0 when all three facts were found, 1 otherwise.
import re

import gdb

FN = "createproc"  # the function that calls vfork


def run(cmd):
    return gdb.execute(cmd, to_string=True)


def sym(addr):
    """main+46 style name for a code address ('0x...' when unknown)."""
    addr = int(addr)
    out = run("info symbol 0x%x" % addr)
    m = re.match(r"(\S+)(?: \+ (\d+))? in section", out)
    if not m:
        return "0x%x" % addr
    if m.group(2):
        return m.group(1) + "+" + m.group(2)
    # a function's first byte: also name it from the function before it
    # (badvfork: createproc+0 is main+56, right after main's `call exit`)
    prev = re.match(r"(\S+) \+ (\d+) in section", run("info symbol 0x%x" % (addr - 1)))
    if prev and prev.group(1) != m.group(1) and "@plt" not in m.group(1):
        return "%s (= %s+%d)" % (m.group(1), prev.group(1), int(prev.group(2)) + 1)
    return m.group(1)


def u64(addr):
    return int(gdb.parse_and_eval("*(unsigned long *)0x%x" % addr)) & (2**64 - 1)


def pc():
    return int(gdb.parse_and_eval("$pc")) & (2**64 - 1)


def insns(start, end):
    arch = gdb.selected_frame().architecture()
    return arch.disassemble(start, end - 1)


def fn_range(name):
    block = gdb.block_for_pc(int(gdb.parse_and_eval("(long)&" + name)))
    return block.function.value().address, block.start, block.end


def writer_of(newval):
    """Best guess of the instruction that made the write we just stopped after."""
    cur = pc()
    sp = int(gdb.parse_and_eval("$sp")) & (2**64 - 1)
    ret = u64(sp)
    # a call: we are at the callee's first instruction and the top of the
    # stack is the return address, right after the call
    for length in (5, 6, 2, 3, 7):
        try:
            ins = insns(ret - length, ret)
        except gdb.error:
            continue
        if len(ins) == 1 and ins[0]["asm"].startswith("call") and ins[0]["addr"] + ins[0]["length"] == ret:
            return ins[0]["addr"], ins[0]["asm"]
    # otherwise the instruction just before the pc in its function
    block = gdb.block_for_pc(cur)
    if block is not None and block.function is not None:
        prev = None
        for ins in insns(block.function.value().address.cast(gdb.lookup_type("long")), cur + 1):
            if ins["addr"] >= cur:
                break
            prev = ins
        if prev is not None:
            return prev["addr"], prev["asm"]
    return None, "?"


def fact(msg):
    gdb.write("gdb-fact: " + msg + "\n")
    gdb.flush()


found = {"slot": False, "writes": 0, "landing": False}
for cmd in ("set pagination off", "set confirm off", "set width 0",
            "set can-use-hw-watchpoints 0", "set follow-fork-mode child",
            "set detach-on-fork off", "set disable-randomization on",
            "set print inferior-events off", "set print thread-events off"):
    gdb.execute(cmd)

# 1. stop at the `call vfork` in createproc
run("starti")
fstart, _, fend = fn_range(FN)
fstart = int(fstart.cast(gdb.lookup_type("long")))
vfork_call = ret_insn = None
for ins in insns(fstart, fend):
    if ins["asm"].startswith("call") and "vfork" in ins["asm"] and vfork_call is None:
        vfork_call = ins["addr"]
    if ins["asm"].startswith("ret"):
        ret_insn = ins["addr"]
if vfork_call is None or ret_insn is None:
    raise gdb.GdbError("no call to vfork / no ret in " + FN)
run("tbreak *0x%x" % vfork_call)
run("continue")
frame_info = run("info frame")
m = re.search(r"\brip at (0x[0-9a-f]+)", frame_info)
if not m:
    raise gdb.GdbError("gdb could not locate the return-address slot:\n" + frame_info)
slot = int(m.group(1), 16)
old = u64(slot)
fact("vfork call at %s (0x%x); return-address slot of %s at 0x%x = 0x%x (%s)"
     % (sym(vfork_call), vfork_call, FN, slot, old, sym(old)))
found["slot"] = True

# 2. follow the child, software watchpoint on the slot
run("watch -l *(unsigned long *)0x%x" % slot)
parent = gdb.selected_inferior().num
child = None
last = old
while True:
    try:
        run("continue")
    except gdb.error as e:
        gdb.write("gdb: continue: %s\n" % e)
        break
    inf = gdb.selected_inferior()
    if inf.num != parent:
        child = inf.num
    if inf.pid == 0:  # the followed child has exited
        break
    if child is None:
        continue
    new = u64(slot)
    if new != last:
        wpc, wasm = writer_of(new)
        fact("child writes slot 0x%x: %s -> 0x%x (%s) by %s `%s` (stopped at %s)"
             % (slot, sym(last), new, sym(new), sym(wpc) if wpc else "?", wasm, sym(pc())))
        found["writes"] += 1
        last = new
    else:
        # a stop that did not change the slot (signal, exec...): show it
        gdb.write("gdb: stop at %s\n" % sym(pc()))
run("delete")
fact("child ended after %d write(s) to the slot" % found["writes"])

# 3. the parent: run it to createproc's ret, step once, report the landing
run("inferior %d" % parent)
run("break *0x%x" % ret_insn)
try:
    run("continue")
    at = pc()
    if at == ret_insn:
        sp = int(gdb.parse_and_eval("$sp")) & (2**64 - 1)
        popped = u64(sp)
        run("stepi")
        land = pc()
        fact("parent executes %s `ret` popping slot 0x%x = 0x%x and lands at 0x%x (%s); expected %s"
             % (sym(ret_insn), sp, popped, land, sym(land), sym(old)))
        found["landing"] = True
    else:
        gdb.write("gdb: parent stopped at %s, not at the ret\n" % sym(at))
except gdb.error as e:
    gdb.write("gdb: parent: %s\n" % e)

run("kill inferiors %s" % " ".join(str(i.num) for i in gdb.inferiors() if i.pid))
ok = found["slot"] and found["writes"] > 0 and found["landing"]
gdb.execute("quit %d" % (0 if ok else 1))
