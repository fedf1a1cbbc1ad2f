#!/usr/bin/python3
"""PyTorch side of lemer's training benchmark (bench/train.ts): the LE-MER head written in
PyTorch, trained on cached features or end to end with BERT-base + wav2vec2-base.

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_lemer.py --case cached|finetune \
        [--repeats N] [--micro M] [--train-cnn]

The head follows lemer's (src/models/lemer, SPEC "The model"), constraint fusion (C1):
G_t = cos(H_t, L_t), G_s = cos(H_s, L_s); p_g = softmax of the masked token / frame mean
of G (scale 1); A_r = softmax over frames of H_t W H_s^T (padded frames excluded, padded
token rows zero); A_l = G_t G_s^T normalised the same way; L_c = MSE(A_l, A_r) over valid
cells; H_m = [H_t ; A_r H_s]; masked max over tokens; dropout 0.1; Linear;
L = L_m + 0.5 L_c + 0.2 L_g^t + 0.2 L_g^s. Encoders: bench/torch_encoders.py's BertModel
(Hugging Face layout, BERT-base) and torchaudio's wav2vec2_base (CNN frozen unless
--train-cnn, as Hugging Face's freeze_feature_encoder). Optimiser as lemer's config defaults:
Adam, lr 5e-6 text / 1e-6 speech / 1e-4 head, linear warm-up, gradient-norm clipping 1.0.
Batch 16 = M micro-batches of 16 / M, gradients accumulated (mean of the micro losses).
Timing and memory helpers from bench/torch_reference.py (VmHWM peak per measurement).
Prints ONE JSON object on stdout.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as ref  # noqa: E402  (re-executes with OMP_WAIT_POLICY=PASSIVE if unset)

import argparse  # noqa: E402
import json  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

BATCH, TOKENS, SAMPLES, FRAMES, DIM, CLASSES = 16, 150, 80000, 249, 768, 4
NEG = torch.finfo(torch.float32).min


class LemerHead(nn.Module):
    def __init__(self, dt=DIM, ds=DIM, c=CLASSES, mu=(1.0, 0.5, 0.2, 0.2), dropout=0.1):
        super().__init__()
        self.label_text = nn.Parameter(torch.randn(c, dt) * 0.02)
        self.label_speech = nn.Parameter(torch.randn(c, ds) * 0.02)
        self.cross = nn.Parameter(torch.randn(dt, ds) * 0.02)
        self.classifier = nn.Linear(dt + ds, c)
        self.drop = nn.Dropout(dropout)
        self.mu = mu

    @staticmethod
    def _label_loss(g, m, y):
        mean = (g * m[..., None]).sum(1) / m.sum(1, keepdim=True)
        return F.cross_entropy(mean, y)

    @staticmethod
    def _frame_softmax(a, mt, ms):
        a = a.masked_fill(ms[:, None, :] == 0, NEG).softmax(-1)
        return a * mt[..., None]

    def forward(self, ht, mt, hs, ms, y):
        mt, ms = mt.float(), ms.float()
        gt = F.normalize(ht, dim=-1) @ F.normalize(self.label_text, dim=-1).T
        gs = F.normalize(hs, dim=-1) @ F.normalize(self.label_speech, dim=-1).T
        ar = self._frame_softmax((ht @ self.cross) @ hs.transpose(1, 2), mt, ms)
        al = self._frame_softmax(gt @ gs.transpose(1, 2), mt, ms)
        valid = mt[..., None] * ms[:, None, :]
        lc = (((al - ar) ** 2) * valid).sum() / valid.sum()
        hm = torch.cat([ht, ar @ hs], -1)
        v = hm.masked_fill(mt[..., None] == 0, NEG).amax(1)
        lm = F.cross_entropy(self.classifier(self.drop(v)), y)
        m1, m2, m3, m4 = self.mu
        return m1 * lm + m2 * lc + m3 * self._label_loss(gt, mt, y) + m4 * self._label_loss(gs, ms, y)


def text_mask():
    m = torch.zeros(BATCH, TOKENS, dtype=torch.long)
    for b in range(BATCH):  # bench/lib/encoder-inputs.ts's padding
        m[b, : TOKENS - (b * 13) % (TOKENS // 3)] = 1
    return m


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--case", choices=["cached", "finetune"], required=True)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--micro", type=int, default=4)
    p.add_argument("--train-cnn", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(ref.THREADS)
    torch.manual_seed(0)
    ref.WARMUP = 1  # steps of seconds: one warm-up, as the lemer side
    y = torch.arange(BATCH) % CLASSES
    head = LemerHead()
    groups = [{"params": list(head.parameters()), "lr": 1e-4}]
    if a.case == "cached":
        micro = 1
        ht = torch.rand(BATCH, TOKENS, DIM) - 0.5
        hs = torch.rand(BATCH, FRAMES, DIM) - 0.5
        mt, ms = text_mask(), torch.ones(BATCH, FRAMES, dtype=torch.long)

        def loss_of(sl):
            return head(ht[sl], mt[sl], hs[sl], ms[sl], y[sl])
    else:
        import torch_encoders as enc

        micro = a.micro
        bert = enc.BertModel()
        w2v2 = enc.w2v2_model()
        if not a.train_cnn:
            for q in w2v2.feature_extractor.parameters():
                q.requires_grad_(False)
        bert.train()
        w2v2.train()
        head.train()
        ids, mt, types = enc.bert_inputs()
        wave = torch.randn(BATCH, SAMPLES) * 0.1
        groups += [
            {"params": list(bert.parameters()), "lr": 5e-6},
            {"params": [q for q in w2v2.parameters() if q.requires_grad], "lr": 1e-6},
        ]

        def loss_of(sl):
            ht = bert(ids[sl], mt[sl], types[sl])
            hs = enc.w2v2_last_hidden(w2v2, wave[sl])
            ms = torch.ones(hs.shape[0], hs.shape[1], dtype=torch.long)
            return head(ht, mt[sl], hs, ms, y[sl])

    opt = torch.optim.Adam(groups, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))
    params = [q for g in groups for q in g["params"]]
    per = BATCH // micro

    def step():
        opt.zero_grad(set_to_none=True)
        for i in range(micro):
            (loss_of(slice(i * per, (i + 1) * per)) / micro).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()

    baseline = ref.rss_mb()
    repeats = max(a.repeats, 10) if a.case == "cached" else a.repeats
    st = ref.measure(a.case, step, repeats, baseline, 30 if a.case == "cached" else 1)
    print(json.dumps({
        "torch_version": torch.__version__,
        "case": a.case,
        "batch": BATCH,
        "micro_batches": micro,
        "feature_encoder": "train-cnn" if a.train_cnn else "frozen-cnn",
        "trained_parameters": sum(q.numel() for q in params if q.requires_grad),
        "step_ms": st["median"],
        "utterances_per_s": round(BATCH * 1000 / st["median"], 2),
        "timing": st,
    }))


if __name__ == "__main__":
    main()
