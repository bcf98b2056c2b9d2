#!/usr/bin/env python3
"""The FLOP floor of a prompt-tuning step, and this machine's fp32 matmul rate.

  floor.py sgemm [--seconds 2] [--repeats 5]
      times torch fp32 matmuls (the same Debian libtorch 1.13 + OpenBLAS that ptune links) and
      prints {"rate_flops": median over repeats of the representative shape, "shapes": [...]}
  floor.py flops --config DIR/config.json --batch-size 8 --seq-len 256 --virtual-tokens 20
                 [--label-rows R]
      prints the parameter counts and FLOPs of one step (formulas below)

Cost model (frozen weights, gradient only for the prompt):
  N_body = per layer q, k, v, o projections + gate, up, down = L * (2*C*H*D + 2*C*G*D + 3*C*I)
    (GPT-2: c_attn, c_proj, c_fc, mlp.c_proj = L * (4*C*C + 2*C*I))
  N_head = V * C (the LM head; the embedding lookup is not a matmul and is not counted)
  S = virtual tokens + sequence length (every position runs through every layer)
  linear layers: forward 2 FLOPs per weight, input gradient 2 more -> 4 N per position
  attention (full S x S score matrix, which is what both implementations compute, no causal
    skipping): forward QK^T + PV = 4*S*H*D per position and layer, backward dQ, dK, dP, dV
    = 8*S*H*D -> 12 * L * S * H * D per position
  dense step FLOPs = B * S * (4 * (N_body + N_head) + 12 * L * S * H * D)
    (the LM head on every position: what an eager HF/PEFT step does)
  label-rows step FLOPs = B * S * (4 * N_body + 12 * L * S * H * D) + 4 * N_head * R
    (the LM head only on the R rows that carry a label: the least work the task needs)
  floor tokens/s = rate * B * seq_len / step FLOPs  (tokens = real input tokens, the unit both
    implementations report; the virtual positions are work, not tokens)
"""
import argparse
import json
import statistics
import time

import torch


def sgemm(a):
    # the representative MLP shape first (it sets the floor), then the down projection, and the
    # LM head as ptune's chunked loss (262 rows) and as an eager step (all 2208 rows) run it
    shapes = [(2048, 512, 1376), (2048, 1376, 512), (262, 512, 32000), (2208, 512, 32000)]
    budget = a.seconds / (len(shapes) * a.repeats)
    # Warm up first (OpenMP threads started, clocks up, pages touched): without this the first
    # shape's first repeats ran at a third of its rate and set a floor that was too low.
    x, w = torch.randn(shapes[0][0], shapes[0][1]), torch.randn(shapes[0][2], shapes[0][1])
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.5:
        x @ w.t()
    out = []
    for m, k, n in shapes:
        x, w = torch.randn(m, k), torch.randn(n, k)  # weights stored (out, in), as nn.Linear does
        x @ w.t()
        rates = []
        for _ in range(a.repeats):
            iters, t0 = 0, time.perf_counter()
            while iters == 0 or time.perf_counter() - t0 < budget:
                x @ w.t()
                iters += 1
            rates.append(2.0 * m * k * n * iters / (time.perf_counter() - t0))
        out.append({"m": m, "k": k, "n": n, "rate_flops_median": statistics.median(rates),
                    "rate_flops_max": max(rates), "rate_flops_min": min(rates)})
    print(json.dumps({"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                      "rate_flops": out[0]["rate_flops_median"], "shapes": out}))


def flops(a):
    c = json.load(open(a.config))
    if c.get("model_type") == "gpt2":  # c_attn (q, k, v), c_proj, c_fc, mlp.c_proj; head tied to wte
        C, L, V, H = c["n_embd"], c["n_layer"], c["vocab_size"], c["n_head"]
        I = c.get("n_inner") or 4 * C
        D = C // H
        n_body = L * (4 * C * C + 2 * C * I)
        tied = True
        # LayerNorm weights and biases, the linear layers' biases, wpe
        norms = L * 4 * C + 2 * C + L * (5 * C + I) + c.get("n_positions", 1024) * C
    else:
        C, L, I, V = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"], c["vocab_size"]
        H = c["num_attention_heads"]
        G = c.get("num_key_value_heads", H)
        D = c.get("head_dim", C // H)
        n_body = L * (2 * C * H * D + 2 * C * G * D + 3 * C * I)
        tied = c.get("tie_word_embeddings", False)
        norms = L * 2 * C + C
    n_head = V * C
    n_embed = V * C
    S = a.virtual_tokens + a.seq_len
    B = a.batch_size
    attn = 12 * L * S * H * D
    dense = B * S * (4 * (n_body + n_head) + attn)
    rows = a.label_rows if a.label_rows is not None else B * a.seq_len
    label_rows = B * S * (4 * n_body + attn) + 4 * n_head * rows
    print(json.dumps({"params_total": n_body + n_embed + (0 if tied else n_head) + norms,
                      "params_matmul": n_body + n_head, "params_body": n_body, "params_head": n_head,
                      "positions_per_row": S, "tokens_per_step": B * a.seq_len,
                      "attention_flops_per_position": attn,
                      "step_flops_dense": dense, "step_flops_label_rows": label_rows,
                      "label_rows": rows}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sgemm")
    s.add_argument("--seconds", type=float, default=6.0)
    s.add_argument("--repeats", type=int, default=5)
    f = sub.add_parser("flops")
    f.add_argument("--config", required=True)
    f.add_argument("--batch-size", type=int, default=8)
    f.add_argument("--seq-len", type=int, default=256)
    f.add_argument("--virtual-tokens", type=int, default=20)
    f.add_argument("--label-rows", type=int)
    a = ap.parse_args()
    sgemm(a) if a.cmd == "sgemm" else flops(a)


if __name__ == "__main__":
    main()
