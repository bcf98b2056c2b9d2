#!/usr/bin/env bash
# Real accuracy of classification with prompts on frozen sentence encoders (bench/CLASSIFY.md):
# SST-2 dev (all 872 rows) with all-MiniLM-L6-v2 and bge-small-en-v1.5, and ChnSentiCorp
# (stratified 80/20, seed 0) with bge-small-zh-v1.5; for each: a linear probe on mean-pooled
# states, prompt tuning + linear head, P-tuning v2 (prefix) + linear head, prefix + soft verbalizer.
#
#   bench/classify.sh [sst2-train-examples] [chnsenticorp-train-examples]   (defaults 4000, 2000)
#
# Needs `mvn -B -q -DskipTests package` (target/ptune and the ONNX encoders unpacked into
# target/onnx-models) and ../shared/data. Writes bench/classify-runs/<config>.{log,metrics.jsonl}
# and bench/classify-runs/results.jsonl; bench/classify_report.py turns them into CLASSIFY.md.
# About 1 hour on 2 cores; run it on an idle machine (other processes distort the wall times).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
ptune="${PTUNE:-$root/target/ptune}"
data="${DATA:-$root/../shared/data}"
onnx="$root/target/onnx-models"
sst_n="${1:-4000}"
chn_n="${2:-2000}"
out="$here/classify-runs"
[[ -x "$ptune" ]] || { echo "bench/classify.sh: build first: mvn -B -q -DskipTests package" >&2; exit 1; }
[[ -d "$onnx" ]] || { echo "bench/classify.sh: $onnx is missing; build first" >&2; exit 1; }
mkdir -p "$out"
: > "$out/results.jsonl"

# run NAME DATASET MODEL-PATH ARGS...: trains, records wall time, parameters and the dev metrics.
run() {
    local name=$1 dataset=$2 model=$3
    shift 3
    local start end
    start=$(date +%s.%N)
    "$ptune" train --task classify --model "$model" --out "$out/$name" --metrics-out "$out/$name.metrics.jsonl" \
        --batch-size 32 --log-every 25 "$@" >"$out/$name.log" 2>&1 || { tail -5 "$out/$name.log" >&2; return 1; }
    end=$(date +%s.%N)
    python3 - "$name" "$dataset" "$model" "$out" "$start" "$end" "$*" <<'PY'
import json, re, sys
name, dataset, model, out, start, end, args = sys.argv[1:]
log = open(f"{out}/{name}.log").read()
summary = re.search(r"trained (\d+) steps \((\S+) head, ([^,]+), (\d+) trainable parameters\)", log)
loaded = re.search(r"\((bert), (\d+) layers, hidden (\d+), vocab (\d+)\)", log)
epochs = [json.loads(l) for l in open(f"{out}/{name}.metrics.jsonl") if '"epoch"' in l]
last = epochs[-1]
train_n = re.search(r"on (\d+) examples, (\d+) labels", log)
record = dict(name=name, dataset=dataset, model=model.rsplit("/", 1)[-1].replace(".onnx", ""),
              head=summary.group(2), prompt=summary.group(3), steps=int(summary.group(1)),
              trainable=int(summary.group(4)), train_examples=int(train_n.group(1)),
              layers=int(loaded.group(2)), hidden=int(loaded.group(3)), vocab=int(loaded.group(4)),
              dev_accuracy=last["dev_accuracy"], dev_macro_f1=last["dev_macro_f1"], dev_loss=last["dev_loss"],
              epochs=[dict(epoch=e["epoch"], dev_accuracy=e["dev_accuracy"], dev_loss=e["dev_loss"]) for e in epochs],
              wall_s=round(float(end) - float(start), 1), args=args)
open(f"{out}/results.jsonl", "a").write(json.dumps(record) + "\n")
print(f"{name}: dev accuracy {last['dev_accuracy']:.4f} macro-F1 {last['dev_macro_f1']:.4f}, "
      f"{record['trainable']} trainable, {record['wall_s']} s")
PY
}

sst=(--data "$data/sst2/train.tsv" --dev "$data/sst2/dev.tsv" --train-examples "$sst_n" --seed 0 --max-length 64)
for enc in all-minilm-l6-v2/all-minilm-l6-v2 bge-small-en-v15/bge-small-en-v1.5; do
    m="$onnx/$enc.onnx"
    tag=$(basename "$enc")
    run "sst2-$tag-probe" sst2 "$m" "${sst[@]}" --method none --pooling mean --epochs 4 --lr 1e-2
    run "sst2-$tag-prompt" sst2 "$m" "${sst[@]}" --method prompt-tuning --virtual-tokens 20 --pooling mean \
        --epochs 2 --lr 1e-2
    run "sst2-$tag-prefix" sst2 "$m" "${sst[@]}" --method prefix-tuning --virtual-tokens 16 --pooling mean \
        --epochs 2 --lr 1e-2
    run "sst2-$tag-softverb" sst2 "$m" "${sst[@]}" --method prefix-tuning --virtual-tokens 16 \
        --head soft-verbalizer --template "{text} It was {mask}." --verbalizer "0=terrible;1=great" \
        --epochs 2 --lr 1e-2
done

chn=(--data "$data/chnsenticorp/ChnSentiCorp_htl_all.csv" --dev-fraction 0.2 --seed 0 --train-examples "$chn_n"
     --max-length 128)
m="$onnx/bge-small-zh-v15/bge-small-zh-v1.5.onnx"
run chn-bge-small-zh-v1.5-probe chnsenticorp "$m" "${chn[@]}" --method none --pooling mean --epochs 4 --lr 1e-2
run chn-bge-small-zh-v1.5-prompt chnsenticorp "$m" "${chn[@]}" --method prompt-tuning --virtual-tokens 20 \
    --pooling mean --epochs 2 --lr 1e-2
run chn-bge-small-zh-v1.5-prefix chnsenticorp "$m" "${chn[@]}" --method prefix-tuning --virtual-tokens 16 \
    --pooling mean --epochs 2 --lr 1e-2
run chn-bge-small-zh-v1.5-softverb chnsenticorp "$m" "${chn[@]}" --method prefix-tuning --virtual-tokens 16 \
    --head soft-verbalizer --template "{text}总之，{mask}。" --verbalizer "0=差;1=好" --epochs 2 --lr 1e-2
echo "results in $out/results.jsonl; report: python3 bench/classify_report.py"
