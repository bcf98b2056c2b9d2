#!/usr/bin/env bash
# Configures and builds the native core with CMake (the Maven build's `initialize` phase), quietly:
# CMake's and the compiler's output go to LOG, and only a failure prints anything: the compiler's
# error lines and the end of the log, on stderr, so a broken build is diagnosable from the console.
# Usage: native-build.sh SOURCE_DIR BUILD_DIR TOOLCHAIN_FILE BUILD_TYPE LOG [JOBS]
set -uo pipefail
source_dir=$1 build_dir=$2 toolchain=$3 build_type=$4 log=$5 jobs=${6:-2}
mkdir -p "$(dirname "$log")"
# CMake keeps the first toolchain of a build folder: a folder configured with another one
# (-Dnative.toolchain=toolchains/cpu.cmake | torch2.cmake | cuda.cmake) is configured afresh.
toolchain=$(realpath "$toolchain")
if [[ -f "$build_dir/CMakeCache.txt" ]] &&
   ! grep -qxF "CMAKE_TOOLCHAIN_FILE:FILEPATH=$toolchain" "$build_dir/CMakeCache.txt" &&
   ! grep -qxF "CMAKE_TOOLCHAIN_FILE:UNINITIALIZED=$toolchain" "$build_dir/CMakeCache.txt"; then
  rm -rf "$build_dir/CMakeCache.txt" "$build_dir/CMakeFiles"
  fresh="== $build_dir had another toolchain: configured afresh"
fi
{
  [[ -n "${fresh:-}" ]] && echo "$fresh"
  echo "== cmake configure ($(date -u '+%Y-%m-%dT%H:%M:%SZ'))"
  cmake -S "$source_dir" -B "$build_dir" -DCMAKE_TOOLCHAIN_FILE="$toolchain" \
      -DCMAKE_BUILD_TYPE="$build_type" -DBUILD_TESTING=ON &&
    echo "== cmake build" &&
    cmake --build "$build_dir" --parallel "$jobs"
} >"$log" 2>&1
rc=$?
if ((rc != 0)); then
  {
    echo "native build failed (exit $rc); full log: $log"
    # The first errors name the file and line; the tail shows which step stopped.
    pattern='error:|CMake Error|undefined reference'
    if grep -q -E "$pattern" "$log"; then
      echo "-- first errors:"
      grep -m 20 -E "$pattern" "$log"
    fi
    echo "-- last 40 lines:"
    tail -n 40 "$log"
  } >&2
fi
exit "$rc"
