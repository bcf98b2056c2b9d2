#!/usr/bin/env python3
"""Token ids that transformers gives with the tokenizer.json of each ONNX encoder jar
(langchain4j's all-MiniLM-L6-v2, bge-small-en-v1.5, bge-small-zh-v1.5, unpacked by the Maven build
into target/onnx-models/), for English, Chinese, mixed and special-character sentences. The jars
carry only tokenizer.json (no tokenizer_config.json), so transformers loads it as it is
(PreTrainedTokenizerFast); OnnxEncodersTest checks ptune's ids against this file.

    /work/peft-env/bin/python tests-java/peft/onnx_tokenizers.py
"""
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
MODELS = ["all-minilm-l6-v2", "bge-small-en-v15", "bge-small-zh-v15"]
# Must match io.ptune.model.OnnxEncodersTest.TEXTS.
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Prompt tuning keeps the model frozen and learns a few vectors.",
    "这家酒店的服务非常好，房间也很干净。",
    "I loved it 😀 — 非常好!",
]


def main():
    import transformers
    from transformers import PreTrainedTokenizerFast

    out = {"source": f"transformers {transformers.__version__}, PreTrainedTokenizerFast(tokenizer_file=...)",
           "texts": TEXTS, "ids": {}}
    for name in MODELS:
        files = glob.glob(os.path.join(REPO, "target", "onnx-models", name, "*tokenizer.json"))
        if len(files) != 1:
            raise SystemExit(f"{name}: expected one tokenizer.json, found {files}; run the Maven build first")
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=files[0])
        out["ids"][name] = [tokenizer(text)["input_ids"] for text in TEXTS]
    path = os.path.join(REPO, "tests-java", "resources", "onnx", "tokenizer_ids.json")
    with open(path, "w") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
