#!/usr/bin/env bash
# Saving onto a full disk (FullDiskTest). Run as `unshare -m full-disk.sh tmpfs ...` where a
# private mount namespace is allowed: a 4 MiB tmpfs that is then filled to the last block gives a
# real ENOSPC. Elsewhere `full-disk.sh ulimit ...`: a file-size limit (EFBIG) stands in for it.
# Usage: full-disk.sh MODE WORK JAVA CLASSPATH MODEL DATA
# Writes into WORK: run-*.log and run-*.rc of each ptune run, and copies of what was on the
# "disk" before and after the failing saves.
set -u
mode=$1 work=$2 java=$3 cp=$4 model=$5 data=$6
disk="$work/disk"
mkdir -p "$disk"
if [[ "$mode" == tmpfs ]]; then
  mount -t tmpfs -o size=4m tmpfs "$disk" || exit 90
fi
limit=""  # ulimit -f for the ptune runs (KiB), in ulimit mode once the "disk" is full
ptune() {
  local name=$1; shift
  (
    [[ -n "$limit" ]] && ulimit -f "$limit"
    exec "$java" -XX:-UsePerfData -cp "$cp" io.ptune.cli.PtuneCli train --model "$model" --data "$data" \
        --method prefix-tuning --virtual-tokens 64 --max-steps 4 --batch-size 2 --max-length 48 \
        --threads 1 "$@"
  ) >"$work/run-$name.log" 2>&1
  echo $? >"$work/run-$name.rc"
}
# 1. A first run fits: an adapter and two checkpoints.
ptune first --out "$disk/adapter" --save-every 2 --keep-checkpoints 2
cp -r "$disk/adapter" "$work/adapter-before"
cp -r "$disk/adapter-checkpoints" "$work/checkpoints-before"
# 2. The disk fills up (or a file-size limit below the adapter's size).
if [[ "$mode" == tmpfs ]]; then
  dd if=/dev/zero of="$disk/filler" bs=4k >/dev/null 2>&1
else
  limit=64  # below the 80 KiB adapter_model.safetensors and 160 KiB optimizer.safetensors
fi
ptune adapter --out "$disk/adapter" --lr 0.5
ptune checkpoint --out "$disk/adapter" --lr 0.5 --save-every 2 --keep-checkpoints 2
ls -A "$disk" "$disk/adapter-checkpoints" >"$work/listing-after" 2>&1
cp -r "$disk/adapter" "$work/adapter-after"
cp -r "$disk/adapter-checkpoints" "$work/checkpoints-after"
if [[ "$mode" == tmpfs ]]; then
  umount "$disk"
fi
exit 0
