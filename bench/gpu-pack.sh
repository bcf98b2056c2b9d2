#!/usr/bin/env bash
# Packs what the borrowed GPU machine lacks for building ptune's tests (bench/gpu.sh) into the
# git-ignored folder bench/gpu-deps/, from this Debian machine's packages: Google Test's headers,
# static libraries and CMake config (libgtest-dev) and nlohmann-json's headers and CMake config
# (nlohmann-json3-dev). Run it here before borrowing the GPU; pass the printed folder as the
# device run's `carry` (ignored folders travel only when carried).
# Layout: a CMake prefix (gpu.sh puts it on CMAKE_PREFIX_PATH and names GTest_DIR and
# nlohmann_json_DIR): include/{gtest,nlohmann}, lib/x86_64-linux-gnu/libgtest{,_main}.a,
# lib/x86_64-linux-gnu/cmake/GTest, share/cmake/nlohmann_json (each config finds its prefix by
# walking up from its own folder, as in /usr). Also the native suite's fixture, ../shared's
# models/stories260k (tests-native read PTUNE_SHARED_DIR = <repo>/../shared, which the GPU machine
# lacks): copied to shared/models/stories260k, and gpu.sh links ../shared to it there.
# Usage: bench/gpu-pack.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dest=bench/gpu-deps
arch=x86_64-linux-gnu
shared=${PTUNE_SHARED:-../shared}
need=("$shared/models/stories260k" /usr/include/gtest /usr/lib/$arch/libgtest.a /usr/lib/$arch/libgtest_main.a
      /usr/lib/$arch/cmake/GTest /usr/include/nlohmann /usr/share/cmake/nlohmann_json)
for path in "${need[@]}"; do
  [[ -e "$path" ]] || { echo "gpu-pack: $path is missing: apt-get install libgtest-dev nlohmann-json3-dev (and ../shared from CI)" >&2; exit 1; }
done
rm -rf "$dest"
mkdir -p "$dest/include" "$dest/lib/$arch/cmake" "$dest/share/cmake"
cp -a /usr/include/gtest /usr/include/nlohmann "$dest/include/"
cp -a /usr/lib/$arch/libgtest.a /usr/lib/$arch/libgtest_main.a "$dest/lib/$arch/"
cp -a /usr/lib/$arch/cmake/GTest "$dest/lib/$arch/cmake/"
cp -a /usr/share/cmake/nlohmann_json "$dest/share/cmake/"
mkdir -p "$dest/shared/models"
cp -a "$shared/models/stories260k" "$dest/shared/models/"
{
  echo "packed by bench/gpu-pack.sh on $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
  dpkg-query -W -f '${Package} ${Version}\n' libgtest-dev nlohmann-json3-dev 2>/dev/null || true
  echo "gcc that built libgtest.a: $(gcc --version | head -1)"
} >"$dest/PACKED"
# Check: a throwaway CMake project finds both packages inside the pack, as gpu.sh configures.
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
cat >"$check/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.18)
project(gpu_pack_check CXX)
find_package(GTest REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
get_target_property(gtest_lib GTest::gtest IMPORTED_LOCATION_NONE)
get_target_property(json_inc nlohmann_json::nlohmann_json INTERFACE_INCLUDE_DIRECTORIES)
message(STATUS "gpu-pack-check ${gtest_lib} ${json_inc}")
CMAKE
abs=$PWD/$dest
found=$(cmake -S "$check" -B "$check/build" -DCMAKE_PREFIX_PATH="$abs" \
    -DGTest_DIR="$abs/lib/$arch/cmake/GTest" -Dnlohmann_json_DIR="$abs/share/cmake/nlohmann_json" 2>&1 |
    grep 'gpu-pack-check') || { echo "gpu-pack: CMake does not find the packed GTest / nlohmann_json" >&2; exit 1; }
[[ "$found" == *"$abs/lib/$arch/libgtest.a $abs/include"* ]] ||
  { echo "gpu-pack: CMake found packages outside $dest: $found" >&2; exit 1; }
echo "gpu-pack: CMake finds GTest and nlohmann_json in $dest"
echo "gpu-pack: $dest $(du -sh "$dest" | cut -f1) ($(find "$dest" -type f | wc -l) files)"
echo "gpu-pack: device run with carry: [\"$dest\"], command: bench/gpu.sh"
