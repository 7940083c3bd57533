#!/usr/bin/env bash
# Builds the VM harness's initramfs (cpio newc, gzip):
#
#   scripts/vm/initramfs.sh OUT.cpio.gz OVERLAY [HOSTFILE...]
#
#   - static busybox (package busybox-static) as /bin/busybox, with a link
#     for each applet (/bin/sh, /bin/true, /usr/bin/timeout, …): exec
#     targets find /bin/true, system/popen find /bin/sh;
#   - /init from scripts/vm/init (runs the jobs, ships results, powers off);
#   - each HOSTFILE copied to the same path (symlinks followed), e.g. the
#     i386 loader /lib/ld-linux.so.2 and /lib32/libc.so.6 for a dynamic
#     -m32 target (no ld.so.cache: the loader finds them in its default
#     directories);
#   - then the OVERLAY directory's content on top: /vm/jobs/<name>/cmd for
#     each job, vtrace and the targets, wherever the jobs expect them.
# Everything else in the VM must be static.
set -euo pipefail

if (($# < 2)); then
  echo "usage: $0 OUT.cpio.gz OVERLAY [HOSTFILE...]" >&2
  exit 2
fi
out=$1 overlay=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)

bb=$(command -v busybox || true)
if [[ -z $bb ]] || ! file -L "$bb" | grep -q 'statically linked'; then
  echo "initramfs.sh: need a static busybox (apt-get install busybox-static)" >&2
  exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,vm/jobs}
cp -L "$bb" "$root/bin/busybox"
for applet in $("$bb" --list-full); do
  [[ -e $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
done
install -m 755 "$here/init" "$root/init"
for f in "$@"; do
  if [[ ! -e $f ]]; then
    echo "initramfs.sh: host file $f does not exist" >&2
    exit 1
  fi
  mkdir -p "$root/$(dirname "$f")"
  cp -L "$f" "$root/$f"
done
cp -a "$overlay/." "$root/"

(cd "$root" && find . -print0 | LC_ALL=C sort -z |
  cpio --null -o -H newc --owner=0:0 --quiet) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
