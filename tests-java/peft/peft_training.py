#!/usr/bin/env python3
"""Records what Hugging Face transformers + PEFT do when training, generating and tokenising with
stories260k, so that PeftTrainingTest can check that ptune does the same (CI needs no Python).

Needs torch, transformers and peft (`toolchains/peft-env.sh` makes an environment with them):

    target/peft-env/bin/python tests-java/peft/peft_training.py [--shared ../shared]

Writes tests-java/resources/peft/training/:
- batches.json: fixed right-padded micro-batches (ids, mask, labels) of alpaca_en rows, tokenised
  with the model's tokenizer through transformers, prompt tokens labelled -100;
- tokenizer.json: English and Chinese texts with the ids transformers' tokenizer gives them
  (add_special_tokens=True), for the model's tokenizer_config.json as it is and for variants
  (legacy false; add_prefix_space false) written into tokenizer_variants/<name>/;
- <case>/init/: a PEFT adapter as PEFT builds it (get_peft_model with a fixed seed), saved with
  save_pretrained, plus the trainable encoder's state_dict in ptune's extra file for P-tuning and
  prefix projection (PEFT's own module names), so ptune can start from exactly PEFT's values;
- <case>/trajectory.json: the training settings and, for the standard PEFT training loop
  (torch.optim.AdamW, transformers' get_linear_schedule_with_warmup, clip_grad_norm_; with
  accumulation either loss / accum per micro-batch, as PEFT's examples do, or, for loss_averaging
  TOKENS, the model's loss with num_items_in_batch = the label tokens of the whole step, exactly as
  transformers' Trainer calls it), every micro-batch's mean loss, every step's gradient norm (before clipping) and
  learning rate, then PEFT's greedy generation from two prompts with the trained adapter;
- <case>/final.safetensors: the trainable tensors after training (PEFT's module names) and
  prompt_embeddings as PEFT saves them;
- init_text.safetensors: the prompt PEFT's TEXT initialisation gives (PromptTuningInit.TEXT with
  INIT_TEXT, tokenizer from the model directory) for n = 3 and 8 virtual tokens ("n3", "n8").
"""
import argparse
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(REPO, "tests-java", "resources", "peft", "training")

BATCH = 4
MAX_LEN = 64
MICRO_BATCHES = 12
PAD = 0
TEMPLATE = "### Instruction:\n{instruction}\n\n### Response:\n"

# Texts whose ids transformers' tokenizer gives must be what ptune's gives.
TOKENIZER_TEXTS = [
    "Once upon a time, there was a little dog named Max.",
    "  leading spaces, trailing spaces  ",
    "Line one\nline two\n\nTabs\tand numbers 3.14159, 42!",
    "Give three tips for staying healthy.",
    "保持健康的三个提示。",
    "Emoji 🙂 and accents: café, naïve, Zürich.",
    " a",
    "Hello</s>world and <s> again",
    "",
]

GENERATION_PROMPTS = ["Once upon a time", "The little dog"]
INIT_TEXT = "Once upon a time"


def cases():
    from peft import PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig

    base = dict(lr=1e-2, weight_decay=0.01, warmup=2, steps=6, max_grad_norm=1.0, accum=1,
                betas=(0.9, 0.999), eps=1e-8, loss_averaging="MICRO_BATCHES")
    return {
        "prompt_tuning": (21, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4), base),
        "prompt_tuning_accum2": (22, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4),
                                 dict(base, accum=2)),
        "prompt_tuning_accum2_tokens": (22, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4),
                                        dict(base, accum=2, loss_averaging="TOKENS")),
        "p_tuning_mlp": (23, PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=4,
                                                 encoder_reparameterization_type="MLP", encoder_hidden_size=32),
                         dict(base, lr=3e-3)),
        "p_tuning_lstm": (24, PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=4,
                                                  encoder_reparameterization_type="LSTM", encoder_hidden_size=16,
                                                  encoder_num_layers=2),
                          dict(base, lr=3e-3)),
        "prefix": (25, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4), base),
        "prefix_projection": (26, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4,
                                                     prefix_projection=True, encoder_hidden_size=24),
                              dict(base, lr=3e-3)),
    }


def load_model(model_dir):
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    return model


def make_batches(tokenizer, alpaca):
    """MICRO_BATCHES right-padded batches of BATCH rows: BOS + template prompt (-100) + answer + EOS."""
    with open(alpaca) as f:
        rows = [r for r in json.load(f) if r["output"] and not r["input"]]
    batches, row = [], 0
    for _ in range(MICRO_BATCHES):
        ids, labels = [], []
        while len(ids) < BATCH:
            r = rows[row]
            row += 1
            prompt = tokenizer(TEMPLATE.format(instruction=r["instruction"]), add_special_tokens=True)["input_ids"]
            if len(prompt) > MAX_LEN - 8:
                continue  # keep at least 8 answer tokens per row
            answer = tokenizer(r["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            ids.append((prompt + answer)[:MAX_LEN])
            labels.append(([-100] * len(prompt) + answer)[:MAX_LEN])
        width = max(len(s) for s in ids)
        batches.append({
            "ids": [s + [PAD] * (width - len(s)) for s in ids],
            "mask": [[1] * len(s) + [0] * (width - len(s)) for s in ids],
            "labels": [l + [-100] * (width - len(l)) for l in labels],
        })
    return batches


def extra_file(peft_type, config):
    if peft_type == "P_TUNING":
        return "ptune_prompt_encoder.safetensors"
    if peft_type == "PREFIX_TUNING" and config.prefix_projection:
        return "ptune_prefix_encoder.safetensors"
    return None


def train_case(name, seed, config, settings, model_dir, batches, tokenizer):
    from peft import get_peft_model
    from safetensors.torch import save_file
    from transformers import get_linear_schedule_with_warmup

    case_dir = os.path.join(OUT, name)
    os.makedirs(case_dir, exist_ok=True)
    torch.manual_seed(seed)
    model = get_peft_model(load_model(model_dir), config)
    encoder = model.prompt_encoder["default"]
    extra = extra_file(config.peft_type, config)
    model.save_pretrained(os.path.join(case_dir, "init"), safe_serialization=True)
    if extra:
        save_file({k: v.contiguous() for k, v in encoder.state_dict().items()},
                  os.path.join(case_dir, "init", extra))

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings["lr"], betas=settings["betas"], eps=settings["eps"],
                                  weight_decay=settings["weight_decay"])
    schedule = get_linear_schedule_with_warmup(optimizer, settings["warmup"], settings["steps"])
    model.train()
    losses, grad_norms, lrs = [], [], []
    micro = iter(batches)
    for _ in range(settings["steps"]):
        window = [next(micro) for _ in range(settings["accum"])]
        # transformers' Trainer (_get_num_items_in_batch): label tokens of the step, labels[..., 1:].
        num_items = sum(int((torch.tensor(b["labels"])[..., 1:] != -100).sum()) for b in window)
        for b in window:
            labels = torch.tensor(b["labels"])
            if settings["loss_averaging"] == "TOKENS":
                out = model(input_ids=torch.tensor(b["ids"]), attention_mask=torch.tensor(b["mask"]),
                            labels=labels, num_items_in_batch=num_items)
                losses.append(out.loss.item() * num_items / int((labels[..., 1:] != -100).sum()))
                out.loss.backward()
            else:
                out = model(input_ids=torch.tensor(b["ids"]), attention_mask=torch.tensor(b["mask"]),
                            labels=labels)
                losses.append(out.loss.item())
                (out.loss / settings["accum"]).backward()
        grad_norms.append(torch.nn.utils.clip_grad_norm_(params, settings["max_grad_norm"]).item())
        lrs.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    model.eval()

    final = {k: v.detach().clone().contiguous() for k, v in encoder.state_dict().items()}
    with torch.no_grad():
        final["prompt_embeddings"] = model.get_prompt_embedding_to_save("default").contiguous()
    save_file(final, os.path.join(case_dir, "final.safetensors"))

    generations = []
    with torch.no_grad():
        for text in GENERATION_PROMPTS:
            ids = tokenizer(text, add_special_tokens=True, return_tensors="pt")
            out = model.generate(**ids, max_new_tokens=16, do_sample=False, pad_token_id=PAD,
                                 eos_token_id=tokenizer.eos_token_id)
            generations.append({"text": text, "prompt_ids": ids["input_ids"][0].tolist(),
                                "new_ids": out[0, ids["input_ids"].shape[1]:].tolist()})
    trajectory = {
        "source": f"torch {torch.__version__}, transformers {transformers_version()}, peft {peft_version()}",
        "seed": seed,
        "settings": dict(settings, betas=list(settings["betas"]), schedule="linear"),
        "micro_batches": settings["steps"] * settings["accum"],
        "losses": losses,
        "grad_norms": grad_norms,
        "learning_rates": lrs,
        "generations": generations,
    }
    with open(os.path.join(case_dir, "trajectory.json"), "w") as f:
        json.dump(trajectory, f, indent=1)
        f.write("\n")
    print(f"{name}: loss {losses[0]:.5f} -> {losses[-1]:.5f}, grad norms {[round(g, 4) for g in grad_norms]}")


def transformers_version():
    import transformers

    return transformers.__version__


def peft_version():
    import peft

    return peft.__version__


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=os.path.join(REPO, "..", "shared"))
    args = parser.parse_args()
    import transformers
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()

    model_dir = os.path.join(args.shared, "models", "stories260k")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    os.makedirs(OUT, exist_ok=True)

    variants = {"as_is": {}, "legacy_false": {"legacy": False}, "no_prefix_space": {"add_prefix_space": False}}
    results = {}
    for variant, changes in variants.items():
        variant_dir = os.path.join(OUT, "tokenizer_variants", variant)
        os.makedirs(variant_dir, exist_ok=True)
        with open(os.path.join(model_dir, "tokenizer_config.json")) as f:
            tokenizer_config = json.load(f)
        tokenizer_config.update(changes)
        with open(os.path.join(variant_dir, "tokenizer_config.json"), "w") as f:
            json.dump(tokenizer_config, f, indent=2)
            f.write("\n")
        for name in ("tokenizer.json", "special_tokens_map.json"):
            shutil.copyfile(os.path.join(model_dir, name), os.path.join(variant_dir, name))
        variant_tokenizer = AutoTokenizer.from_pretrained(variant_dir)
        results[variant] = [{"text": t, "ids": variant_tokenizer(t, add_special_tokens=True)["input_ids"]}
                            for t in TOKENIZER_TEXTS]
    with open(os.path.join(OUT, "tokenizer.json"), "w") as f:
        json.dump({"source": f"transformers {transformers_version()} AutoTokenizer, add_special_tokens=True;"
                   " variants: tokenizer_variants/<name>/ (tokenizer_config.json changed as named)",
                   "cases": results["as_is"], "variants": results}, f, indent=1, ensure_ascii=False)
        f.write("\n")

    batches = make_batches(tokenizer, os.path.join(args.shared, "data", "alpaca_en", "alpaca_data.json"))
    with open(os.path.join(OUT, "batches.json"), "w") as f:
        json.dump({"pad_token_id": PAD, "batches": batches}, f, separators=(",", ":"))
        f.write("\n")

    from peft import PromptTuningConfig, get_peft_model
    from safetensors.torch import save_file

    inits = {}
    for n in (3, 8):
        config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n, prompt_tuning_init="TEXT",
                                    prompt_tuning_init_text=INIT_TEXT, tokenizer_name_or_path=model_dir)
        inits[f"n{n}"] = get_peft_model(load_model(model_dir), config).prompt_encoder["default"] \
            .embedding.weight.detach().clone().contiguous()
    save_file(inits, os.path.join(OUT, "init_text.safetensors"), metadata={"text": INIT_TEXT})

    for name, (seed, config, settings) in cases().items():
        train_case(name, seed, config, settings, model_dir, batches, tokenizer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
