#!/usr/bin/env bash
# Throughput / memory benchmark: ptune's prompt-tuning step against two peers, next to a FLOP floor:
# bench/peer_torch.py (HF + PEFT semantics in plain PyTorch on the same Debian libtorch 1.13 +
# OpenBLAS as ptune, the same threads) and bench/peer_peft.py (transformers + PEFT themselves, on
# the PyTorch wheel of the environment toolchains/peft-env.sh makes; skipped, with a note, when
# that environment cannot be made).
#
#   bench/run.sh            (from any directory; needs `mvn -B -q -DskipTests package` done first)
#
# Writes bench/RESULTS.md (training, then generation from bench/generate.sh) and the raw files
# under bench/out/ (git-ignored): models, data,
# metrics JSONL, logs, /usr/bin/time -v reports, summary.json.
# Before each measurement it waits up to IDLE_WAIT_S (30) s for the CPUs to be idle, records how
# much CPU time other processes used during the run (a shared machine is noisy), and measures a
# run again (RETRIES, default 1, times, only in the first RETRY_UNTIL_S = 300 s) when they took
# more than 20% of a CPU.
# Configs: small (stories260k), medium (random Llama, 56M), gpt2 (random GPT-2 small, 124M) and
# vocab150k (Qwen2-0.5B's shape cut to 4 layers, 151,936-token vocabulary, batch 4: the memory
# case); the last two against transformers + PEFT only (peer_torch.py reimplements Llama).
# Knobs (environment): CONFIGS (default "small medium gpt2 vocab150k"); SMALL_STEPS (default 20),
# MEDIUM_STEPS (default 10) and LARGE_STEPS (default 4, gpt2 and vocab150k) timed steps per
# implementation, each after WARMUP_STEPS (2) untimed ones; keep the whole run under ~15 minutes
# on a 2-core machine by lowering steps, not shapes.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
out="$here/out"
raw="$out/raw"
py=/usr/bin/python3
# Every side runs with the glibc allocator settings that target/ptune's launcher sets for itself,
# and with one intra-op thread per CPU (ptune's default; PyTorch 2's; Debian's torch 1.13 would
# pick 1). The torch 1.13 peer also gets the OpenBLAS build ptune links (OpenMP, sharing that pool).
export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_ARENA_MAX=1 OMP_NUM_THREADS=$(nproc)
openmp_blas=/usr/lib/x86_64-linux-gnu/openblas-openmp
py_env=()
[[ -f "$openmp_blas/libopenblas.so.0" ]] && py_env=(env "LD_LIBRARY_PATH=$openmp_blas")
hf_py="${PEFT_PYTHON:-$root/target/peft-env/bin/python}"
ptune="$root/target/ptune"
alpaca="${ALPACA:-$root/../shared/data/alpaca_en/alpaca_data.json}"
small_steps=${SMALL_STEPS:-20}
medium_steps=${MEDIUM_STEPS:-10}
large_steps=${LARGE_STEPS:-4}
configs=${CONFIGS:-small medium gpt2 vocab150k}
warmup=${WARMUP_STEPS:-2}
batch=8
seq=256
virtual=20

die() { echo "bench/run.sh: $*" >&2; exit 1; }
busy_ticks() {  # CPU ticks spent by everything (all CPUs) since boot, idle and iowait excluded
    awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat
}
wait_idle() {  # wait up to IDLE_WAIT_S (default 30) s for a 2-s window with < 10% of the CPUs busy
    local deadline=$(( $(date +%s) + ${IDLE_WAIT_S:-30} )) a b
    while :; do
        a=$(busy_ticks); sleep 2; b=$(busy_ticks)
        (( (b - a) * 100 < 10 * 2 * hz * $(nproc) )) && return 0
        (( $(date +%s) >= deadline )) && { echo "bench/run.sh: machine still busy; measuring anyway" >&2; return 0; }
    done
}
hz=$(getconf CLK_TCK)

# ---- checks -------------------------------------------------------------------------------
[[ -x "$ptune" ]] || die "$ptune is missing: build first (cd $root && mvn -B -q -DskipTests package)"
if [[ ! -x /usr/bin/time ]]; then
    echo "bench/run.sh: /usr/bin/time missing; installing the Debian package 'time'" >&2
    if [[ $(id -u) -eq 0 ]]; then
        apt-get install -y -q time >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q time >/dev/null; }
    else
        sudo apt-get install -y -q time >/dev/null
    fi
    [[ -x /usr/bin/time ]] || die "could not install /usr/bin/time (apt-get install time)"
fi
"$py" -c "import torch, numpy" 2>/dev/null || die "$py cannot import torch and numpy (apt-get install python3-torch)"
[[ -f "$alpaca" ]] || die "$alpaca not found (set ALPACA=path/to/alpaca_data.json)"
[[ -f "$root/examples/stories260k/model.safetensors" ]] || die "examples/stories260k is missing"
if [[ ! -x "$hf_py" ]]; then
    echo "bench/run.sh: making the transformers + PEFT environment (toolchains/peft-env.sh)" >&2
    "$root/toolchains/peft-env.sh" "$root/target/peft-env" >&2 || true
fi
with_hf=0
"$hf_py" -c "import torch, transformers, peft" 2>/dev/null && with_hf=1

bench_start=$(date +%s)
mkdir -p "$out/models" "$raw"
rm -f "$raw"/*

# ptune builds before --log-every existed reject it; use it only where the CLI knows it.
log_every=()
notes=()
if "$ptune" train --help 2>&1 | grep -q -- '--log-every'; then
    log_every=(--log-every 1000)
else
    notes+=(--note "this ptune build has no --log-every, so the ptune commands ran without it (it logs one line per step at INFO; negligible next to a step)")
fi

# ---- models and data ----------------------------------------------------------------------
rm -rf "$out/models/small"
cp -r "$root/examples/stories260k" "$out/models/small"
"$py" "$here/make_model.py" "$out/models/medium" --hidden 512 --layers 8 --heads 8 --kv-heads 4 \
    --intermediate 1376 --vocab 32000 > "$raw/make_model_medium.json"
if [[ " $configs " == *" gpt2 "* ]]; then
    "$py" "$here/make_model.py" "$out/models/gpt2" --model-type gpt2 --hidden 768 --layers 12 --heads 12 \
        --intermediate 3072 --vocab 50257 > "$raw/make_model_gpt2.json"
fi
if [[ " $configs " == *" vocab150k "* ]]; then
    "$py" "$here/make_model.py" "$out/models/vocab150k" --model-type qwen2 --hidden 896 --layers 4 --heads 14 \
        --kv-heads 2 --intermediate 4864 --vocab 151936 --tie-word-embeddings > "$raw/make_model_vocab150k.json"
fi
"$py" "$here/make_data.py" "$alpaca" "$out/models/small/tokenizer.json" "$out/data.jsonl" \
    --examples 64 --tokens "$seq" > "$raw/make_data.json"

# The templated prompt of every example ("Human: <instruction>\n\nAssistant: ", BOS first) has no
# labels; ptune's fused loss runs the LM head only on labelled rows, so count them.
instruction=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["instruction"])' "$raw/make_data.json")
"$ptune" generate --model "$out/models/small" --prompt $'Human: '"$instruction"$'\n\nAssistant: ' \
    --max-new-tokens 1 --greedy --json 2>/dev/null | tail -n 1 > "$raw/prompt_ids.json"

# ---- machine ------------------------------------------------------------------------------
"${py_env[@]}" "$py" - > "$raw/machine.json" <<'EOF'
import ctypes, json, os, platform, subprocess, torch
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
try:
    lib = ctypes.CDLL("libopenblas.so.0")
    blas = lib.openblas_get_num_threads()
    blas_kind = {0: "sequential", 1: "pthreads", 2: "OpenMP"}.get(lib.openblas_get_parallel(), "?")
except OSError:
    blas, blas_kind = None, None
java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
print(json.dumps({"nproc": os.cpu_count(), "cpu": cpu, "torch": torch.__version__,
                  "torch_threads": torch.get_num_threads(), "openblas_threads": blas,
                  "openblas_parallel": blas_kind,
                  "kernel": platform.release(), "java": java,
                  "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}))
EOF
wait_idle
"${py_env[@]}" "$py" "$here/floor.py" sgemm > "$raw/sgemm.json"
# The same shapes on transformers' PyTorch wheel (its own BLAS, MKL on x86): shows whether the
# BLAS each side links decides a comparison.
if ((with_hf)); then
    "$hf_py" -c 'import json, re, torch; m = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show()); print(json.dumps({"torch": torch.__version__, "blas": m.group(1) if m else "?"}))' > "$raw/hf_blas.json"
    wait_idle
    "$hf_py" "$here/floor.py" sgemm > "$raw/sgemm_hf.json"
fi

# ---- runs ---------------------------------------------------------------------------------
: > "$raw/commands.txt"
record() {  # record NAME CMD...: time CMD with /usr/bin/time -v; log the load and the CPU others used
    local name=$1; shift
    printf '%s\t%s\n' "$name" "$*" >> "$raw/commands.txt"
    local attempt t0 t1 own
    for attempt in $(seq 0 "${RETRIES:-1}"); do
        wait_idle
        cut -d' ' -f1-3 /proc/loadavg > "$raw/$name.load_before"
        t0=$(busy_ticks); t1=$(date +%s%N)
        /usr/bin/time -v -o "$raw/$name.time" "$@" > "$raw/$name.stdout" 2> "$raw/$name.stderr" \
            || die "$name failed (exit $?); see $raw/$name.stderr"
        echo $(( $(busy_ticks) - t0 )) "$hz" > "$raw/$name.busy_ticks"
        cut -d' ' -f1-3 /proc/loadavg > "$raw/$name.load_after"
        echo "$attempt" > "$raw/$name.retries"
        # Other processes' CPU share during the run; rerun once (RETRIES) if they took > 20% of a CPU,
        # as long as the script has run less than RETRY_UNTIL_S (300) s, to stay near 10 minutes.
        (( attempt < ${RETRIES:-1} && $(date +%s) - bench_start < ${RETRY_UNTIL_S:-300} )) || break
        own=$(awk -F': ' '/User time|System time/{s+=$2} END{print s}' "$raw/$name.time")
        awk -v busy="$(cat "$raw/$name.busy_ticks")" -v own="$own" -v ns=$(( $(date +%s%N) - t1 )) \
            'BEGIN{split(busy, b, " "); exit !((b[1] / b[2] - own) / (ns / 1e9) > 0.2)}' || break
        echo "bench/run.sh: other processes competed during $name; measuring it again" >&2
    done
}

prompt_len=$("$py" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["prompt_ids"]))' "$raw/prompt_ids.json")
for model in $configs; do
    b=$batch torch_peer=1
    case $model in
        small) steps=$small_steps ;;
        medium) steps=$medium_steps ;;
        gpt2) steps=$large_steps torch_peer=0 ;;
        vocab150k) steps=$large_steps b=4 torch_peer=0 ;;
        *) die "CONFIGS: unknown config '$model' (small, medium, gpt2, vocab150k)" ;;
    esac
    dir="$out/models/$model"
    "$py" "$here/floor.py" flops --config "$dir/config.json" --batch-size "$b" --seq-len "$seq" \
        --virtual-tokens "$virtual" --label-rows $((b * (seq - prompt_len))) > "$raw/$model.flops.json"
    tmp=$(mktemp -d)
    record "$model.ptune" "$ptune" train --model "$dir" --data "$out/data.jsonl" --out "$tmp/adapter" \
        --virtual-tokens "$virtual" --batch-size "$b" --max-length "$seq" \
        --max-steps $((steps + warmup)) "${log_every[@]}" --metrics-out "$raw/$model.ptune.metrics.jsonl" \
        --lr 1e-2
    rm -rf "$tmp"
    if ((torch_peer)); then
        record "$model.peer" "${py_env[@]}" "$py" "$here/peer_torch.py" train --model "$dir" --batch-size "$b" \
            --seq-len "$seq" --virtual-tokens "$virtual" --steps "$steps" --warmup "$warmup"
    fi
    if ((with_hf)); then
        record "$model.hf" "$hf_py" "$here/peer_peft.py" --model "$dir" --batch-size "$b" \
            --seq-len "$seq" --virtual-tokens "$virtual" --steps "$steps" --warmup "$warmup"
    fi
done
((with_hf)) || notes+=(--note "transformers + PEFT were not available ($hf_py; toolchains/peft-env.sh failed), so that peer was not run")

# Where the peer's time goes: one profiled medium step (torch.autograd.profiler, self CPU time).
if [[ " $configs " == *" medium "* ]]; then
    wait_idle
    "${py_env[@]}" "$py" "$here/peer_torch.py" train --model "$out/models/medium" --batch-size "$batch" --seq-len "$seq" \
        --virtual-tokens "$virtual" --warmup 1 --profile > "$raw/medium.peer.profile.json"
fi

# ---- report -------------------------------------------------------------------------------
bench_end=$(date +%s)
"$py" "$here/report.py" --out "$out" --results "$here/RESULTS.md" --root "$root" --configs "$configs" \
    --batch-size "$batch" --seq-len "$seq" --virtual-tokens "$virtual" --warmup "$warmup" \
    --prompt-len "$prompt_len" --wall-s $((bench_end - bench_start)) "${notes[@]}"
# ---- generation ---------------------------------------------------------------------------
# Greedy decoding on the medium model against transformers + PEFT (bench/generate.sh writes
# bench/GENERATE.md); its table and reading are appended to RESULTS.md.
if ((with_hf)); then
    wait_idle
    "$here/generate.sh" > "$raw/generate.log" 2>&1 || die "bench/generate.sh failed; see $raw/generate.log"
    { echo; echo "## Generation"; echo; tail -n +3 "$here/GENERATE.md"; } >> "$here/RESULTS.md"
fi
echo "bench/run.sh: wrote $here/RESULTS.md in $(( $(date +%s) - bench_start )) s"
