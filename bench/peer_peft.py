#!/usr/bin/env python3
"""The real peer: Hugging Face transformers' LlamaForCausalLM + PEFT prompt tuning, trained with
the standard PEFT loop (model(..., labels=...) loss, backward, clip_grad_norm_, torch AdamW), the
same task as peer_torch.py: random ids (B, T), every token a label, AdamW lr 1e-2 on the prompt.

Runs in the environment toolchains/peft-env.sh makes (torch, transformers, peft):

  target/peft-env/bin/python bench/peer_peft.py --model DIR --batch-size 8 --seq-len 256 \
      --virtual-tokens 20 --steps 10 --warmup 2
      prints one JSON line: tokens/s (median of the timed steps), peak RSS, step times, versions
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
    a = ap.parse_args()

    import peft
    import transformers
    from peft import PromptTuningConfig, get_peft_model
    from transformers import LlamaForCausalLM

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    base = LlamaForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    model = get_peft_model(base, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=a.virtual_tokens))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    vocab = base.config.vocab_size
    tokens_per_step = a.batch_size * a.seq_len
    mask = torch.ones(a.batch_size, a.seq_len, dtype=torch.long)
    times, losses = [], []
    for step in range(a.warmup + a.steps):
        ids = torch.randint(3, min(vocab, 512), (a.batch_size, a.seq_len))
        t0 = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=mask, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
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
                      "last_loss": losses[-1], "step_s": times}))


if __name__ == "__main__":
    main()
