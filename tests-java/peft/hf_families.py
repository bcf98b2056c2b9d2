#!/usr/bin/env python3
"""Writes tiny random GPT-2, BLOOM and BERT models, tokenizers trained here, PEFT prompt adapters for them,
and what transformers and PEFT themselves compute with them, so that Java tests (run without Python) can
check ptune's GPT-2, BLOOM and BERT support against the reference implementations:

    /work/peft-env/bin/python tests-java/peft/hf_families.py [--shared ../shared] [--only gpt2,bert]

(the venv comes from `toolchains/peft-env.sh DIR`: torch, transformers 5.17, peft 0.21, safetensors, tokenizers).
The exact semantics these files pin down (positions, masks, ALiBi, PEFT's row layout) are in FAMILIES.md next to
this script.

For each case below, tests-java/resources/families/<case>/ gets
- model/: the model as save_pretrained writes it (config.json, model.safetensors, generation_config.json for
  decoders) plus a tokenizer trained here on the shared Alpaca English + Chinese data with the model's vocabulary
  size (tokenizer.json + tokenizer_config.json, loadable with AutoTokenizer.from_pretrained(model/));
- prompt_tuning/, p_tuning/, prefix/, prefix_projection/: PEFT adapters (get_peft_model with a fixed seed, values
  re-drawn at a scale that changes the outputs, save_pretrained; PEFT's README.md model-card template removed).
  p_tuning/ also holds encoder_state.safetensors: the prompt encoder's full state_dict (embedding.weight,
  mlp_head.{0,2,4}.{weight,bias}); PEFT itself saves only the encoder's output;
- reference.json: texts and transformers' ids for them, the model inputs, greedy tokens, and a description of
  every tensor in reference.safetensors;
- reference.safetensors: transformers' / PEFT's fp32 outputs, exact float32 (decoders and BertForMaskedLM:
  logits; BertModel: last_hidden_state and pooler_output), named "<method>/<output>/<input>" with method bare,
  prompt_tuning, p_tuning, prefix or prefix_projection and input 0, 1 (one sequence, [rows, width]) or
  batch_row1 (row 1 of the padded batch, [rows, width]; row 0 has no padding and equals input 0, asserted).
  Rows are stored exactly as transformers / PEFT return them: virtual-token rows first for prompt tuning and
  P-tuning, padding rows included (they carry no meaning: compare only rows whose attention_mask is 1).

Every adapter is reloaded with PeftModel.from_pretrained and must reproduce the outputs of the model it was saved
from (asserted); outputs are those of the reloaded adapters. Runs are deterministic: a second run writes
byte-identical files.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(REPO, "tests-java", "resources", "families")

MAX_NEW_TOKENS = 10
METHODS = ("prompt_tuning", "p_tuning", "prefix", "prefix_projection")
PROMPT_TOKENS = 4          # prompt tuning and P-tuning
PREFIX_TOKENS = 3          # both prefix-tuning adapters
P_TUNING_HIDDEN = 32       # P-tuning MLP width (distinct from every model width)
PREFIX_HIDDEN = 32         # prefix_projection MLP width
EMBEDDING_STD = 0.25       # token / position / type embeddings (tied LM heads: logits ~ 0.25 * sqrt(hidden))
MATRIX_GAIN = 3.0          # weight matrices ~ N(0, gain^2 / fan_in) ...
ATTENTION_GAIN = 4.0       # ... and this gain for the query/key/value projections (see randomise)
QKV_NAMES = ("attn.c_attn.", "self_attention.query_key_value.", "attention.self.query.", "attention.self.key.",
             "attention.self.value.")

CASES = {
    # GPT2LMHeadModel: Conv1D weights ([in, out]), learned positions, gelu_new, n_inner unset (4 * n_embd).
    "gpt2": dict(family="gpt2", seed=61, vocab=517, hidden=64, heads=4),
    # BloomForCausalLM with 6 heads: ALiBi slopes for a head count that is not a power of two. BLOOM needs
    # hidden % heads == 0, so both BLOOM cases have hidden 48 and differ only in the head split (8 x 6, 6 x 8).
    "bloom": dict(family="bloom", seed=72, vocab=331, hidden=48, heads=6),
    "bloom_pow2": dict(family="bloom", seed=73, vocab=331, hidden=48, heads=8),
    # BertForMaskedLM (checkpoint: bert.* and cls.predictions.*) and BertModel with its pooler.
    "bert": dict(family="bert", seed=64, vocab=361, hidden=64, heads=4, mlm=True),
    "bert_base": dict(family="bert", seed=65, vocab=361, hidden=64, heads=4, mlm=False),
}

TEXTS = {
    "gpt2": ["Give three tips for staying healthy.", "给出保持健康的三个建议。", "I love pizza 🍕 and café!",
             " Hello world", "Hello<|endoftext|>world", "line one\n\n  line two"],
    "bloom": ["Give three tips for staying healthy.", "给出保持健康的三个建议。", "I love pizza 🍕 and café!",
              " Hello world", "<s>Hi</s> there", "Add (2+3) = 5? Yes|no [ok]…好。", "line one\n\n  line two"],
    "bert": ["Give three tips for staying healthy.", "给出保持健康的三个建议。", "I love pizza 🍕 and café!",
             " Hello world", "The capital of France is [MASK].", "the [mask] Ünïcode  ÀB (x)"],
}
BERT_PAIR = ("On?", "No.")  # BERT input 0 (token types 0 and 1)
BERT_SINGLE = "It is [MASK]."  # BERT input 1

TOKENIZER_ROWS = 3000      # rows of each Alpaca file the tokenizers are trained on


# ---------------------------------------------------------------------------------------------- tokenizers

def training_corpus(shared):
    rows = []
    for path in ("data/alpaca_en/alpaca_data.json", "data/alpaca_zh/alpaca_data_zh.json"):
        with open(os.path.join(shared, path), encoding="utf-8") as f:
            data = json.load(f)[:TOKENIZER_ROWS]
        rows += ["\n".join(x for x in (r["instruction"], r["input"], r["output"]) if x) for r in data]
    return rows


def train_tokenizer(family, vocab, corpus):
    """A tokenizers.Tokenizer in the family's style, with exactly `vocab` entries, and its tokenizer_config."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers import trainers

    if family == "gpt2":
        # As openai-community/gpt2: byte-level BPE, regex split, no normalizer, <|endoftext|> the last id.
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        tok.train_from_iterator(corpus, trainers.BpeTrainer(
            vocab_size=vocab - 1, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
        tok.add_special_tokens([AddedToken("<|endoftext|>", special=True)])
        config = {"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False, "bos_token": "<|endoftext|>",
                  "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "model_max_length": 64}
    elif family == "bloom":
        # As bigscience/bloom: <unk> <s> </s> <pad> = 0..3, the Split regex then byte-level without regex.
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(" ?[^(\\s|[.,!?…。，、।۔،])]+"), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
        tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=False)
        tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=False)
        tok.train_from_iterator(corpus, trainers.BpeTrainer(
            vocab_size=vocab, special_tokens=[AddedToken(t, special=True) for t in ("<unk>", "<s>", "</s>", "<pad>")],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
        config = {"tokenizer_class": "BloomTokenizer", "add_prefix_space": False, "bos_token": "<s>",
                  "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "padding_side": "left",
                  "model_max_length": 64}
    else:
        # As google-bert/bert-base-uncased: lower-casing BertNormalizer (strips accents, splits CJK characters),
        # BertPreTokenizer, WordPiece with ##, [CLS] $A [SEP] ($B [SEP] with type 1).
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                    lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        ascii_chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
        tok.train_from_iterator(corpus, trainers.WordPieceTrainer(
            vocab_size=vocab, special_tokens=specials, initial_alphabet=ascii_chars, limit_alphabet=200,
            show_progress=False))
        # The trainer numbers the "##x" alphabet in hash-map order (differs between runs): renumber canonically
        # (special tokens, the one-character alphabet sorted, then the merged pieces in the trainer's order).
        # WordPiece segmentation depends only on which pieces exist, not on their ids.
        trained = tok.get_vocab()
        rest = sorted((t for t in trained if t not in specials),
                      key=lambda t: (0, t, 0) if len(t.removeprefix("##")) == 1 else (1, "", trained[t]))
        wordpiece = models.WordPiece({t: i for i, t in enumerate(specials + rest)}, unk_token="[UNK]")
        normalizer, pre_tokenizer, decoder = tok.normalizer, tok.pre_tokenizer, tok.decoder
        tok = Tokenizer(wordpiece)
        tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre_tokenizer, decoder
        tok.add_special_tokens([AddedToken(t, special=True) for t in specials])
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
            special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "tokenize_chinese_chars": True,
                  "strip_accents": None, "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                  "cls_token": "[CLS]", "mask_token": "[MASK]", "model_max_length": 64}
    if tok.get_vocab_size() != vocab:
        raise SystemExit(f"{family}: tokenizer has {tok.get_vocab_size()} entries, wanted {vocab}")
    return tok, config


def save_tokenizer(tok, config, model_dir):
    tok.save(os.path.join(model_dir, "tokenizer.json"))
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")


# ---------------------------------------------------------------------------------------------- models

def make_config(spec, tok):
    from transformers import BertConfig, BloomConfig, GPT2Config

    family, vocab, hidden, heads = spec["family"], spec["vocab"], spec["hidden"], spec["heads"]
    if family == "gpt2":
        eot = tok.token_to_id("<|endoftext|>")
        return GPT2Config(vocab_size=vocab, n_positions=64, n_embd=hidden, n_layer=2, n_head=heads,
                          bos_token_id=eot, eos_token_id=eot)
    if family == "bloom":
        return BloomConfig(vocab_size=vocab, hidden_size=hidden, n_layer=2, n_head=heads,
                           bos_token_id=tok.token_to_id("<s>"), eos_token_id=tok.token_to_id("</s>"),
                           pad_token_id=tok.token_to_id("<pad>"))
    return BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=heads,
                      intermediate_size=128, max_position_embeddings=64, type_vocab_size=2,
                      pad_token_id=tok.token_to_id("[PAD]"))


def model_class(spec):
    from transformers import BertForMaskedLM, BertModel, BloomForCausalLM, GPT2LMHeadModel

    if spec["family"] == "gpt2":
        return GPT2LMHeadModel
    if spec["family"] == "bloom":
        return BloomForCausalLM
    return BertForMaskedLM if spec["mlm"] else BertModel


def randomise(module, seed, embedding_std=EMBEDDING_STD):
    """Norm weights ~ 1 + N(0, 0.1^2), biases ~ N(0, 0.1^2), embeddings ~ N(0, embedding_std^2), matrices
    ~ N(0, gain^2/fan_in) (Conv1D stores [in, out], nn.Linear [out, in]), parameters drawn in name order.

    The gains (MATRIX_GAIN, ATTENTION_GAIN for the query/key/value projections) make attention sharp and the
    blocks' outputs dominate the token's own embedding in the residual stream: with gain 1 a random model with
    tied embeddings mostly predicts the token it was just given, and greedy generation repeats one token."""
    from transformers.pytorch_utils import Conv1D

    generator = torch.Generator().manual_seed(seed)
    conv1d = {f"{name}.weight" for name, m in module.named_modules() if isinstance(m, Conv1D)}
    embeddings = {f"{name}.weight" for name, m in module.named_modules() if isinstance(m, torch.nn.Embedding)}
    norms = {f"{name}.weight" for name, m in module.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            noise = torch.randn(p.shape, generator=generator)
            if name in norms:
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            elif name in embeddings:
                p.copy_(embedding_std * noise)
            elif p.dim() == 2:
                gain = ATTENTION_GAIN if any(k in name for k in QKV_NAMES) else MATRIX_GAIN
                p.copy_(gain * noise / (p.shape[0] if name in conv1d else p.shape[1]) ** 0.5)
            else:
                raise SystemExit(f"randomise: no rule for {name} {tuple(p.shape)}")


# ---------------------------------------------------------------------------------------------- inputs

def make_inputs(spec, tokenizer):
    """Two id sequences, the second shorter, and a padded batch of both (left-padded for decoders, right-padded
    for BERT), so batch row 0 has no padding and batch row 1 has some."""
    family = spec["family"]
    if family == "bert":
        pair = tokenizer(*BERT_PAIR)
        single = tokenizer(BERT_SINGLE)
        seqs = [pair["input_ids"], single["input_ids"]]
        types = [pair["token_type_ids"], single["token_type_ids"]]
        pad = tokenizer.pad_token_id
        width = max(map(len, seqs))
        batch = {"input_ids": [s + [pad] * (width - len(s)) for s in seqs],
                 "attention_mask": [[1] * len(s) + [0] * (width - len(s)) for s in seqs],
                 "token_type_ids": [t + [0] * (width - len(t)) for t in types],
                 "padding_side": "right", "pad_token_id": pad}
        return seqs, types, batch
    seqs = [tokenizer("Give three tips for staying healthy.")["input_ids"][:5],
            tokenizer("给出保持健康的三个建议。")["input_ids"][:3]]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(map(len, seqs))
    batch = {"input_ids": [[pad] * (width - len(s)) + s for s in seqs],
             "attention_mask": [[0] * (width - len(s)) + [1] * len(s) for s in seqs],
             "padding_side": "left", "pad_token_id": pad}
    return seqs, None, batch


def mask_positions(mask):
    """The position ids generate() derives from a 2D mask: cumsum - 1, padding set to 0."""
    return (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)


# ---------------------------------------------------------------------------------------------- running

def run(model, family, ids, mask, token_type_ids=None, position_ids=None):
    """The model's fp32 outputs: {name: tensor [batch, rows, width]} (pooler_output [batch, width])."""
    kwargs = dict(input_ids=ids, attention_mask=mask)
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    if position_ids is not None:
        kwargs["position_ids"] = position_ids
    with torch.no_grad():
        if family != "bert":
            return {"logits": model(**kwargs).logits.float()}
        out = model(**kwargs)
        if hasattr(out, "logits"):  # BertForMaskedLM: the MLM head's logits
            return {"logits": out.logits.float()}
        return {"last_hidden_state": out.last_hidden_state.float(), "pooler_output": out.pooler_output.float()}


def outputs_for(model, family, seqs, types, batch, is_peft):
    """All outputs for the two sequences and for row 1 of the padded batch, keyed "<output>/<input>" with input
    0, 1 or batch_row1. Row 0 of the batch (no padding) must equal input 0's outputs (asserted, not stored)."""
    result = {}
    runs = []
    for i, s in enumerate(seqs):
        ids = torch.tensor([s])
        tt = torch.tensor([types[i]]) if types is not None and not is_peft else None
        runs.append((str(i), ids, torch.ones_like(ids), tt, False))
    ids, mask = torch.tensor(batch["input_ids"]), torch.tensor(batch["attention_mask"])
    tt = torch.tensor(batch["token_type_ids"]) if "token_type_ids" in batch and not is_peft else None
    runs.append(("batch", ids, mask, tt, True))
    for name, ids, mask, tt, batched in runs:
        for output, value in run(model, family, ids, mask, tt).items():
            if batched:
                diff = float((value[0] - result[f"{output}/0"]).abs().max())
                assert diff < 1e-4, f"batch row 0 differs from input 0 by {diff} ({output})"
                result[f"{output}/batch_row1"] = value[1]
            else:
                result[f"{output}/{name}"] = value[0]
    return result


def greedy(model, seqs, batch):
    """MAX_NEW_TOKENS greedy tokens (generate, KV cache) after each sequence and after each row of the batch."""
    pad = batch["pad_token_id"]
    out = {}
    with torch.no_grad():
        singles = []
        for s in seqs:
            ids = torch.tensor([s])
            generated = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                       max_new_tokens=MAX_NEW_TOKENS, pad_token_id=pad)
            singles.append(generated[0, len(s):].tolist())
        ids = torch.tensor(batch["input_ids"])
        generated = model.generate(input_ids=ids, attention_mask=torch.tensor(batch["attention_mask"]),
                                   do_sample=False, max_new_tokens=MAX_NEW_TOKENS, pad_token_id=pad)
        out["greedy"] = singles
        out["greedy_batch"] = generated[:, ids.shape[1]:].tolist()
    return out


def greedy_full_forward(model, seqs, eos):
    """The same greedy tokens by re-running the whole sequence each step (no KV cache), for a consistency check."""
    out = []
    with torch.no_grad():
        for s in seqs:
            ids = list(s)
            new = []
            for _ in range(MAX_NEW_TOKENS):
                x = torch.tensor([ids])
                token = int(model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0, -1].argmax())
                new.append(token)
                ids.append(token)
                if token == eos:
                    break
            out.append(new)
    return out


def peft_config(method, task_type):
    from peft import PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig

    if method == "prompt_tuning":
        return PromptTuningConfig(task_type=task_type, num_virtual_tokens=PROMPT_TOKENS, prompt_tuning_init="RANDOM")
    if method == "p_tuning":
        return PromptEncoderConfig(task_type=task_type, num_virtual_tokens=PROMPT_TOKENS,
                                   encoder_reparameterization_type="MLP", encoder_hidden_size=P_TUNING_HIDDEN)
    if method == "prefix":
        return PrefixTuningConfig(task_type=task_type, num_virtual_tokens=PREFIX_TOKENS)
    return PrefixTuningConfig(task_type=task_type, num_virtual_tokens=PREFIX_TOKENS, prefix_projection=True,
                              encoder_hidden_size=PREFIX_HIDDEN)


def randomise_prompt(encoder, method, seed):
    """Values at the scale of what they replace: prompt embeddings ~ 2x the token embeddings, prefix keys/values
    ~ N(0, 1) like the model's own, encoder MLPs with 1/sqrt(fan_in) weights."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(encoder.named_parameters()):
            noise = torch.randn(p.shape, generator=generator)
            if name == "embedding.weight":
                p.copy_(noise * (2 * EMBEDDING_STD if method == "prompt_tuning" else 1.0))
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(noise / p.shape[1] ** 0.5)


def notes(family, method):
    """What the rows of the stored outputs are and which positions the model gave them (see FAMILIES.md)."""
    prompt = method in ("prompt_tuning", "p_tuning")
    if method == "bare":
        rows = "one row per token; batch_row1 includes its padding rows"
    elif prompt:
        rows = ("P virtual-token rows first (PEFT does not strip them), then one row per token; batch_row1: "
                + ("virtual rows, left padding, text" if family != "bert" else "virtual rows, text, right padding"))
    else:
        rows = "one row per token (a prefix adds keys/values, no rows)"
    positions = {
        ("gpt2", "bare"): "0..L-1 (arange; left padding takes positions too: batch_row1_mask_positions has "
                          "cumsum(mask)-1 instead, as generate() uses)",
        ("gpt2", "prompt"): "virtual tokens 0..P-1, then P, P+1, ... for the following slots, padding included "
                            "(PEFT drops position_ids); generate() does the same",
        ("gpt2", "prefix"): "text P..P+L-1 (arange + cache length), padding included; generate() and "
                            "batch_row1_mask_positions: cumsum(mask)-1+P",
        ("bloom", "bare"): "ALiBi key positions cumsum(mask)-1: padding takes none",
        ("bloom", "prompt"): "ALiBi over [ones(P), mask]: virtual tokens 0..P-1, text from P, padding takes none",
        ("bloom", "prefix"): "ALiBi over [ones(P), mask]: prefix keys 0..P-1, text from P, padding takes none",
        ("bert", "bare"): "0..L-1; token_type_ids as given",
        ("bert", "prompt"): "virtual tokens 0..P-1, text P..P+L-1; token type 0 everywhere (PEFT drops "
                            "token_type_ids); pooler reads row 0 = first virtual token",
        ("bert", "prefix"): "text P..P+L-1 (BertEmbeddings offsets by the cache length); token type 0 everywhere "
                            "(PEFT drops token_type_ids); pooler reads [CLS]",
    }[(family, "bare" if method == "bare" else "prompt" if prompt else "prefix")]
    return {"rows": rows, "positions": positions}


def max_abs_diff(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def write_case(name, spec, corpus, versions):
    from peft import PeftModel, get_peft_model
    from safetensors.torch import save_file
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    family = spec["family"]
    case = os.path.join(OUT, name)
    rel = lambda *p: os.path.relpath(os.path.join(case, *p), REPO)  # noqa: E731 (paths recorded by PEFT)
    shutil.rmtree(case, ignore_errors=True)
    os.makedirs(os.path.join(case, "model"))

    # Tokenizer: trained here, then checked through AutoTokenizer against the raw tokenizer.json.
    tok, tok_config = train_tokenizer(family, spec["vocab"], corpus)
    save_tokenizer(tok, tok_config, os.path.join(case, "model"))
    tokenizer = AutoTokenizer.from_pretrained(rel("model"))
    raw = Tokenizer.from_file(os.path.join(case, "model", "tokenizer.json"))
    texts = TEXTS[family]
    text_ids = [tokenizer(t)["input_ids"] for t in texts]
    for t, ids in zip(texts, text_ids):
        if raw.encode(t).ids != ids:
            raise SystemExit(f"{name}: AutoTokenizer and tokenizer.json disagree on {t!r}")

    # Model: built from its config, randomised, saved, reloaded from disk (what every output below uses).
    torch.manual_seed(spec["seed"])
    cls = model_class(spec)
    model = cls(make_config(spec, tok)).eval()
    randomise(model, spec["seed"])
    model.save_pretrained(rel("model"))
    load = lambda: cls.from_pretrained(rel("model"), dtype=torch.float32).eval()  # noqa: E731
    load64 = lambda: cls.from_pretrained(rel("model"), dtype=torch.float64).eval()  # noqa: E731
    base = load()
    # The same computations in float64: how far fp32 rounding moves each stored output. An
    # ill-conditioned model (here BERT, post-LN with eps 1e-12) amplifies rounding well past a few
    # ulps of its outputs, so tests allow a multiple of this measured error (fp32_error).
    fp32_error = {}

    def record_fp32_error(prefix, fp32_outputs, model64):
        for k, v in outputs_for(model64, family, seqs, types, batch, is_peft=prefix != "bare").items():
            # Padding rows that see no key have no meaning; in float64 BLOOM turns them into NaN, which
            # then reaches every row of that sequence through 0 x NaN: no estimate there (0).
            diff = (fp32_outputs[k].double() - v.double()).abs()
            finite = diff[torch.isfinite(diff)]
            fp32_error[f"{prefix}/{k}"] = float(finite.max()) if finite.numel() > 0 else 0.0
    seqs, types, batch = make_inputs(spec, tokenizer)
    is_decoder = family != "bert"
    tensors = {}
    outputs = {}

    bare = outputs_for(base, family, seqs, types, batch, is_peft=False)
    tensors.update({f"bare/{k}": v for k, v in bare.items()})
    outputs["bare"] = {"virtual_tokens": 0, **notes(family, "bare"), "tensors": sorted(f"bare/{k}" for k in bare)}
    record_fp32_error("bare", bare, load64())
    if is_decoder:
        outputs["bare"].update(greedy(base, seqs, batch))
        full = greedy_full_forward(base, seqs, base.config.eos_token_id)
        if full != outputs["bare"]["greedy"]:
            raise SystemExit(f"{name}: generate() and full-forward greedy tokens differ: {full}")
    if family == "gpt2":
        # GPT-2 forward ignores the mask for positions (arange); generate() uses the mask's cumsum instead.
        mask = torch.tensor(batch["attention_mask"])
        pos = run(base, family, torch.tensor(batch["input_ids"]), mask, position_ids=mask_positions(mask))
        tensors["bare/logits/batch_row1_mask_positions"] = pos["logits"][1]
        outputs["bare"]["tensors"].append("bare/logits/batch_row1_mask_positions")

    task_type = "CAUSAL_LM" if is_decoder else "FEATURE_EXTRACTION"
    for index, method in enumerate(METHODS):
        seed = spec["seed"] * 100 + index
        torch.manual_seed(seed)
        peft_model = get_peft_model(load(), peft_config(method, task_type)).eval()
        encoder = peft_model.prompt_encoder["default"]
        randomise_prompt(encoder, method, seed)
        peft_model.save_pretrained(rel(method))
        os.remove(os.path.join(case, method, "README.md"))  # PEFT's model-card template: no data, 5 KB
        if method == "p_tuning":
            save_file({k: v.detach().contiguous() for k, v in sorted(encoder.state_dict().items())},
                      os.path.join(case, method, "encoder_state.safetensors"))
        trained = outputs_for(peft_model, family, seqs, types, batch, is_peft=True)

        reloaded = PeftModel.from_pretrained(load(), rel(method)).eval()
        result = outputs_for(reloaded, family, seqs, types, batch, is_peft=True)
        diff = max_abs_diff(trained, result)
        assert diff < 1e-4, f"{name}/{method}: reloaded adapter differs from the saved one by {diff}"
        virtual = PROMPT_TOKENS if method in ("prompt_tuning", "p_tuning") else 0
        tensors.update({f"{method}/{k}": v for k, v in result.items()})
        record_fp32_error(method, result, PeftModel.from_pretrained(load64(), rel(method)).to(torch.float64).eval())
        entry = {"adapter": method, "peft_type": reloaded.active_peft_config.peft_type.value,
                 "task_type": task_type, "peft_class": type(reloaded).__name__, "virtual_tokens": virtual,
                 **notes(family, method), "tensors": sorted(f"{method}/{k}" for k in result)}
        # How much the adapter changes the output (text rows only), so a test knows the adapter matters.
        key = "logits/0" if "logits/0" in result else "last_hidden_state/0"
        entry["max_abs_change_vs_bare"] = round(float((result[key][virtual:] - bare[key]).abs().max()), 4)
        if is_decoder:
            entry.update(greedy(reloaded, seqs, batch))
            full = greedy_full_forward(reloaded, seqs, base.config.eos_token_id)
            if full != entry["greedy"]:
                raise SystemExit(f"{name}/{method}: generate() and full-forward greedy tokens differ: "
                                 f"{entry['greedy']} vs {full}")
        if family == "gpt2" and method == "prefix":
            mask = torch.tensor(batch["attention_mask"])
            pos = run(reloaded, family, torch.tensor(batch["input_ids"]), mask, position_ids=mask_positions(mask))
            tensors["prefix/logits/batch_row1_mask_positions"] = pos["logits"][1]
            entry["tensors"].append("prefix/logits/batch_row1_mask_positions")
        outputs[method] = entry

    # Does the padded row give the sequence's own outputs on its real tokens? (A fact worth pinning down.)
    short = len(seqs[1])
    for method, entry in outputs.items():
        virtual = entry["virtual_tokens"]
        real = lambda t: t[virtual:][-short:] if batch["padding_side"] == "left" else t[virtual:][:short]  # noqa
        same = True
        for output in ("logits", "last_hidden_state"):
            if f"{method}/{output}/batch_row1" in tensors:
                padded, own = real(tensors[f"{method}/{output}/batch_row1"]), tensors[f"{method}/{output}/1"]
                same = same and bool((padded - own[virtual:]).abs().max() < 1e-4)
        entry["batch_row1_text_rows_match_input1"] = same
        if f"{method}/logits/batch_row1_mask_positions" in tensors:
            padded = real(tensors[f"{method}/logits/batch_row1_mask_positions"])
            entry["batch_row1_mask_positions_text_rows_match_input1"] = bool(
                (padded - tensors[f"{method}/logits/1"]).abs().max() < 1e-4)

    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    save_file(tensors, os.path.join(case, "reference.safetensors"), metadata={"source": versions})
    shapes = {k: list(v.shape) for k, v in sorted(tensors.items())}
    config = base.config
    reference = {
        "source": f"{versions}; {cls.__name__}, {type(tokenizer).__name__} (AutoTokenizer), "
                  f"attn_implementation {config._attn_implementation}",
        "case": name,
        "model_class": cls.__name__,
        "model": summary(config, family),
        "tokenizer": {"class": tok_config["tokenizer_class"], "loaded_as": type(tokenizer).__name__,
                      "vocab_size": tok.get_vocab_size(),
                      "special_tokens": {t: tok.token_to_id(t) for t in sorted(special_tokens(tok_config))}},
        "texts": texts,
        "text_ids": text_ids,
    }
    if family == "bert":
        enc = tokenizer(*BERT_PAIR)
        reference["text_pair"] = list(BERT_PAIR)
        reference["text_pair_ids"] = enc["input_ids"]
        reference["text_pair_token_type_ids"] = enc["token_type_ids"]
    reference["inputs"] = seqs
    if types is not None:
        reference["token_type_ids"] = types
    reference["batch"] = batch
    reference["tensors_file"] = "reference.safetensors"
    reference["tensor_shapes"] = shapes
    reference["outputs"] = outputs
    reference["max_abs"] = {k: round(float(v.abs().max()), 4) for k, v in sorted(tensors.items())}
    reference["fp32_error"] = {k: float(f"{v:.3g}") for k, v in sorted(fp32_error.items())}
    with open(os.path.join(case, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(reference, f, separators=(",", ":"), ensure_ascii=False)
        f.write("\n")

    params = sum(p.numel() for p in base.parameters())
    biggest = max(reference["max_abs"][k] for k in reference["max_abs"] if "/logits/" in k or "hidden" in k)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(case) for f in fs)
    print(f"{name}: {cls.__name__}, {params:,} parameters, vocab {tok.get_vocab_size()}, max |output| {biggest:.3f}, "
          f"{len(tensors)} tensors, {size / 1024:.0f} KiB on disk")
    for method in METHODS:
        e = outputs[method]
        print(f"  {method}: {e['peft_class']} {e['task_type']}, max |change vs bare| {e['max_abs_change_vs_bare']}"
              + (f", greedy {e['greedy']}" if is_decoder else ""))


def special_tokens(config):
    return {v for k, v in config.items() if k.endswith("_token") and v is not None}


def summary(config, family):
    keys = {
        "gpt2": ("vocab_size", "n_embd", "n_layer", "n_head", "n_inner", "n_positions", "activation_function",
                 "layer_norm_epsilon", "tie_word_embeddings", "bos_token_id", "eos_token_id"),
        "bloom": ("vocab_size", "hidden_size", "n_layer", "n_head", "layer_norm_epsilon",
                  "apply_residual_connection_post_layernorm", "tie_word_embeddings", "bos_token_id", "eos_token_id",
                  "pad_token_id"),
        "bert": ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "max_position_embeddings", "type_vocab_size", "hidden_act", "layer_norm_eps", "tie_word_embeddings",
                 "pad_token_id"),
    }[family]
    return {k: getattr(config, k) for k in keys}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=os.path.join(REPO, "..", "shared"))
    parser.add_argument("--only", default=",".join(CASES), help="comma-separated cases (default: all)")
    args = parser.parse_args()
    import peft
    import tokenizers
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore")  # PEFT warns that it drops token_type_ids / position_ids: FAMILIES.md
    torch.set_num_threads(1)  # same reductions every run
    versions = (f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, "
                f"tokenizers {tokenizers.__version__}")
    corpus = training_corpus(os.path.abspath(args.shared))
    os.chdir(REPO)  # adapter_config.json records a repository-relative base model path
    for name in args.only.split(","):
        if name not in CASES:
            raise SystemExit(f"unknown case {name}; known: {', '.join(CASES)}")
        write_case(name, CASES[name], corpus, versions)
    digest = hashlib.sha256()
    for d, _, files in sorted(os.walk(OUT)):
        for f in sorted(files):
            with open(os.path.join(d, f), "rb") as fh:
                digest.update(os.path.relpath(os.path.join(d, f), OUT).encode() + b"\0" + fh.read())
    print(f"sha256 of all outputs: {digest.hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
