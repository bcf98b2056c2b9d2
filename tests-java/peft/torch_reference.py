#!/usr/bin/env python3
"""Independent reference logits for ptune's adapters on the tiny GQA Llama, in plain PyTorch.

No transformers, no PEFT, no ptune code: a float64 re-implementation of Hugging Face's
LlamaForCausalLM forward (RMSNorm, rotate-half rotary embeddings, grouped-query attention, SiLU
MLP, untied LM head) and of what PEFT does with each adapter type at inference:

  PROMPT_TUNING / P_TUNING  prompt_embeddings (n, C) prepended to the token embeddings; the
                            sequence takes positions 0 .. n+T-1 (PEFT: inputs_embeds + mask)
  PREFIX_TUNING             prompt_embeddings (n, 2*L*token_dim) viewed as
                            (n, 2L, kv_heads, head_dim).permute -> per layer keys [0] and values
                            [1], placed in the KV cache unrotated; the text takes positions n ..
                            n+T-1 and attends to every prefix position (PEFT: past_key_values +
                            mask of ones)
  PTUNE_DYNAMIC_PROMPT      P_x = E + W2 tanh(W1 mean(E(x)) + b1) + b2 (ptune's own method)
  ptune_layers.safetensors  replaces the named layer weights (stage 2)

It also recomputes, with torch.nn modules, what the extra files claim: the P-tuning encoder
(nn.Sequential MLP or nn.LSTM bidirectional + MLP head, as peft/tuners/p_tuning/model.py builds
it) and the prefix projection (Linear, Tanh, Linear) must reproduce the saved prompt_embeddings.

For every tests-java/resources/peft/ours/<case>/ it writes reference_logits.json (same format as
expected_logits.json) and prints the largest difference to ptune's logits. Runs here (torch 1.13 +
numpy are enough):

    /usr/bin/python3 tests-java/peft/torch_reference.py
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "resources", "peft")
DT = torch.float64


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (path, name, info["dtype"])
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype="<f4").reshape(info["shape"])
        out[name] = torch.tensor(array.copy(), dtype=DT)
    return out


class TinyLlama:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = json.load(f)
        self.w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        c = self.cfg
        self.C, self.L = c["hidden_size"], c["num_hidden_layers"]
        self.H, self.G, self.D = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        self.eps, self.theta = c["rms_norm_eps"], c["rope_theta"]

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, positions):
        # x (heads, S, D); HF rotate_half with cos/sin of (S, D) = cat(freqs, freqs).
        inv = 1.0 / (self.theta ** (torch.arange(0, self.D, 2, dtype=DT) / self.D))
        freqs = positions.to(DT)[:, None] * inv[None, :]
        emb = torch.cat([freqs, freqs], -1)
        cos, sin = emb.cos(), emb.sin()
        half = self.D // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
        return x * cos + rotated * sin

    def forward(self, embeds, positions, prefix=None, weights=None):
        """embeds (S, C); positions (S); prefix: per layer (keys (G, P, D), values (G, P, D))."""
        w = dict(self.w)
        if weights:
            w.update(weights)
        S = embeds.shape[0]
        x = embeds
        for i in range(self.L):
            p = f"model.layers.{i}."
            h = self.rms(x, w[p + "input_layernorm.weight"])
            q = (h @ w[p + "self_attn.q_proj.weight"].T).view(S, self.H, self.D).transpose(0, 1)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).view(S, self.G, self.D).transpose(0, 1)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).view(S, self.G, self.D).transpose(0, 1)
            q, k = self.rope(q, positions), self.rope(k, positions)
            P = 0
            if prefix is not None:
                pk, pv = prefix[i]
                P = pk.shape[1]
                k, v = torch.cat([pk, k], 1), torch.cat([pv, v], 1)
            rep = self.H // self.G
            k, v = k.repeat_interleave(rep, 0), v.repeat_interleave(rep, 0)
            scores = q @ k.transpose(1, 2) / math.sqrt(self.D)  # (H, S, P+S)
            mask = torch.ones(S, P + S, dtype=torch.bool)
            mask[:, P:] = torch.tril(torch.ones(S, S, dtype=torch.bool))
            scores = scores.masked_fill(~mask, float("-inf"))
            attn = torch.softmax(scores, -1) @ v  # (H, S, D)
            x = x + attn.transpose(0, 1).reshape(S, self.H * self.D) @ w[p + "self_attn.o_proj.weight"].T
            h = self.rms(x, w[p + "post_attention_layernorm.weight"])
            gate = h @ w[p + "mlp.gate_proj.weight"].T
            up = h @ w[p + "mlp.up_proj.weight"].T
            x = x + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
        x = self.rms(x, w["model.norm.weight"])
        return x @ w["lm_head.weight"].T

    def embed(self, ids):
        return self.w["model.embed_tokens.weight"][torch.tensor(ids)]


def p_tuning_encoder(cfg, params):
    """PEFT's PromptEncoder (training mode structure) applied to its embedding, in float64."""
    C = cfg["token_dim"]
    h = cfg["encoder_hidden_size"]
    emb = params["embedding.weight"]
    if cfg["encoder_reparameterization_type"] == "MLP":
        mlp = torch.nn.Sequential(torch.nn.Linear(C, h), torch.nn.ReLU(), torch.nn.Linear(h, h), torch.nn.ReLU(),
                                  torch.nn.Linear(h, C)).to(DT)
        mlp.load_state_dict({k[len("mlp_head."):]: v for k, v in params.items() if k.startswith("mlp_head.")})
        return mlp(emb)
    lstm = torch.nn.LSTM(input_size=C, hidden_size=h, num_layers=cfg["encoder_num_layers"],
                         dropout=cfg["encoder_dropout"], bidirectional=True, batch_first=True).to(DT)
    lstm.load_state_dict({k[len("lstm_head."):]: v for k, v in params.items() if k.startswith("lstm_head.")})
    head = torch.nn.Sequential(torch.nn.Linear(2 * h, 2 * h), torch.nn.ReLU(), torch.nn.Linear(2 * h, C)).to(DT)
    head.load_state_dict({k[len("mlp_head."):]: v for k, v in params.items() if k.startswith("mlp_head.")})
    lstm.eval()
    return head(lstm(emb.unsqueeze(0))[0]).squeeze(0)


def prefix_projection(cfg, params):
    d, h = cfg["token_dim"], cfg["encoder_hidden_size"]
    out = 2 * cfg["num_layers"] * d
    transform = torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.Tanh(), torch.nn.Linear(h, out)).to(DT)
    transform.load_state_dict({k[len("transform."):]: v for k, v in params.items() if k.startswith("transform.")})
    return transform(params["embedding.weight"])


def reference(model, case_dir, inputs):
    with open(os.path.join(case_dir, "adapter_config.json")) as f:
        cfg = json.load(f)
    kind = cfg["peft_type"]
    n = cfg["num_virtual_tokens"]
    weights = None
    if os.path.exists(os.path.join(case_dir, "ptune_layers.safetensors")):
        weights = read_safetensors(os.path.join(case_dir, "ptune_layers.safetensors"))
    saved = None
    if os.path.exists(os.path.join(case_dir, "adapter_model.safetensors")):
        saved = read_safetensors(os.path.join(case_dir, "adapter_model.safetensors"))["prompt_embeddings"]
    encoder_diff = None
    if kind == "P_TUNING" and os.path.exists(os.path.join(case_dir, "ptune_prompt_encoder.safetensors")):
        params = read_safetensors(os.path.join(case_dir, "ptune_prompt_encoder.safetensors"))
        with torch.no_grad():
            encoder_diff = (p_tuning_encoder(cfg, params) - saved).abs().max().item()
    if kind == "PREFIX_TUNING" and os.path.exists(os.path.join(case_dir, "ptune_prefix_encoder.safetensors")):
        params = read_safetensors(os.path.join(case_dir, "ptune_prefix_encoder.safetensors"))
        with torch.no_grad():
            encoder_diff = (prefix_projection(cfg, params) - saved).abs().max().item()
    all_logits = []
    virtual = 0
    with torch.no_grad():
        for ids in inputs:
            tokens = model.embed(ids)
            T = len(ids)
            if kind in ("PROMPT_TUNING", "P_TUNING"):
                virtual = n
                embeds = torch.cat([saved, tokens], 0)
                logits = model.forward(embeds, torch.arange(n + T), weights=weights)
            elif kind == "PREFIX_TUNING":
                G = cfg["num_attention_heads"]
                D = cfg["token_dim"] // G
                assert G == model.G and D == model.D, "prefix adapter heads/head_dim disagree with the model"
                kv = saved.view(n, 2 * model.L, G, D).permute(1, 2, 0, 3)  # (2L, G, n, D)
                prefix = [(kv[2 * l], kv[2 * l + 1]) for l in range(model.L)]
                logits = model.forward(tokens, torch.arange(n, n + T), prefix=prefix, weights=weights)
            elif kind == "PTUNE_DYNAMIC_PROMPT":
                virtual = n
                params = read_safetensors(os.path.join(case_dir, "ptune_dynamic_prompt.safetensors"))
                mean = tokens.mean(0)
                hidden = torch.tanh(params["generator.0.weight"] @ mean + params["generator.0.bias"])
                offset = (params["generator.2.weight"] @ hidden + params["generator.2.bias"]).view(n, -1)
                embeds = torch.cat([params["embedding.weight"] + offset, tokens], 0)
                logits = model.forward(embeds, torch.arange(n + T), weights=weights)
            else:
                raise SystemExit(f"{case_dir}: unknown peft_type {kind}")
            all_logits.append(logits)
    return virtual, all_logits, encoder_diff


def main():
    model = TinyLlama(os.path.join(ROOT, "tiny-llama"))
    ours = os.path.join(ROOT, "ours")
    worst = 0.0
    for case in sorted(os.listdir(ours)):
        case_dir = os.path.join(ours, case)
        with open(os.path.join(case_dir, "expected_logits.json")) as f:
            expected = json.load(f)
        virtual, logits, encoder_diff = reference(model, case_dir, expected["inputs"])
        assert virtual == expected["virtual_tokens"], (case, virtual, expected["virtual_tokens"])
        diff = max((logit - torch.tensor(exp, dtype=DT)).abs().max().item()
                   for logit, exp in zip(logits, expected["logits"]))
        worst = max(worst, diff)
        out = {
            "source": f"tests-java/peft/torch_reference.py (float64 PyTorch {torch.__version__}), {case}",
            "inputs": expected["inputs"],
            "virtual_tokens": virtual,
            "encoder_max_abs_diff": encoder_diff,
            "logits": [[[float(f"{v:.7g}") for v in row] for row in logit.tolist()] for logit in logits],
        }
        with open(os.path.join(case_dir, "reference_logits.json"), "w") as f:
            json.dump(out, f, separators=(",", ":"))
            f.write("\n")
        enc = "" if encoder_diff is None else f", encoder output vs saved prompt_embeddings {encoder_diff:.2e}"
        print(f"{case:18s} max |ptune - reference| = {diff:.2e}{enc}")
    print(f"worst {worst:.2e}")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
