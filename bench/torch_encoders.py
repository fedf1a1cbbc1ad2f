#!/usr/bin/python3
"""PyTorch side of lemer's encoder benchmark (fp32, CPU, 2 threads).

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_encoders.py --model bert --phase forward
    /usr/bin/python3 bench/torch_encoders.py --model w2v2 --diff DIR   # compare with lemer's dump

Models: BERT-base written as an nn.Module below (Hugging Face's BertModel layout and
parameter names: embeddings + 12 post-LN layers, erf GELU, eps 1e-12, no pooler);
wav2vec2-base is torchaudio's own `wav2vec2_model` with the base sizes (group-norm
feature extractor, post-LN transformer), dropouts as lemer's config defaults
(hidden / attention / activation 0.1, feature projection 0.0) and no LayerDrop (lemer
does not build it). Inputs: the shapes and padding of bench/lib/encoder-inputs.ts.

Phases: forward (eval, no_grad), train (zero_grad + forward + mean(h^2) + backward +
Adam lr 1e-4), train-frozen (wav2vec2 with the feature extractor frozen, as Hugging
Face's freeze_feature_encoder). --diff DIR loads lemer's random weights, inputs and
last hidden state (bench/lib/encoders-worker.ts dump) and prints the largest
absolute difference of PyTorch's last hidden state from lemer's.

Timing and memory helpers come from bench/torch_reference.py (same warm-ups, VmHWM
peak per measurement, OMP_WAIT_POLICY re-exec). Prints ONE JSON object on stdout.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as ref  # noqa: E402  (re-executes with OMP_WAIT_POLICY=PASSIVE if unset)

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import struct  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

BERT = {"batch": 16, "tokens": 150, "vocab": 30522, "hidden": 768, "layers": 12, "heads": 12, "ffn": 3072}
W2V2 = {"batch": 4, "samples": 80000}


# ---------------------------------------------------------------- BERT (HF BertModel layout)

class BertEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab"], c["hidden"], padding_idx=0)
        self.position_embeddings = nn.Embedding(512, c["hidden"])
        self.token_type_embeddings = nn.Embedding(2, c["hidden"])
        self.LayerNorm = nn.LayerNorm(c["hidden"], eps=1e-12)
        self.dropout = nn.Dropout(0.1)

    def forward(self, ids, types):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        e = self.word_embeddings(ids) + self.token_type_embeddings(types) + self.position_embeddings(pos)
        return self.dropout(self.LayerNorm(e))


class BertSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c["heads"]
        self.head_dim = c["hidden"] // c["heads"]
        self.query = nn.Linear(c["hidden"], c["hidden"])
        self.key = nn.Linear(c["hidden"], c["hidden"])
        self.value = nn.Linear(c["hidden"], c["hidden"])
        self.dropout = nn.Dropout(0.1)

    def forward(self, x, mask):
        b, s, h = x.shape
        split = lambda t: t.view(b, s, self.heads, self.head_dim).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + mask
        probs = self.dropout(torch.softmax(scores, dim=-1))
        return torch.matmul(probs, v).transpose(1, 2).reshape(b, s, h)


class BertSelfOutput(nn.Module):
    def __init__(self, c, d_in):
        super().__init__()
        self.dense = nn.Linear(d_in, c["hidden"])
        self.LayerNorm = nn.LayerNorm(c["hidden"], eps=1e-12)
        self.dropout = nn.Dropout(0.1)

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c, c["hidden"])

    def forward(self, x, mask):
        return self.output(self.self(x, mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden"], c["ffn"])
        self.act = nn.GELU()  # exact erf GELU ("gelu")

    def forward(self, x):
        return self.act(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertSelfOutput(c, c["ffn"])

    def forward(self, x, mask):
        a = self.attention(x, mask)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(c) for _ in range(c["layers"])])


class BertModel(nn.Module):
    """last_hidden_state of HF BertModel (no pooler): masks as HF's (1 - m) * finfo.min."""

    def __init__(self, c=BERT):
        super().__init__()
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)
        for m in self.modules():  # HF's init: normal(0, 0.02) weights, zero biases
            if isinstance(m, (nn.Linear, nn.Embedding)):
                m.weight.data.normal_(0.0, 0.02)
            if isinstance(m, nn.Linear):
                m.bias.data.zero_()

    def forward(self, ids, mask, types):
        ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        h = self.embeddings(ids, types)
        for layer in self.encoder.layer:
            h = layer(h, ext)
        return h


def bert_inputs():
    """Same shapes, padding and token types as bench/lib/encoder-inputs.ts (values differ)."""
    B, S = BERT["batch"], BERT["tokens"]
    ids = torch.zeros(B, S, dtype=torch.long)
    mask = torch.zeros(B, S, dtype=torch.long)
    types = torch.zeros(B, S, dtype=torch.long)
    g = torch.Generator().manual_seed(7)
    for b in range(B):
        n = S - (b * 13) % (S // 3)
        ids[b, :n] = torch.randint(1000, BERT["vocab"], (n,), generator=g)
        ids[b, 0] = 101
        mask[b, :n] = 1
        types[b, int(0.6 * n):n] = 1
    return ids, mask, types


# ---------------------------------------------------------------- wav2vec2 (torchaudio)

def w2v2_model():
    import torchaudio

    return torchaudio.models.wav2vec2_base(
        encoder_projection_dropout=0.0,
        encoder_attention_dropout=0.1,
        encoder_ff_interm_dropout=0.1,
        encoder_dropout=0.1,
        encoder_layer_drop=0.0,
    )


def w2v2_last_hidden(m, wave):
    """HF's last_hidden_state: torchaudio's transformer output (post-LN: no final LayerNorm)."""
    return m(wave)[0]


# Lemer's (HF) names -> torchaudio's: the prefixes of tools/make_wav2vec2_fixtures.py.
W2V2_PREFIXES = [
    ("feature_extractor.", "feature_extractor."),
    ("feature_projection.", "encoder.feature_projection."),
    ("encoder.", "encoder.transformer."),
]


def w2v2_torch_name(hf):
    hf = hf.replace(".parametrizations.weight.original0", ".weight_g").replace(
        ".parametrizations.weight.original1", ".weight_v")
    for a, b in W2V2_PREFIXES:
        if hf.startswith(a):
            return b + hf[len(a):]
    return hf


# ---------------------------------------------------------------- safetensors (read only)

DTYPES = {"F32": (torch.float32, 4), "F64": (torch.float64, 8), "I64": (torch.int64, 8), "I32": (torch.int32, 4)}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        dt, _ = DTYPES[v["dtype"]]
        a, b = v["data_offsets"]
        buf = bytearray(data[8 + n + a:8 + n + b])
        out[k] = torch.frombuffer(buf, dtype=dt).reshape(v["shape"]) if b > a else torch.zeros(v["shape"], dtype=dt)
    return out


@torch.no_grad()
def diff(model, d):
    w = read_safetensors(os.path.join(d, "weights.safetensors"))
    x = read_safetensors(os.path.join(d, "inputs.safetensors"))
    ours = read_safetensors(os.path.join(d, "hidden.safetensors"))["last_hidden_state"]
    if model == "bert":
        m = BertModel().eval()
        state = {k: v for k, v in w.items()}
        h_fn = lambda: m(x["input_ids"], x["attention_mask"], x["token_type_ids"])  # noqa: E731
    else:
        m = w2v2_model().eval()
        state = {w2v2_torch_name(k): v for k, v in w.items()}
        h_fn = lambda: w2v2_last_hidden(m, x["input_values"])  # noqa: E731
    missing, unexpected = m.load_state_dict(state, strict=False)
    if missing or unexpected:
        return {"error": "weights do not fit the PyTorch model", "missing": missing[:20],
                "unexpected": unexpected[:20], "missing_count": len(missing), "unexpected_count": len(unexpected)}
    theirs = h_fn()
    out = {"shape": list(theirs.shape), "lemer_shape": list(ours.shape)}
    if list(theirs.shape) != list(ours.shape):
        out["error"] = "shapes differ"
        return out
    d_all = (theirs - ours).abs()
    out["max_abs_diff"] = float(d_all.max())
    out["max_abs_value"] = float(theirs.abs().max())
    if model == "bert":  # padded positions: HF computes them too, but nothing should read them
        valid = x["attention_mask"].bool()
        out["max_abs_diff_valid_tokens"] = float(d_all[valid].max())
    return out


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["bert", "w2v2"], required=True)
    ap.add_argument("--phase", choices=["forward", "train", "train-frozen"])
    ap.add_argument("--diff", metavar="DIR", help="compare with lemer's dump in DIR")
    ap.add_argument("--matmul", type=int, metavar="N", help="GFLOP/s of one N x N x N matmul instead")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    args = ap.parse_args()
    torch.set_num_threads(ref.THREADS)
    torch.manual_seed(0)
    ref.WARMUP = 1  # as the lemer side (bench/lib/encoders-worker.ts)
    out = {"torch_version": torch.__version__, "threads": torch.get_num_threads(),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
           "malloc_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")}}

    if args.matmul:
        n = args.matmul
        a, b = torch.randn(n, n), torch.randn(n, n)
        st = ref.measure("matmul", lambda: torch.matmul(a, b), 10, ref.rss_mb(), 30)
        out.update({"n": n, "timing": st, "gflops": round(2 * n ** 3 / (st["median"] / 1000) / 1e9, 1)})
        print(json.dumps(out))
        return
    if args.diff:
        out.update(diff(args.model, args.diff))
        print(json.dumps(out))
        return
    if not args.phase:
        ap.error("--phase, --diff or --matmul is needed")

    if args.model == "bert":
        m = BertModel()
        ids, mask, types = bert_inputs()
        run = lambda: m(ids, mask, types)  # noqa: E731
    else:
        m = w2v2_model()
        wave = 0.1 * torch.randn(W2V2["batch"], W2V2["samples"])
        run = lambda: w2v2_last_hidden(m, wave)  # noqa: E731
        if args.phase == "train-frozen":
            m.feature_extractor.requires_grad_(False)
    gc.collect()
    baseline = ref.rss_mb()
    if args.phase == "forward":
        m.eval()

        def step():
            with torch.no_grad():
                run()
    else:
        m.train()
        params = [p for p in m.parameters() if p.requires_grad]
        out["trained_parameters"] = sum(p.numel() for p in params)
        opt = torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8)

        def step():
            opt.zero_grad(set_to_none=True)
            h = run()
            h.pow(2).mean().backward()
            opt.step()

    ref.MIN_RUNS = min(ref.MIN_RUNS, args.repeats)
    st = ref.measure(f"{args.model} {args.phase}", step, args.repeats, baseline, args.max_seconds)
    out.update({"phase": args.phase, "baseline_rss_mb": round(baseline, 1), "timing": st})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
