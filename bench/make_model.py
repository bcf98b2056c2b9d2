#!/usr/bin/env python3
"""Writes a randomly initialised Llama, Qwen2 or GPT-2 in Hugging Face layout (config.json,
model.safetensors, tokenizer files) for benchmarks: throughput depends on shapes, not on trained
values.

usage: make_model.py OUT_DIR --hidden 512 --layers 8 --heads 8 --kv-heads 4 --intermediate 1376 --vocab 32000
       make_model.py OUT_DIR --model-type qwen2 --hidden 896 --layers 24 --heads 14 --kv-heads 2 \
           --intermediate 4864 --vocab 151936 --tie-word-embeddings --dtype bf16   (Qwen2-0.5B's shape)
       make_model.py OUT_DIR --model-type gpt2 --hidden 768 --layers 12 --heads 12 --intermediate 3072 \
           --vocab 50257   (GPT-2 small's shape, 124M parameters)
--model-type gpt2: GPT-2's layout (Conv1D weights stored (in, out), fused c_attn, learned positions,
LayerNorm with biases, gelu_new, head tied to wte; --kv-heads, --head-dim and --tie-word-embeddings
do not apply).
--model-type qwen2: q/k/v projection biases, model_type qwen2, rope_theta 1e6, rms_norm_eps 1e-6
(Qwen2's config). --tie-word-embeddings: no lm_head.weight, the head reuses the embedding table.
--dtype bf16 saves the weights as BF16 (half the file). The tokenizer is stories260k's
(ids < 512); the vocabulary size only sets the embedding's and the LM head's cost.
Runs with torch 1.13 and 2.x (bf16 is written through an int16 view: numpy has no bfloat16).
"""
import argparse
import json
import pathlib
import shutil
import struct

import torch

GPT2_POSITIONS = 1024
SAFETENSORS_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16"}


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        t = t.contiguous()
        raw_t = t.view(torch.int16) if t.dtype == torch.bfloat16 else t
        data = raw_t.numpy().tobytes()
        header[name] = {"dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # keep the data 8-byte aligned, as safetensors does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--model-type", choices=("llama", "qwen2", "gpt2"), default="llama")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=None, help="default hidden / heads")
    ap.add_argument("--intermediate", type=int, default=1376)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--tie-word-embeddings", action="store_true")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="dtype of the saved weights")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    std = 0.02

    def randn(*shape):  # drawn in fp32 (the same values for either --dtype), stored in dtype
        return (torch.randn(*shape) * std).to(dtype)

    def ones(n):
        return torch.ones(n, dtype=dtype)

    if a.model_type == "gpt2":
        t, config = gpt2_tensors(a, randn, ones), gpt2_config(a)
    else:
        t, config = llama_tensors(a, randn, ones), llama_config(a)
    config.update({"bos_token_id": 1, "eos_token_id": 2,  # stories260k's tokenizer
                   "torch_dtype": {"fp32": "float32", "bf16": "bfloat16"}[a.dtype]})
    write_safetensors(out / "model.safetensors", t)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    src = pathlib.Path(__file__).resolve().parent.parent / "examples" / "stories260k"
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, out / name)
    n_params = sum(v.numel() for v in t.values())
    print(json.dumps({"dir": str(out), "model_type": a.model_type, "dtype": a.dtype, "parameters": n_params}))


def llama_tensors(a, randn, ones):
    C, I, V, H, G = a.hidden, a.intermediate, a.vocab, a.heads, a.kv_heads
    D = a.head_dim or C // H
    t = {"model.embed_tokens.weight": randn(V, C), "model.norm.weight": ones(C)}
    if not a.tie_word_embeddings:
        t["lm_head.weight"] = randn(V, C)
    for i in range(a.layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = ones(C)
        t[p + "post_attention_layernorm.weight"] = ones(C)
        t[p + "self_attn.q_proj.weight"] = randn(H * D, C)
        t[p + "self_attn.k_proj.weight"] = randn(G * D, C)
        t[p + "self_attn.v_proj.weight"] = randn(G * D, C)
        if a.model_type == "qwen2":  # Qwen2: biases on q, k and v (not o), by construction
            t[p + "self_attn.q_proj.bias"] = randn(H * D)
            t[p + "self_attn.k_proj.bias"] = randn(G * D)
            t[p + "self_attn.v_proj.bias"] = randn(G * D)
        t[p + "self_attn.o_proj.weight"] = randn(C, H * D)
        t[p + "mlp.gate_proj.weight"] = randn(I, C)
        t[p + "mlp.up_proj.weight"] = randn(I, C)
        t[p + "mlp.down_proj.weight"] = randn(C, I)
    return t


def llama_config(a):
    qwen2 = a.model_type == "qwen2"
    config = {"architectures": ["Qwen2ForCausalLM" if qwen2 else "LlamaForCausalLM"],
              "model_type": a.model_type, "hidden_size": a.hidden, "intermediate_size": a.intermediate,
              "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
              "num_key_value_heads": a.kv_heads, "head_dim": a.head_dim or a.hidden // a.heads,
              "vocab_size": a.vocab, "max_position_embeddings": 32768 if qwen2 else 2048,
              "rms_norm_eps": 1e-6 if qwen2 else 1e-5, "rope_theta": 1000000.0 if qwen2 else 10000.0,
              "hidden_act": "silu", "tie_word_embeddings": a.tie_word_embeddings}
    if qwen2:
        config.update({"use_sliding_window": False, "sliding_window": None, "max_window_layers": a.layers,
                       "attention_dropout": 0.0})
    return config


def gpt2_tensors(a, randn, ones):
    C, I, V = a.hidden, a.intermediate, a.vocab

    def zeros(n):
        return ones(n) * 0

    t = {"transformer.wte.weight": randn(V, C), "transformer.wpe.weight": randn(GPT2_POSITIONS, C),
         "transformer.ln_f.weight": ones(C), "transformer.ln_f.bias": zeros(C)}
    for i in range(a.layers):
        p = f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            t[p + ln + ".weight"], t[p + ln + ".bias"] = ones(C), zeros(C)
        # Conv1D stores its weight (in, out)
        t[p + "attn.c_attn.weight"], t[p + "attn.c_attn.bias"] = randn(C, 3 * C), randn(3 * C)
        t[p + "attn.c_proj.weight"], t[p + "attn.c_proj.bias"] = randn(C, C), randn(C)
        t[p + "mlp.c_fc.weight"], t[p + "mlp.c_fc.bias"] = randn(C, I), randn(I)
        t[p + "mlp.c_proj.weight"], t[p + "mlp.c_proj.bias"] = randn(I, C), randn(C)
    return t


def gpt2_config(a):
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": a.hidden,
            "n_inner": a.intermediate, "n_layer": a.layers, "n_head": a.heads, "vocab_size": a.vocab,
            "n_positions": GPT2_POSITIONS, "n_ctx": GPT2_POSITIONS, "layer_norm_epsilon": 1e-5,
            "activation_function": "gelu_new", "tie_word_embeddings": True,
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}

if __name__ == "__main__":
    main()
