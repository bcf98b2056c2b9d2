#!/usr/bin/env bash
# Runs the native suite (Google Test, through ctest) once per kernel configuration of
# toolchains/kernels.sh.
# Usage: native-tests.sh BUILD_DIR REPORT_DIR [all|own]
# Writes REPORT_DIR/native-<name>/{<test binary>.xml,output.log,exit-code}: one Google Test report
# per binary ctest runs (ptune_native_tests; ptune_cuda_tests too in a CUDA build). Exits 0 once every
# configuration has run, passed or not: toolchains/test-summary.sh (after the Java suite) decides
# the build's result, so a native failure never hides a Java one, nor the reverse.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/kernels.sh"
build_dir="$1" report_dir="$(mkdir -p "$2" && cd "$2" && pwd)" selection="${3:-all}"
matrix="$(kernel_matrix "$selection")"
while read -r name suites settings; do
  [[ "$suites" == *native* ]] || continue
  out="$report_dir/native-$name"
  rm -rf "$out" && mkdir -p "$out"
  env_args=()
  for s in $settings; do
    if [[ "$s" == -* ]]; then env_args+=(-u "${s#-}"); else env_args+=("$s"); fi
  done
  # OPENBLAS_VERBOSE=2 makes OpenBLAS print the core it runs ("Core: Haswell") into the log.
  # ctest --verbose prefixes the test's lines with "1: "; the log keeps them as the binary wrote them.
  set +e
  (cd "$build_dir" && env "${env_args[@]}" OPENBLAS_VERBOSE=2 GTEST_OUTPUT="xml:$out/" \
      ctest --verbose) 2>&1 | sed -E 's/^[0-9]+: //' >"$out/output.log"
  rc="${PIPESTATUS[0]}"
  set -e
  echo "$rc" >"$out/exit-code"
  core="$(grep -m1 -o 'Core: [A-Za-z0-9]*' "$out/output.log" || true)"
  if [[ "$rc" == 0 ]]; then
    echo "native suite [$name${settings:+: $settings}] ${core:+($core) }passed"
  else
    echo "native suite [$name${settings:+: $settings}] ${core:+($core) }FAILED (exit $rc), full log $out/output.log:"
    grep -E -A4 '(: Failure|^\[  FAILED  \] [A-Za-z]+\.[A-Za-z]+ \()' "$out/output.log" | grep -v '^\[ ' | head -60 || true
  fi
done <<<"$matrix"
