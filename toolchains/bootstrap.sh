#!/usr/bin/env bash
# Installs what the ptune build needs on Debian 12 (idempotent, non-interactive).
# Usage: toolchains/bootstrap.sh [--with-python] [--with-fuzz]   (--with-python adds python3-torch,
# the CPU peer used by bench/ and the reference scripts; --with-fuzz adds clang 14 and its
# libFuzzer/sanitizer runtimes for toolchains/fuzz-native.sh; the build needs neither).
# fonts-dejavu-core: a font for the PNG charts (Java draws text with fontconfig's fonts).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(libtorch-dev libgtest-dev nlohmann-json3-dev libopenblas0-pthread libopenblas0-openmp cmake g++ make maven openjdk-17-jdk-headless fonts-dejavu-core)
for option in "$@"; do
  case "$option" in
    --with-python) packages+=(python3-torch python3-numpy) ;;
    --with-fuzz) packages+=(clang-14 libclang-rt-14-dev) ;;
    *) echo "bootstrap: unknown option $option (use --with-python, --with-fuzz)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "bootstrap: installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "bootstrap: toolchain ready"
