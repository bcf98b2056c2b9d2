#!/usr/bin/env bash
# CI step for the CUDA configuration (toolchains/cuda.cmake) on a machine without a GPU: compiles
# libptune (with its .cu kernels) and the CUDA Google Tests (ptune_cuda_tests) against the CUDA
# torch wheel, checks that libptune links the wheel's libtorch and no path of this machine, and
# runs the CUDA tests, which report SKIPPED without a GPU (and must pass with one). With --all it
# also builds the whole native suite (ptune_native_tests) and runs it, then the Java suite, on the
# CPU through Maven: the core on PyTorch 2.x, as the Debian build runs it on libtorch 1.13, and
# the Java side against this build (the linux-x86_64-cuda platform's libptune, libtorch found at
# run time from the wheel); reports in target/test-reports-cuda. It then puts the default build's
# native libraries back into target/classes.
# Where the wheels are not on disk (/opt/wheels, /opt/pypi/files, /opt/pypi-more/files, as on the
# CI machines) or there is no nvcc, it prints one line saying it skipped and succeeds.
# The wheels go into a virtual environment kept between runs (PTUNE_CUDA_VENV, default
# ~/.cache/ptune/torch-2.14.1-cu13: 4.5 GB, ~90 s to install the first time).
# Usage: toolchains/cuda-compile-check.sh [--all] [BUILD_DIR]   (default target/native-cuda; log in it)
set -euo pipefail
cd "$(dirname "$0")/.."
all=false
if [[ "${1:-}" == --all ]]; then all=true; shift; fi
build_dir=${1:-target/native-cuda}
torch_version=2.14.1
venv=${PTUNE_CUDA_VENV:-$HOME/.cache/ptune/torch-$torch_version-cu13}
start=$(date +%s)

wheel_dirs=() find_links=()
for dir in ${PTUNE_WHEEL_DIRS:-/opt/wheels /opt/pypi/files /opt/pypi-more/files}; do
  [[ -d "$dir" ]] && wheel_dirs+=("$dir") && find_links+=(--find-links "$dir")
done
nvcc=${CUDACXX:-/usr/local/cuda/bin/nvcc}
[[ -x "$nvcc" ]] || nvcc=$(command -v nvcc || true)
cuda_wheel=false
for dir in "${wheel_dirs[@]}"; do
  # The CUDA wheel is the one without a local version (+cpu) in its name.
  compgen -G "$dir/torch-$torch_version-cp*-manylinux*_x86_64.whl" >/dev/null && cuda_wheel=true
done
if [[ -z "$nvcc" ]]; then
  echo "cuda-compile-check: skipped (no nvcc: set CUDACXX or install the CUDA toolkit)"
  exit 0
elif [[ -f "$venv/.ptune-complete" ]]; then
  :  # installed by an earlier run
elif ! $cuda_wheel; then
  echo "cuda-compile-check: skipped (no torch $torch_version CUDA wheel under /opt/wheels, /opt/pypi*/files)"
  exit 0
else
  # torch without its Python-only dependencies (cuda-bindings and triton are not needed to build
  # C++ against it), the CUDA toolkit wheel and the nvidia-* wheels they name.
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --no-index --no-deps "${find_links[@]}" "torch==$torch_version" \
      cuda-toolkit==13.0.3 nvidia-cublas nvidia-cuda-runtime nvidia-cufft nvidia-cufile \
      nvidia-cuda-cupti nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-nvjitlink \
      nvidia-cuda-nvrtc nvidia-nvtx nvidia-cudnn-cu13 nvidia-cusparselt-cu13 nvidia-nccl-cu13 \
      nvidia-nvshmem-cu13
  touch "$venv/.ptune-complete"
fi
installed=$(date +%s)

mkdir -p "$build_dir"
log=$build_dir/cuda-compile-check.log
fail() {
  echo "cuda-compile-check: FAILED: $1 (log: $log)" >&2
  grep -m 20 -E 'error:|CMake Error|undefined reference' "$log" >&2 || tail -n 40 "$log" >&2
  exit 1
}
export PTUNE_TORCH_PYTHON=$venv/bin/python CUDACXX=$nvcc
{
  echo "== configure ($(date -u '+%Y-%m-%dT%H:%M:%SZ'))"
  cmake -S . -B "$build_dir" -DCMAKE_TOOLCHAIN_FILE="$PWD/toolchains/cuda.cmake" \
      -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=ON
} >"$log" 2>&1 || fail "cmake configure"
# The library and the CUDA tests only (not the step profiler; the whole suite with --all).
targets=(ptune ptune_cuda_tests)
$all && targets+=(ptune_native_tests)
{
  echo "== build ${targets[*]}"
  nice -n 10 cmake --build "$build_dir" --parallel 2 --target "${targets[@]}"
} >>"$log" 2>&1 || fail "build"
built=$(date +%s)

# libptune links the wheel's libtorch (CUDA included) and records no path of this machine; no
# Debian libtorch (libc10.so.1.13, ...) beside it.
lib=$build_dir/lib/libptune.so
dynamic=$(readelf -d "$lib")
grep -q 'NEEDED.*\[libtorch_cuda\.so\]' <<<"$dynamic" || fail "$lib does not link libtorch_cuda.so"
grep -q 'NEEDED.*\[libcudart\.so\.[0-9]*\]' <<<"$dynamic" || fail "$lib does not link the shared CUDA runtime"
if grep -E 'NEEDED.*\.so\.1\.13' <<<"$dynamic" >>"$log"; then fail "$lib links Debian's libtorch 1.13"; fi
runpath=$(sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p; s/.*(RPATH).*\[\(.*\)\]/\1/p' <<<"$dynamic")
[[ "$runpath" == '$ORIGIN' ]] || fail "$lib has RUNPATH '$runpath', expected only \$ORIGIN"

# The CUDA tests: SKIPPED without a GPU, passing with one.
tests_out=$("$build_dir/tests-native/ptune_cuda_tests" 2>&1) ||
  { echo "$tests_out" >>"$log"; fail "CUDA tests failed"; }
echo "$tests_out" >>"$log"
skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) tests\{0,1\}, listed below.*/\1/p' <<<"$tests_out")
passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' <<<"$tests_out")
suite=""
if $all; then
  # Both suites on the CPU against this build, through Maven once: ctest runs ptune_native_tests
  # (and ptune_cuda_tests) in the build folder, the JNI library is built against its libptune into
  # target/classes, and the test JVMs find libtorch through PTUNE_TORCH_PYTHON
  # (io.ptune.nativebridge.TorchLibraries); toolchains/test-summary.sh fails the run if either failed.
  suites_log=$build_dir/suites.log
  abs_build=$(cd "$build_dir" && pwd)
  mvn -B test -Dnative.toolchain="$PWD/toolchains/cuda.cmake" -Dnative.build.dir="$abs_build" \
      -Dptune.kernels=own -Dptune.test.reports="$PWD/target/test-reports-cuda" >"$suites_log" 2>&1 ||
    { tail -n 30 "$suites_log" >&2; fail "the suites failed against PyTorch $torch_version (log: $suites_log)"; }
  # target/classes back to the default toolchain's libraries (target/native, already built);
  # -DskipTests, or Maven's initialize phase would clear the main suites' reports in
  # target/test-reports (toolchains/kernels.sh).
  mvn -B -q process-classes -DskipTests >>"$suites_log" 2>&1 || fail "restoring target/classes (log: $suites_log)"
  summary() { grep -m1 -E "^$1 +as-given" "$suites_log" | sed -E "s/^$1 +as-given +- +//"; }
  suite="; on the CPU: native suite $(summary native), Java suite $(summary java)"
fi
end=$(date +%s)
echo "cuda-compile-check: ${targets[*]} built against torch $torch_version + CUDA" \
  "(TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}); CUDA tests: ${passed:-0} passed, ${skipped:-0} skipped;" \
  "$((end - start)) s ($((installed - start)) s wheels, $((built - installed)) s build)$suite"
