#!/usr/bin/env python3
"""Reference data for classification with prompts, written by transformers 5.17 + PEFT 0.21 themselves (and a
plain-torch re-implementation of OpenPrompt's verbalizers), so that Java / C++ tests can replay it without Python:

    /work/peft-env/bin/python tests-java/peft/classification_refs.py

Writes tests-java/resources/classification/ (what each file holds, and the semantics the files pin down, with
source citations: CLASSIFICATION.md next to this script):

1. seq_cls/: PEFT SEQ_CLS adapters (prompt tuning, P-tuning MLP, prefix tuning) on BertForSequenceClassification
   (tiny bert_base weights), GPT2ForSequenceClassification (tiny gpt2 weights) and LlamaForSequenceClassification
   (tiny-llama), each with a randomised prompt and head, saved with save_pretrained and reloaded with
   PeftModel.from_pretrained; seq_cls.json + seq_cls.safetensors hold the inputs and the logits (fp32 and the same
   computation in float64), the vector the head reads, and which row that is (checked from the hidden states).
2. verbalizer.json + verbalizer.safetensors: OpenPrompt ManualVerbalizer.process_logits (multi-token handlers
   first / mean / max, post_log_softmax on / off, contextual calibration) on the tiny BERT MLM ([MASK] slot) and the
   tiny GPT-2 (next-token slot), in float64, from the slot logits stored next to them; plus SoftVerbalizer (WARP)
   scores at initialisation and GPT-2 autoregressive label-word log-likelihoods.
3. losses.json: cross-entropy, class weights, label smoothing, focal loss (values and gradients w.r.t. the logits),
   float64.

Deterministic (seeded generators, one torch thread): a second run writes byte-identical files (sha256 printed).
"""
import hashlib
import json
import os
import shutil
import sys
import warnings

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT_REL = "tests-java/resources/classification"
FAMILIES_REL = "tests-java/resources/families"
LLAMA_REL = "tests-java/resources/peft/tiny-llama"

NUM_LABELS = 3
PROMPT_TOKENS = 4      # prompt tuning and P-tuning
PREFIX_TOKENS = 3      # prefix tuning
P_TUNING_HIDDEN = 32   # P-tuning MLP width
METHODS = ("prompt_tuning", "p_tuning", "prefix")

SEQ_CASES = {
    # case: model class, base model folder (repository-relative), config overrides, seed
    "bert": dict(cls="BertForSequenceClassification", model=f"{FAMILIES_REL}/bert_base/model", overrides={},
                 seed=301),
    "gpt2": dict(cls="GPT2ForSequenceClassification", model=f"{FAMILIES_REL}/gpt2/model",
                 overrides={"pad_token_id": 516}, seed=302),   # <|endoftext|>, the pad FAMILIES.md uses
    "llama": dict(cls="LlamaForSequenceClassification", model=LLAMA_REL, overrides={"pad_token_id": 2}, seed=303),
}
BERT_PAIR = ("On?", "No.")                   # input 0 (token types 0 / 1)
BERT_SINGLE = "I love pizza and the film."   # input 1
DECODER_TEXTS = ("Give three tips for staying healthy.", "给出保持健康的三个建议。")
BATCH_LABELS = [0, 2]

# Verbalizer: classes with label words (OpenPrompt prefixes each with " " before tokenising). Class 0 has two
# one-token words, class 1 one two-token word (so its second word slot is padding), class 2 a one-token and a
# two-token word, in both the BERT and the GPT-2 vocabulary (asserted).
LABEL_WORDS = [["the", "and"], ["bad"], ["it", "yes"]]
VERBALIZER_TEXTS = ["a fun film", "it is too long and dull", "no comment"]
CONTENT_FREE = {"empty": [""], "na": ["N/A"], "empty_na": ["", "N/A"]}
HANDLERS = ("first", "mean", "max")


def sha256_tree(root):
    digest = hashlib.sha256()
    for d, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            with open(os.path.join(d, f), "rb") as fh:
                digest.update(os.path.relpath(os.path.join(d, f), root).encode() + b"\0" + fh.read())
    return digest.hexdigest()


def dump_json(obj, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")


def maxdiff(a, b):
    return float((a.double() - b.double()).abs().max())


# ============================================================================================ 1. SEQ_CLS + PEFT

def peft_config(method):
    from peft import PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig

    if method == "prompt_tuning":
        return PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=PROMPT_TOKENS, prompt_tuning_init="RANDOM")
    if method == "p_tuning":
        return PromptEncoderConfig(task_type="SEQ_CLS", num_virtual_tokens=PROMPT_TOKENS,
                                   encoder_reparameterization_type="MLP", encoder_hidden_size=P_TUNING_HIDDEN)
    return PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=PREFIX_TOKENS)


def randomise_prompt_and_head(peft_model, method, seed, embedding_std):
    """Prompt values at the scale of what they replace (prompt tuning: 2x the token embeddings' std; P-tuning
    embedding and prefix keys/values N(0, 1); MLP weights 1/sqrt(fan_in)), and a head whose logits are O(1):
    weight N(0, 4/fan_in), bias N(0, 0.1^2). The head is the ModulesToSaveWrapper's trainable copy, the one PEFT
    runs and saves."""
    generator = torch.Generator().manual_seed(seed)
    encoder = peft_model.prompt_encoder["default"]
    head = peft_model.base_model.get_submodule(peft_model.cls_layer_name).modules_to_save["default"]
    with torch.no_grad():
        for name, p in sorted(encoder.named_parameters()):
            noise = torch.randn(p.shape, generator=generator)
            if name == "embedding.weight":
                p.copy_(noise * (2 * embedding_std if method == "prompt_tuning" else 1.0))
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(noise / p.shape[1] ** 0.5)
        for name, p in sorted(head.named_parameters()):
            noise = torch.randn(p.shape, generator=generator)
            p.copy_(0.1 * noise if name == "bias" else 2.0 * noise / p.shape[1] ** 0.5)


NOTES = {
    ("bert", "prompt"): "inputs_embeds = [prompt; word_embeddings(ids)], mask [ones(P), mask], token_type_ids "
                        "[zeros(P), types], no position_ids (virtual 0..P-1, text P..); pooler reads row 0 = the "
                        "first virtual token; logits = classifier(dropout(tanh(pooler.dense(H[:, 0]))))",
    ("bert", "prefix"): "PEFT's own path (BertForSequenceClassification.forward has no past_key_values): "
                        "bert(input_ids, mask [ones(P), mask], token_type_ids as given, past_key_values=prefix); "
                        "text positions P..P+L-1; pooler reads [CLS] (row 0); then dropout, classifier",
    ("decoder", "prompt"): "inputs_embeds only (input_ids=None), so the *ForSequenceClassification cannot search "
                           "for padding: it reads the LAST column (row P+W-1) of every row, padding or not",
    ("decoder", "prefix"): "input_ids are passed, so the head reads the rightmost column whose input id != "
                           "pad_token_id: argmax(arange(W) * (ids != pad)); a trailing EOS equal to the pad id "
                           "is skipped too; the attention mask is not consulted",
}


def seq_inputs(case, tokenizer, pad):
    """{name: (input_ids, attention_mask, token_type_ids or None)} and the notes on them."""
    runs = {}
    if case == "bert":
        pair, single = tokenizer(*BERT_PAIR), tokenizer(BERT_SINGLE)
        seqs = [(pair["input_ids"], pair["token_type_ids"]), (single["input_ids"], single["token_type_ids"])]
        for i, (ids, tt) in enumerate(seqs):
            runs[str(i)] = ([ids], [[1] * len(ids)], [tt])
        width = max(len(s) for s, _ in seqs)
        runs["batch_right"] = ([s + [pad] * (width - len(s)) for s, _ in seqs],
                               [[1] * len(s) + [0] * (width - len(s)) for s, _ in seqs],
                               [t + [0] * (width - len(t)) for _, t in seqs])
        return runs
    seqs = [tokenizer(DECODER_TEXTS[0])["input_ids"][:5], tokenizer(DECODER_TEXTS[1])["input_ids"][:3]]
    for i, ids in enumerate(seqs):
        runs[str(i)] = ([ids], [[1] * len(ids)], None)
    # input 2: input 1 followed by the pad id itself (EOS for both decoders here), unpadded, mask all ones.
    runs["2"] = ([seqs[1] + [pad]], [[1] * (len(seqs[1]) + 1)], None)
    width = max(map(len, seqs))
    runs["batch_right"] = ([s + [pad] * (width - len(s)) for s in seqs],
                           [[1] * len(s) + [0] * (width - len(s)) for s in seqs], None)
    runs["batch_left"] = ([[pad] * (width - len(s)) + s for s in seqs],
                          [[0] * (width - len(s)) + [1] * len(s) for s in seqs], None)
    return runs


def forward(model, ids, mask, types, labels=None):
    kwargs = dict(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), output_hidden_states=True)
    if types is not None:
        kwargs["token_type_ids"] = torch.tensor(types)
    if labels is not None:
        kwargs["labels"] = torch.tensor(labels)
    with torch.no_grad():
        return model(**kwargs)


def head_module(peft_model):
    return peft_model.base_model.get_submodule(peft_model.cls_layer_name).modules_to_save["default"]


def analyse(peft_model, case, method, ids, mask, out, pad):
    """Recompute the logits from the last hidden states and say which row the head read.
    Returns (head_input [B, d], read_rows [B], notes dict)."""
    P = PROMPT_TOKENS if method != "prefix" else 0
    H = out.hidden_states[-1]
    head = head_module(peft_model)
    notes = {}
    if case == "bert":
        pooler = peft_model.base_model.bert.pooler
        pooled = torch.tanh(pooler.dense(H[:, 0]))
        recomputed = head(pooled)
        d = maxdiff(recomputed, out.logits)
        assert d < 1e-5 * (1 + float(out.logits.abs().max())), f"bert/{method}: pooler(row 0) recompute off by {d}"
        notes["recompute_max_abs_diff"] = d
        if P:
            via_cls = head(torch.tanh(pooler.dense(H[:, P])))
            notes["max_abs_diff_if_pooler_read_CLS_row_P"] = round(maxdiff(via_cls, out.logits), 4)
        return pooled, [0] * H.shape[0], notes
    scores = head(H)  # [B, T, C]
    T = H.shape[1]
    if method == "prefix":
        input_ids = torch.tensor(ids)
        non_pad = (input_ids != pad).int()
        expected = (torch.arange(input_ids.shape[1], dtype=torch.int32) * non_pad).argmax(-1).tolist()
    else:
        expected = [T - 1] * H.shape[0]
    rows = []
    for b in range(H.shape[0]):
        diffs = (scores[b] - out.logits[b]).abs().amax(-1)
        found = [t for t in range(T) if float(diffs[t]) < 1e-5 * (1 + float(out.logits.abs().max()))]
        assert found == [expected[b]], f"{case}/{method}: head read rows {found}, expected {expected[b]}"
        rows.append(expected[b])
    head_input = H[torch.arange(H.shape[0]), torch.tensor(rows)]
    notes["recompute_max_abs_diff"] = maxdiff(head(head_input), out.logits)
    return head_input, rows, notes


def seq_cls_case(case, spec, tensors, versions):
    import transformers
    from peft import PeftModel, get_peft_model
    from transformers import AutoTokenizer

    cls = getattr(transformers, spec["cls"])
    model_dir = spec["model"]
    overrides = dict(num_labels=NUM_LABELS, **spec["overrides"])

    def load(dtype=torch.float32):
        model, info = cls.from_pretrained(model_dir, dtype=dtype, output_loading_info=True, **overrides)
        # Only the new head is missing (BERT's pooler comes from bert_base's checkpoint, frozen, not in the adapter).
        assert all(k.split(".")[0] in ("classifier", "score") for k in info["missing_keys"]), info
        return model.eval()

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    base = load()
    pad = base.config.pad_token_id
    runs = seq_inputs(case, tokenizer, pad)
    embedding_std = float(base.get_input_embeddings().weight.std())
    result = {"model_class": spec["cls"], "base_model": model_dir,
              "config_overrides": overrides, "pad_token_id": pad,
              "hidden_size": base.config.hidden_size,
              "inputs": {k: {"input_ids": v[0], "attention_mask": v[1],
                             **({"token_type_ids": v[2]} if v[2] is not None else {})} for k, v in runs.items()},
              "batch_labels": BATCH_LABELS, "methods": {}}
    out_case = os.path.join(OUT_REL, "seq_cls", case)
    for index, method in enumerate(METHODS):
        seed = spec["seed"] * 10 + index
        torch.manual_seed(seed)
        peft_model = get_peft_model(load(), peft_config(method)).eval()
        randomise_prompt_and_head(peft_model, method, seed, embedding_std)
        adapter_dir = os.path.join(out_case, method)
        peft_model.save_pretrained(adapter_dir)
        os.remove(os.path.join(adapter_dir, "README.md"))  # PEFT's model-card template
        trained = {k: forward(peft_model, *v).logits for k, v in runs.items()}

        reloaded = PeftModel.from_pretrained(load(), adapter_dir).eval()
        reloaded64 = PeftModel.from_pretrained(load(torch.float64), adapter_dir).to(torch.float64).eval()
        entry = {"peft_class": type(reloaded).__name__, "cls_layer_name": reloaded.cls_layer_name,
                 "transformer_backbone_name": reloaded.transformer_backbone_name,
                 "virtual_tokens": PROMPT_TOKENS if method != "prefix" else 0,
                 "modules_to_save_after_get_peft_model": peft_model.peft_config["default"].modules_to_save,
                 "modules_to_save_after_reload": reloaded.peft_config["default"].modules_to_save,
                 "trainable_parameters": [n for n, p in peft_model.named_parameters() if p.requires_grad],
                 "inputs": {}}
        from safetensors import safe_open
        with safe_open(os.path.join(adapter_dir, "adapter_model.safetensors"), "pt") as f:
            entry["adapter_tensors"] = {k: list(f.get_tensor(k).shape) for k in sorted(f.keys())}
        entry["adapter_files"] = sorted(os.listdir(adapter_dir))
        with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
            entry["adapter_config"] = json.load(f)
        worst = 0.0
        for name, (ids, mask, types) in runs.items():
            out32 = forward(reloaded, ids, mask, types)
            out64 = forward(reloaded64, ids, mask, types)
            d = maxdiff(out32.logits, trained[name])
            assert d < 1e-5, f"{case}/{method}/{name}: reloaded adapter differs by {d}"
            worst = max(worst, d)
            h32, rows, notes = analyse(reloaded, case, method, ids, mask, out32, pad)
            h64, rows64, _ = analyse(reloaded64, case, method, ids, mask, out64, pad)
            assert rows == rows64
            key = f"{case}/{method}"
            tensors[f"{key}/f32/logits/{name}"] = out32.logits.float()
            tensors[f"{key}/f64/logits/{name}"] = out64.logits.double()
            tensors[f"{key}/f32/head_input/{name}"] = h32.float()
            tensors[f"{key}/f64/head_input/{name}"] = h64.double()
            info = {"rows_in_hidden_states": int(out32.hidden_states[-1].shape[1]), "head_reads_row": rows,
                    "fp32_error": float(f"{maxdiff(out32.logits, out64.logits):.3g}"), **notes}
            if name.startswith("batch"):
                info["loss_f64_labels_batch_labels"] = float(
                    forward(reloaded64, ids, mask, types, labels=BATCH_LABELS).loss)
                loss_ref = F.cross_entropy(out64.logits, torch.tensor(BATCH_LABELS))
                assert abs(info["loss_f64_labels_batch_labels"] - float(loss_ref)) < 1e-12
                same = [maxdiff(out32.logits[b], tensors[f"{key}/f32/logits/{b}"][0]) for b in range(2)]
                info["row_matches_unpadded_input"] = [d < 1e-5 for d in same]
                info["row_max_abs_diff_vs_unpadded_input"] = [round(d, 6) for d in same]
            entry["inputs"][name] = info
        if case == "bert":
            # SEQ_CLS keeps token_type_ids (remove_token_type_ids=False): leaving them out changes input 0 (a pair).
            ids, mask, types = runs["0"]
            d = maxdiff(forward(reloaded, ids, mask, None).logits, tensors[f"{case}/{method}/f32/logits/0"])
            entry["inputs"]["0"]["max_abs_diff_if_token_type_ids_omitted"] = round(d, 4)
            assert d > 1e-3
        entry["notes"] = NOTES[(case if case == "bert" else "decoder", "prefix" if method == "prefix" else "prompt")]
        entry["reload_max_abs_diff"] = worst
        result["methods"][method] = entry
    return result


def adapter_loading_probes(case_dir):
    """What PEFT 0.21 does with SEQ_CLS prompt adapters that differ from what it writes (see CLASSIFICATION.md)."""
    import transformers
    from peft import PeftModel
    from safetensors.torch import load_file, save_file

    spec = SEQ_CASES["bert"]
    cls = getattr(transformers, spec["cls"])
    src = os.path.join(case_dir, "prompt_tuning")
    probes = {}
    import tempfile
    tmp = os.path.join(tempfile.mkdtemp(prefix="ptune_cls_probe_"), "adapter")
    variants = {
        "head_missing": lambda sd: {k: v for k, v in sd.items() if "classifier" not in k},
        "head_as_lora_key_base_model.model.classifier": lambda sd: {
            k.replace("base_model.classifier", "base_model.model.classifier"): v for k, v in sd.items()},
    }
    for name, edit in variants.items():
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        sd = load_file(os.path.join(src, "adapter_model.safetensors"))
        save_file(edit(sd), os.path.join(tmp, "adapter_model.safetensors"), metadata={"format": "pt"})
        try:
            PeftModel.from_pretrained(cls.from_pretrained(spec["model"], num_labels=NUM_LABELS), tmp)
            probes[name] = "loads"
        except Exception as e:  # noqa: BLE001 (recording what happens)
            probes[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    # A config without modules_to_save (as PEFT < 0.17 and older writers produce it)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    with open(os.path.join(tmp, "adapter_config.json")) as f:
        config = json.load(f)
    config.pop("modules_to_save")
    with open(os.path.join(tmp, "adapter_config.json"), "w") as f:
        json.dump(config, f)
    m = PeftModel.from_pretrained(cls.from_pretrained(spec["model"], num_labels=NUM_LABELS), tmp).eval()
    ref = PeftModel.from_pretrained(cls.from_pretrained(spec["model"], num_labels=NUM_LABELS), src).eval()
    x = torch.tensor([[2, 242, 3]])
    with torch.no_grad():
        d = maxdiff(m(input_ids=x).logits, ref(input_ids=x).logits)
    probes["config_without_modules_to_save"] = (f"loads; modules_to_save becomes "
                                                f"{m.peft_config['default'].modules_to_save}; logits equal: {d == 0}")
    shutil.rmtree(os.path.dirname(tmp), ignore_errors=True)
    return probes


def write_seq_cls(versions):
    from safetensors.torch import save_file

    tensors = {}
    cases = {}
    for case, spec in SEQ_CASES.items():
        cases[case] = seq_cls_case(case, spec, tensors, versions)
    probes = adapter_loading_probes(os.path.join(OUT_REL, "seq_cls", "bert"))
    tensors = {k: v.detach().contiguous() for k, v in sorted(tensors.items())}
    save_file(tensors, os.path.join(OUT_REL, "seq_cls.safetensors"), metadata={"source": versions})
    dump_json({"source": versions, "num_labels": NUM_LABELS, "cases": cases, "adapter_loading_probes": probes,
               "tensors_file": "seq_cls.safetensors",
               "tensor_shapes": {k: list(v.shape) for k, v in tensors.items()}},
              os.path.join(OUT_REL, "seq_cls.json"))
    return cases, probes


# ============================================================================================ 2. verbalizers

def encode_words(tokenizer):
    """OpenPrompt ManualVerbalizer.add_prefix (" " + word) + generate_parameters: ids [C, W, T] padded with 0,
    token mask [C, W, T] and word mask [C, W]."""
    ids = [[tokenizer.encode(" " + w, add_special_tokens=False) for w in words] for words in LABEL_WORDS]
    T = max(len(i) for per in ids for i in per)
    W = max(len(per) for per in ids)
    tok_mask = [[[1] * len(i) + [0] * (T - len(i)) for i in per] + [[0] * T] * (W - len(per)) for per in ids]
    padded = [[i + [0] * (T - len(i)) for i in per] + [[0] * T] * (W - len(per)) for per in ids]
    return ids, torch.tensor(padded), torch.tensor(tok_mask), torch.tensor(tok_mask).sum(-1).clamp(max=1)


def project(logits, word_ids, tok_mask, word_mask, handler):
    """ManualVerbalizer.project + Verbalizer.handle_multi_token: logits [N, V] -> [N, C, W]."""
    x = logits[:, word_ids]  # [N, C, W, T]
    m = tok_mask.to(logits.dtype).unsqueeze(0)
    if handler == "first":
        x = x.select(-1, 0)
    elif handler == "max":
        x = (x - 1000 * (1 - m)).max(dim=-1).values
    elif handler == "mean":
        x = (x * m).sum(-1) / (m.sum(-1) + 1e-15)
    else:
        raise ValueError(handler)
    return x - 10000 * (1 - word_mask.to(logits.dtype))


def normalize(x):
    """Verbalizer.normalize: softmax over all label words of all classes together (not over the vocabulary)."""
    return F.softmax(x.reshape(x.shape[0], -1), dim=-1).reshape(*x.shape)


def process_logits(logits, word_ids, tok_mask, word_mask, handler, post_log_softmax=True, calibrate_logits=None):
    """ManualVerbalizer.process_logits: project, [normalize, calibrate, log], aggregate. Returns the class scores
    [N, C] and the intermediates."""
    wm = word_mask.to(logits.dtype)
    x = project(logits, word_ids, tok_mask, word_mask, handler)
    steps = {"project": x}
    if post_log_softmax:
        p = normalize(x)
        steps["probs"] = p
        if calibrate_logits is not None:
            cp = normalize(project(calibrate_logits.unsqueeze(0), word_ids, tok_mask, word_mask, handler))
            steps["calibration_probs"] = cp[0]
            p = p / (cp + 1e-15)
            p = (p.reshape(p.shape[0], -1) / p.reshape(p.shape[0], -1).sum(-1, keepdim=True)).reshape(*p.shape)
            steps["calibrated_probs"] = p
        x = torch.log(p + 1e-15)
    scores = (x * wm).sum(-1) / wm.sum(-1)
    return scores, steps


def template_pieces(family, tokenizer, text):
    """OpenPrompt ManualTemplate '{"placeholder":"text_a"} It was {"mask"}.' as pieces: each text piece is encoded
    on its own (add_special_tokens=False) with the space the template put before it; empty pieces are skipped.
    BERT (MLMTokenizerWrapper): [CLS] pieces [SEP], mask piece = [MASK]. GPT-2 (LMTokenizerWrapper): the
    template is cut at the mask, the slot is the last token before it, and nothing is added."""
    pieces = [("text_a", text), ("template", " It was")]
    if family == "bert":
        pieces += [("mask", None), ("template", ".")]
    out, ids = [], []
    for kind, s in pieces:
        if kind == "mask":
            piece_ids = [tokenizer.mask_token_id]
        elif len(s) == 0:
            continue
        else:
            piece_ids = tokenizer.encode(s, add_special_tokens=False)
        out.append({"kind": kind, "text": s, "ids": piece_ids})
        ids += piece_ids
    if family == "bert":
        ids = [tokenizer.cls_token_id] + ids + [tokenizer.sep_token_id]
        slot = ids.index(tokenizer.mask_token_id)
    else:
        slot = len(ids) - 1
    return out, ids, slot


def soft_verbalizer(model, family, word_ids_list, hidden, dtype):
    """OpenPrompt SoftVerbalizer at initialisation: class vector c = mean over the tokens of the class's FIRST
    label word of the output-embedding rows; BERT keeps the MLM head's transform (dense, gelu, LayerNorm) and
    replaces its decoder by Linear(d, C, bias=False); GPT-2's head is lm_head -> Linear(d, C, bias=False)."""
    if family == "bert":
        E = model.cls.predictions.decoder.weight
        h = model.cls.predictions.transform(hidden)
    else:
        E = model.lm_head.weight
        h = hidden
    W = torch.stack([E[torch.tensor(per[0])].mean(0) for per in word_ids_list]).to(dtype)
    return h @ W.T, W


def verbalizer_family(family, tensors):
    import transformers
    from transformers import AutoTokenizer

    model_dir = f"{FAMILIES_REL}/{family}/model"
    cls = transformers.BertForMaskedLM if family == "bert" else transformers.GPT2LMHeadModel
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    word_ids_list, word_ids, tok_mask, word_mask = encode_words(tokenizer)
    # The design asks for: a class with 2 words, a word split into 2 tokens, a padded word slot.
    assert max(len(i) for per in word_ids_list for i in per) == 2 and len(word_ids_list[1]) == 1
    assert all(len(word_ids_list[c][0]) == 1 for c in (0, 2)) and len(word_ids_list[1][0]) == 2
    assert len(word_ids_list[2][1]) == 2
    models = {torch.float32: cls.from_pretrained(model_dir, dtype=torch.float32).eval(),
              torch.float64: cls.from_pretrained(model_dir, dtype=torch.float64).eval()}

    def slot_outputs(text, dtype):
        pieces, ids, slot = template_pieces(family, tokenizer, text)
        with torch.no_grad():
            out = models[dtype](input_ids=torch.tensor([ids]), output_hidden_states=True)
        return pieces, ids, slot, out.logits[0, slot], out.hidden_states[-1][0, slot]

    result = {"model": model_dir, "model_class": cls.__name__,
              "label_words": LABEL_WORDS,
              "label_word_pieces": [[tokenizer.convert_ids_to_tokens(i) for i in per] for per in word_ids_list],
              "label_word_ids": word_ids_list,
              "label_words_ids_padded": word_ids.tolist(), "words_ids_mask": tok_mask.tolist(),
              "label_words_mask": word_mask.tolist(), "inputs": [], "content_free": {}}
    logits = {torch.float32: [], torch.float64: []}
    hidden64 = []
    for text in VERBALIZER_TEXTS:
        for dtype in logits:
            pieces, ids, slot, lg, h = slot_outputs(text, dtype)
            logits[dtype].append(lg)
            if dtype == torch.float64:
                hidden64.append(h)
        result["inputs"].append({"text_a": text, "pieces": pieces, "input_ids": ids, "slot": slot})
    L64 = torch.stack(logits[torch.float64])
    L32 = torch.stack(logits[torch.float32])
    key = f"{family}"
    tensors[f"{key}/slot_logits/f64"] = L64
    tensors[f"{key}/slot_logits/f32"] = L32
    result["slot_logits_fp32_error"] = float(f"{maxdiff(L32, L64):.3g}")
    cf_logits = {}
    cf_texts = sorted({t for ts in CONTENT_FREE.values() for t in ts})
    for t in cf_texts:
        pieces, ids, slot, lg, _ = slot_outputs(t, torch.float64)
        cf_logits[t] = lg
        result["content_free"][t] = {"pieces": pieces, "input_ids": ids, "slot": slot}
    for name, ts in CONTENT_FREE.items():
        # openprompt.utils.calibrate.calibrate: the MEAN of the slot logits (not probabilities) over the
        # content-free examples.
        cal = torch.stack([cf_logits[t] for t in ts]).mean(0)
        tensors[f"{key}/calibrate_logits/{name}"] = cal
    result["calibrations"] = {k: v for k, v in CONTENT_FREE.items()}

    scores_meta = {}
    for handler in HANDLERS:
        for pls in (True, False):
            cals = [None] + list(CONTENT_FREE) if pls else [None]
            for cal_name in cals:
                cal = tensors[f"{key}/calibrate_logits/{cal_name}"] if cal_name else None
                scores, steps = process_logits(L64, word_ids, tok_mask, word_mask, handler, pls, cal)
                tag = f"{handler}/{'log_softmax' if pls else 'raw'}/{cal_name or 'none'}"
                tensors[f"{key}/scores/{tag}"] = scores
                for step, v in steps.items():
                    if cal_name is None or step.startswith("calibrat"):
                        tensors[f"{key}/steps/{tag}/{step}"] = v
                scores_meta[tag] = {"argmax": scores.argmax(-1).tolist()}
    # Independent check of the default path: handler 'first', log-softmax, no calibration = log(softmax + 1e-15)
    # over the first tokens of the real label words only, then the mean per class. (Without the 1e-15 the
    # difference is ~1e-15 / p, 3e-12 here.)
    firsts = [[per_word[0] for per_word in per] for per in word_ids_list]
    flat = [t for per in firsts for t in per]
    lsm = torch.log(torch.softmax(L64[:, flat], dim=-1) + 1e-15)  # OpenPrompt's log(p + 1e-15)
    check, i = [], 0
    for per in firsts:
        check.append(lsm[:, i:i + len(per)].mean(-1))
        i += len(per)
    d = maxdiff(torch.stack(check, -1), tensors[f"{key}/scores/first/log_softmax/none"])
    assert d < 1e-12, d
    result["check_first_equals_log_softmax_over_label_words"] = d
    # PromptForClassification trains with CrossEntropyLoss on these class scores.
    labels = torch.tensor([0, 1, 2])
    result["cross_entropy_labels_0_1_2_first_log_softmax_none"] = float(
        F.cross_entropy(tensors[f"{key}/scores/first/log_softmax/none"], labels))
    result["scores"] = scores_meta

    # SoftVerbalizer (WARP) at initialisation.
    H64 = torch.stack(hidden64)
    soft, W = soft_verbalizer(models[torch.float64], family, word_ids_list, H64, torch.float64)
    tensors[f"{key}/soft_verbalizer/scores"] = soft
    tensors[f"{key}/soft_verbalizer/class_vectors"] = W
    tensors[f"{key}/slot_hidden/f64"] = H64
    # At init, class c's score = mean over its first word's tokens t of (vocabulary logit[t] - MLM bias[t]).
    bias = models[torch.float64].cls.predictions.bias if family == "bert" else torch.zeros(L64.shape[1],
                                                                                          dtype=torch.float64)
    ident = torch.stack([(L64[:, per[0]] - bias[per[0]]).mean(-1) for per in word_ids_list], -1)
    result["soft_verbalizer_check_vs_vocab_logits"] = maxdiff(ident, soft)
    assert result["soft_verbalizer_check_vs_vocab_logits"] < 1e-10

    if family == "gpt2":
        # Not OpenPrompt: the autoregressive log-likelihood of each label word's tokens after the slot prefix
        # (teacher forcing), sum over its tokens; padded word slots 0 (see label_words_mask).
        ar = torch.zeros(len(VERBALIZER_TEXTS), len(LABEL_WORDS), word_mask.shape[1], dtype=torch.float64)
        for n, text in enumerate(VERBALIZER_TEXTS):
            _, ids, slot = template_pieces(family, tokenizer, text)
            for c, per in enumerate(word_ids_list):
                for w, wids in enumerate(per):
                    full = torch.tensor([ids + wids])
                    with torch.no_grad():
                        lp = torch.log_softmax(models[torch.float64](input_ids=full).logits[0], -1)
                    ar[n, c, w] = sum(lp[slot + k, t] for k, t in enumerate(wids))
        tensors[f"{key}/autoregressive_word_logprob"] = ar
    return result


def write_verbalizer(versions):
    from safetensors.torch import save_file

    tensors = {}
    result = {"source": versions + "; OpenPrompt semantics re-implemented in torch (see CLASSIFICATION.md)",
              "template": '{"placeholder":"text_a"} It was {"mask"}.', "texts": VERBALIZER_TEXTS,
              "content_free": CONTENT_FREE, "handlers": HANDLERS, "families": {}}
    for family in ("bert", "gpt2"):
        result["families"][family] = verbalizer_family(family, tensors)
    tensors = {k: v.detach().contiguous() for k, v in sorted(tensors.items())}
    save_file(tensors, os.path.join(OUT_REL, "verbalizer.safetensors"), metadata={"source": versions})
    result["tensors_file"] = "verbalizer.safetensors"
    result["tensor_shapes"] = {k: list(v.shape) for k, v in tensors.items()}
    dump_json(result, os.path.join(OUT_REL, "verbalizer.json"))
    return result


# ============================================================================================ 3. losses

def focal_loss(logits, labels, gamma, alpha=None):
    """Per-example softmax focal loss FL_i = -alpha_{y_i} (1 - p_{y_i})^gamma log p_{y_i}."""
    logp = torch.log_softmax(logits, -1).gather(-1, labels[:, None])[:, 0]
    a = torch.ones_like(logp) if alpha is None else alpha[labels]
    return -a * (1 - logp.exp()) ** gamma * logp


def focal_grad_closed_form(logits, labels, gamma, alpha=None):
    """dFL_i/dz_ik = alpha_y [ -(1-p_y)^gamma + gamma p_y (1-p_y)^(gamma-1) log p_y ] (delta_ky - p_k)."""
    p = torch.softmax(logits, -1)
    py = p.gather(-1, labels[:, None])[:, 0]
    a = torch.ones_like(py) if alpha is None else alpha[labels]
    g = torch.zeros_like(py) if gamma == 0 else gamma * py * (1 - py) ** (gamma - 1) * torch.log(py)
    coef = a * (-(1 - py) ** gamma + g)
    onehot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    return coef[:, None] * (onehot - p)


def grad_of(fn, logits):
    z = logits.clone().requires_grad_(True)
    value = fn(z)
    (g,) = torch.autograd.grad(value, z)
    return value.detach(), g


def T(values):
    return torch.tensor(values, dtype=torch.float64)


def losses_case(name, num_classes, seed, alphas):
    generator = torch.Generator().manual_seed(seed)
    logits = (2.0 * torch.randn(6, num_classes, generator=generator)).double()
    labels = torch.randint(0, num_classes, (6,), generator=generator)
    out = {"logits": logits.tolist(), "labels": labels.tolist(), "losses": {}}

    def record(key, per_example_fn, reductions):
        """Per-example values and the gradient of each example's loss w.r.t. its own logits row (the gradient of
        sum_i loss_i), then each reduction's value and gradient."""
        per, g_sum = grad_of(lambda z: per_example_fn(z).sum(), logits)
        entry = {"per_example": per_example_fn(logits).tolist(), "grad_per_example": g_sum.tolist()}
        for rname, rfn in reductions.items():
            v, g = grad_of(lambda z: rfn(z), logits)
            entry[rname] = {"value": float(v), "grad": g.tolist()}
        out["losses"][key] = entry
        return entry

    # Cross-entropy (torch.nn.functional.cross_entropy).
    ce = record("cross_entropy", lambda z: F.cross_entropy(z, labels, reduction="none"),
                {"mean": lambda z: F.cross_entropy(z, labels)})
    # Class-weighted cross-entropy: reduction mean = sum_i w_{y_i} l_i / sum_i w_{y_i}.
    for aname, alpha in alphas.items():
        w = torch.tensor(alpha, dtype=torch.float64)
        e = record(f"cross_entropy_weight_{aname}", lambda z: F.cross_entropy(z, labels, weight=w, reduction="none"),
                   {"mean": lambda z: F.cross_entropy(z, labels, weight=w)})
        check = sum(e["per_example"]) / float(w[labels].sum())
        assert abs(check - e["mean"]["value"]) < 1e-13
    # Label smoothing 0.1: l_i = (1-eps) (-log p_y) + eps/C sum_k (-log p_k).
    eps = 0.1
    ls = record("cross_entropy_label_smoothing_0.1",
                lambda z: F.cross_entropy(z, labels, label_smoothing=eps, reduction="none"),
                {"mean": lambda z: F.cross_entropy(z, labels, label_smoothing=eps)})
    logp = torch.log_softmax(logits, -1)
    manual = -(1 - eps) * logp.gather(-1, labels[:, None])[:, 0] - eps / num_classes * logp.sum(-1)
    assert maxdiff(T(ls["per_example"]), manual) < 1e-13
    for aname, alpha in alphas.items():
        # With weights torch smooths with the weights too: l_i = (1-eps) w_y (-log p_y) + eps/C sum_k w_k (-log p_k),
        # and mean divides by sum_i w_{y_i}.
        w = torch.tensor(alpha, dtype=torch.float64)
        e = record(f"cross_entropy_label_smoothing_0.1_weight_{aname}",
                   lambda z: F.cross_entropy(z, labels, weight=w, label_smoothing=eps, reduction="none"),
                   {"mean": lambda z: F.cross_entropy(z, labels, weight=w, label_smoothing=eps)})
        manual = (-(1 - eps) * w[labels] * logp.gather(-1, labels[:, None])[:, 0]
                  - eps / num_classes * (w[None, :] * logp).sum(-1))
        assert maxdiff(T(e["per_example"]), manual) < 1e-13
        assert abs(float(manual.sum() / w[labels].sum()) - e["mean"]["value"]) < 1e-13
    # Focal loss.
    for gamma in (0, 2):
        for aname, alpha in [("none", None)] + list(alphas.items()):
            a = None if alpha is None else torch.tensor(alpha, dtype=torch.float64)
            denom = 6.0 if a is None else float(a[labels].sum())
            e = record(f"focal_gamma{gamma}_alpha_{aname}", lambda z: focal_loss(z, labels, gamma, a),
                       {"mean": lambda z: focal_loss(z, labels, gamma, a).mean(),
                        "sum_over_alpha_sum": lambda z: focal_loss(z, labels, gamma, a).sum() / denom})
            closed = focal_grad_closed_form(logits, labels, gamma, a)
            assert maxdiff(T(e["grad_per_example"]), closed) < 1e-13
            if gamma == 0 and a is None:
                assert maxdiff(T(e["per_example"]), T(ce["per_example"])) < 1e-15
                assert maxdiff(T(e["grad_per_example"]), T(ce["grad_per_example"])) < 1e-15
                assert abs(e["mean"]["value"] - ce["mean"]["value"]) < 1e-15
            if gamma == 0 and a is not None:
                # gamma 0 with alpha = class-weighted CE, per example and under sum / sum alpha_y.
                wce = out["losses"][f"cross_entropy_weight_{aname}"]
                assert maxdiff(T(e["per_example"]), T(wce["per_example"])) < 1e-13
                assert abs(e["sum_over_alpha_sum"]["value"] - wce["mean"]["value"]) < 1e-13
    out["alphas"] = alphas
    return out


def write_losses():
    cases = {
        "3class": losses_case("3class", 3, 401, {"a": [0.2, 0.3, 0.5]}),
        "2class": losses_case("2class", 2, 402, {"a": [0.25, 0.75]}),
    }
    dump_json({"source": f"torch {torch.__version__}, float64",
               "notes": "see CLASSIFICATION.md section 3; grads are d(loss)/d(logits); grad_per_example is the "
                        "gradient of sum_i loss_i (row i = d loss_i / d z_i)",
               "cases": cases}, os.path.join(OUT_REL, "losses.json"))
    return cases


# ============================================================================================ main

def main():
    import peft
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    os.chdir(REPO)  # adapter_config.json records a repository-relative base model path
    versions = f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}"
    shutil.rmtree(OUT_REL, ignore_errors=True)
    os.makedirs(OUT_REL)

    cases, probes = write_seq_cls(versions)
    for case, r in cases.items():
        print(f"seq_cls/{case}: {r['model_class']} pad {r['pad_token_id']}")
        for method, e in r["methods"].items():
            reads = {k: v["head_reads_row"] for k, v in e["inputs"].items()}
            flags = {k: v["row_matches_unpadded_input"] for k, v in e["inputs"].items() if k.startswith("batch")}
            print(f"  {method}: saved {e['adapter_tensors']}, head reads {reads}, padded rows match {flags}, "
                  f"fp32 err {max(v['fp32_error'] for v in e['inputs'].values()):.2g}")
    print(f"  adapter loading probes: {probes}")
    verb = write_verbalizer(versions)
    for family, r in verb["families"].items():
        print(f"verbalizer/{family}: words {r['label_word_pieces']}, slot logits fp32 err "
              f"{r['slot_logits_fp32_error']}, argmax first/log_softmax/none "
              f"{r['scores']['first/log_softmax/none']['argmax']}")
    losses = write_losses()
    print(f"losses: {', '.join(losses['3class']['losses'])}")
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT_REL) for f in fs)
    print(f"{OUT_REL}: {size / 1024:.0f} KiB")
    print(f"sha256 of all outputs: {sha256_tree(OUT_REL)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
