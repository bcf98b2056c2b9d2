#!/usr/bin/env bash
# Issue 12's prepared GPU run: ONE script for a borrowed CUDA machine (H100/H200, nvcc 13, a CUDA
# torch wheel in python3, no Java, no network). In timed steps, each logged to OUT/<step>.log:
#   env           nvidia-smi, nvcc, torch version, device name and capability (OUT/env.json)
#   configure     CMake with toolchains/cuda.cmake against python3's torch, TORCH_CUDA_ARCH_LIST
#                 from torch.cuda.get_device_capability(), bench/gpu-deps (bench/gpu-pack.sh) for
#                 Google Test and nlohmann-json; ninja when present
#   build         ptune ptune_step_profile, then build_tests: ptune_cuda_tests ptune_native_tests
#                 (apart, so a test that fails to build cannot stop the benchmark), -j nproc
#   cuda_tests    ptune_cuda_tests on the GPU; native_tests: ptune_native_tests (the CPU suite)
#                 with a timeout; pass/fail/skip counts
#   model         a random Qwen2-0.5B-shaped bf16 model (bench/make_model.py), outside OUT
#   matmul_peak   an 8192^3 bf16 torch.matmul: the peak the FLOP-floor fraction is taken against
#   bench_*       ptune_step_profile and bench/peer_peft.py (transformers + PEFT), prompt tuning
#                 and prefix tuning, 20 virtual tokens, batch 8 x 512, bf16
#   report        OUT/gpu-results.json + OUT/gpu-table.md (printed: paste into bench/GPU.md);
#                 at exit every log goes into OUT/gpu-logs.tar.gz (the device machine sends back
#                 8 files at most, so there the loose logs are removed)
# A failing step is recorded (rc in the JSON) and the later steps still run where they can.
# Time budget (--budget, default 570 s, under the device run's 600 s a command; --cpu: 3600 s): the native
# suite's and the benchmarks' timeouts shrink to what is left, a step that no longer fits is
# recorded as not run, and the report is always written; rerun the rest on the same warm machine
# with --skip-build (and --skip-tests).
#
# Usage: bench/gpu.sh [--cpu] [--quick] [--skip-build] [--skip-tests] [--out DIR]
#                     [--build-dir DIR] [--model-dir DIR] [--jobs N] [--budget SECONDS]
#   OUT: --out, else $OUT (the device run's folder that comes back), else bench/out/gpu
#   --skip-build   use the binaries already in the build folder (a rerun on the same machine; a
#                  freshly borrowed machine starts bare and must build)
#   --skip-tests   skip cuda_tests and native_tests
#   --quick        5 timed steps after 2 warm-up (default 10 after 3); native suite timeout 150 s
#   --cpu          the dry run on a CPU-only machine: every step, with toolchains/cpu.cmake
#                  (Debian's libtorch 1.13, already on the machine: the CUDA toolchain would need
#                  the 4.4 GB CUDA wheel set and ~25 minutes of building on 2 cores, and
#                  torch2.cmake a second libtorch) in target/native (the Debian build's folder,
#                  so an existing `mvn package` build is reused), device cpu, bf16, a tiny Qwen2
#                  shape, batch 2 x 64; the peer in target/peft-env (toolchains/peft-env.sh).
#                  ptune_cuda_tests does not exist without PTUNE_WITH_CUDA: that step is
#                  recorded as not built.
# Python: $PTUNE_TORCH_PYTHON, else python3 (GPU) or /usr/bin/python3 (--cpu: Debian's torch
# 1.13); the peer: $PTUNE_PEER_PYTHON, else the same python (GPU) or target/peft-env/bin/python.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

cpu=false quick=false skip_build=false skip_tests=false
out=${OUT:-bench/out/gpu} build_dir="" model_dir="" jobs="" budget=""
while (($#)); do
  case $1 in
    --cpu) cpu=true ;;
    --quick) quick=true ;;
    --skip-build) skip_build=true ;;
    --skip-tests) skip_tests=true ;;
    --out) out=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --model-dir) model_dir=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    --budget) budget=$2; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
: >"$out/steps.tsv"
# The device machine sends back at most 8 files of OUT: at exit, every log goes into one
# gpu-logs.tar.gz beside gpu-results.json and gpu-table.md (the loose logs are removed there).
pack_logs() {
  local files
  files=$(cd "$out" && find . -maxdepth 1 -type f ! -name gpu-results.json ! -name gpu-table.md \
      ! -name gpu-logs.tar.gz -printf '%P\n' | sort)
  [[ -n "$files" ]] || return 0
  (cd "$out" && tar czf gpu-logs.tar.gz $files) || return 0
  if [[ -n "${OUT:-}" && "$out" == "$(cd "$OUT" 2>/dev/null && pwd)" ]]; then
    (cd "$out" && rm -f $files)
  fi
}
trap pack_logs EXIT
deps=$root/bench/gpu-deps
started=$(date +%s)

if $cpu; then
  mode=cpu device=cpu dtype=bf16 batch=2 seq=64 virtual=20
  toolchain=$root/toolchains/cpu.cmake
  build_dir=${build_dir:-target/native}
  model_dir=${model_dir:-target/gpu-dry-model}
  jobs=${jobs:-2}
  py=${PTUNE_TORCH_PYTHON:-/usr/bin/python3}
  peer_py=${PTUNE_PEER_PYTHON:-target/peft-env/bin/python}
  # tiny Qwen2: the same code paths (q/k/v biases, tied head, bf16 weights), seconds per step
  model_args=(--model-type qwen2 --hidden 64 --layers 2 --heads 4 --kv-heads 2 --head-dim 16
              --intermediate 128 --vocab 1000 --tie-word-embeddings --dtype bf16)
  matmul_args=(--device cpu --dtype bf16 --size 1024 --iters 5)
  nice=(nice -n 10)
  budget=${budget:-3600}  # a cold build of target/native takes ~10-15 minutes on 2 shared cores
else
  mode=cuda device=cuda dtype=bf16 batch=8 seq=512 virtual=20
  toolchain=$root/toolchains/cuda.cmake
  build_dir=${build_dir:-target/native-gpu}
  model_dir=${model_dir:-target/gpu-model}
  jobs=${jobs:-$(nproc)}
  py=${PTUNE_TORCH_PYTHON:-python3}
  peer_py=${PTUNE_PEER_PYTHON:-$py}
  # Qwen2-0.5B's shape (494M parameters), random weights
  model_args=(--model-type qwen2 --hidden 896 --layers 24 --heads 14 --kv-heads 2 --head-dim 64
              --intermediate 4864 --vocab 151936 --tie-word-embeddings --dtype bf16)
  matmul_args=(--device cuda --dtype bf16 --size 8192 --iters 20)
  nice=()
  budget=${budget:-570}
fi
if $quick; then steps=5 warmup=2 native_timeout=150; else steps=10 warmup=3 native_timeout=300; fi
$cpu && { steps=3 warmup=1; }

# Seconds left of the budget; fits SECONDS: whether that much is left.
time_left() { echo $((started + budget - $(date +%s))); }
fits() { (($(time_left) >= $1)); }

# step NAME COMMAND...: runs COMMAND with its output in OUT/NAME.log, records rc and seconds.
step() {
  local name=$1; shift
  local t0 t1 rc
  t0=$(date +%s.%N)
  echo "== $name ($(date -u +%H:%M:%S)): $*"
  "$@" >"$out/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  local secs; secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$secs" "" >>"$out/steps.tsv"
  if ((rc == 0)); then echo "   ok, $secs s"; else echo "   FAILED (rc $rc), $secs s; last lines of $out/$name.log:"; tail -n 5 "$out/$name.log" | sed 's/^/   | /'; fi
  return "$rc"
}
# not_run NAME WHY: records a step that could not run (rc "-" in the TSV, null in the JSON).
not_run() {
  printf '%s\t-\t0\t%s\n' "$1" "$2" >>"$out/steps.tsv"
  echo "== $1: not run: $2"
}

# ---- a. environment
env_info() {
  echo "== date: $(date -u '+%Y-%m-%dT%H:%M:%SZ'); host $(hostname); nproc $(nproc)"
  echo "== nvidia-smi"; nvidia-smi 2>&1 || echo "(no nvidia-smi)"
  echo "== nvcc"; "${CUDACXX:-nvcc}" --version 2>&1 || echo "(no nvcc)"
  echo "== gcc"; gcc --version | head -1
  echo "== cmake"; cmake --version | head -1
  echo "== ninja"; ninja --version 2>&1 || echo "(no ninja)"
  echo "== python: $py"; "$py" bench/gpu_report.py env "$out/env.json"
  echo "== peer python: $peer_py"
  "$peer_py" -c 'import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)'
}
if [[ -z "${CUDACXX:-}" ]]; then
  if [[ -x /usr/local/cuda/bin/nvcc ]]; then export CUDACXX=/usr/local/cuda/bin/nvcc
  elif command -v nvcc >/dev/null; then CUDACXX=$(command -v nvcc); export CUDACXX; fi
fi
if $cpu && [[ ! -x "$peer_py" ]]; then
  step peft_env toolchains/peft-env.sh "$(dirname "$(dirname "$peer_py")")"
fi
step env env_info
arch=$("$py" -c 'import json,sys; c=json.load(open(sys.argv[1]))["capability"]; print(c or "")' "$out/env.json" 2>/dev/null)
nvidia_smi=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
nvcc_version=$("${CUDACXX:-nvcc}" --version 2>/dev/null | grep -o 'release [0-9.]*' | head -1)

# ---- b. configure + build
targets=(ptune ptune_step_profile)
test_targets=(ptune_native_tests)
$cpu || test_targets=(ptune_cuda_tests "${test_targets[@]}")
if $skip_build; then
  not_run configure "--skip-build"
  not_run build "--skip-build"
  not_run build_tests "--skip-build"
else
  generator=()
  # ninja where the folder is new or already ninja's (CMake keeps a folder's first generator)
  if command -v ninja >/dev/null && { [[ ! -f "$build_dir/CMakeCache.txt" ]] ||
       grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$build_dir/CMakeCache.txt"; }; then
    generator=(-G Ninja)
  fi
  cmake_args=(-S . -B "$build_dir" "${generator[@]}" -DCMAKE_TOOLCHAIN_FILE="$toolchain"
              -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=ON)
  # The packed Google Test and nlohmann-json on the GPU machine; the dry run uses this machine's
  # packages (the same files: switching a folder between them would rebuild all of it).
  if ! $cpu && [[ -d "$deps" ]]; then
    cmake_args+=(-DCMAKE_PREFIX_PATH="$deps" -DGTest_DIR="$deps/lib/x86_64-linux-gnu/cmake/GTest"
                 -Dnlohmann_json_DIR="$deps/share/cmake/nlohmann_json")
  elif ! $cpu; then
    echo "gpu.sh: $deps is missing (run bench/gpu-pack.sh and carry it); configuring with the system's packages"
  fi
  if ! $cpu; then
    export PTUNE_TORCH_PYTHON=$py
    [[ -n "$arch" ]] && export TORCH_CUDA_ARCH_LIST=$arch
  fi
  echo "   toolchain $toolchain, build $build_dir, arch ${TORCH_CUDA_ARCH_LIST:-default}, -j$jobs, CUDACXX ${CUDACXX:-none}"
  if step configure cmake "${cmake_args[@]}"; then
    step build "${nice[@]}" cmake --build "$build_dir" --parallel "$jobs" --target "${targets[@]}"
    if $skip_tests; then
      not_run build_tests "--skip-tests"
    else
      # -k 0 / -k: every test binary that can be built is, even when another fails
      keep_going=(-k); [[ -f "$build_dir/build.ninja" ]] && keep_going=(-k 0)
      step build_tests "${nice[@]}" cmake --build "$build_dir" --parallel "$jobs" \
          --target "${test_targets[@]}" -- "${keep_going[@]}"
    fi
  else
    not_run build "configure failed"
    not_run build_tests "configure failed"
  fi
fi

# ---- c. tests
# The native suite reads its fixture from <repo>/../shared (PTUNE_SHARED_DIR); on a bare machine
# link it to the copy bench/gpu-pack.sh carried.
if [[ ! -e ../shared && -d "$deps/shared/models/stories260k" ]]; then
  ln -s "$deps/shared" ../shared && echo "== linked ../shared -> $deps/shared"
fi
bin=$build_dir/tests-native
if $skip_tests; then
  not_run cuda_tests "--skip-tests"
  not_run native_tests "--skip-tests"
else
  if [[ -x "$bin/ptune_cuda_tests" ]] && ! $cpu; then
    step cuda_tests timeout 120 "$bin/ptune_cuda_tests"
  elif $cpu; then
    not_run cuda_tests "not built: toolchains/cpu.cmake has PTUNE_WITH_CUDA off"
  else
    not_run cuda_tests "$bin/ptune_cuda_tests was not built"
  fi
  # what is left after the model, the matmul and the four benchmarks (~200 s on the GPU)
  reserve=200; $cpu && reserve=60
  suite_limit=$(( $(time_left) - reserve ))
  ((suite_limit > native_timeout)) && suite_limit=$native_timeout
  if [[ ! -x "$bin/ptune_native_tests" ]]; then
    not_run native_tests "$bin/ptune_native_tests was not built"
  elif ((suite_limit < 30)); then
    not_run native_tests "no time left in the --budget of $budget s"
  else
    step native_tests timeout "$suite_limit" "$bin/ptune_native_tests"
  fi
fi

# ---- d. the model (outside OUT: OUT comes back from the device machine, ~1 GB would not)
stamp="${model_args[*]}"
if [[ -f "$model_dir/config.json" && "$(cat "$model_dir/.make_model_args" 2>/dev/null)" == "$stamp" ]]; then
  step model cat "$model_dir/.make_model.json"
else
  make_model() {
    rm -rf "$model_dir" && mkdir -p "$(dirname "$model_dir")" || return
    "$py" bench/make_model.py "$model_dir" "${model_args[@]}" | tee "$model_dir.json.tmp" &&
      mv "$model_dir.json.tmp" "$model_dir/.make_model.json" && echo "$stamp" >"$model_dir/.make_model_args"
  }
  step model make_model
fi
cp "$model_dir/config.json" "$out/model-config.json" 2>/dev/null

# ---- e. the FLOP floor's peak, then the benchmarks
step matmul_peak "$py" bench/gpu_report.py matmul "${matmul_args[@]}"
profile=$build_dir/ptune_step_profile
# limit: seconds a benchmark may take, 300 at most, what is left of the budget less 10
limit() { local t=$(( $(time_left) - 10 )); echo $((t > 300 ? 300 : t)); }
for method in prompt-tuning prefix-tuning; do
  common=(--device "$device" --dtype "$dtype" --method "$method")
  if ! fits 40; then
    not_run "bench_ptune_$method" "no time left in the --budget of $budget s"
    not_run "bench_peer_$method" "no time left in the --budget of $budget s"
    continue
  fi
  if [[ -x "$profile" ]]; then
    step "bench_ptune_$method" timeout "$(limit)" "$profile" "$model_dir" --batch "$batch" --seq "$seq" \
        --virtual "$virtual" --steps "$steps" --warmup "$warmup" "${common[@]}"
  else
    not_run "bench_ptune_$method" "$profile was not built"
  fi
  if ! fits 40; then
    not_run "bench_peer_$method" "no time left in the --budget of $budget s"
    continue
  fi
  step "bench_peer_$method" timeout "$(limit)" "$peer_py" bench/peer_peft.py --model "$model_dir" \
      --batch-size "$batch" --seq-len "$seq" --virtual-tokens "$virtual" --steps "$steps" \
      --warmup "$warmup" "${common[@]}"
done

# ---- f. the results
"$py" - "$out/run.json" <<PY
import json, sys
json.dump({"date_utc": "$(date -u '+%Y-%m-%dT%H:%M:%SZ')", "mode": "$mode", "device": "$device",
           "dtype": "$dtype", "batch": $batch, "seq": $seq, "virtual": $virtual, "steps": $steps,
           "warmup": $warmup, "git_commit": "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)",
           "build_dir": "$build_dir", "toolchain": "${toolchain#"$root"/}", "jobs": $jobs,
           "nvidia_smi": "$nvidia_smi" or None, "nvcc": "$nvcc_version" or None,
           "total_s": $(( $(date +%s) - started ))}, open(sys.argv[1], "w"), indent=2)
PY
"$py" bench/gpu_report.py report "$out" || { echo "gpu.sh: the report failed" >&2; exit 1; }
echo "gpu.sh: $out/gpu-results.json, $(( $(date +%s) - started )) s in all"
