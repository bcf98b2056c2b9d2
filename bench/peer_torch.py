#!/usr/bin/env python3
"""The PyTorch peer: Hugging Face LlamaForCausalLM semantics + PEFT prompt tuning, written in
plain PyTorch on Debian's torch 1.13 (the libtorch ptune links), mirroring their eager code path:
full (B, T, V) logits, CrossEntropyLoss, torch.optim.AdamW, clip_grad_norm_. It isolates ptune's
design from the library version; bench/peer_peft.py runs transformers + PEFT themselves.

  peer_torch.py train  --model DIR --batch-size 8 --seq-len 256 --virtual-tokens 20 --steps 10
      prints one JSON line: tokens/s (median of the timed steps), peak RSS, step times
  peer_torch.py train ... --profile
      runs the warm-up steps, then profiles one step with torch.autograd.profiler and prints
      {"self_cpu_s": total, "ops": [{"name", "self_cpu_s", "share", "calls"}, ...]} (top 15 ops)
  peer_torch.py logits --model DIR --ids 1,2,3 [--prompt-file F.json]
      prints {"logits": [[...]]} (reference values for tests)
"""
import argparse
import json
import math
import resource
import statistics
import struct
import time

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[b:end]), dtype=DTYPES[e["dtype"]]).reshape(e["shape"]).float()
    return out


class Llama:
    def __init__(self, model_dir):
        self.cfg = json.load(open(f"{model_dir}/config.json"))
        self.w = read_safetensors(f"{model_dir}/model.safetensors")
        c = self.cfg
        self.H, self.G = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
        self.D = c.get("head_dim", c["hidden_size"] // self.H)
        self.eps, self.L = c["rms_norm_eps"], c["num_hidden_layers"]
        self.lm_head = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])
        self.inv_freq = 1.0 / (c.get("rope_theta", 10000.0) ** (torch.arange(0, self.D, 2, dtype=torch.int64).float() / self.D))

    def norm(self, x, w):
        v = x.float().pow(2).mean(-1, keepdim=True)
        return w * (x.float() * torch.rsqrt(v + self.eps)).to(x.dtype)

    @staticmethod
    def rot(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), -1)

    def hidden(self, embeds, mask):
        """embeds (B, S, C); mask (B, S) 1/0 (padding on either side) -> final hidden (B, S, C)."""
        B, S, _ = embeds.shape
        pos = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)
        freqs = pos[:, :, None].float() * self.inv_freq[None, None, :]
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos()[:, None], emb.sin()[:, None]
        causal = torch.ones(S, S, dtype=torch.bool).tril()
        allowed = causal[None] & mask.bool()[:, None, :]
        bias = torch.zeros(B, 1, S, S).masked_fill(~allowed[:, None], torch.finfo(torch.float32).min)
        h = embeds
        for i in range(self.L):
            p = f"model.layers.{i}."
            x = self.norm(h, self.w[p + "input_layernorm.weight"])
            q = (x @ self.w[p + "self_attn.q_proj.weight"].T).view(B, S, self.H, self.D).transpose(1, 2)
            k = (x @ self.w[p + "self_attn.k_proj.weight"].T).view(B, S, self.G, self.D).transpose(1, 2)
            v = (x @ self.w[p + "self_attn.v_proj.weight"].T).view(B, S, self.G, self.D).transpose(1, 2)
            q, k = q * cos + self.rot(q) * sin, k * cos + self.rot(k) * sin
            rep = self.H // self.G
            k = k[:, :, None].expand(B, self.G, rep, S, self.D).reshape(B, self.H, S, self.D)
            v = v[:, :, None].expand(B, self.G, rep, S, self.D).reshape(B, self.H, S, self.D)
            a = torch.softmax((q @ k.transpose(2, 3)) / math.sqrt(self.D) + bias, -1, dtype=torch.float32)
            o = (a @ v).transpose(1, 2).reshape(B, S, self.H * self.D)
            h = h + o @ self.w[p + "self_attn.o_proj.weight"].T
            x = self.norm(h, self.w[p + "post_attention_layernorm.weight"])
            g = F.silu(x @ self.w[p + "mlp.gate_proj.weight"].T) * (x @ self.w[p + "mlp.up_proj.weight"].T)
            h = h + g @ self.w[p + "mlp.down_proj.weight"].T
        return self.norm(h, self.w["model.norm.weight"])

    def prompted(self, prompt, ids, mask):
        """PEFT prompt tuning: [P; E(ids)], mask extended by P ones."""
        e = F.embedding(ids, self.w["model.embed_tokens.weight"])
        if prompt is None:
            return e, mask
        B = ids.shape[0]
        return (torch.cat([prompt[None].expand(B, -1, -1), e], 1),
                torch.cat([torch.ones(B, prompt.shape[0], dtype=mask.dtype), mask], 1))


def one_step(a, m, prompt, opt, ids):
    """One training step on ids (B, T): forward, full-logits loss, backward, clip, AdamW."""
    V = m.cfg["vocab_size"]
    embeds, full_mask = m.prompted(prompt, ids, torch.ones_like(ids))
    logits = m.hidden(embeds, full_mask) @ m.lm_head.T  # (B, P+T, V), as transformers does
    labels = torch.cat([torch.full((a.batch_size, a.virtual_tokens), -100), ids], 1)
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([prompt], 1.0)
    opt.step()
    opt.zero_grad()
    return loss


def train(a):
    torch.manual_seed(0)
    m = Llama(a.model)
    C, V = m.cfg["hidden_size"], m.cfg["vocab_size"]
    prompt = torch.nn.Parameter(torch.randn(a.virtual_tokens, C) * 0.1)
    opt = torch.optim.AdamW([prompt], lr=1e-2, weight_decay=0.0)
    tokens_per_step = a.batch_size * a.seq_len
    times, losses = [], []
    if a.profile:
        a.steps = 1
    for step in range(a.warmup + a.steps):
        ids = torch.randint(3, min(V, 512), (a.batch_size, a.seq_len))
        if a.profile and step == a.warmup:
            with torch.autograd.profiler.profile() as prof:
                one_step(a, m, prompt, opt, ids)
            ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
            total = sum(e.self_cpu_time_total for e in ops) / 1e6
            print(json.dumps({"self_cpu_s": total, "ops": [
                {"name": e.key, "self_cpu_s": e.self_cpu_time_total / 1e6,
                 "share": e.self_cpu_time_total / 1e6 / total, "calls": e.count} for e in ops[:15]]}))
            return
        t0 = time.perf_counter()
        loss = one_step(a, m, prompt, opt, ids)
        dt = time.perf_counter() - t0
        if step >= a.warmup:
            times.append(dt)
            losses.append(loss.item())
    med = statistics.median(times)
    print(json.dumps({"impl": "pytorch-eager", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "tokens_per_s": tokens_per_step / med, "step_s_median": med,
                      "step_s_min": min(times), "step_s_max": max(times),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "last_loss": losses[-1], "step_s": times}))


def logits(a):
    m = Llama(a.model)
    ids = torch.tensor([[int(x) for x in a.ids.split(",")]])
    prompt = None
    if a.prompt_file:
        prompt = torch.tensor(json.load(open(a.prompt_file)), dtype=torch.float32)
    with torch.no_grad():
        e, mask = m.prompted(prompt, ids, torch.ones_like(ids))
        out = m.hidden(e, mask) @ m.lm_head.T
    print(json.dumps({"logits": out[0].tolist()}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--model", required=True)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--seq-len", type=int, default=256)
    t.add_argument("--virtual-tokens", type=int, default=20)
    t.add_argument("--steps", type=int, default=8)
    t.add_argument("--warmup", type=int, default=2)
    t.add_argument("--profile", action="store_true")
    l = sub.add_parser("logits")
    l.add_argument("--model", required=True)
    l.add_argument("--ids", required=True)
    l.add_argument("--prompt-file")
    a = ap.parse_args()
    train(a) if a.cmd == "train" else logits(a)


if __name__ == "__main__":
    main()
