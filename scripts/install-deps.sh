#!/usr/bin/env bash
# Installs what building the targets, running the tests (headless Chromium
# for the HTML report, the SARIF multitool), the benchmark and the VM harness
# need, on Debian/Ubuntu. Idempotent: does nothing (and needs
# no network) when everything is already there. Run as root (or with sudo).
set -euo pipefail

# package → a file it provides (checked instead of dpkg, which is slow)
declare -A need=(
  [gcc-multilib]=/usr/lib/gcc/x86_64-linux-gnu/12/32/crtbegin.o
  [g++]=/usr/bin/g++
  [g++-multilib]=/usr/include/x86_64-linux-gnu/c++/12/32/bits/c++config.h
  [libc6-i386]=/lib/ld-linux.so.2
  [musl-tools]=/usr/bin/musl-gcc
  [clang]=/usr/bin/clang
  [binutils]=/usr/bin/objdump
  [strace]=/usr/bin/strace
  [gdb]=/usr/bin/gdb
  [busybox-static]=/bin/busybox
  [dash]=/bin/dash
  [python3]=/usr/bin/python3
  [qemu-system-x86]=/usr/bin/qemu-system-x86_64
  [cpio]=/usr/bin/cpio
  [file]=/usr/bin/file
  [time]=/usr/bin/time
  # the HTML report's test drives a real headless browser (chromedp)
  [chromium]=/usr/bin/chromium
  [chromium-driver]=/usr/bin/chromedriver
  # npm installs Microsoft's SARIF multitool (below), which validates SARIF
  [npm]=/usr/bin/npm
)
missing=()
for pkg in "${!need[@]}"; do
  # gcc-multilib's path depends on the gcc version: accept any
  if [[ $pkg == gcc-multilib ]]; then
    compgen -G '/usr/lib/gcc/x86_64-linux-gnu/*/32/crtbegin.o' >/dev/null && continue
  elif [[ $pkg == g++-multilib ]]; then
    compgen -G '/usr/include/x86_64-linux-gnu/c++/*/32/bits/c++config.h' >/dev/null && continue
  elif [[ -e ${need[$pkg]} ]]; then
    continue
  fi
  missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) != 0 ]]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Microsoft's SARIF multitool (`sarif-multitool validate`, the SARIF test's
# validator), from the npm registry into build/tools/sarif-multitool, where
# the test looks for it (and installs it itself on first use otherwise).
# Its package ships the native program; npm may skip the postinstall that
# makes it executable.
MULTITOOL_VERSION=5.7.0
tools="$(dirname "$0")/../build/tools/sarif-multitool"
native="$tools/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool"
if [[ ! -e $native ]] && command -v npm >/dev/null; then
  echo "install-deps: installing @microsoft/sarif-multitool@$MULTITOOL_VERSION into build/tools" >&2
  mkdir -p "$tools"
  npm install --no-audit --no-fund --prefix "$tools" "@microsoft/sarif-multitool@$MULTITOOL_VERSION" >/dev/null
fi
if [[ -e $native ]]; then chmod u+x "$native"; fi
