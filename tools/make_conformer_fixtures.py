"""Writes the log-mel conformer test fixtures under test/fixtures/models/conformer-*/:
a tiny random checkpoint in lemer's folder layout (config.json with lemer-conformer's
keys, model.safetensors with the graph's tensor names) and the outputs of an
independent PyTorch implementation (below, written from ESPnet's Conv2dSubsampling and
Hugging Face's modeling_wav2vec2_conformer.py: relative-position attention with
pos_bias_u / pos_bias_v, the conv module) on a fixed padded batch:

- eval form (running BatchNorm statistics, randomised so they matter): every hidden
  state and the frame mask;
- training form (dropout 0, BatchNorm on batch statistics): the last hidden state, the
  gradient of sum(hidden * R * mask) for every parameter, and the new running statistics.

Run (never by the tests; the outputs are committed):
    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 tools/make_conformer_fixtures.py
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "models")
DT = {torch.float32: "F32", torch.int64: "I64", torch.float64: "F64"}


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        b = t.numpy().tobytes()
        header[name] = {"dtype": DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class FeedForward(nn.Module):
    def __init__(self, d, ff):
        super().__init__()
        self.intermediate_dense = nn.Linear(d, ff)
        self.output_dense = nn.Linear(ff, d)

    def forward(self, x):
        return self.output_dense(F.silu(self.intermediate_dense(x)))


class RelSelfAttention(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h, self.dh = h, d // h
        self.linear_q = nn.Linear(d, d)
        self.linear_k = nn.Linear(d, d)
        self.linear_v = nn.Linear(d, d)
        self.linear_out = nn.Linear(d, d)
        self.linear_pos = nn.Linear(d, d, bias=False)
        self.pos_bias_u = nn.Parameter(torch.randn(h, self.dh) * 0.3)
        self.pos_bias_v = nn.Parameter(torch.randn(h, self.dh) * 0.3)

    def forward(self, x, pe, keep):
        b, t, d = x.shape
        q = self.linear_q(x).view(b, t, self.h, self.dh)
        k = self.linear_k(x).view(b, t, self.h, self.dh).transpose(1, 2)
        v = self.linear_v(x).view(b, t, self.h, self.dh).transpose(1, 2)
        p = self.linear_pos(pe).view(1, -1, self.h, self.dh).transpose(1, 2).transpose(2, 3)  # [1,H,dh,2T-1]
        ac = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))
        bd = torch.matmul((q + self.pos_bias_v).transpose(1, 2), p)  # [B,H,T,2T-1]
        # Written as an explicit gather (not the pad/reshape trick the graph uses):
        # out[i, j] = bd[i, (T-1) - (i - j)] = relative position i - j.
        i = torch.arange(t).view(t, 1)
        j = torch.arange(t).view(1, t)
        idx = (t - 1 - i + j).expand(b, self.h, t, t)
        bd = torch.gather(bd, 3, idx)
        scores = (ac + bd) / math.sqrt(self.dh)
        scores = scores.masked_fill(~keep[:, None, None, :], torch.finfo(scores.dtype).min)
        probs = scores.softmax(-1)
        ctx = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, d)
        return self.linear_out(ctx)


class ConvModule(nn.Module):
    def __init__(self, d, kernel, norm):
        super().__init__()
        self.norm_kind = norm
        self.layer_norm = nn.LayerNorm(d)
        self.pointwise_conv1 = nn.Conv1d(d, 2 * d, 1, bias=False)
        self.depthwise_conv = nn.Conv1d(d, d, kernel, padding=(kernel - 1) // 2, groups=d, bias=False)
        if norm == "batch_norm":
            self.batch_norm = nn.BatchNorm1d(d)
        else:
            self.conv_norm = nn.LayerNorm(d)
        self.pointwise_conv2 = nn.Conv1d(d, d, 1, bias=False)

    def forward(self, x, keep):
        y = self.layer_norm(x).transpose(1, 2)
        y = F.glu(self.pointwise_conv1(y), dim=1)
        y = y.masked_fill(~keep[:, None, :], 0.0)
        y = self.depthwise_conv(y)
        if self.norm_kind == "batch_norm":
            y = self.batch_norm(y)
        else:
            y = self.conv_norm(y.transpose(1, 2)).transpose(1, 2)
        y = self.pointwise_conv2(F.silu(y))
        return y.transpose(1, 2)


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.ffn1_layer_norm = nn.LayerNorm(d)
        self.ffn1 = FeedForward(d, c["intermediate_size"])
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.self_attn = RelSelfAttention(d, c["num_attention_heads"])
        self.conv_module = ConvModule(d, c["conv_depthwise_kernel_size"], c["conv_norm"])
        self.ffn2_layer_norm = nn.LayerNorm(d)
        self.ffn2 = FeedForward(d, c["intermediate_size"])
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, x, pe, keep):
        h = x + 0.5 * self.ffn1(self.ffn1_layer_norm(x))
        h = h + self.self_attn(self.self_attn_layer_norm(h), pe, keep)
        h = h + self.conv_module(h, keep)
        h = h + 0.5 * self.ffn2(self.ffn2_layer_norm(h))
        return self.final_layer_norm(h)


class Subsampling(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch = c["subsampling_channels"] or c["hidden_size"]
        self.conv = nn.Sequential(nn.Conv2d(1, ch, 3, 2), nn.ReLU(), nn.Conv2d(ch, ch, 3, 2), nn.ReLU())
        f = ((c["num_mel_bins"] - 1) // 2 - 1) // 2
        self.out = nn.Linear(ch * f, c["hidden_size"])

    def forward(self, x):
        y = self.conv(x.unsqueeze(1))
        b, ch, t, f = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, ch * f))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])


class Conformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.subsampling = Subsampling(c)
        self.encoder = Encoder(c)

    def rel_pe(self, t, d, dtype):
        # Wav2Vec2ConformerRelPositionalEmbedding, computed directly for length t.
        pos = torch.arange(t - 1, -t, -1, dtype=torch.float32).unsqueeze(1)  # T-1 .. -(T-1)
        div = torch.exp(torch.arange(0, d, 2, dtype=torch.int64).float() * -(math.log(10000.0) / d))
        pe = torch.zeros(2 * t - 1, d)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        return pe.unsqueeze(0).to(dtype)

    def forward(self, feats, mask):
        h = self.subsampling(feats)
        lengths = mask.sum(1)
        lengths = torch.div(torch.div(lengths - 1, 2, rounding_mode="floor") - 1, 2, rounding_mode="floor").clamp(min=0)
        keep = torch.arange(h.shape[1])[None, :] < lengths[:, None]
        pe = self.rel_pe(h.shape[1], self.c["hidden_size"], h.dtype)
        states = [h]
        for layer in self.encoder.layers:
            h = layer(h, pe, keep)
            states.append(h)
        return states, keep


TINY = {
    "model_type": "lemer-conformer",
    "num_mel_bins": 80,
    "subsampling_channels": 8,
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "conv_depthwise_kernel_size": 5,
    "conv_norm": "batch_norm",
    "hidden_act": "swish",
    "hidden_dropout": 0.0,
    "activation_dropout": 0.0,
    "attention_dropout": 0.0,
    "conformer_conv_dropout": 0.0,
    "layer_norm_eps": 1e-5,
    "batch_norm_momentum": 0.1,
    "position_embeddings_type": "relative",
}

LENGTHS = [40, 29, 11]
FRAMES = 40


def make(name, overrides, seed):
    torch.manual_seed(seed)
    c = dict(TINY, **overrides)
    m = Conformer(c)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith("layer_norm.weight") or n.endswith("conv_norm.weight") or n.endswith("batch_norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif n.endswith("norm.bias"):
                p.copy_(0.1 * torch.randn_like(p))
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm1d):
                mod.running_mean.copy_(0.1 * torch.randn_like(mod.running_mean))
                mod.running_var.copy_(0.5 + torch.rand_like(mod.running_var))
    feats = torch.randn(len(LENGTHS), FRAMES, c["num_mel_bins"])
    mask = torch.zeros(len(LENGTHS), FRAMES, dtype=torch.int64)
    for b, n in enumerate(LENGTHS):
        mask[b, :n] = 1
        feats[b, n:] = 0.0  # padding as the front end writes it
    sd = {k: v.clone() for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}

    m.eval()
    with torch.no_grad():
        states, keep = m(feats, mask)
    ref = {"input_features": feats, "attention_mask": mask, "frame_mask": keep.to(torch.int64)}
    for i, s in enumerate(states):
        ref[f"hidden_states.{i}"] = s

    # Training form: batch statistics, gradients of sum(hidden * R * mask).
    m.train()
    states, keep = m(feats, mask)
    torch.manual_seed(seed + 100)
    r = torch.randn_like(states[-1])
    loss = (states[-1] * r * keep[:, :, None]).sum()
    loss.backward()
    ref["train.projection"] = r
    ref["train.hidden"] = states[-1].detach()
    ref["train.loss"] = loss.detach().reshape(1)
    for n, p in m.named_parameters():
        ref[f"grad.{n}"] = p.grad
    for n, b in m.named_buffers():
        if "running" in n:
            ref[f"new.{n}"] = b.clone()

    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(d, "model.safetensors"), sd)
    write_safetensors(os.path.join(d, "reference.safetensors"), ref)
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump({"lengths": LENGTHS, "frames": FRAMES, "num_hidden_states": len(states), "torch": torch.__version__}, f, indent=2)
        f.write("\n")
    print(name, "encoder frames", keep.sum(1).tolist(), "params", sum(p.numel() for p in m.parameters()))


if __name__ == "__main__":
    make("conformer-tiny", {}, 1)
    make("conformer-tiny-ln", {"conv_norm": "layer_norm"}, 2)
