"""Writes the BERT / RoBERTa test fixtures under test/fixtures/models/.

Tiny random checkpoints in the exact Hugging Face layouts (config.json with the real keys,
model.safetensors, a sharded index, fp16 and bf16 files, pytorch_model.bin from torch.save
in both the ZIP and the legacy layout, a RoBERTa folder with a byte-level BPE
tokenizer.json), and next to each a reference.safetensors: the fixed inputs (a padded
batch), every hidden state and the gradients of a fixed projection of the last hidden
state, from an independent PyTorch implementation below (written after Hugging Face's
modeling_bert.py / modeling_roberta.py; float64).

Run (never by tests; the outputs are committed):
  OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 tools/make_bert_fixtures.py
Tested with Debian's python3-torch 1.13. Needs no transformers and no safetensors package.
"""

import json
import math
import os
import struct

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "models")

BERT_CONFIG = {
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "classifier_dropout": None,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 32,
    "initializer_range": 0.02,
    "intermediate_size": 64,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 40,
    "model_type": "bert",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "torch_dtype": "float32",
    "transformers_version": "4.36.2",
    "type_vocab_size": 2,
    "use_cache": True,
    "vocab_size": 100,
}

ROBERTA_CONFIG = {
    "architectures": ["RobertaForMaskedLM"],
    "attention_probs_dropout_prob": 0.1,
    "bos_token_id": 0,
    "classifier_dropout": None,
    "eos_token_id": 2,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 32,
    "initializer_range": 0.02,
    "intermediate_size": 64,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 42,
    "model_type": "roberta",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "pad_token_id": 1,
    "position_embedding_type": "absolute",
    "torch_dtype": "float32",
    "transformers_version": "4.36.2",
    "type_vocab_size": 1,
    "use_cache": True,
    "vocab_size": 105,
}


# ---------------------------------------------------------------- safetensors, by hand

ST_DTYPE = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64", torch.float64: "F64"}


def write_safetensors(path, tensors, metadata=None):
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": ST_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------- random weights

def bert_state_dict(cfg, gen):
    """BertModel / RobertaModel parameter names and shapes (pooler included), random values
    larger than the usual 0.02 init so that every weight matters in the outputs."""
    H, I, V, P, T = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["max_position_embeddings"], cfg["type_vocab_size"]
    sd = {}

    def n(*shape, std=0.2):
        return torch.randn(*shape, generator=gen) * std

    def ln(prefix):
        sd[prefix + ".weight"] = 1 + n(H, std=0.1)
        sd[prefix + ".bias"] = n(H, std=0.1)

    def lin(prefix, o, i):
        sd[prefix + ".weight"] = n(o, i, std=1 / math.sqrt(i))
        sd[prefix + ".bias"] = n(o, std=0.1)

    sd["embeddings.word_embeddings.weight"] = n(V, H, std=0.5)
    sd["embeddings.position_embeddings.weight"] = n(P, H, std=0.5)
    sd["embeddings.token_type_embeddings.weight"] = n(T, H, std=0.5)
    ln("embeddings.LayerNorm")
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for m in ("query", "key", "value"):
            lin(p + "attention.self." + m, H, H)
        lin(p + "attention.output.dense", H, H)
        ln(p + "attention.output.LayerNorm")
        lin(p + "intermediate.dense", I, H)
        lin(p + "output.dense", H, I)
        ln(p + "output.LayerNorm")
    lin("pooler.dense", H, H)
    return sd


# ---------------------------------------------------------------- the reference model

def reference_forward(sd, cfg, ids, mask, types):
    """Every hidden state of BertModel / RobertaModel in eval mode, in float64, written
    from the structure of Hugging Face's modeling_bert.py (post-LN layers, additive
    finfo.min mask) and modeling_roberta.py (padding-offset positions)."""
    W = lambda k: sd[k]
    B, L = ids.shape
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    dh = H // nh
    eps = cfg["layer_norm_eps"]
    if cfg["model_type"] == "roberta":
        pad = cfg["pad_token_id"]
        m = ids.ne(pad).long()
        pos = torch.cumsum(m, dim=1) * m + pad
    else:
        pos = torch.arange(L).unsqueeze(0).expand(B, L)

    def lnorm(x, prefix):
        return torch.nn.functional.layer_norm(x, (H,), W(prefix + ".weight"), W(prefix + ".bias"), eps)

    def lin(x, prefix):
        return x @ W(prefix + ".weight").t() + W(prefix + ".bias")

    x = W("embeddings.word_embeddings.weight")[ids] + W("embeddings.token_type_embeddings.weight")[types]
    x = x + W("embeddings.position_embeddings.weight")[pos]
    x = lnorm(x, "embeddings.LayerNorm")
    states = [x]
    ext = (1.0 - mask[:, None, None, :].double()) * torch.finfo(torch.float64).min
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        heads = lambda t: t.view(B, L, nh, dh).permute(0, 2, 1, 3)
        q = heads(lin(x, p + "attention.self.query"))
        k = heads(lin(x, p + "attention.self.key"))
        v = heads(lin(x, p + "attention.self.value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh) + ext
        ctx = (torch.softmax(scores, dim=-1) @ v).permute(0, 2, 1, 3).reshape(B, L, H)
        a = lnorm(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        inner = lin(a, p + "intermediate.dense")
        inner = 0.5 * inner * (1.0 + torch.erf(inner / math.sqrt(2.0)))
        x = lnorm(lin(inner, p + "output.dense") + a, p + "output.LayerNorm")
        states.append(x)
    return states


def write_reference(path, sd, cfg, ids, mask, types, gen, grads=True):
    """Inputs, every hidden state, and (grads) d(sum(last * projection))/d(param) for every encoder param."""
    params = {k: v.double().clone().requires_grad_(True) for k, v in sd.items() if not k.startswith("pooler.")}
    states = reference_forward(params, cfg, ids, mask, types)
    proj = torch.randn(states[-1].shape, generator=gen, dtype=torch.float64)
    (states[-1] * proj).sum().backward()
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "projection": proj.float()}
    for i, s in enumerate(states):
        out[f"hidden_states.{i}"] = s.detach().float()
    for k, v in params.items():
        if grads:
            out[f"grad.{k}"] = v.grad.float()
    write_safetensors(path, out, {"source": "tools/make_bert_fixtures.py, float64 PyTorch reference"})


# ---------------------------------------------------------------- folders

def folder(name):
    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    return d


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


BERT_WORDS = ["the", "a", "i", "you", "it", "is", "was", "not", "what", "why", "so", "oh", "yeah", "no",
              "okay", "know", "don", "t", "s", "me", "my", "that", "this", "happy", "sad", "angry", "fine",
              "great", "really", "just", "can", "believe", "love", "hate", "good", "bad", "well", "right",
              "do", "to", "and", "of", "in", "on", "we", "they", "he", "she", ".", ",", "?", "!", "'"]


def bert_vocab(size):
    toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + BERT_WORDS
    letters = "abcdefghijklmnopqrstuvwxyz"
    for c in letters:
        toks.append(c) if c not in toks else None
    for c in letters:
        if len(toks) >= size:
            break
        toks.append("##" + c)
    while len(toks) < size:
        toks.append(f"[unused{len(toks)}]")
    return toks[:size]


def bert_inputs():
    # Three rows: full length, padded to 5 and to 3; history (type 0) then the current utterance (type 1).
    ids = torch.tensor([[2, 5, 17, 40, 3, 23, 9, 3],
                        [2, 31, 62, 77, 3, 0, 0, 0],
                        [2, 88, 3, 0, 0, 0, 0, 0]], dtype=torch.int64)
    mask = (ids != 0).long()
    types = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1],
                          [0, 0, 1, 1, 1, 0, 0, 0],
                          [0, 0, 0, 0, 0, 0, 0, 0]], dtype=torch.int64)
    return ids, mask, types


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def roberta_tokenizer():
    b2u = bytes_to_unicode()
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for b in [32] + list(range(33, 127)):
        vocab[b2u[b]] = len(vocab)
    merges = ["h e", "Ġ t", "t he", "Ġt he", "i n"]
    for m in merges:
        vocab[m.replace(" ", "")] = len(vocab)
    vocab["<mask>"] = len(vocab)
    assert len(vocab) == ROBERTA_CONFIG["vocab_size"], len(vocab)
    special = lambda i, c: {"id": i, "content": c, "single_word": False, "lstrip": c == "<mask>", "rstrip": False, "normalized": False, "special": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(0, "<s>"), special(1, "<pad>"), special(2, "</s>"), special(3, "<unk>"), special(vocab["<mask>"], "<mask>")],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0], "trim_offsets": True, "add_prefix_space": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": merges},
    }


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    cfg = BERT_CONFIG
    sd = bert_state_dict(cfg, gen)
    ids, mask, types = bert_inputs()

    # bert-tiny: BertModel, fp32 safetensors, vocab.txt; the reference for every fp32 variant.
    d = folder("bert-tiny")
    write_json(os.path.join(d, "config.json"), cfg)
    write_safetensors(os.path.join(d, "model.safetensors"), sd, {"format": "pt"})
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(bert_vocab(cfg["vocab_size"])) + "\n")
    write_json(os.path.join(d, "tokenizer_config.json"), {"do_lower_case": True, "model_max_length": 40, "tokenizer_class": "BertTokenizer"})
    write_reference(os.path.join(d, "reference.safetensors"), sd, cfg, ids, mask, types, torch.Generator().manual_seed(7))

    # bert-tiny-cls: BertForSequenceClassification (bert. prefix, pooler, classifier head).
    d = folder("bert-tiny-cls")
    c = dict(cfg, architectures=["BertForSequenceClassification"], id2label={"0": "ang", "1": "hap", "2": "sad", "3": "neu"},
             label2id={"ang": 0, "hap": 1, "sad": 2, "neu": 3}, problem_type="single_label_classification")
    write_json(os.path.join(d, "config.json"), c)
    cls_sd = {"bert." + k: v for k, v in sd.items()}
    cls_sd["classifier.weight"] = torch.randn(4, 32, generator=gen) * 0.1
    cls_sd["classifier.bias"] = torch.zeros(4)
    write_safetensors(os.path.join(d, "model.safetensors"), cls_sd, {"format": "pt"})

    # bert-tiny-sharded: model.safetensors.index.json + two shards.
    d = folder("bert-tiny-sharded")
    write_json(os.path.join(d, "config.json"), cfg)
    names = sorted(sd)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2], "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for shard, ns in shards.items():
        write_safetensors(os.path.join(d, shard), {n: sd[n] for n in ns}, {"format": "pt"})
        weight_map.update({n: shard for n in ns})
    total = sum(sd[n].numel() * 4 for n in names)
    write_json(os.path.join(d, "model.safetensors.index.json"), {"metadata": {"total_size": total}, "weight_map": weight_map})

    # bert-tiny-fp16 / -bf16: stored in half precision; references from the rounded weights.
    for name, dt in (("bert-tiny-fp16", torch.float16), ("bert-tiny-bf16", torch.bfloat16)):
        d = folder(name)
        write_json(os.path.join(d, "config.json"), dict(cfg, torch_dtype="float16" if dt == torch.float16 else "bfloat16"))
        half = {k: v.to(dt) for k, v in sd.items()}
        write_safetensors(os.path.join(d, "model.safetensors"), half, {"format": "pt"})
        write_reference(os.path.join(d, "reference.safetensors"), {k: v.float() for k, v in half.items()}, cfg, ids, mask, types,
                        torch.Generator().manual_seed(7), grads=False)

    # bert-tiny-bin: BertForMaskedLM saved by torch.save (ZIP): bert. prefix, no pooler, the MLM head
    # with its decoder tied to the word embeddings (shared storage), the old position_ids buffer.
    d = folder("bert-tiny-bin")
    write_json(os.path.join(d, "config.json"), dict(cfg, architectures=["BertForMaskedLM"]))
    mlm = {"bert." + k: v.clone() for k, v in sd.items() if not k.startswith("pooler.")}
    mlm["bert.embeddings.position_ids"] = torch.arange(cfg["max_position_embeddings"]).unsqueeze(0)
    mlm["cls.predictions.bias"] = torch.zeros(cfg["vocab_size"])
    mlm["cls.predictions.transform.dense.weight"] = torch.randn(32, 32, generator=gen) * 0.1
    mlm["cls.predictions.transform.dense.bias"] = torch.zeros(32)
    mlm["cls.predictions.transform.LayerNorm.weight"] = torch.ones(32)
    mlm["cls.predictions.transform.LayerNorm.bias"] = torch.zeros(32)
    mlm["cls.predictions.decoder.weight"] = mlm["bert.embeddings.word_embeddings.weight"]  # tied: one storage
    from collections import OrderedDict
    torch.save(OrderedDict(mlm), os.path.join(d, "pytorch_model.bin"))

    # bert-tiny-bin-legacy: the pre-1.6 torch.save layout, old TF-style LayerNorm gamma/beta names,
    # one non-contiguous tensor (a transposed view) and one fp16 tensor.
    d = folder("bert-tiny-bin-legacy")
    write_json(os.path.join(d, "config.json"), cfg)
    old = OrderedDict()
    for k, v in sd.items():
        k2 = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        old[k2] = v.clone()
    q = "encoder.layer.0.attention.self.query.weight"
    old[q] = sd[q].t().contiguous().t()  # same values, strides (1, 32)
    assert not old[q].is_contiguous()
    torch.save(old, os.path.join(d, "pytorch_model.bin"), _use_new_zipfile_serialization=False)

    # roberta-tiny: RobertaForMaskedLM (roberta. prefix, lm_head), byte-level BPE tokenizer.json.
    rcfg = ROBERTA_CONFIG
    rsd = bert_state_dict(rcfg, gen)
    d = folder("roberta-tiny")
    write_json(os.path.join(d, "config.json"), rcfg)
    rmlm = {"roberta." + k: v for k, v in rsd.items() if not k.startswith("pooler.")}
    rmlm["lm_head.dense.weight"] = torch.randn(32, 32, generator=gen) * 0.1
    rmlm["lm_head.dense.bias"] = torch.zeros(32)
    rmlm["lm_head.layer_norm.weight"] = torch.ones(32)
    rmlm["lm_head.layer_norm.bias"] = torch.zeros(32)
    rmlm["lm_head.bias"] = torch.zeros(rcfg["vocab_size"])
    write_safetensors(os.path.join(d, "model.safetensors"), rmlm, {"format": "pt"})
    write_json(os.path.join(d, "tokenizer.json"), roberta_tokenizer())
    write_json(os.path.join(d, "tokenizer_config.json"), {"model_max_length": 40, "tokenizer_class": "RobertaTokenizer", "pad_token": "<pad>", "unk_token": "<unk>"})
    rids = torch.tensor([[0, 57, 12, 99, 44, 2, 2, 80, 2],
                         [0, 61, 100, 2, 1, 1, 1, 1, 1],
                         [0, 70, 2, 1, 1, 1, 1, 1, 1]], dtype=torch.int64)
    rmask = rids.ne(1).long()
    rtypes = torch.zeros_like(rids)
    write_reference(os.path.join(d, "reference.safetensors"), rsd, rcfg, rids, rmask, rtypes, torch.Generator().manual_seed(7))
    print("wrote", ROOT)


if __name__ == "__main__":
    main()
