#!/usr/bin/env bash
# Load test of `ptune serve` on loopback (bench/SERVE.md): the shipped stories260k model with four
# adapters (prompt tuning, P-tuning, prefix tuning, dynamic; 3 training steps each), a closed-loop
# load generator (io.ptune.bench.ServeLoad: CONCURRENCY clients, REQUESTS greedy requests of
# NEW_TOKENS new tokens), with continuous batching on (--max-batch 16 --max-wait-ms 10) and off
# (--no-batching), for 1 adapter and for 4 adapters round-robin. Bounded: every load run stops after
# MAX_SECONDS, the whole script takes well under 2 minutes on 2 cores.
#
#   bench/serve.sh [REQUESTS] [CONCURRENCY] [NEW_TOKENS]     (defaults 200, 16, 32)
#
# Needs `mvn -B -q -DskipTests package` (target/ptune, target/test-classes). Writes bench/SERVE.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
ptune="${PTUNE:-$root/target/ptune}"
model="$root/examples/stories260k"
data="$root/examples/data/max_the_dog.json"
requests="${1:-200}" concurrency="${2:-16}" new_tokens="${3:-32}" max_seconds=20
cp="$root/target/test-classes:$root/target/classes:$root/target/lib/*"
[[ -x "$ptune" && -f "$root/target/test-classes/io/ptune/bench/ServeLoad.class" ]] \
    || { echo "bench/serve.sh: build first: mvn -B -q -DskipTests package" >&2; exit 1; }
work=$(mktemp -d)
server_pid=
cleanup() {
    [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
start_all=$(date +%s)

# Four small adapters, trained a few steps each (the load does not depend on how well they are trained).
train() {
    local name=$1
    shift
    "$ptune" train --model "$model" --data "$data" --out "$work/$name" --max-steps 3 --batch-size 4 --lr 0.02 \
        --threads 1 "$@" >"$work/$name.log" 2>&1 || { tail -5 "$work/$name.log" >&2; exit 1; }
}
train prompt --method prompt-tuning --virtual-tokens 8 &
train ptuning --method p-tuning --virtual-tokens 6 --encoder mlp --encoder-hidden-size 32 &
wait
train prefix --method prefix-tuning --virtual-tokens 10 &
train dynamic --method dynamic --virtual-tokens 4 --generator-hidden-size 16 &
wait
adapters="prompt=$work/prompt,ptuning=$work/ptuning,prefix=$work/prefix,dynamic=$work/dynamic"

# serve FLAGS...: starts the server on a free port, waits for /health; sets $url and $server_pid.
serve() {
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
        || echo $((20000 + RANDOM % 20000)))
    "$ptune" serve --model "$model" --adapters "$adapters" --port "$port" --queue 512 "$@" >"$work/serve.log" 2>&1 &
    server_pid=$!
    url="http://127.0.0.1:$port"
    for _ in $(seq 1 200); do
        curl -sf "$url/health" >/dev/null 2>&1 && return 0
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "bench/serve.sh: the server did not come up" >&2
    cat "$work/serve.log" >&2
    exit 1
}
stop() {
    kill "$server_pid"  # SIGTERM: graceful shutdown
    wait "$server_pid" || true
    server_pid=
}

rows=()
for mode in on off; do
    if [[ $mode == on ]]; then serve --max-batch 16 --max-wait-ms 10; else serve --no-batching; fi
    for set in "prompt" "prompt,ptuning,prefix,dynamic"; do
        before=$(curl -sf "$url/health")
        line=$(java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$cp" io.ptune.bench.ServeLoad "$url" \
            "$requests" "$concurrency" "$new_tokens" "$max_seconds" "$set" | tail -n 1)
        health=$(curl -sf "$url/health")
        echo "batching $mode, adapters $set: $line (server: $health)" >&2
        rows+=("$mode" "$set" "$line" "$before" "$health")
    done
    stop
done
elapsed=$(( $(date +%s) - start_all ))

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
cores=$(nproc)
load=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$here/SERVE.md" "$cpu" "$cores" "$load" "$elapsed" "$requests" "$concurrency" "$new_tokens" "${rows[@]}" <<'PY'
import json, sys
out, cpu, cores, load, elapsed, requests, concurrency, new_tokens, *rows = sys.argv[1:]
lines = [
    "# Serving many adapters on one model: load test",
    "",
    "Written by `bench/serve.sh " + " ".join([requests, concurrency, new_tokens]) + "` (loopback only). The shipped",
    "stories260k model (260K parameters, fp32 on CPU) with four adapters trained 3 steps each",
    "(prompt tuning 8 virtual tokens, P-tuning MLP 6, prefix tuning 10, dynamic 4). A closed-loop",
    f"load generator (`io.ptune.bench.ServeLoad`) keeps {concurrency} requests in flight and sends {requests}",
    f"greedy `POST /v1/generate` requests of {new_tokens} new tokens (after {concurrency} untimed warm-up",
    "requests), round-robin over the adapters of the row and five prompts of 4-9 tokens.",
    "Batching on: `ptune serve --max-batch 16 --max-wait-ms 10`, step-level continuous batching (a",
    "request joins the running batch at the next decoding step and leaves it when done); off:",
    "`--no-batching` (one request at a time). Latency is measured by the client, from sending to",
    "the whole answer; the client JVM runs on the same cores as the server.",
    "",
    f"Machine: {cpu}, {cores} cores; load average at the end {load} (1, 5, 15 min); the whole",
    f"script took {elapsed} s.",
    "",
    "| batching | adapters | requests | errors | requests/s | p50 ms | p99 ms | mean batch |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
]
for i in range(0, len(rows), 5):
    mode, adapters, line, before, health = rows[i:i + 5]
    r, b, h = json.loads(line), json.loads(before), json.loads(health)
    n = len(adapters.split(","))
    mean = (h["step_rows"] - b["step_rows"]) / max(1, h["decoding_steps"] - b["decoding_steps"])
    lines.append(f"| {mode} | {n} ({adapters}) | {r['requests']} | {r['errors']} | {r['rps']:.1f} | "
                 f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {mean:.1f} |")
lines += ["", "`mean batch`: requests per decoding step during the run (warm-up included), from the",
          "server's /health counters (`step_rows` / `decoding_steps`).", ""]
if float(load.split()[0]) > int(cores):
    lines += ["The machine was shared with other jobs (load average above its core count while this ran):",
              "these numbers were taken under load and are noisy; rerun on an idle machine to compare.", ""]
open(out, "w").write("\n".join(lines))
print("\n".join(lines))
PY
