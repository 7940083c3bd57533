#!/usr/bin/env bash
# Fetches, once, the stock Debian 12 kernel the VM harness boots, and prints
# its path. Only boot/vmlinuz-* is taken out of the package: nothing is
# installed, no modules are needed (everything the harness uses — 8250
# serial console, devtmpfs, gzip initramfs, IA32_EMULATION, hardware
# breakpoints — is built into Debian's amd64 config).
#
#   scripts/vm/kernel.sh [DIR]     DIR defaults to build/vm (the cache)
#
# The kernel is cached as DIR/vmlinuz (plus DIR/vmlinuz.package, naming the
# package it came from); a second run only prints the path. Exit 1, with
# the reason on stderr, when no linux-image-6.1.0-*-amd64 package can be
# fetched (the Go tests then skip, quoting that reason).
set -euo pipefail

dir=${1:-build/vm}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [[ -s $dir/vmlinuz ]]; then
  echo "$dir/vmlinuz"
  exit 0
fi

# The newest linux-image-6.1.0-N-amd64 the configured apt sources offer
# (the signed image; the -unsigned, -cloud, -rt and -dbg flavours are not
# wanted). Refresh the package lists if none is known yet.
newest() {
  apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null |
    awk '{print $1}' | sort -V | tail -n 1
}
pkg=$(newest)
if [[ -z $pkg ]]; then
  SUDO=""
  if [[ $(id -u) != 0 ]]; then SUDO=sudo; fi
  $SUDO apt-get update -qq >&2 || true
  pkg=$(newest)
fi
if [[ -z $pkg ]]; then
  echo "kernel.sh: no linux-image-6.1.0-*-amd64 package in the apt sources" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "${ktmp:-}" "${ptmp:-}"' EXIT
# apt-get download fetches as the _apt user when run as root: let it write
# into the private mktemp directory.
if [[ $(id -u) == 0 ]] && id _apt >/dev/null 2>&1; then
  chown _apt "$tmp"
fi
if ! (cd "$tmp" && apt-get download -qq "$pkg" >&2); then
  echo "kernel.sh: apt-get download $pkg failed" >&2
  exit 1
fi
deb=$(ls "$tmp"/*.deb)
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
img=$(ls "$tmp"/boot/vmlinuz-* | head -n 1)
if [[ ! -s $img ]]; then
  echo "kernel.sh: $pkg has no boot/vmlinuz-*" >&2
  exit 1
fi
# Into the cache through files of this run's own, each renamed in one step:
# two test processes fetch at once on a fresh checkout (cmd/vtrace's VM
# tests, vtrace-matrix's -i386 vm), and with one shared temporary name the
# second's mv found it gone (all 147 VM tests skipped in one CI run).
ktmp=$(mktemp "$dir/vmlinuz.XXXXXX")
ptmp=$(mktemp "$dir/vmlinuz.package.XXXXXX")
cp "$img" "$ktmp"
echo "$pkg $(basename "$deb")" >"$ptmp"
chmod 644 "$ktmp" "$ptmp"
mv "$ptmp" "$dir/vmlinuz.package"
mv "$ktmp" "$dir/vmlinuz"
echo "$dir/vmlinuz"
