#!/usr/bin/env python3
"""ptune -> PEFT for the GPT-2, BLOOM and BERT families: loads every adapter ptune wrote
(tests-java/resources/families/<case>/ours/<method>/, by io.ptune.peft.OurFamilyAdapters) with
PEFT's own PeftModel.from_pretrained on the case's model, and writes what PEFT computes for the
reference inputs to ours/<method>/peft_outputs.safetensors (fp32 tensors "<output>/<input>":
logits for decoders and BertForMaskedLM, last_hidden_state for BertModel; virtual-token rows first,
as PEFT returns them). FamilyPeftInteropTest compares ptune with them on every build.

    toolchains/peft-env.sh /work/peft-env        # torch 2.13 CPU, transformers 5.17, peft 0.21
    /work/peft-env/bin/python tests-java/peft/families_ours.py
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
FAMILIES = os.path.join("tests-java", "resources", "families")
CASES = ["gpt2", "bloom", "bloom_pow2", "bert", "bert_base"]
METHODS = ["prompt_tuning", "p_tuning", "prefix", "prefix_projection"]


def base_model(case, model_dir, dtype):
    from transformers import AutoModelForCausalLM, BertForMaskedLM, BertModel

    if case == "bert":
        return BertForMaskedLM.from_pretrained(model_dir, dtype=dtype)
    if case == "bert_base":
        return BertModel.from_pretrained(model_dir, dtype=dtype)
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)


def outputs(model, inputs, output):
    """{"<output>/<input>": tensor [rows, width]} for each input, unpadded."""
    result = {}
    with torch.no_grad():
        for i, ids in enumerate(inputs):
            input_ids = torch.tensor([ids])
            out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
            value = out.logits if output == "logits" else out.last_hidden_state
            result[f"{output}/{i}"] = value[0].contiguous()
    return result


def main():
    import peft
    import transformers
    from peft import PeftModel
    from safetensors.torch import save_file

    transformers.logging.set_verbosity_error()
    os.chdir(REPO)  # adapter_config.json names the base model relative to the repository
    torch.set_num_threads(1)
    for case in CASES:
        case_dir = os.path.join(FAMILIES, case)
        with open(os.path.join(case_dir, "reference.json")) as f:
            inputs = json.load(f)["inputs"]
        output = "last_hidden_state" if case == "bert_base" else "logits"
        for method in METHODS:
            adapter = os.path.join(case_dir, "ours", method)
            model_dir = os.path.join(case_dir, "model")
            model = PeftModel.from_pretrained(base_model(case, model_dir, torch.float32), adapter).eval()
            tensors = {k: v.float() for k, v in outputs(model, inputs, output).items()}
            # The same in float64: how far fp32 rounding moves each output (tests allow a multiple
            # of it: ill-conditioned models amplify rounding past a few ulps of their outputs).
            model64 = PeftModel.from_pretrained(base_model(case, model_dir, torch.float64), adapter)
            exact = outputs(model64.to(torch.float64).eval(), inputs, output)
            metadata = {"source": f"torch {torch.__version__}, transformers {transformers.__version__}, "
                                  f"peft {peft.__version__}; {type(model.base_model).__name__}"}
            for k, v in tensors.items():
                metadata[f"fp32_error/{k}"] = f"{float((v.double() - exact[k]).abs().max()):.3g}"
            save_file(tensors, os.path.join(adapter, "peft_outputs.safetensors"), metadata=metadata)
            rows = {k: list(v.shape) for k, v in tensors.items()}
            print(f"{case} {method}: {type(model).__name__} {rows}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
