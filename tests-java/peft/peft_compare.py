#!/usr/bin/env python3
"""Compares ptune's P-tuning and prefix-tuning adapters with Hugging Face PEFT, both ways.

Needs torch, transformers, peft and safetensors (CPU is enough; not needed to build or test
ptune). `toolchains/peft-env.sh` makes a virtual environment with them from wheels already on disk:

    toolchains/peft-env.sh                      # -> target/peft-env
    mvn -B -q -DskipTests package               # optional: lets the script run `ptune logits` too
    target/peft-env/bin/python tests-java/peft/peft_compare.py [--ptune target/ptune]

What it does, on the tiny random GQA Llama in tests-java/resources/peft/tiny-llama (hidden 64,
4 layers, 8 query heads, 4 key/value heads; written by make_tiny_llama.py, loaded here with
LlamaForCausalLM.from_pretrained):

(a) loads the tiny model in fp32 (eval mode);
(b) PEFT -> ptune: for P-tuning (MLP, LSTM) and prefix tuning (without / with projection) builds a
    PEFT model with get_peft_model, saves the adapter with save_pretrained into
    tests-java/resources/peft/<case>/adapter/, reloads it with PeftModel.from_pretrained and
    writes its fp32 logits for the fixed inputs to tests-java/resources/peft/<case>/
    expected_logits.json. The Java test PeftInteropTest loads those adapters and compares (1e-4).
    With --ptune (the launcher `mvn package` writes), this script also runs `ptune logits` on them;
(c) ptune -> PEFT: loads every adapter ptune wrote (tests-java/resources/peft/ours/<case>/, with
    ptune's logits in expected_logits.json) with PeftModel.from_pretrained and compares logits
    within 1e-4, writing PEFT's logits to ours/<case>/peft_logits.json (PeftInteropTest checks
    ptune against them on every build). For P-tuning and prefix projection it also loads ptune's extra encoder file into
    PEFT's trainable prompt encoder (inference_mode False) and checks that PEFT's
    get_prompt_embedding_to_save reproduces the saved prompt_embeddings (training can resume in
    PEFT). Dynamic prompts are ptune's own method (skipped); for the stage-2 adapter the script
    applies ptune_layers.safetensors to the base model itself, since PEFT ignores that file;
(d) writes tests-java/peft/RESULT.md and exits 1 if any comparison fails.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
# Relative to REPO (the script chdirs there), so that the adapter_config.json files PEFT writes
# name the base model without this machine's path.
RESOURCES = os.path.join("tests-java", "resources", "peft")
TINY = os.path.join(RESOURCES, "tiny-llama")
RESULT = os.path.join(HERE, "RESULT.md")
TOLERANCE = 1e-4

# Must match io.ptune.peft.OurPeftAdapters.INPUTS.
INPUTS = [[1, 45, 300, 7, 99], [1, 260, 12]]


def peft_cases():
    from peft import PrefixTuningConfig, PromptEncoderConfig

    return {
        "p_tuning_mlp": (11, PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=3,
                                                 encoder_reparameterization_type="MLP", encoder_hidden_size=32)),
        "p_tuning_lstm": (12, PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=3,
                                                  encoder_reparameterization_type="LSTM", encoder_hidden_size=16,
                                                  encoder_num_layers=2)),
        "prefix": (13, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3)),
        "prefix_projection": (14, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3,
                                                     prefix_projection=True, encoder_hidden_size=24)),
    }


def base_model(layers_file=None):
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(TINY, torch_dtype=torch.float32)
    if layers_file is not None:
        from safetensors.torch import load_file

        state = load_file(layers_file)
        missing = [k for k in state if k not in model.state_dict()]
        assert not missing, f"{layers_file}: unknown weights {missing}"
        model.load_state_dict(state, strict=False)
    model.eval()
    return model


def logits_of(model):
    """[input][row][vocab] as float lists; PEFT prepends input-level virtual positions."""
    out = []
    with torch.no_grad():
        for ids in INPUTS:
            input_ids = torch.tensor([ids])
            mask = torch.ones_like(input_ids)
            out.append(model(input_ids=input_ids, attention_mask=mask).logits[0].float())
    return out


def write_logits(path, logits, virtual_tokens, source):
    with open(path, "w") as f:
        json.dump({"source": source, "inputs": INPUTS, "virtual_tokens": virtual_tokens,
                   "logits": [l.tolist() for l in logits]}, f, separators=(",", ":"))
        f.write("\n")


def read_logits(path):
    with open(path) as f:
        data = json.load(f)
    assert data["inputs"] == INPUTS, f"{path} was made for other inputs: {data['inputs']}"
    return [torch.tensor(l, dtype=torch.float32) for l in data["logits"]], data["virtual_tokens"]


def max_diff(a, b):
    worst = 0.0
    for x, y in zip(a, b):
        if x.shape != y.shape:
            return float("inf")
        worst = max(worst, (x - y).abs().max().item())
    return worst


def peft_to_ptune(rows, ptune):
    from peft import PeftModel, get_peft_model

    for case, (seed, config) in peft_cases().items():
        case_dir = os.path.join(RESOURCES, case)
        adapter = os.path.join(case_dir, "adapter")
        torch.manual_seed(seed)
        model = get_peft_model(base_model(), config)
        model.eval()
        model.save_pretrained(adapter, safe_serialization=True)
        reloaded = PeftModel.from_pretrained(base_model(), adapter)
        reloaded.eval()
        logits = logits_of(reloaded)
        virtual = 0 if config.peft_type == "PREFIX_TUNING" else config.num_virtual_tokens
        write_logits(os.path.join(case_dir, "expected_logits.json"), logits, virtual,
                     f"PEFT {peft_version()} (PeftModel.from_pretrained), {case}")
        # The reloaded model (inference mode: prompt_embeddings only) against the freshly built one.
        fresh = max_diff(logits_of(model), logits)
        rows.append((case, "PEFT: built vs saved+reloaded", fresh, fresh <= TOLERANCE))
        if ptune:
            diff = ptune_logits_diff(ptune, adapter, logits, virtual)
            rows.append((case, "PEFT adapter in `ptune logits`", diff, diff <= TOLERANCE))


def ptune_logits_diff(ptune, adapter, expected, virtual):
    got = []
    for ids in INPUTS:
        result = subprocess.run([ptune, "logits", "--model", TINY, "--adapter", adapter, "--ids",
                                 ",".join(map(str, ids)), "--json"], capture_output=True, text=True)
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return float("inf")
        data = json.loads(result.stdout)
        if data["virtual_tokens"] != virtual:
            return float("inf")
        got.append(torch.tensor(data["logits"], dtype=torch.float32))
    return max_diff(got, expected)


def ptune_to_peft(rows):
    from peft import PeftConfig, PeftModel, get_peft_model
    from safetensors.torch import load_file

    ours = os.path.join(RESOURCES, "ours")
    for case in sorted(os.listdir(ours)):
        case_dir = os.path.join(ours, case)
        with open(os.path.join(case_dir, "adapter_config.json")) as f:
            peft_type = json.load(f)["peft_type"]
        if peft_type == "PTUNE_DYNAMIC_PROMPT":
            rows.append((case, "ptune adapter in PEFT", None, "skipped: ptune's own method, no PEFT equivalent"))
            continue
        layers = os.path.join(case_dir, "ptune_layers.safetensors")
        layers = layers if os.path.exists(layers) else None
        expected, virtual = read_logits(os.path.join(case_dir, "expected_logits.json"))
        model = PeftModel.from_pretrained(base_model(layers), case_dir)
        model.eval()
        logits = logits_of(model)
        write_logits(os.path.join(case_dir, "peft_logits.json"), logits, virtual,
                     f"PEFT {peft_version()} (PeftModel.from_pretrained on ptune's adapter), {case}"
                     + (" with ptune_layers.safetensors applied to the base model" if layers else ""))
        diff = max_diff(logits, expected)
        note = " (+ ptune_layers applied by this script)" if layers else ""
        rows.append((case, "ptune adapter in PeftModel.from_pretrained" + note, diff, diff <= TOLERANCE))

        encoder_file = {"P_TUNING": "ptune_prompt_encoder.safetensors",
                        "PREFIX_TUNING": "ptune_prefix_encoder.safetensors"}.get(peft_type)
        if encoder_file and os.path.exists(os.path.join(case_dir, encoder_file)):
            config = PeftConfig.from_pretrained(case_dir)
            config.inference_mode = False
            trainable = get_peft_model(base_model(), config)
            trainable.eval()
            trainable.prompt_encoder["default"].load_state_dict(load_file(os.path.join(case_dir, encoder_file)))
            saved = load_file(os.path.join(case_dir, "adapter_model.safetensors"))["prompt_embeddings"]
            with torch.no_grad():
                emb = trainable.get_prompt_embedding_to_save("default")
            enc = (emb - saved).abs().max().item()
            rows.append((case, f"{encoder_file} in PEFT's trainable encoder -> prompt_embeddings", enc,
                         enc <= 1e-5))
            diff = max_diff(logits_of(trainable), expected)
            rows.append((case, "logits through PEFT's trainable encoder", diff, diff <= TOLERANCE))


def peft_version():
    import peft

    return peft.__version__


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_ptune = os.path.join(REPO, "target", "ptune")
    parser.add_argument("--ptune", default=default_ptune if os.path.exists(default_ptune) else None,
                        help="the ptune launcher, to run `ptune logits` on PEFT's adapters too")
    args = parser.parse_args()
    ptune = os.path.abspath(args.ptune) if args.ptune else None
    os.chdir(REPO)
    import transformers

    torch.set_grad_enabled(False)
    rows = []
    peft_to_ptune(rows, ptune)
    ptune_to_peft(rows)

    failed = [r for r in rows if r[3] is False]
    lines = [
        "# PEFT comparison (tests-java/peft/peft_compare.py)",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} on {platform.platform()}: "
        f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft_version()}"
        + (", with the ptune launcher (target/ptune)" if ptune else ", without the ptune launcher") + ".",
        "",
        f"Model: tests-java/resources/peft/tiny-llama (random GQA Llama). Inputs: {INPUTS}. "
        f"Tolerance {TOLERANCE} (max abs logit difference, fp32).",
        "",
        "| case | comparison | max abs diff | result |",
        "|---|---|---|---|",
    ]
    for case, what, diff, ok in rows:
        shown = "-" if diff is None else f"{diff:.2e}"
        verdict = ok if isinstance(ok, str) else ("pass" if ok else "FAIL")
        lines.append(f"| {case} | {what} | {shown} | {verdict} |")
    lines += ["", "FAILED" if failed else "All comparisons passed.", "",
              "Committed from this run: PEFT's adapters with PEFT's logits "
              "(`tests-java/resources/peft/<case>/adapter`, `expected_logits.json`) and PEFT's logits for "
              "ptune's adapters (`tests-java/resources/peft/ours/<case>/peft_logits.json`); `PeftInteropTest` "
              "checks ptune against both on every build.",
              "",
              "Independently of PEFT, `tests-java/peft/torch_reference.py` (float64 PyTorch, Hugging Face's "
              "Llama forward and PEFT's inference semantics written out) computed "
              "`ours/<case>/reference_logits.json` from the adapter files alone; `PeftInteropTest` checks "
              "those too.", ""]
    with open(RESULT, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
