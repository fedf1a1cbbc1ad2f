"""PyTorch side of `npm run bench -- predict`: the forward of BERT-base and wav2vec2-base
(random weights, eval mode, no grad) on the same batch shapes lemer predicts, written with
plain torch modules of the same sizes and ops as Hugging Face's (post-LN BERT with GELU;
wav2vec2 base: 7-layer CNN feature encoder with group norm, feature projection, grouped
positional convolution, 12 post-LN transformer layers). Prints one JSON object.

    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE python3 bench/predict_torch.py --batch 4 --tokens 150 --samples 80000 --repeats 3
"""
import argparse
import json
import math
import time

import torch
from torch import nn


class Layer(nn.Module):
    """Post-LN transformer layer (BERT / wav2vec2 base)."""

    def __init__(self, d=768, heads=12, ffn=3072, eps=1e-12):
        super().__init__()
        self.h = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln1 = nn.LayerNorm(d, eps=eps)
        self.ff1 = nn.Linear(d, ffn)
        self.ff2 = nn.Linear(ffn, d)
        self.ln2 = nn.LayerNorm(d, eps=eps)

    def forward(self, x, mask):
        b, s, d = x.shape
        sp = lambda t: t.view(b, s, self.h, d // self.h).transpose(1, 2)
        a = torch.softmax(sp(self.q(x)) @ sp(self.k(x)).transpose(-1, -2) / math.sqrt(d // self.h) + mask, -1)
        c = (a @ sp(self.v(x))).transpose(1, 2).reshape(b, s, d)
        x = self.ln1(x + self.o(c))
        return self.ln2(x + self.ff2(nn.functional.gelu(self.ff1(x))))


class Bert(nn.Module):
    def __init__(self, vocab=30522, d=768, layers=12):
        super().__init__()
        self.words = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(512, d)
        self.types = nn.Embedding(2, d)
        self.ln = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList(Layer() for _ in range(layers))

    def forward(self, ids, mask):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        x = self.ln(self.words(ids) + self.pos(pos) + self.types(torch.zeros_like(ids)))
        m = (1.0 - mask[:, None, None, :].float()) * -1e4
        for l in self.layers:
            x = l(x, m)
        return x


class Wav2Vec2(nn.Module):
    def __init__(self, d=768, layers=12):
        super().__init__()
        ks = [10, 3, 3, 3, 3, 2, 2]
        ss = [5, 2, 2, 2, 2, 2, 2]
        self.convs = nn.ModuleList(nn.Conv1d(1 if i == 0 else 512, 512, k, s, bias=False) for i, (k, s) in enumerate(zip(ks, ss)))
        self.gn = nn.GroupNorm(512, 512)
        self.fp_ln = nn.LayerNorm(512, eps=1e-5)
        self.fp = nn.Linear(512, d)
        self.pos = nn.Conv1d(d, d, 128, padding=64, groups=16)
        self.ln = nn.LayerNorm(d, eps=1e-5)
        self.layers = nn.ModuleList(Layer(eps=1e-5) for _ in range(layers))

    def forward(self, wav):
        x = wav[:, None, :]
        for i, c in enumerate(self.convs):
            x = c(x)
            if i == 0:
                x = self.gn(x)
            x = nn.functional.gelu(x)
        x = self.fp(self.fp_ln(x.transpose(1, 2)))
        p = nn.functional.gelu(self.pos(x.transpose(1, 2))[:, :, :-1]).transpose(1, 2)
        x = self.ln(x + p)
        m = torch.zeros(x.shape[0], 1, 1, x.shape[1])
        for l in self.layers:
            x = l(x, m)
        return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=150)
    ap.add_argument("--samples", type=int, default=80000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.manual_seed(0)
    bert, w2v = Bert().eval(), Wav2Vec2().eval()
    ids = torch.randint(1000, 30000, (a.batch, a.tokens))
    mask = torch.ones(a.batch, a.tokens, dtype=torch.long)
    wav = torch.randn(a.batch, a.samples) * 0.1
    times = []
    with torch.no_grad():
        bert(ids, mask), w2v(wav)  # warm-up
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            bert(ids, mask)
            w2v(wav)
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": a.batch,
                      "batch_seconds": med, "utterances_per_second": a.batch / med}))


if __name__ == "__main__":
    main()
