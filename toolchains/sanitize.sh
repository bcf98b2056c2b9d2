#!/usr/bin/env bash
# The native Google Test suite under AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer).
# Usage: toolchains/sanitize.sh [GTEST_FILTER]   (default: every test)
# Configures and builds target/native-asan (-DPTUNE_SANITIZE=ON: libptune and the tests with
# -fsanitize=address,undefined; the normal build in target/native is untouched), then runs the
# suite once, with the machine's own kernels. Any sanitizer report stops the binary with a
# non-zero exit, as does a failing test. The log is target/native-asan/sanitize.log, the Google
# Test report target/native-asan/report.xml. libtorch, OpenBLAS and libgomp are not instrumented:
# reports raised inside them alone may be suppressed in toolchains/sanitizers/ (each entry says
# why; none is needed today); nothing of ptune's own code is ever suppressed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
build="$root/target/native-asan"
filter="${1:-*}"
start=$(date +%s)

# -O1 -g1: line tables for readable reports at a fraction of full debug info's compile time;
# NDEBUG stays undefined so that assertions run too.
nice -n 5 cmake -S "$root" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$here/cpu.cmake" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" \
  -DBUILD_TESTING=ON -DPTUNE_SANITIZE=ON >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; exit 1; }
nice -n 5 cmake --build "$build" --target ptune_native_tests --parallel 2 >"$build.build.log" 2>&1 ||
  { tail -60 "$build.build.log"; echo "sanitize: build FAILED, log $build.build.log"; exit 1; }
built=$(date +%s)

# The real ONNX encoders the suite reads (Maven unpacks them in a normal build); without them
# those tests skip.
if [[ ! -d "$root/target/onnx-models" ]]; then
  (cd "$root" && mvn -B -q -o dependency:unpack@onnx-models >/dev/null 2>&1) ||
    echo "sanitize: target/onnx-models absent (mvn dependency:unpack@onnx-models failed); the ONNX model tests skip"
fi

supp="$here/sanitizers"
# abort_on_error=0/exitcode: a report ends the process with exit 66, distinct from a test failure (1).
# asan.options: the options that only uninstrumented libraries need, one a line with its reason.
# allocator_may_return_null=1: a failed allocation returns null, as without ASan, so libtorch's
# allocator throws and the façade's out-of-memory translation is what gets tested
# (FacadeTranslation.AnAllocationFailureSaysWhatToMakeSmaller asks for 2^60 bytes).
asan_options=(exitcode=66 detect_leaks=1 check_initialization_order=1 strict_init_order=1 allocator_may_return_null=1
  "suppressions=$supp/asan.supp" $(grep -v -e '^#' -e '^$' "$supp/asan.options" || true))
export ASAN_OPTIONS="$(IFS=:; echo "${asan_options[*]}")"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=66:suppressions=$supp/ubsan.supp"
log="$build/sanitize.log"
set +e
(cd "$build/tests-native" && nice -n 5 ./ptune_native_tests --gtest_filter="$filter" \
   --gtest_output="xml:$build/report.xml") >"$log" 2>&1
rc=$?
set -e
end=$(date +%s)
summary="$(grep -E '^\[  (PASSED|FAILED)  \]|tests? ran' "$log" | tr '\n' ' ' || true)"
if [[ "$rc" == 0 ]]; then
  echo "sanitize: native suite passed under ASan+UBSan: $summary(build $((built - start)) s, run $((end - built)) s); log $log"
else
  cause="failing tests"; [[ "$rc" == 66 ]] && cause="a sanitizer report"
  echo "sanitize: native suite FAILED under ASan+UBSan (exit $rc, $cause); log $log"
  grep -E -A30 '^==[0-9]+==ERROR|runtime error:|^SUMMARY: |^\[  FAILED  \]' "$log" | head -80 || true
  exit 1
fi
