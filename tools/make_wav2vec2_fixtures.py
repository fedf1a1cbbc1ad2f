"""Writes the wav2vec2-family test fixtures under test/fixtures/models/: tiny random
checkpoints in the Hugging Face folder layout (config.json with the real keys,
model.safetensors with the real tensor names) and the outputs of an independent PyTorch
implementation on fixed inputs (reference.safetensors + reference.json).

- wav2vec2 and HuBERT: torchaudio 0.13's own models (torchaudio.models.wav2vec2_model);
  their feature_extractor / encoder.feature_projection / encoder.transformer state dicts
  carry Hugging Face's names of feature_extractor / feature_projection / encoder.
- WavLM and wav2vec2-conformer: tools/wavlm_conformer_ref.py (written from HF's modeling code).

Run (never by the tests; the outputs are committed):
    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 tools/make_wav2vec2_fixtures.py
"""
import json
import os
import struct
import sys

import torch
import torchaudio

sys.path.insert(0, os.path.dirname(__file__))
import wavlm_conformer_ref as ref  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "models")
DT = {torch.float32: "F32", torch.int64: "I64", torch.float64: "F64"}


def write_safetensors(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        b = t.numpy().tobytes()
        header[name] = {"dtype": DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# HF config keys common to the family (tiny sizes); each fixture overrides some.
BASE = {
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "hidden_act": "gelu",
    "hidden_dropout": 0.1,
    "activation_dropout": 0.1,
    "attention_dropout": 0.1,
    "feat_proj_dropout": 0.0,
    "layerdrop": 0.1,
    "layer_norm_eps": 1e-5,
    "feat_extract_norm": "group",
    "feat_extract_activation": "gelu",
    "conv_dim": [16, 16, 16],
    "conv_kernel": [10, 3, 3],
    "conv_stride": [5, 2, 2],
    "num_feat_extract_layers": 3,
    "conv_bias": False,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
    "do_stable_layer_norm": False,
    "initializer_range": 0.02,
    "vocab_size": 32,
    "torch_dtype": "float32",
}

LENGTHS = [400, 300]  # a padded batch: row 1 has 100 samples of padding


def inputs():
    g = torch.Generator().manual_seed(1234)
    S = max(LENGTHS)
    wave = torch.randn(len(LENGTHS), S, generator=g)
    mask = torch.zeros(len(LENGTHS), S, dtype=torch.int64)
    for b, n in enumerate(LENGTHS):
        wave[b, n:] = 0.0
        mask[b, :n] = 1
    return wave, mask


def perturb(model, seed):
    """Non-trivial norms and biases (defaults are ones and zeros, which hide mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name or name.endswith("gru_rel_pos_const"):
                p.add_(0.2 * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.3 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))


def torchaudio_model(c, feat_proj_layer_norm=True):
    m = torchaudio.models.wav2vec2_model(
        extractor_mode=f"{c['feat_extract_norm']}_norm",
        extractor_conv_layer_config=list(zip(c["conv_dim"], c["conv_kernel"], c["conv_stride"])),
        extractor_conv_bias=c["conv_bias"],
        encoder_embed_dim=c["hidden_size"],
        encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=c["num_conv_pos_embeddings"],
        encoder_pos_conv_groups=c["num_conv_pos_embedding_groups"],
        encoder_num_layers=c["num_hidden_layers"],
        encoder_num_heads=c["num_attention_heads"],
        encoder_attention_dropout=0.0,
        encoder_ff_interm_features=c["intermediate_size"],
        encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0,
        encoder_layer_norm_first=c["do_stable_layer_norm"],
        encoder_layer_drop=0.0,
        aux_num_out=None,
    )
    if not feat_proj_layer_norm:  # HuBERT with feat_proj_layer_norm false: no LayerNorm, no weights
        m.encoder.feature_projection.layer_norm = torch.nn.Identity()
    return m.eval()


def torchaudio_hf_state(m):
    sd = {}
    for prefix, mod in (
        ("feature_extractor.", m.feature_extractor),
        ("feature_projection.", m.encoder.feature_projection),
        ("encoder.", m.encoder.transformer),
    ):
        for k, v in mod.state_dict().items():
            sd[prefix + k] = v
    return sd


@torch.no_grad()
def torchaudio_forward(m, wave, lengths):
    """Every hidden state as HF's hidden_states, and HF's extract_features."""
    feats, out_len = m.feature_extractor(wave, lengths)
    x, mask = m.encoder._preprocess(feats, out_len)
    t = m.encoder.transformer
    h = t._preprocess(x)
    states = [h]
    for layer in t.layers:
        h = layer(h, mask)
        states.append(h)
    if not t.layer_norm_first:  # stable layer norm: the final LayerNorm ends the last state
        states[-1] = t.layer_norm(h)
    return states, m.encoder.feature_projection.layer_norm(feats), out_len


@torch.no_grad()
def torchaudio_masked_forward(m, wave, lengths, time_mask, embed):
    """HF's _mask_hidden_states: masked frames of the projected states become masked_spec_embed."""
    feats, out_len = m.feature_extractor(wave, lengths)
    x = m.encoder.feature_projection(feats)
    x[time_mask] = embed
    pad = torch.arange(x.shape[1])[None, :] >= out_len[:, None]
    x[pad] = 0.0
    mask = -10000.0 * pad[:, None, None, :].float().expand(x.shape[0], 1, x.shape[1], x.shape[1])
    t = m.encoder.transformer
    h = t._preprocess(x)
    states = [h]
    for layer in t.layers:
        h = layer(h, mask)
        states.append(h)
    return states


@torch.no_grad()
def ref_forward(m, wave, mask):
    states, extract, fmask = m(wave, mask)
    return states, extract, fmask.sum(-1)


def save(name, config, state, run, note, prefix="", extra=None, weight_norm="legacy", more_ref=None):
    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    wave, mask = inputs()
    lengths = mask.sum(-1)
    states, extract, out_len = run(wave, mask, lengths)
    # the shorter row alone (no padding), to compare with its padded run
    alone_states, _, _ = run(wave[1:, : LENGTHS[1]], mask[1:, : LENGTHS[1]], lengths[1:])
    tensors = {}
    for k, v in state.items():
        if weight_norm == "parametrizations":
            k = k.replace(".weight_g", ".parametrizations.weight.original0").replace(
                ".weight_v", ".parametrizations.weight.original1"
            )
        tensors[prefix + k] = v.float() if v.is_floating_point() else v
    tensors.update(extra or {})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
        json.dump(
            {
                "feature_extractor_type": "Wav2Vec2FeatureExtractor",
                "feature_size": 1,
                "padding_side": "right",
                "padding_value": 0.0,
                "sampling_rate": 16000,
                "do_normalize": True,
                "return_attention_mask": config["feat_extract_norm"] == "layer",
            },
            f,
            indent=2,
        )
    write_safetensors(os.path.join(d, "model.safetensors"), tensors, {"format": "pt"})
    out = {"input_values": wave, "attention_mask": mask, "frame_lengths": out_len.long(), "extract_features": extract}
    for i, s in enumerate(states):
        out[f"hidden_states.{i}"] = s
    for i, s in enumerate(alone_states):
        out[f"alone.hidden_states.{i}"] = s
    out.update(more_ref or {})
    write_safetensors(os.path.join(d, "reference.safetensors"), out)
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(
            {
                "note": note,
                "torch": torch.__version__,
                "torchaudio": torchaudio.__version__,
                "lengths": LENGTHS,
                "num_hidden_states": len(states),
                "weight_norm": weight_norm,
                "prefix": prefix,
            },
            f,
            indent=2,
        )
    print(name, {k: tuple(v.shape) for k, v in out.items() if k.startswith("hidden_states.0") or k == "frame_lengths"})


def main():
    torch.manual_seed(0)

    # wav2vec2 base-style: group-norm feature encoder, post-LN, even positional kernel,
    # saved as a Wav2Vec2ForCTC checkpoint (prefix wav2vec2., an lm_head that is unused).
    c = {**BASE, "model_type": "wav2vec2", "architectures": ["Wav2Vec2ForCTC"]}
    m = torchaudio_model(c)
    perturb(m, 1)
    embed = torch.rand(16)
    head = {"lm_head.weight": torch.randn(32, 16), "lm_head.bias": torch.randn(32), "wav2vec2.masked_spec_embed": embed}
    wave, mask = inputs()
    time_mask = torch.zeros(2, 19, dtype=torch.bool)
    time_mask[0, 3:8] = True
    time_mask[1, 10:14] = True
    masked = torchaudio_masked_forward(m, wave, mask.sum(-1), time_mask, embed)
    masked_out = {"mask_time_indices": time_mask.long()}
    masked_out.update({f"masked.hidden_states.{i}": h for i, h in enumerate(masked)})
    save(
        "wav2vec2-tiny",
        c,
        torchaudio_hf_state(m),
        lambda w, a, l: torchaudio_forward(m, w, l),
        "torchaudio wav2vec2_model, group norm, post-LN",
        prefix="wav2vec2.",
        extra=head,
        more_ref=masked_out,
    )

    # wav2vec2 large-style: layer-norm feature encoder with conv bias, stable layer norm
    # (pre-LN), odd positional kernel; the newer weight-norm spelling.
    c = {
        **BASE,
        "model_type": "wav2vec2",
        "feat_extract_norm": "layer",
        "conv_bias": True,
        "do_stable_layer_norm": True,
        "num_conv_pos_embeddings": 5,
        "architectures": ["Wav2Vec2Model"],
    }
    m = torchaudio_model(c)
    perturb(m, 2)
    save(
        "wav2vec2-tiny-stable",
        c,
        torchaudio_hf_state(m),
        lambda w, a, l: torchaudio_forward(m, w, l),
        "torchaudio wav2vec2_model, layer norm, stable layer norm",
        weight_norm="parametrizations",
    )

    # HuBERT without the feature projection's LayerNorm (feat_proj_layer_norm false).
    c = {**BASE, "model_type": "hubert", "feat_proj_layer_norm": False, "architectures": ["HubertModel"]}
    m = torchaudio_model(c, feat_proj_layer_norm=False)
    perturb(m, 3)
    save(
        "hubert-tiny",
        c,
        torchaudio_hf_state(m),
        lambda w, a, l: torchaudio_forward(m, w, l),
        "torchaudio wav2vec2_model without the projection LayerNorm (HuBERT, feat_proj_layer_norm false)",
        prefix="hubert.",
        weight_norm="parametrizations",
    )

    # WavLM: gated relative position bias; few buckets and a short max distance so that
    # the log-spaced and the clipped buckets both occur over 19 frames.
    c = {**BASE, "model_type": "wavlm", "num_buckets": 16, "max_bucket_distance": 12, "architectures": ["WavLMModel"]}
    m = ref.WavLMModel(c).eval()
    perturb(m, 4)
    save("wavlm-tiny", c, m.state_dict(), lambda w, a, l: ref_forward(m, w, a), "tools/wavlm_conformer_ref.py WavLM")

    # WavLM large-style: layer-norm feature encoder, stable layer norm (the gate reads the normed input).
    c = {
        **c,
        "feat_extract_norm": "layer",
        "conv_bias": True,
        "do_stable_layer_norm": True,
        "num_conv_pos_embeddings": 5,
    }
    m = ref.WavLMModel(c).eval()
    perturb(m, 6)
    save(
        "wavlm-tiny-stable",
        c,
        m.state_dict(),
        lambda w, a, l: ref_forward(m, w, a),
        "tools/wavlm_conformer_ref.py WavLM, layer norm, stable layer norm",
        weight_norm="parametrizations",
    )

    # wav2vec2-conformer, relative and rotary positions.
    for kind in ("relative", "rotary"):
        c = {
            **BASE,
            "model_type": "wav2vec2-conformer",
            "hidden_act": "swish",
            "position_embeddings_type": kind,
            "rotary_embedding_base": 10000,
            "max_source_positions": 5000,
            "conv_depthwise_kernel_size": 5,
            "conformer_conv_dropout": 0.1,
            "architectures": ["Wav2Vec2ConformerModel"],
        }
        m = ref.ConformerModel(c).eval()
        perturb(m, 5)
        sd = {k: v for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
        sd["encoder.layers.0.conv_module.batch_norm.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)
        save(
            f"w2v2-conformer-{'rel' if kind == 'relative' else 'rotary'}",
            c,
            sd,
            lambda w, a, l, m=m: ref_forward(m, w, a),
            f"tools/wavlm_conformer_ref.py wav2vec2-conformer ({kind})",
        )


if __name__ == "__main__":
    main()
