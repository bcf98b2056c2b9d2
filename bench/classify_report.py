#!/usr/bin/env python3
"""Tables for bench/CLASSIFY.md from bench/classify-runs/results.jsonl (written by bench/classify.sh).

    python3 bench/classify_report.py [results.jsonl]

Prints one Markdown table per data set and encoder: trainable parameters (and their share of
the encoder's, which full fine-tuning trains), dev accuracy and macro-F1 after the last epoch,
the dev accuracy after each epoch, and the wall time of the run (training plus the per-epoch
dev evaluation). Plain Python 3, no packages.
"""
import json
import os
import sys

NAMES = {"probe": "linear probe (mean-pooled, no prompt)", "prompt": "prompt tuning (20) + linear head",
         "prefix": "P-tuning v2 (prefix 16) + linear head", "softverb": "prefix 16 + soft verbalizer"}


def encoder_parameters(r):
    """BERT encoder + pooler + 2-class head: intermediate 4C, 512 positions, 2 token types (as the
    configs of all-MiniLM-L6-v2, bge-small-en-v1.5 and bge-small-zh-v1.5 say)."""
    c, layers, vocab = r["hidden"], r["layers"], r["vocab"]
    inter = 4 * c
    embeddings = (vocab + 512 + 2) * c + 2 * c
    layer = 4 * (c * c + c) + 2 * c + (c * inter + inter) + (inter * c + c) + 2 * c
    return embeddings + layers * layer + (c * c + c) + (2 * c + 2)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "classify-runs",
                                                                "results.jsonl")
    runs = [json.loads(line) for line in open(path) if line.strip()]
    groups = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["model"]), []).append(r)
    for (dataset, model), rows in groups.items():
        full = encoder_parameters(rows[0])
        print(f"### {dataset}, frozen {model} ({rows[0]['layers']} layers, hidden {rows[0]['hidden']}; "
              f"full fine-tuning trains ≈{full / 1e6:.1f} M parameters)\n")
        print("| configuration | trainable parameters | share of fine-tuning | train examples × epochs | "
              "dev accuracy | dev macro-F1 | dev accuracy per epoch | wall time |")
        print("|---|---:|---:|---:|---:|---:|---|---:|")
        for r in rows:
            kind = r["name"].rsplit("-", 1)[-1]
            per_epoch = " → ".join(f"{e['dev_accuracy'] * 100:.1f}" for e in r["epochs"])
            print(f"| {NAMES.get(kind, kind)} | {r['trainable']:,} | {100 * r['trainable'] / full:.2f}% | "
                  f"{r['train_examples']} × {len(r['epochs'])} | **{r['dev_accuracy'] * 100:.1f}** | "
                  f"{r['dev_macro_f1'] * 100:.1f} | {per_epoch} | {r['wall_s'] / 60:.1f} min |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
