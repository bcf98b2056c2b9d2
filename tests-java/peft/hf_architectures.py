#!/usr/bin/env python3
"""Writes tiny random models of every architecture ptune reads, with transformers' own logits,
so that HfArchitecturesTest checks ptune against transformers itself (CI needs no Python):

    target/peft-env/bin/python tests-java/peft/hf_architectures.py [--shared ../shared]

For each case below, tests-java/resources/hf/<case>/ gets
- model/: the model as save_pretrained writes it (config.json, model.safetensors, ...) plus the
  stories260K tokenizer files (same 512-token vocabulary);
- prefix/: a PEFT prefix-tuning adapter for it (get_peft_model with a fixed seed, save_pretrained);
- logits.json: transformers' fp32 logits for INPUTS, bare ("bare") and through PeftModel with the
  prefix adapter ("prefix"), and the 12 tokens greedy generate() adds to each input ("greedy").

Weights are drawn at a scale that keeps logits O(1) (the default std 0.02 gives near-uniform
logits, which would make a 1e-4 comparison say little). Needs torch, transformers and peft
(toolchains/peft-env.sh).
"""
import argparse
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(REPO, "tests-java", "resources", "hf")

# Must match io.ptune.model.HfArchitecturesTest.INPUTS.
INPUTS = [[1, 45, 300, 7, 99, 12], [1, 260, 12]]

COMMON = dict(vocab_size=512, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=256,
              bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)


def cases():
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    return {
        # Qwen2: q/k/v projections with biases, o_proj without; rope_theta 1e6.
        "qwen2": (31, Qwen2Config(**COMMON, rope_theta=1000000.0, rms_norm_eps=1e-6)),
        # Mistral: head_dim given explicitly, sliding window longer than any input here.
        "mistral": (32, MistralConfig(**COMMON, head_dim=8, sliding_window=4096, rope_theta=10000.0)),
        # Sliding-window attention shorter than the inputs: every layer (Mistral), the layers from
        # max_window_layers on (Qwen2).
        "mistral_window": (34, MistralConfig(**COMMON, head_dim=8, sliding_window=3, rope_theta=10000.0)),
        "qwen2_window": (35, Qwen2Config(**COMMON, use_sliding_window=True, sliding_window=3, max_window_layers=1,
                                         rope_theta=10000.0)),
        # Rotary scaling: Llama 3.1's banded llama3 (one frequency in the blended band with head_dim 8)
        # and linear; inputs stay short, but the frequencies differ at every position.
        "llama3_rope": (36, LlamaConfig(**COMMON, rope_parameters={
            "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 512})),
        "linear_rope": (37, LlamaConfig(**COMMON, rope_parameters={"rope_type": "linear", "rope_theta": 10000.0,
                                                                   "factor": 4.0})),
        # Llama with attention_bias (q, k, v and o) and mlp_bias, tied embeddings.
        "llama_biases": (33, LlamaConfig(**dict(COMMON, tie_word_embeddings=True), attention_bias=True,
                                         mlp_bias=True, rope_theta=500000.0)),
    }


def randomise(model, seed):
    """Every weight ~ N(0, 0.3^2) scaled by fan-in for matrices; norms near 1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=generator))
            elif p.dim() == 2 and "embed_tokens" not in name:
                p.copy_(torch.randn(p.shape, generator=generator) / p.shape[1] ** 0.5)
            else:
                p.copy_(0.5 * torch.randn(p.shape, generator=generator))


def logits_of(model):
    out = []
    with torch.no_grad():
        for ids in INPUTS:
            input_ids = torch.tensor([ids])
            out.append(model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits[0].tolist())
    return out


def greedy_of(model):
    """Up to 12 greedy tokens after each input (generate with its KV cache; stops after EOS)."""
    out = []
    with torch.no_grad():
        for ids in INPUTS:
            input_ids = torch.tensor([ids])
            generated = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                       max_new_tokens=12, do_sample=False, pad_token_id=0)
            out.append(generated[0, len(ids):].tolist())
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=os.path.join(REPO, "..", "shared"))
    args = parser.parse_args()
    import peft
    import transformers
    from peft import PeftModel, PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    transformers.logging.set_verbosity_error()
    stories = os.path.join(args.shared, "models", "stories260k")
    os.chdir(REPO)  # adapter_config.json records a repository-relative base model path
    for name, (seed, config) in cases().items():
        case = os.path.join(OUT, name)
        model_dir = os.path.join(case, "model")
        shutil.rmtree(case, ignore_errors=True)
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        randomise(model, seed)
        model.eval()
        model.save_pretrained(os.path.relpath(model_dir, REPO), safe_serialization=True)
        for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copyfile(os.path.join(stories, f), os.path.join(model_dir, f))
        reloaded = AutoModelForCausalLM.from_pretrained(os.path.relpath(model_dir, REPO), dtype=torch.float32)
        reloaded.eval()
        bare = logits_of(reloaded)

        torch.manual_seed(seed + 100)
        prefix_model = get_peft_model(reloaded, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))
        with torch.no_grad():
            # Prefix values at the scale of the model's own keys and values, so they matter.
            emb = prefix_model.prompt_encoder["default"].embedding.weight
            emb.copy_(0.5 * torch.randn(emb.shape, generator=torch.Generator().manual_seed(seed + 200)))
        prefix_model.save_pretrained(os.path.relpath(os.path.join(case, "prefix"), REPO), safe_serialization=True)
        prefixed = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(os.path.relpath(model_dir, REPO), dtype=torch.float32),
            os.path.relpath(os.path.join(case, "prefix"), REPO))
        prefixed.eval()
        with open(os.path.join(case, "logits.json"), "w") as f:
            json.dump({"source": f"torch {torch.__version__}, transformers {transformers.__version__}, "
                                 f"peft {peft.__version__}; {type(reloaded).__name__}",
                       "inputs": INPUTS, "bare": bare, "prefix": logits_of(prefixed),
                       "greedy": greedy_of(reloaded)}, f, separators=(",", ":"))
            f.write("\n")
        print(f"{name}: {type(reloaded).__name__}, {sum(p.numel() for p in reloaded.parameters()):,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
