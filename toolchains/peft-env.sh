#!/usr/bin/env bash
# Makes a Python virtual environment with PyTorch, transformers and PEFT for the side-by-side
# comparison with PEFT (tests-java/peft/peft_compare.py). Neither the build nor the tests need it.
# Usage: toolchains/peft-env.sh [DIR]   (default target/peft-env; prints the python to use)
# Where this machine keeps wheels on disk (/opt/wheels, /opt/pypi*/files) only those are used;
# elsewhere pip's configured index is.
set -euo pipefail
env_dir="${1:-target/peft-env}"
requirements=("torch>=2.2" "transformers==5.17.0" "peft==0.21.0" "safetensors")
python3 -m venv "$env_dir"
sources=()
for dir in /opt/wheels /opt/pypi/files /opt/pypi-more/files; do
  [[ -d "$dir" ]] && sources+=(--find-links "$dir")
done
if ((${#sources[@]})); then
  "$env_dir/bin/pip" install -q --no-index "${sources[@]}" "${requirements[@]}"
else
  "$env_dir/bin/pip" install -q "${requirements[@]}"
fi
"$env_dir/bin/python" -c 'import torch, transformers, peft; print(f"peft-env: torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")'
echo "$env_dir/bin/python"
