#!/usr/bin/env bash
# ptune demo on a real pretrained model: prompt-tune the shipped stories260k (frozen) so that
# its stories are about Max the dog, then compare generation before and after.
# Run from anywhere after `mvn -B -q -DskipTests package`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ptune="$root/target/ptune"
model="$root/examples/stories260k"
data="$root/examples/data/max_the_dog.json"
out="$root/target/demo"
[[ -x "$ptune" ]] || { echo "error: $ptune not found; run: mvn -B -q -DskipTests package" >&2; exit 1; }
rm -rf "$out" && mkdir -p "$out"
prompt=$'Human: Tell me a story.\n\nAssistant: '

echo "== Before: stories260k, greedy, no soft prompt"
"$ptune" generate --model "$model" --prompt "$prompt" --max-new-tokens 48 --greedy

echo
echo "== Training a 16-token soft prompt on 24 stories about Max (the 260k weights stay frozen)"
"$ptune" train --model "$model" --data "$data" --out "$out/adapter" \
    --virtual-tokens 16 --init vocab --lr 0.3 --epochs 30 --batch-size 8 \
    --seed 7 --metrics-out "$out/metrics.jsonl"

echo
echo "== After: same prompt, same greedy decoding, with the trained adapter"
"$ptune" generate --model "$model" --adapter "$out/adapter" --prompt "$prompt" --max-new-tokens 48 --greedy

echo
echo "Adapter, in PEFT's layout (adapter_config.json + adapter_model.safetensors):"
ls -l "$out/adapter"
first=$(head -n 1 "$out/metrics.jsonl"); last=$(tail -n 1 "$out/metrics.jsonl")
echo "first step: $first"
echo "last step:  $last"
