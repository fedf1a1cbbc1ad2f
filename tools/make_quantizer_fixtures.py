"""Writes test/fixtures/models/quantizer-tiny/: a tiny Wav2Vec2GumbelVectorQuantizer +
Wav2Vec2ForPreTraining head (quantizer.*, project_q, project_hid under Hugging Face's
names) and its outputs, computed by an independent PyTorch implementation written from
transformers' modeling_wav2vec2.py (Wav2Vec2GumbelVectorQuantizer.forward,
Wav2Vec2ForPreTraining.forward / compute_contrastive_logits):

- eval form (argmax codes): code vectors, perplexity over the masked frames, per-group
  codes, contrastive / diversity / total loss with sampled negatives (collisions included);
- training form with fixed Gumbel uniforms (noise = -log(-log(u))): the same, plus the
  gradients of the loss with respect to every parameter and both inputs.

Run (never by the tests; the outputs are committed):
    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 tools/make_quantizer_fixtures.py
"""
import json
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
from make_conformer_fixtures import write_safetensors  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "models", "quantizer-tiny")
CFG = {
    "conv_dim": [12],
    "hidden_size": 10,
    "num_codevector_groups": 2,
    "num_codevectors_per_group": 5,
    "codevector_dim": 8,
    "proj_codevector_dim": 6,
    "num_negatives": 3,
    "contrastive_logits_temperature": 0.1,
    "diversity_loss_weight": 0.1,
    "feat_quantizer_dropout": 0.0,
}
TAU = 2.0


class Quantizer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.G, self.V = c["num_codevector_groups"], c["num_codevectors_per_group"]
        self.codevectors = nn.Parameter(torch.rand(1, self.G * self.V, c["codevector_dim"] // self.G))
        self.weight_proj = nn.Linear(c["conv_dim"][-1], self.G * self.V)
        nn.init.normal_(self.weight_proj.weight, 0, 1)
        nn.init.normal_(self.weight_proj.bias, 0, 0.5)

    @staticmethod
    def perplexity(probs, mask):
        m = mask.flatten()[:, None, None].expand(probs.shape)
        probs = torch.where(m, probs, torch.zeros_like(probs))
        marginal = probs.sum(dim=0) / mask.sum()
        return torch.exp(-torch.sum(marginal * torch.log(marginal + 1e-7), dim=-1)).sum()

    def forward(self, x, mask, uniform=None):
        b, t, _ = x.shape
        h = self.weight_proj(x).view(b * t * self.G, -1)
        if uniform is not None:
            gumbel = -torch.log(-torch.log(uniform.reshape(h.shape)))
            soft = torch.softmax((h + gumbel) / TAU, -1)
            hard = torch.zeros_like(soft).scatter_(-1, soft.argmax(-1, keepdim=True), 1.0)
            probs = hard - soft.detach() + soft
            ppl = self.perplexity(torch.softmax(h.view(b * t, self.G, -1), -1), mask)
        else:
            idx = h.argmax(-1)
            probs = h.new_zeros(h.shape).scatter_(-1, idx.view(-1, 1), 1.0)
            ppl = self.perplexity(probs.view(b * t, self.G, -1), mask)
        probs = probs.view(b * t, -1)
        cv = (probs.unsqueeze(-1) * self.codevectors).view(b * t, self.G, self.V, -1).sum(-2).view(b, t, -1)
        codes = h.argmax(-1).view(b, t, self.G)
        return cv, ppl, codes


class Head(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.quantizer = Quantizer(c)
        self.project_hid = nn.Linear(c["hidden_size"], c["proj_codevector_dim"])
        self.project_q = nn.Linear(c["codevector_dim"], c["proj_codevector_dim"])

    def forward(self, hidden, features, mask, neg, uniform=None):
        c = self.c
        transformer = self.project_hid(hidden)
        q, ppl, codes = self.quantizer(features, mask, uniform)
        q = self.project_q(q)
        b, t, d = q.shape
        negq = q.view(-1, d)[neg.view(-1)].view(b, t, -1, d).permute(2, 0, 1, 3)
        targets = torch.cat([q[None], negq], 0)
        logits = torch.cosine_similarity(transformer.float(), targets.float(), dim=-1) / c["contrastive_logits_temperature"]
        neg_is_pos = (q == negq).all(-1)
        if neg_is_pos.any():
            logits[1:][neg_is_pos] = float("-inf")
        logits = logits.transpose(0, 2).reshape(-1, logits.size(0))
        target = ((1 - mask.long()) * -100).transpose(0, 1).flatten()
        contrastive = nn.functional.cross_entropy(logits.float(), target, reduction="sum")
        gv = c["num_codevector_groups"] * c["num_codevectors_per_group"]
        diversity = ((gv - ppl) / gv) * mask.sum()
        loss = contrastive + c["diversity_loss_weight"] * diversity
        return loss, contrastive, diversity, ppl, codes, q, int(neg_is_pos.sum())


def main():
    torch.manual_seed(5)
    head = Head(CFG)
    B, T, K = 2, 7, CFG["num_negatives"]
    features = torch.randn(B, T, CFG["conv_dim"][-1])
    hidden = torch.randn(B, T, CFG["hidden_size"])
    lengths = [7, 5]
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[0, [1, 2, 3, 5]] = True
    mask[1, [0, 1, 3]] = True
    neg = torch.zeros(B, T, K, dtype=torch.int64)
    g = torch.Generator().manual_seed(3)
    for b, n in enumerate(lengths):
        for t in range(n):
            for k in range(K):
                j = int(torch.randint(0, n - 1, (1,), generator=g))
                neg[b, t, k] = b * T + (j + 1 if j >= t else j)
        neg[b, n:] = b * T
    uniform = torch.rand(B, T, CFG["num_codevector_groups"], CFG["num_codevectors_per_group"]).clamp(1e-6, 1 - 1e-6)

    sd = {k: v.detach().clone() for k, v in head.state_dict().items()}
    ref = {
        "features": features,
        "hidden": hidden,
        "mask_time_indices": mask.long(),
        "sampled_negative_indices": neg,
        "uniform": uniform,
    }
    with torch.no_grad():
        loss, con, div, ppl, codes, q, coll = head(hidden, features, mask, neg)
        cv, ppl_q, _ = head.quantizer(features, mask)
    ref.update({
        "eval.codevectors": cv, "eval.perplexity": ppl_q.reshape(1), "eval.codes": codes,
        "eval.loss": loss.reshape(1), "eval.contrastive": con.reshape(1), "eval.diversity": div.reshape(1),
    })
    print("eval: loss", float(loss), "collisions", coll)
    features.requires_grad_(True)
    hidden.requires_grad_(True)
    loss, con, div, ppl, codes, q, coll = head(hidden, features, mask, neg, uniform)
    loss.backward()
    ref.update({
        "train.loss": loss.detach().reshape(1), "train.contrastive": con.detach().reshape(1),
        "train.diversity": div.detach().reshape(1), "train.perplexity": ppl.detach().reshape(1),
        "grad.features": features.grad, "grad.hidden": hidden.grad,
    })
    for n, p in head.named_parameters():
        ref[f"grad.{n}"] = p.grad
    print("train: loss", float(loss), "collisions", coll)
    os.makedirs(ROOT, exist_ok=True)
    with open(os.path.join(ROOT, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(ROOT, "model.safetensors"), sd)
    write_safetensors(os.path.join(ROOT, "reference.safetensors"), {k: v.detach() for k, v in ref.items()})


if __name__ == "__main__":
    main()
