#!/usr/bin/env python3
"""Greedy generation throughput of transformers + PEFT with a prompt-tuning prompt, the same task
as io.ptune.bench.GenerateBench: `runs` timed generate() calls (after one untimed) of NEW_TOKENS
tokens for a batch of random prompts of PROMPT_LENGTH tokens. Prints one JSON line.

  target/peft-env/bin/python bench/peer_peft_generate.py MODEL_DIR BATCH PROMPT_LENGTH NEW_TOKENS \
      VIRTUAL_TOKENS RUNS
"""
import json
import statistics
import sys
import time

import torch


def main():
    model_dir, batch, prompt_length, new_tokens, virtual_tokens, runs = sys.argv[1], *map(int, sys.argv[2:7])
    import transformers
    from peft import PromptTuningConfig, get_peft_model
    from transformers import LlamaForCausalLM

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    base = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(base, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=virtual_tokens))
    model.eval()
    ids = torch.randint(3, min(base.config.vocab_size, 512), (batch, prompt_length))
    ids[:, 0] = 1
    mask = torch.ones_like(ids)

    def generate():
        with torch.no_grad():
            # eos_token_id None: exactly new_tokens per row, as a random model rarely ends anyway.
            return model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                                  do_sample=False, eos_token_id=None, pad_token_id=0)

    generate()
    seconds, generated = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        out = generate()
        seconds.append(time.perf_counter() - start)
        generated = batch * (out.shape[1] - prompt_length)
    median = statistics.median(seconds)
    print(json.dumps({"impl": "transformers+peft", "torch": torch.__version__,
                      "transformers": transformers.__version__, "tokens_per_s": generated / median,
                      "run_s_median": median, "run_s_min": min(seconds), "run_s_max": max(seconds),
                      "generated_tokens": generated, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
