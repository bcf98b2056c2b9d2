#!/usr/bin/env python3
"""Writes the tiny random Llama the PEFT comparison uses: tests-java/resources/peft/tiny-llama/.

A LlamaForCausalLM with grouped-query attention (hidden 64, 4 layers, 8 query heads, 4 key/value
heads, head_dim 8, vocab 512, untied LM head), in exactly the layout transformers'
save_pretrained writes (config.json, generation_config.json, model.safetensors with F32 tensors
and {"format": "pt"} metadata) plus the stories260K tokenizer files (same 512-token vocabulary),
so that both `Model.load` and `LlamaForCausalLM.from_pretrained` read it.

Needs only numpy (no transformers, no safetensors package): the safetensors file is written by
hand. Weights are drawn with a fixed seed at a scale that keeps activations and logits O(1), so
logit comparisons at 1e-4 are meaningful (HF's default std 0.02 would give near-uniform logits).

    python3 tests-java/peft/make_tiny_llama.py [--shared ../shared]
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "resources", "peft", "tiny-llama")

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "head_dim": 8,
    "hidden_act": "silu",
    "hidden_size": 64,
    "initializer_range": 0.02,
    "intermediate_size": 96,
    "max_position_embeddings": 256,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 8,
    "num_hidden_layers": 4,
    "num_key_value_heads": 4,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
    "transformers_version": "4.46.0",
    "use_cache": True,
    "vocab_size": 512,
}


def write_safetensors(path, tensors):
    """tensors: ordered dict name -> float32 ndarray. Header padded with spaces to 8 bytes."""
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, array in tensors.items():
        nbytes = array.size * 4
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for array in tensors.values():
            f.write(np.ascontiguousarray(array, dtype="<f4").tobytes())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=os.path.join(HERE, "..", "..", "..", "shared"),
                        help="the shared folder holding models/stories260k (for the tokenizer files)")
    args = parser.parse_args()
    c = CONFIG
    C, L, H, G, D = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    I, V = c["intermediate_size"], c["vocab_size"]
    rng = np.random.default_rng(20261126)

    def linear(out_features, in_features):
        # (out, in) as nn.Linear stores it; std 1/sqrt(in) keeps activations O(1).
        return (rng.standard_normal((out_features, in_features)) / np.sqrt(in_features)).astype(np.float32)

    def norm():
        return (1.0 + 0.1 * rng.standard_normal(C)).astype(np.float32)

    tensors = {"model.embed_tokens.weight": rng.standard_normal((V, C)).astype(np.float32)}
    for i in range(L):
        p = f"model.layers.{i}."
        tensors[p + "input_layernorm.weight"] = norm()
        tensors[p + "self_attn.q_proj.weight"] = linear(H * D, C)
        tensors[p + "self_attn.k_proj.weight"] = linear(G * D, C)
        tensors[p + "self_attn.v_proj.weight"] = linear(G * D, C)
        tensors[p + "self_attn.o_proj.weight"] = linear(C, H * D)
        tensors[p + "post_attention_layernorm.weight"] = norm()
        tensors[p + "mlp.gate_proj.weight"] = linear(I, C)
        tensors[p + "mlp.up_proj.weight"] = linear(I, C)
        tensors[p + "mlp.down_proj.weight"] = linear(C, I)
    tensors["model.norm.weight"] = norm()
    tensors["lm_head.weight"] = linear(V, C)
    # save_pretrained writes tensors sorted by name.
    tensors = dict(sorted(tensors.items()))

    os.makedirs(OUT, exist_ok=True)
    write_safetensors(os.path.join(OUT, "model.safetensors"), tensors)
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(OUT, "generation_config.json"), "w") as f:
        json.dump({"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2,
                   "transformers_version": c["transformers_version"]}, f, indent=2)
        f.write("\n")
    tokenizer_dir = os.path.join(args.shared, "models", "stories260k")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(os.path.join(tokenizer_dir, name), os.path.join(OUT, name))
    total = sum(t.size for t in tensors.values())
    print(f"wrote {OUT}: {len(tensors)} tensors, {total} parameters")


if __name__ == "__main__":
    main()
