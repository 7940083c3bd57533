#!/usr/bin/env bash
# Boots the VM harness's machine once and waits for it to power off:
#
#   scripts/vm/run.sh KERNEL INITRD RESULTS [TIMEOUT_SECONDS]
#
# qemu-system-x86_64 in TCG (software emulation: no /dev/kvm is needed, and
# inside it i386 code runs and debug-register watchpoints fire, whatever
# the host allows), 1 CPU, 1 GiB. The kernel console (ttyS0) goes to this
# script's stdout; the jobs' results come on the second serial port
# (ttyS1), written to the file RESULTS (see scripts/vm/init for the
# format). VM_APPEND adds kernel parameters (e.g. VM_APPEND=ia32_emulation=0).
# The whole boot is bounded by TIMEOUT_SECONDS (default 600): exit 124 when
# it had to be killed, else qemu's exit status (0 after a poweroff).
set -euo pipefail

if (($# < 3)); then
  echo "usage: $0 KERNEL INITRD RESULTS [TIMEOUT_SECONDS]" >&2
  exit 2
fi
kernel=$1 initrd=$2 results=$3 limit=${4:-600}
: >"$results"
exec timeout -k 5 "$limit" qemu-system-x86_64 \
  -accel tcg -cpu max -m 1024 -smp 1 \
  -nographic -no-reboot -nic none \
  -serial mon:stdio -serial "file:$results" \
  -kernel "$kernel" -initrd "$initrd" \
  -append "console=ttyS0 quiet panic=-1 ${VM_APPEND:-}" \
  </dev/null
