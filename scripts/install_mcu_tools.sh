#!/usr/bin/env bash
# Installs Debian's Cortex-M toolchain, QEMU and CMake (for the firmware and the bundles) when any is missing.
set -euo pipefail
have() { command -v arm-none-eabi-gcc >/dev/null && command -v qemu-system-arm >/dev/null && command -v cmake >/dev/null \
  && { test -e /usr/lib/arm-none-eabi/newlib/libc_nano.a || test -e /usr/lib/arm-none-eabi/lib/libc_nano.a; }; }
have && exit 0
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
echo "installing gcc-arm-none-eabi, newlib, qemu-system-arm and cmake (about 470 MB, 1 minute)"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm cmake >/dev/null
have || { echo "install_mcu_tools.sh: the Cortex-M tools are still missing after apt-get" >&2; exit 1; }
