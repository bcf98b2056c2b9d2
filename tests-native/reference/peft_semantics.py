#!/usr/bin/python3
"""Independent reference of PEFT's prompt-learning semantics on a Hugging Face Llama.

Writes tests-native/golden/<case>.json, which tests-native/peft_golden_test.cpp loads into
ptune's PromptModel (writeParameter) and compares Model::logits against (within fp32 rounding).

Nothing here is shared with ptune's C++: the model is re-implemented from transformers'
modeling_llama.py (rotate_half RoPE, repeat_kv GQA, LlamaRMSNorm in fp32, tied LM head, eager
attention with the dtype's lowest value as the mask, position_ids = cumsum(mask) - 1 with
padding set to 1 as generate() derives them), and the prompt modules are PEFT's, built from
the same torch.nn pieces as in peft/src/peft/tuners (read at commit 5d602fdb, 2026-08-21):

  * p_tuning/model.py PromptEncoder: embedding = nn.Embedding(P, C);
      MLP : mlp_head = Sequential(Linear(C, h), ReLU, Linear(h, h), ReLU, Linear(h, C))
      LSTM: lstm_head = nn.LSTM(C, h, num_layers, dropout, bidirectional=True, batch_first=True)
            mlp_head = Sequential(Linear(2h, 2h), ReLU, Linear(2h, C))
      forward(indices) = mlp_head(lstm_head(embedding(indices))[0]) / mlp_head(embedding(...))
  * prefix_tuning/model.py PrefixEncoder:
      no projection: embedding = nn.Embedding(P, 2 * L * token_dim)
      projection   : embedding = nn.Embedding(P, token_dim),
                     transform = Sequential(Linear(token_dim, h), Tanh, Linear(h, 2 * L * token_dim))
    with token_dim = head_dim * num_key_value_heads on GQA models (utils/other.py
    _prepare_prompt_learning_config) and num_attention_heads = num_key_value_heads.
  * peft_model.py get_prompt (prefix): past_key_values = encoder(prompt_tokens)
      .view(B, P, 2L, kv_heads, head_dim).permute([2, 0, 3, 1, 4]).split(2)
      -> per layer (2, B, kv_heads, P, head_dim): [0] keys, [1] values, stored in the cache as
      they are (never rotated).
  * peft_model.py PeftModelForCausalLM.forward: attention_mask = cat(ones(B, P), mask);
      input-level methods: inputs_embeds = cat(prompts, word_embeddings(input_ids));
      prefix: base_model(input_ids, past_key_values=..., attention_mask=extended).
  * get_prompt_embedding_to_save: prompt_encoder(prompt_tokens)[0] -- the saved
      `prompt_embeddings` is the encoder OUTPUT for P-tuning and the projected prefix for
      prefix tuning with prefix_projection.

Needs only torch (1.13 is enough) and numpy; model.safetensors is read by hand.
Run:  /usr/bin/python3 tests-native/reference/peft_semantics.py [--shared DIR]
"""
import argparse
import json
import math
import os
import struct

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(os.path.dirname(HERE), "golden")

# ---------------------------------------------------------------------------------------------
# Weights and config


def read_safetensors(path):
    """model.safetensors: u64 LE header length, JSON header, raw little-endian data."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    dtypes = {"F32": np.float32, "F16": np.float16, "F64": np.float64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.astype(np.float32).copy())
    return out


class Config:
    def __init__(self, d):
        self.V = d["vocab_size"]
        self.C = d["hidden_size"]
        self.L = d["num_hidden_layers"]
        self.H = d["num_attention_heads"]
        self.G = d["num_key_value_heads"]
        self.D = d.get("head_dim", self.C // self.H)
        self.eps = d["rms_norm_eps"]
        self.theta = d.get("rope_theta", 10000.0)
        assert d.get("tie_word_embeddings", False)


# ---------------------------------------------------------------------------------------------
# Hugging Face Llama (transformers' modeling_llama.py, eager attention)


def rms_norm(x, weight, eps):
    dtype = x.dtype
    h = x.to(torch.float32) if dtype != torch.float64 else x
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    return weight * h.to(dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope(cfg, position_ids, dtype):
    """LlamaRotaryEmbedding: cos, sin (B, S, D)."""
    inv_freq = 1.0 / (cfg.theta ** (torch.arange(0, cfg.D, 2, dtype=torch.int64).float() / cfg.D))
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    inv = inv_freq.to(compute)[None, :, None].expand(position_ids.shape[0], -1, 1)
    freqs = (inv @ position_ids[:, None, :].to(compute)).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def repeat_kv(x, n_rep):
    b, g, s, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, g, n_rep, s, d).reshape(b, g * n_rep, s, d)


def llama_forward(cfg, w, inputs_embeds, attention_mask, position_ids, past=None):
    """inputs_embeds (B, S, C); attention_mask (B, past + S) of 0/1; position_ids (B, S);
    past: per layer (keys, values) each (B, G, Pp, D) or None. Returns logits (B, S, V)."""
    dtype = inputs_embeds.dtype
    B, S, _ = inputs_embeds.shape
    past_len = past[0][0].shape[2] if past is not None else 0
    total = past_len + S
    # 4-D additive mask: query i (absolute past_len + i) sees key j if j <= past_len + i and
    # attention_mask[b, j] == 1; masked entries get finfo(dtype).min (as _prepare_4d_causal_...).
    q_idx = torch.arange(past_len, total)[:, None]
    k_idx = torch.arange(total)[None, :]
    allowed = (k_idx <= q_idx)[None, :, :] & attention_mask.bool()[:, None, :]
    mask4 = torch.zeros(B, 1, S, total, dtype=dtype).masked_fill(~allowed[:, None], torch.finfo(dtype).min)
    cos, sin = rope(cfg, position_ids, dtype)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    h = inputs_embeds
    for l in range(cfg.L):
        p = "model.layers.%d." % l
        x = rms_norm(h, w[p + "input_layernorm.weight"].to(dtype), cfg.eps)
        q = (x @ w[p + "self_attn.q_proj.weight"].to(dtype).T).view(B, S, cfg.H, cfg.D).transpose(1, 2)
        k = (x @ w[p + "self_attn.k_proj.weight"].to(dtype).T).view(B, S, cfg.G, cfg.D).transpose(1, 2)
        v = (x @ w[p + "self_attn.v_proj.weight"].to(dtype).T).view(B, S, cfg.G, cfg.D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past is not None:  # DynamicCache.update: cat on the sequence dim, cached keys as stored
            k = torch.cat([past[l][0].to(dtype), k], dim=2)
            v = torch.cat([past[l][1].to(dtype), v], dim=2)
        k = repeat_kv(k, cfg.H // cfg.G)
        v = repeat_kv(v, cfg.H // cfg.G)
        scores = q @ k.transpose(2, 3) / math.sqrt(cfg.D) + mask4
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32 if dtype != torch.float64 else dtype).to(dtype)
        attn = (probs @ v).transpose(1, 2).reshape(B, S, cfg.H * cfg.D)
        h = h + attn @ w[p + "self_attn.o_proj.weight"].to(dtype).T
        x = rms_norm(h, w[p + "post_attention_layernorm.weight"].to(dtype), cfg.eps)
        gate = torch.nn.functional.silu(x @ w[p + "mlp.gate_proj.weight"].to(dtype).T)
        up = x @ w[p + "mlp.up_proj.weight"].to(dtype).T
        h = h + (gate * up) @ w[p + "mlp.down_proj.weight"].to(dtype).T
    h = rms_norm(h, w["model.norm.weight"].to(dtype), cfg.eps)
    return h @ w["model.embed_tokens.weight"].to(dtype).T  # tied head


def positions_from_mask(mask):
    """generate()'s position_ids: cumsum(mask) - 1, padding set to 1."""
    pos = mask.long().cumsum(-1) - 1
    return pos.masked_fill(mask == 0, 1)


# ---------------------------------------------------------------------------------------------
# PEFT's prompt modules (torch.nn pieces, PyTorch default initialisation)


class PromptEmbedding(torch.nn.Module):  # prompt_tuning/model.py, init RANDOM
    def __init__(self, P, C):
        super().__init__()
        self.embedding = torch.nn.Embedding(P, C)

    def forward(self, indices):
        return self.embedding(indices)


class PromptEncoder(torch.nn.Module):  # p_tuning/model.py
    def __init__(self, P, C, h, kind, num_layers=2, dropout=0.0):
        super().__init__()
        self.kind = kind
        self.embedding = torch.nn.Embedding(P, C)
        if kind == "LSTM":
            self.lstm_head = torch.nn.LSTM(input_size=C, hidden_size=h, num_layers=num_layers,
                                           dropout=dropout, bidirectional=True, batch_first=True)
            self.mlp_head = torch.nn.Sequential(torch.nn.Linear(2 * h, 2 * h), torch.nn.ReLU(),
                                                torch.nn.Linear(2 * h, C))
        else:
            self.mlp_head = torch.nn.Sequential(torch.nn.Linear(C, h), torch.nn.ReLU(),
                                                torch.nn.Linear(h, h), torch.nn.ReLU(),
                                                torch.nn.Linear(h, C))

    def forward(self, indices):
        x = self.embedding(indices)
        if self.kind == "LSTM":
            return self.mlp_head(self.lstm_head(x)[0])
        return self.mlp_head(x)


class PrefixEncoder(torch.nn.Module):  # prefix_tuning/model.py
    def __init__(self, P, token_dim, L, h, projection):
        super().__init__()
        self.projection = projection
        if projection:
            self.embedding = torch.nn.Embedding(P, token_dim)
            self.transform = torch.nn.Sequential(torch.nn.Linear(token_dim, h), torch.nn.Tanh(),
                                                 torch.nn.Linear(h, L * 2 * token_dim))
        else:
            self.embedding = torch.nn.Embedding(P, L * 2 * token_dim)

    def forward(self, prefix):
        if self.projection:
            return self.transform(self.embedding(prefix))
        return self.embedding(prefix)


def peft_logits(cfg, w, encoder, kind, P, ids, mask, dtype):
    """PeftModelForCausalLM.forward for one prompt-learning adapter; returns (B, Vin + T, V)."""
    B = ids.shape[0]
    enc = encoder.to(dtype)
    prompt_tokens = torch.arange(P).long().unsqueeze(0).expand(B, -1)
    full_mask = torch.cat([torch.ones(B, P, dtype=mask.dtype), mask], dim=1)
    word = w["model.embed_tokens.weight"].to(dtype)
    if kind == "prefix":
        token_dim = cfg.G * cfg.D
        pkv = enc(prompt_tokens)  # (B, P, 2L * token_dim)
        pkv = pkv.view(B, P, cfg.L * 2, cfg.G, token_dim // cfg.G)
        pkv = pkv.permute([2, 0, 3, 1, 4]).split(2)  # L x (2, B, G, P, D)
        past = [(layer[0], layer[1]) for layer in pkv]
        pos = positions_from_mask(full_mask)[:, P:]
        return llama_forward(cfg, w, word[ids], full_mask, pos, past)
    prompts = enc(prompt_tokens).to(dtype)  # (B, P, C)
    embeds = torch.cat([prompts, word[ids]], dim=1)
    return llama_forward(cfg, w, embeds, full_mask, positions_from_mask(full_mask))


# ---------------------------------------------------------------------------------------------
# Cases and output

# Row 0: BOS + "Once upon a time, there" (7 tokens); row 1: 2 pads then BOS + 4 tokens of
# "The cat sat on", padding ids arbitrary (they must not matter).
IDS = [[1, 403, 407, 261, 378, 432, 383], [77, 300, 1, 291, 280, 294, 262]]
MASK = [[1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1]]


def make_case(name, cfg):
    C, L, kv = cfg.C, cfg.L, cfg.G * cfg.D
    if name == "prompt_tuning":
        torch.manual_seed(101)
        return dict(P=4, kind="input", spec=dict(method=0), encoder=PromptEmbedding(4, C))
    if name == "p_tuning_mlp":
        torch.manual_seed(102)
        return dict(P=4, kind="input", spec=dict(method=1, encoder_type=0, encoder_hidden_size=16),
                    encoder=PromptEncoder(4, C, 16, "MLP"))
    if name == "p_tuning_lstm":
        torch.manual_seed(103)
        return dict(P=4, kind="input",
                    spec=dict(method=1, encoder_type=1, encoder_hidden_size=8, encoder_num_layers=2,
                              encoder_dropout=0.0),
                    encoder=PromptEncoder(4, C, 8, "LSTM", num_layers=2, dropout=0.0))
    if name == "prefix":
        torch.manual_seed(104)
        return dict(P=3, kind="prefix", spec=dict(method=2, prefix_projection=False),
                    encoder=PrefixEncoder(3, kv, L, 0, False))
    if name == "prefix_projection":
        torch.manual_seed(105)
        return dict(P=3, kind="prefix",
                    spec=dict(method=2, prefix_projection=True, encoder_hidden_size=16),
                    encoder=PrefixEncoder(3, kv, L, 16, True))
    raise ValueError(name)


CASES = ["prompt_tuning", "p_tuning_mlp", "p_tuning_lstm", "prefix", "prefix_projection"]


def f32_list(t):
    """Shortest decimal strings that round-trip the float32 values."""
    return "[" + ",".join(str(np.float32(x)) for x in t.detach().to(torch.float32).reshape(-1).numpy()) + "]"


def write_case(name, cfg, w):
    case = make_case(name, cfg)
    enc, P, kind = case["encoder"], case["P"], case["kind"]
    enc.eval()
    ids = torch.tensor(IDS, dtype=torch.long)
    mask = torch.tensor(MASK, dtype=torch.long)
    with torch.no_grad():
        logits = peft_logits(cfg, w, enc, kind, P, ids, mask, torch.float32)
        logits64 = peft_logits(cfg, w, enc, kind, P, ids, mask, torch.float64)
        saved = enc.to(torch.float32)(torch.arange(P).long().unsqueeze(0))[0]  # get_prompt_embedding_to_save
    vin = P if kind == "input" else 0
    # Positions kept: every virtual position and every real token (padding rows are left out).
    rows = []
    for b in range(ids.shape[0]):
        for s in range(vin + ids.shape[1]):
            if s < vin or MASK[b][s - vin] == 1:
                rows.append((b, s))
    sel = torch.stack([logits[b, s] for b, s in rows])
    sel64 = torch.stack([logits64[b, s] for b, s in rows])
    fp_gap = (sel.double() - sel64).abs().max().item()
    params = []
    for pname, tensor in enc.to(torch.float32).state_dict().items():
        # ptune names parameters after PEFT's modules; the nn.Embedding's weight is "embedding".
        ours = "embedding" if pname == "embedding.weight" else pname
        params.append('    {"name": "%s", "peft_name": "%s", "shape": %s, "values": %s}'
                      % (ours, pname, json.dumps(list(tensor.shape)), f32_list(tensor)))
    spec = dict(num_virtual_tokens=P, **case["spec"])
    text = "{\n"
    text += '  "case": "%s",\n' % name
    text += '  "generated_by": "tests-native/reference/peft_semantics.py (torch %s)",\n' % torch.__version__
    text += '  "spec": %s,\n' % json.dumps(spec, sort_keys=True)
    text += '  "ids": %s,\n  "mask": %s,\n' % (json.dumps(IDS), json.dumps(MASK))
    text += '  "input_virtual_tokens": %d,\n' % vin
    text += '  "vocab_size": %d,\n' % cfg.V
    text += '  "logit_rows": %s,\n' % json.dumps([[b, s] for b, s in rows])
    text += '  "logits": %s,\n' % f32_list(sel)
    text += '  "peft_prompt_embeddings_shape": %s,\n' % json.dumps(list(saved.shape))
    text += '  "peft_prompt_embeddings": %s,\n' % f32_list(saved)
    text += '  "parameters": [\n' + ",\n".join(params) + "\n  ]\n}\n"
    path = os.path.join(GOLDEN, name + ".json")
    with open(path, "w") as f:
        f.write(text)
    json.loads(text)  # well-formed
    print("%-18s P=%d  %3d logit rows  max|logit| %.3f  fp32-vs-fp64 %.2e  %6.1f KB -> %s"
          % (name, P, len(rows), sel.abs().max().item(), fp_gap, len(text) / 1024, os.path.relpath(path)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_shared = os.environ.get("PTUNE_SHARED_DIR",
                                    os.path.join(os.path.dirname(os.path.dirname(HERE)), "..", "shared"))
    parser.add_argument("--shared", default=default_shared)
    args = parser.parse_args()
    model_dir = os.path.join(args.shared, "models", "stories260k")
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = Config(json.load(f))
    w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    torch.set_num_threads(1)
    os.makedirs(GOLDEN, exist_ok=True)
    # Self-check of the plain model: greedy from BOS tells the story of Lily (models/README.md).
    ids = [1]
    with torch.no_grad():
        for _ in range(15):
            t = torch.tensor([ids])
            logits = llama_forward(cfg, w, w["model.embed_tokens.weight"][t], torch.ones_like(t),
                                   positions_from_mask(torch.ones_like(t)))
            ids.append(int(logits[0, -1].argmax()))
    lily = [403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426]
    assert ids[1:] == lily, ids
    for name in CASES:
        write_case(name, cfg, w)


if __name__ == "__main__":
    main()
