#!/usr/bin/env python3
"""Writes a randomly initialised Llama in Hugging Face layout (config.json, model.safetensors,
tokenizer files) for benchmarks: throughput depends on shapes, not on trained values.

usage: make_model.py OUT_DIR --hidden 512 --layers 8 --heads 8 --kv-heads 4 --intermediate 1376 --vocab 32000
The tokenizer is stories260k's (ids < 512); the vocabulary size only sets the LM head's cost.
"""
import argparse
import json
import pathlib
import shutil
import struct

import torch


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        data = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
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
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=1376)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    C, I, V, H, G = a.hidden, a.intermediate, a.vocab, a.heads, a.kv_heads
    D = C // H
    std = 0.02
    t = {"model.embed_tokens.weight": torch.randn(V, C) * std, "model.norm.weight": torch.ones(C),
         "lm_head.weight": torch.randn(V, C) * std}
    for i in range(a.layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = torch.ones(C)
        t[p + "post_attention_layernorm.weight"] = torch.ones(C)
        t[p + "self_attn.q_proj.weight"] = torch.randn(H * D, C) * std
        t[p + "self_attn.k_proj.weight"] = torch.randn(G * D, C) * std
        t[p + "self_attn.v_proj.weight"] = torch.randn(G * D, C) * std
        t[p + "self_attn.o_proj.weight"] = torch.randn(C, H * D) * std
        t[p + "mlp.gate_proj.weight"] = torch.randn(I, C) * std
        t[p + "mlp.up_proj.weight"] = torch.randn(I, C) * std
        t[p + "mlp.down_proj.weight"] = torch.randn(C, I) * std
    write_safetensors(out / "model.safetensors", t)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": C,
              "intermediate_size": I, "num_hidden_layers": a.layers, "num_attention_heads": H,
              "num_key_value_heads": G, "head_dim": D, "vocab_size": V, "max_position_embeddings": 2048,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
              "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    src = pathlib.Path(__file__).resolve().parent.parent / "examples" / "stories260k"
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, out / name)
    n_params = sum(v.numel() for v in t.values())
    print(json.dumps({"dir": str(out), "parameters": n_params}))


if __name__ == "__main__":
    main()
