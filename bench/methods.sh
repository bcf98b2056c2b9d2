#!/usr/bin/env bash
# Held-out loss per prompt-learning method (prompt tuning, P-tuning MLP/LSTM, prefix tuning with
# and without projection, composite, dynamic, two-stage) on stories260K + a slice of alpaca_en;
# writes bench/METHODS.md. About 3.5 minutes on 2 cores.
#
#   bench/methods.sh [steps]      (default 120 steps per method)
#
# Needs the compiled classes (mvn -B -q -o -DskipTests package, which also compiles the test
# sources where io.ptune.bench.MethodsBench lives) and ../shared (models/stories260k,
# data/alpaca_en), or MODEL / ALPACA in the environment.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
model="${MODEL:-$root/../shared/models/stories260k}"
alpaca="${ALPACA:-$root/../shared/data/alpaca_en/alpaca_data.json}"
steps="${1:-120}"
for f in "$root/target/classes/io/ptune/prompt/PromptModule.class" \
         "$root/target/test-classes/io/ptune/bench/MethodsBench.class"; do
    [[ -f "$f" ]] || { echo "bench/methods.sh: $f is missing; build first: (cd $root && mvn -B -q -DskipTests package)" >&2; exit 1; }
done
[[ -d "$model" ]] || { echo "bench/methods.sh: model $model not found; set MODEL" >&2; exit 1; }
[[ -f "$alpaca" ]] || { echo "bench/methods.sh: $alpaca not found; set ALPACA" >&2; exit 1; }
exec java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -cp "$root/target/test-classes:$root/target/classes:$root/target/lib/*" \
    io.ptune.bench.MethodsBench "$model" "$alpaca" "$here/METHODS.md" "$steps"
