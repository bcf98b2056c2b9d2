#!/usr/bin/env python3
"""The real peer: Hugging Face transformers' AutoModelForCausalLM (Llama, Qwen2) + PEFT prompt
tuning or prefix tuning, trained with the standard PEFT loop (model(..., labels=...) loss,
backward, clip_grad_norm_, torch AdamW), the same task as peer_torch.py: random ids (B, T), every
token a label, AdamW lr 1e-2 on the prompt.

Runs in the environment toolchains/peft-env.sh makes (torch, transformers, peft):

  target/peft-env/bin/python bench/peer_peft.py --model DIR --batch-size 8 --seq-len 256 \
      --virtual-tokens 20 --steps 10 --warmup 2
      prints one JSON line: tokens/s (median of the timed steps), peak RSS, step times, versions

  --device cpu|cuda[:N] --dtype fp32|bf16|fp16 --method prompt-tuning|prefix-tuning
      (defaults cpu, fp32, prompt-tuning): the frozen model's device and dtype (the prompt stays
      fp32, as PEFT keeps it); on CUDA the clock is read after torch.cuda.synchronize() and
      peak_cuda_mib is torch.cuda.max_memory_allocated over the run (null on CPU). Inputs are made
      on the host and moved inside the timed step, as ptune's are.
"""
import argparse
import json
import resource
import statistics
import time

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--virtual-tokens", type=int, default=20)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32")
    ap.add_argument("--method", choices=("prompt-tuning", "prefix-tuning"), default="prompt-tuning")
    a = ap.parse_args()

    import peft
    import transformers
    from peft import PrefixTuningConfig, PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[a.dtype]
    base = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype).to(device)
    if a.method == "prompt-tuning":
        config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=a.virtual_tokens)
    else:  # PEFT's default: no reparameterisation MLP, as ptune_step_profile
        config = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=a.virtual_tokens)
    model = get_peft_model(base, config)
    model.train()
    # The trainable prompt in fp32 (ptune keeps it so; PEFT creates it in the base model's dtype).
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    vocab = base.config.vocab_size
    tokens_per_step = a.batch_size * a.seq_len
    host_mask = torch.ones(a.batch_size, a.seq_len, dtype=torch.long)
    times, losses = [], []
    for step in range(a.warmup + a.steps):
        host_ids = torch.randint(3, min(vocab, 512), (a.batch_size, a.seq_len))
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        ids, mask = host_ids.to(device), host_mask.to(device)
        loss = model(input_ids=ids, attention_mask=mask, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        if cuda:
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        if step >= a.warmup:
            times.append(dt)
            losses.append(loss.item())
    med = statistics.median(times)
    print(json.dumps({"impl": "transformers+peft", "torch": torch.__version__,
                      "transformers": transformers.__version__, "peft": peft.__version__,
                      "attn_implementation": base.config._attn_implementation,
                      "threads": torch.get_num_threads(), "mkl": torch.backends.mkl.is_available(),
                      "tokens_per_s": tokens_per_step / med, "step_s_median": med,
                      "step_s_min": min(times), "step_s_max": max(times),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "last_loss": losses[-1], "step_s": times,
                      "model_type": base.config.model_type, "device": a.device, "dtype": a.dtype,
                      "method": a.method,
                      "device_name": torch.cuda.get_device_name(device) if cuda else None,
                      "peak_cuda_mib": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None}))


if __name__ == "__main__":
    main()
