#!/usr/bin/env python3
"""Reference values of the LE-MER head, written in PyTorch (independent of lemer's graph code).

Writes test/fixtures/models/lemer/head.json: fixed small padded inputs, and for each case
(fusion variant x A_l normalisation x class weights) the forward values (G_t, G_s, p_g^t,
p_g^s, A_r, A_l, logits, every loss term, the total of Eq 12) and the gradients of the
total with respect to every input and parameter, in float64.

Run (never by the tests; they read the committed JSON):
  OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 tools/make_lemer_fixtures.py
"""
import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(0)
DT = torch.float64
B, LT, LS, DTX, DS, C = 2, 4, 5, 3, 2, 3
text_len = [4, 2]
speech_len = [5, 3]
mt = torch.tensor([[1.0 if t < text_len[b] else 0.0 for t in range(LT)] for b in range(B)], dtype=DT)
ms = torch.tensor([[1.0 if t < speech_len[b] else 0.0 for t in range(LS)] for b in range(B)], dtype=DT)
# Label scope: the "current utterance" = every real token but the first.
lm = mt.clone()
lm[:, 0] = 0.0


def rand(*shape):
    return torch.randn(*shape, dtype=DT)


inputs = {
    "text": rand(B, LT, DTX),
    "speech": rand(B, LS, DS),
    "text_labels": rand(C, DTX),
    "speech_labels": rand(C, DS),
    "cross_weight": rand(DTX, DS),
    "classifier_weight": rand(C, DTX + DS),
    "classifier_bias": rand(C),
}
# Padded positions hold large values: a masking bug shows at once.
inputs["text"][mt == 0] = 7.0
inputs["speech"][ms == 0] = -9.0
labels = torch.tensor([2, 0])
CLASS_WEIGHTS = [0.5, 1.0, 2.0]
SCALE = 2.0
MU = (1.0, 0.5, 0.2, 0.2)


def masked_softmax_frames(scores):
    # softmax over frames (last axis) of real frames; rows of padded tokens zeroed
    s = scores.masked_fill(ms[:, None, :] == 0, float("-inf"))
    return torch.softmax(s, dim=-1) * mt[:, :, None]


def head(p, fusion, al_norm, class_weights, label_scope):
    Ht, Hs = p["text"], p["speech"]
    Gt = F.cosine_similarity(Ht[:, :, None, :], p["text_labels"][None, None], dim=-1)  # [B, LT, C]
    Gs = F.cosine_similarity(Hs[:, :, None, :], p["speech_labels"][None, None], dim=-1)  # [B, LS, C]
    tmask = lm if label_scope == "current" else mt
    zt = SCALE * (Gt * tmask[:, :, None]).sum(1) / tmask.sum(1, keepdim=True)
    zs = SCALE * (Gs * ms[:, :, None]).sum(1) / ms.sum(1, keepdim=True)
    w = torch.tensor(class_weights, dtype=DT) if class_weights else None
    Lgt = F.cross_entropy(zt, labels, weight=w)
    Lgs = F.cross_entropy(zs, labels, weight=w)
    pair = mt[:, :, None] * ms[:, None, :]
    Ar = masked_softmax_frames(Ht @ p["cross_weight"] @ Hs.transpose(1, 2))
    Al_raw = Gt @ Gs.transpose(1, 2)
    Al = masked_softmax_frames(Al_raw) if al_norm == "softmax" else Al_raw * pair
    Lc = ((Al - Ar) ** 2 * pair).sum() / pair.sum()
    A = {"constraint": Ar, "vanilla": Ar, "sum": Ar + Al, "label-only": Al}[fusion]
    Hm = torch.cat([Ht, A @ Hs], dim=-1)
    v = Hm.masked_fill(mt[:, :, None] == 0, float("-inf")).max(dim=1).values
    logits = v @ p["classifier_weight"].T + p["classifier_bias"]
    Lm = F.cross_entropy(logits, labels, weight=w)
    total = MU[0] * Lm + MU[2] * Lgt + MU[3] * Lgs
    if fusion == "constraint":
        total = total + MU[1] * Lc
    return {
        "text_label_attention": Gt,
        "speech_label_attention": Gs,
        "text_label_probs": torch.softmax(zt, -1),
        "speech_label_probs": torch.softmax(zs, -1),
        "cross_attention": Ar,
        "label_attention": Al,
        "logits": logits,
        "loss_main": Lm,
        "loss_constraint": Lc,
        "loss_text_label": Lgt,
        "loss_speech_label": Lgs,
        "loss": total,
    }


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


cases = []
for fusion in ["constraint", "sum", "label-only", "vanilla"]:
    for al_norm in ["softmax", "raw"]:
        for cw in [None, CLASS_WEIGHTS]:
            for scope in ["context", "current"]:
                if scope == "current" and (al_norm == "raw" or cw):
                    continue
                p = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
                out = head(p, fusion, al_norm, cw, scope)
                out["loss"].backward()
                grads = {}
                for k, v in p.items():
                    if fusion == "label-only" and k == "cross_weight":
                        continue  # C3 has no A_r: W is not part of the model
                    grads[k] = flat(v.grad)
                cases.append(
                    {
                        "fusion": fusion,
                        "alNorm": al_norm,
                        "classWeights": cw,
                        "labelScope": scope,
                        "outputs": {k: flat(v) for k, v in out.items()},
                        "grads": grads,
                    }
                )

doc = {
    "about": "LE-MER head reference (PyTorch %s, float64), written by tools/make_lemer_fixtures.py" % torch.__version__,
    "sizes": {"B": B, "LT": LT, "LS": LS, "DT": DTX, "DS": DS, "C": C},
    "scale": SCALE,
    "mu": MU,
    "text_mask": flat(mt),
    "speech_mask": flat(ms),
    "label_mask": flat(lm),
    "labels": labels.tolist(),
    "inputs": {k: {"shape": list(v.shape), "data": flat(v)} for k, v in inputs.items()},
    "cases": cases,
}
out = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "models", "lemer", "head.json")
os.makedirs(os.path.dirname(out), exist_ok=True)
tmp = out + ".tmp"
with open(tmp, "w") as f:
    json.dump(doc, f)
os.replace(tmp, out)
print("wrote", out, len(cases), "cases")
