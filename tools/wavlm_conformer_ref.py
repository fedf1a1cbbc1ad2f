"""Independent PyTorch references for WavLM and wav2vec2-conformer (eval mode), written
from Hugging Face transformers' modeling_wavlm.py and modeling_wav2vec2_conformer.py
(read, then rewritten): same module attributes, so state_dict() keys are the Hugging Face
base model's. Torchaudio 0.13 has neither model. Used by make_wav2vec2_fixtures.py only.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


def act(name):
    return {"gelu": F.gelu, "relu": F.relu, "swish": F.silu, "silu": F.silu}[name]


class ConvLayer(nn.Module):
    def __init__(self, c, i, norm):
        super().__init__()
        cin = c["conv_dim"][i - 1] if i > 0 else 1
        cout = c["conv_dim"][i]
        self.conv = nn.Conv1d(cin, cout, c["conv_kernel"][i], stride=c["conv_stride"][i], bias=c["conv_bias"])
        self.norm = norm
        if norm == "group":
            self.layer_norm = nn.GroupNorm(cout, cout, affine=True)
        elif norm == "layer":
            self.layer_norm = nn.LayerNorm(cout)
        self.act = act(c["feat_extract_activation"])

    def forward(self, x):
        x = self.conv(x)
        if self.norm == "group":
            x = self.layer_norm(x)
        elif self.norm == "layer":
            x = self.layer_norm(x.transpose(-2, -1)).transpose(-2, -1)
        return self.act(x)


class FeatureEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        n = len(c["conv_dim"])
        if c["feat_extract_norm"] == "group":
            norms = ["group"] + [None] * (n - 1)
        else:
            norms = ["layer"] * n
        self.conv_layers = nn.ModuleList([ConvLayer(c, i, norms[i]) for i in range(n)])

    def forward(self, x):
        x = x[:, None]
        for layer in self.conv_layers:
            x = layer(x)
        return x


class FeatureProjection(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer_norm = nn.LayerNorm(c["conv_dim"][-1], eps=c["layer_norm_eps"])
        self.projection = nn.Linear(c["conv_dim"][-1], c["hidden_size"])

    def forward(self, x):
        n = self.layer_norm(x)
        return self.projection(n), n


class PosConv(nn.Module):
    def __init__(self, c):
        super().__init__()
        k = c["num_conv_pos_embeddings"]
        conv = nn.Conv1d(c["hidden_size"], c["hidden_size"], k, padding=k // 2, groups=c["num_conv_pos_embedding_groups"])
        self.conv = nn.utils.weight_norm(conv, name="weight", dim=2)
        self.remove = 1 if k % 2 == 0 else 0
        self.act = act(c["feat_extract_activation"])

    def forward(self, x):
        x = self.conv(x.transpose(1, 2))
        if self.remove:
            x = x[:, :, : -self.remove]
        return self.act(x).transpose(1, 2)


class FeedForward(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.intermediate_dense = nn.Linear(c["hidden_size"], c["intermediate_size"])
        self.output_dense = nn.Linear(c["intermediate_size"], c["hidden_size"])
        self.act = act(c["hidden_act"])

    def forward(self, x):
        return self.output_dense(self.act(self.intermediate_dense(x)))


def frame_mask(c, attention_mask, T):
    lengths = attention_mask.sum(-1)
    for k, s in zip(c["conv_kernel"], c["conv_stride"]):
        lengths = torch.div(lengths - k, s, rounding_mode="floor") + 1
    return torch.arange(T)[None, :] < lengths[:, None]


# ---------------- WavLM ----------------


class WavLMAttention(nn.Module):
    def __init__(self, c, has_bias):
        super().__init__()
        d, h = c["hidden_size"], c["num_attention_heads"]
        self.h, self.dh = h, d // h
        self.num_buckets, self.max_distance = c["num_buckets"], c["max_bucket_distance"]
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.gru_rel_pos_const = nn.Parameter(torch.ones(1, h, 1, 1))
        self.gru_rel_pos_linear = nn.Linear(self.dh, 8)
        if has_bias:
            self.rel_attn_embed = nn.Embedding(self.num_buckets, h)

    def buckets(self, rel):
        n = self.num_buckets // 2
        out = (rel > 0).long() * n
        rel = rel.abs()
        max_exact = n // 2
        small = rel < max_exact
        large = max_exact + (torch.log(rel.float() / max_exact) / math.log(self.max_distance / max_exact) * (n - max_exact)).long()
        large = torch.minimum(large, torch.full_like(large, n - 1))
        return out + torch.where(small, rel, large)

    def compute_bias(self, T):
        rel = torch.arange(T)[None, :] - torch.arange(T)[:, None]
        return self.rel_attn_embed(self.buckets(rel)).permute(2, 0, 1)  # [H, T, T]

    def forward(self, x, key_pad, bias):
        B, T, D = x.shape
        if bias is None:
            bias = self.compute_bias(T)[None]  # [1, H, T, T]
        gx = x.view(B, T, self.h, self.dh).permute(0, 2, 1, 3)
        r = self.gru_rel_pos_linear(gx).view(B, self.h, T, 2, 4).sum(-1)
        a, b = torch.sigmoid(r).chunk(2, dim=-1)
        gate = a * (b * self.gru_rel_pos_const - 1.0) + 2.0  # [B, H, T, 1]
        gated = gate * bias  # [B, H, T, T]
        q = self.q_proj(x).view(B, T, self.h, self.dh).transpose(1, 2) / math.sqrt(self.dh)
        k = self.k_proj(x).view(B, T, self.h, self.dh).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.h, self.dh).transpose(1, 2)
        s = q @ k.transpose(-1, -2) + gated
        s = s.masked_fill(key_pad[:, None, None, :], float("-inf"))
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        return self.out_proj(o), bias


class WavLMLayer(nn.Module):
    def __init__(self, c, has_bias):
        super().__init__()
        self.stable = c["do_stable_layer_norm"]
        self.attention = WavLMAttention(c, has_bias)
        self.layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.feed_forward = FeedForward(c)
        self.final_layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, x, key_pad, bias):
        if self.stable:
            a, bias = self.attention(self.layer_norm(x), key_pad, bias)
            x = x + a
            return x + self.feed_forward(self.final_layer_norm(x)), bias
        a, bias = self.attention(x, key_pad, bias)
        x = self.layer_norm(x + a)
        return self.final_layer_norm(x + self.feed_forward(x)), bias


class WavLMEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.stable = c["do_stable_layer_norm"]
        self.pos_conv_embed = PosConv(c)
        self.layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.layers = nn.ModuleList([WavLMLayer(c, i == 0) for i in range(c["num_hidden_layers"])])

    def forward(self, h, mask):
        h = h.masked_fill(~mask[..., None], 0.0)
        h = h + self.pos_conv_embed(h)
        if not self.stable:
            h = self.layer_norm(h)
        states, bias = [], None
        for layer in self.layers:
            states.append(h)
            h, bias = layer(h, ~mask, bias)
        if self.stable:
            h = self.layer_norm(h)
        states.append(h)
        return states


class WavLMModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.feature_extractor = FeatureEncoder(c)
        self.feature_projection = FeatureProjection(c)
        self.encoder = WavLMEncoder(c)

    def forward(self, wave, attention_mask):
        f = self.feature_extractor(wave).transpose(1, 2)
        mask = frame_mask(self.c, attention_mask, f.shape[1])
        h, extract = self.feature_projection(f)
        return self.encoder(h, mask), extract, mask


# ---------------- wav2vec2-conformer ----------------


def rel_pe(T, d):
    pos = torch.arange(0, T, dtype=torch.int64).float().unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.int64).float() * -(math.log(10000.0) / d))
    pp, pn = torch.zeros(T, d), torch.zeros(T, d)
    pp[:, 0::2], pp[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    pn[:, 0::2], pn[:, 1::2] = torch.sin(-1 * pos * div), torch.cos(-1 * pos * div)
    return torch.cat([torch.flip(pp, [0]), pn[1:]], 0)[None]  # [1, 2T-1, d]


def rotary(T, dh, base):
    inv = 1.0 / (base ** (torch.arange(0, dh, 2, dtype=torch.int64).float() / dh))
    freqs = torch.einsum("i,j->ij", torch.arange(T).type_as(inv), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos()[:, None, None, :], emb.sin()[:, None, None, :]


class ConformerSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, h = c["hidden_size"], c["num_attention_heads"]
        self.h, self.dh, self.kind = h, d // h, c["position_embeddings_type"]
        self.linear_q, self.linear_k, self.linear_v, self.linear_out = (nn.Linear(d, d) for _ in range(4))
        if self.kind == "relative":
            self.linear_pos = nn.Linear(d, d, bias=False)
            self.pos_bias_u = nn.Parameter(torch.randn(h, self.dh) * 0.3)
            self.pos_bias_v = nn.Parameter(torch.randn(h, self.dh) * 0.3)

    def forward(self, x, add_mask, pos):
        B, T, D = x.shape
        qk = x
        if self.kind == "rotary":
            cos, sin = pos
            y = x.view(B, T, self.h, self.dh).transpose(0, 1)  # [T, B, H, dh]
            a, b = y[..., : self.dh // 2], y[..., self.dh // 2 :]
            y = y * cos + torch.cat((-b, a), dim=-1) * sin
            qk = y.transpose(0, 1).reshape(B, T, D)
        q = self.linear_q(qk).view(B, T, self.h, self.dh).transpose(1, 2)
        k = self.linear_k(qk).view(B, T, self.h, self.dh).transpose(1, 2)
        v = self.linear_v(x).view(B, T, self.h, self.dh).transpose(1, 2)
        if self.kind == "relative":
            p = self.linear_pos(pos).view(1, -1, self.h, self.dh).permute(0, 2, 3, 1)  # [1, H, dh, 2T-1]
            ac = (q + self.pos_bias_u[None, :, None, :]) @ k.transpose(-1, -2)
            bd = (q + self.pos_bias_v[None, :, None, :]) @ p  # [B, H, T, 2T-1]
            # out[i, j] = bd[i, j + T - 1 - i]: relative position i - j, written out index by index
            idx = (torch.arange(T)[None, :] - torch.arange(T)[:, None]) + (T - 1)
            bd = torch.gather(bd, 3, idx[None, None].expand(B, self.h, T, T))
            s = (ac + bd) / math.sqrt(self.dh)
        else:
            s = q @ k.transpose(-1, -2) / math.sqrt(self.dh)
        s = s + add_mask
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        return self.linear_out(o)


class ConvModule(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, k = c["hidden_size"], c["conv_depthwise_kernel_size"]
        self.layer_norm = nn.LayerNorm(d)
        self.pointwise_conv1 = nn.Conv1d(d, 2 * d, 1, bias=False)
        self.depthwise_conv = nn.Conv1d(d, d, k, padding=(k - 1) // 2, groups=d, bias=False)
        self.batch_norm = nn.BatchNorm1d(d)
        self.pointwise_conv2 = nn.Conv1d(d, d, 1, bias=False)
        self.act = act(c["hidden_act"])

    def forward(self, x):
        x = self.layer_norm(x).transpose(1, 2)
        x = F.glu(self.pointwise_conv1(x), dim=1)
        x = self.act(self.batch_norm(self.depthwise_conv(x)))
        return self.pointwise_conv2(x).transpose(1, 2)


class ConformerLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.ffn1_layer_norm = nn.LayerNorm(d)
        self.ffn1 = FeedForward(c)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.self_attn = ConformerSelfAttention(c)
        self.conv_module = ConvModule(c)
        self.ffn2_layer_norm = nn.LayerNorm(d)
        self.ffn2 = FeedForward(c)
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, x, add_mask, pos):
        x = self.ffn1(self.ffn1_layer_norm(x)) * 0.5 + x
        x = self.self_attn(self.self_attn_layer_norm(x), add_mask, pos) + x
        x = x + self.conv_module(x)
        x = self.ffn2(self.ffn2_layer_norm(x)) * 0.5 + x
        return self.final_layer_norm(x)


class ConformerEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.pos_conv_embed = PosConv(c)  # in every checkpoint, never applied
        self.layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.layers = nn.ModuleList([ConformerLayer(c) for _ in range(c["num_hidden_layers"])])

    def forward(self, h, mask):
        c = self.c
        h = h.masked_fill(~mask[..., None], 0.0)
        add_mask = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        T = h.shape[1]
        if c["position_embeddings_type"] == "relative":
            pos = rel_pe(T, c["hidden_size"])
        else:
            pos = rotary(T, c["hidden_size"] // c["num_attention_heads"], c["rotary_embedding_base"])
        states = []
        for layer in self.layers:
            states.append(h)
            h = layer(h, add_mask, pos)
        states.append(self.layer_norm(h))
        return states


class ConformerModel(WavLMModel):
    def __init__(self, c):
        nn.Module.__init__(self)
        self.c = c
        self.feature_extractor = FeatureEncoder(c)
        self.feature_projection = FeatureProjection(c)
        self.encoder = ConformerEncoder(c)
