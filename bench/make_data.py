#!/usr/bin/env python3
"""Writes benchmark training data: Alpaca-style JSONL whose every example fills --max-length tokens.

usage: make_data.py ALPACA_JSON TOKENIZER_JSON OUT_JSONL [--examples 64] [--tokens 256]
Every example has the same short instruction (so the templated prompt has one known length) and
an output made of consecutive Alpaca outputs concatenated until it is long enough to give at
least --tokens tokens whatever the tokenizer does: --tokens x the most characters any one
vocabulary entry covers (a BPE token never covers more text than its longest vocabulary entry;
byte-fallback tokens cover less). ptune then cuts every sequence at --max-length, so every row of
every batch is full: no padding, B x max_length tokens a step.
"""
import argparse
import json

INSTRUCTION = "Continue the text."


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("alpaca")
    ap.add_argument("tokenizer")
    ap.add_argument("out")
    ap.add_argument("--examples", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--instruction", default=INSTRUCTION)
    a = ap.parse_args()
    vocab = json.load(open(a.tokenizer, encoding="utf-8"))["model"]["vocab"]
    longest = max(len(piece.replace("\u2581", " ")) for piece in vocab)
    chars = a.tokens * longest + 16
    data = json.load(open(a.alpaca, encoding="utf-8"))
    outputs = iter(d["output"] for d in data if len(d["output"]) > 100)
    with open(a.out, "w", encoding="utf-8") as f:
        for _ in range(a.examples):
            text = ""
            while len(text) < chars:
                text += next(outputs) + "\n\n"
            row = {"instruction": a.instruction, "input": "", "output": text.strip()}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(json.dumps({"out": a.out, "examples": a.examples, "instruction": a.instruction,
                      "longest_vocab_entry_chars": longest, "min_output_chars": chars}))


if __name__ == "__main__":
    main()
