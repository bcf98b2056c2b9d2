#!/usr/bin/env python3
"""ptune -> PEFT for sequence classification: loads every SEQ_CLS classifier ptune wrote
(tests-java/resources/classification/ours/<case>/<method>/, by io.ptune.classify.OurClassifiers)
into transformers' *ForSequenceClassification (num_labels 3, and the pad id for decoders) with
PEFT's own PeftModel.from_pretrained, and writes the logits PEFT computes for the unpadded inputs
"0" and "1" of seq_cls.json to ours/<case>/<method>/peft_outputs.safetensors ("logits/<input>",
[1, 3]; metadata "fp32_error/logits/<input>": max |fp32 - float64| of the same computation).
ClassifierPeftInteropTest compares ptune with them on every build.

    toolchains/peft-env.sh /work/peft-env        # torch 2.13 CPU, transformers 5.17, peft 0.21
    /work/peft-env/bin/python tests-java/peft/classification_ours.py
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
ROOT = os.path.join("tests-java", "resources", "classification")
CASES = ["bert", "gpt2", "llama"]
METHODS = ["prompt_tuning", "p_tuning", "prefix", "prefix_projection"]
INPUTS = ["0", "1"]


def base_model(spec, dtype):
    import transformers

    cls = getattr(transformers, spec["model_class"])
    return cls.from_pretrained(spec["base_model"], dtype=dtype, **spec["config_overrides"])


def logits(model, spec):
    result = {}
    with torch.no_grad():
        for name in INPUTS:
            inputs = {k: torch.tensor(v) for k, v in spec["inputs"][name].items()}
            result[f"logits/{name}"] = model(**inputs).logits.contiguous()
    return result


def main():
    import peft
    import transformers
    from peft import PeftModel
    from safetensors.torch import save_file

    transformers.logging.set_verbosity_error()
    os.chdir(REPO)  # adapter_config.json names the base model relative to the repository
    torch.set_num_threads(1)
    with open(os.path.join(ROOT, "seq_cls.json")) as f:
        cases = json.load(f)["cases"]
    for case in CASES:
        spec = cases[case]
        for method in METHODS:
            adapter = os.path.join(ROOT, "ours", case, method)
            with open(os.path.join(adapter, "adapter_config.json")) as f:
                assert json.load(f)["task_type"] == "SEQ_CLS"
            model = PeftModel.from_pretrained(base_model(spec, torch.float32), adapter).eval()
            assert type(model).__name__ == "PeftModelForSequenceClassification", type(model)
            tensors = {k: v.float() for k, v in logits(model, spec).items()}
            model64 = PeftModel.from_pretrained(base_model(spec, torch.float64), adapter)
            exact = logits(model64.to(torch.float64).eval(), spec)
            metadata = {"source": f"torch {torch.__version__}, transformers {transformers.__version__}, "
                                  f"peft {peft.__version__}; {spec['model_class']}"}
            for k, v in tensors.items():
                metadata[f"fp32_error/{k}"] = f"{float((v.double() - exact[k]).abs().max()):.3g}"
            save_file(tensors, os.path.join(adapter, "peft_outputs.safetensors"), metadata=metadata)
            print(f"{case} {method}: {type(model).__name__} {[list(v.shape) for v in tensors.values()]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
