"""Writes test/fixtures/whisper-tiny/: a tiny Whisper with random weights in the folder layout
transformers.js (@huggingface/transformers) loads for automatic speech recognition, so that
`lemer predict --asr <folder>` can be tested on the real library path without real weights.

    /usr/bin/python3 tools/make_whisper_fixture.py [out_dir]

The model follows Whisper's shapes (80 log-mel bins x 3000 frames in, two convolutions with
stride 2 -> 1500 encoder frames, pre-LN transformer layers, learned decoder positions) at a
toy size (d_model 16, one layer each). Its vocabulary is a byte-level BPE over the 256 GPT-2
byte symbols plus a few merges, then Whisper's special tokens; a fixed bias on the logits
keeps generation on word tokens, so the (random) transcript is never empty.

Files (as Hugging Face's exporter names them; transformers.js reads the same names):
- onnx/encoder_model.onnx: input_features [batch, 80, 3000] -> last_hidden_state
- onnx/decoder_model_merged.onnx: input_ids, encoder_hidden_states and the decoder's
  self-attention cache past_key_values.0.decoder.{key,value} -> logits and
  present.0.decoder.{key,value}. transformers.js feeds an empty cache on the first step
  (a zero-length past) and picks the inputs the session declares, so no `use_cache_branch`
  If node is needed; the cross-attention keys are recomputed from encoder_hidden_states.
- config.json, generation_config.json, preprocessor_config.json, tokenizer.json,
  tokenizer_config.json.
Deterministic: seed 0. Needs torch (1.13 here) and nothing else.
"""
import json
import math
import os
import sys

import torch
from torch import nn

D, HEADS, FFN, MELS, FRAMES = 16, 2, 32, 80, 3000
ENC_POS, DEC_POS = 1500, 64
MAX_LENGTH = 12  # generated tokens, prompt included: keeps the test fast


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map (byte-level BPE's alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def tokenizer_json():
    alphabet = sorted(set(bytes_to_unicode().values()))
    vocab = {c: i for i, c in enumerate(alphabet)}
    # A few merges, so that generated ids also decode to multi-letter pieces.
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("i", "n"), ("Ġ", "s"), ("e", "r"), ("o", "n")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>", "<|notimestamps|>"]
    added = []
    for s in specials:
        vocab[s] = len(vocab)
        added.append({"id": vocab[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True})
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }
    return tok, vocab, len(alphabet) + len(merges)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))

    def split(self, x):
        b, s, _ = x.shape
        return x.view(b, s, HEADS, D // HEADS).transpose(1, 2)

    def forward(self, x, kv=None, past=None, causal=False):
        q = self.split(self.q(x)) / math.sqrt(D // HEADS)
        src = x if kv is None else kv
        k, v = self.split(self.k(src)), self.split(self.v(src))
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        a = q @ k.transpose(-1, -2)
        if causal:
            s, t = x.shape[1], k.shape[2]
            i = torch.arange(s).unsqueeze(1) + (t - s)
            j = torch.arange(t).unsqueeze(0)
            a = a.masked_fill(j > i, -1e9)
        c = (torch.softmax(a, -1) @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], D)
        return self.o(c), (k, v)


class Block(nn.Module):
    def __init__(self, cross):
        super().__init__()
        self.ln1, self.att = nn.LayerNorm(D), Attention()
        self.cross = cross
        if cross:
            self.ln2, self.xatt = nn.LayerNorm(D), Attention()
        self.ln3, self.ff1, self.ff2 = nn.LayerNorm(D), nn.Linear(D, FFN), nn.Linear(FFN, D)

    def forward(self, x, enc=None, past=None):
        h, present = self.att(self.ln1(x), past=past, causal=self.cross)
        x = x + h
        if self.cross:
            x = x + self.xatt(self.ln2(x), kv=enc)[0]
        return x + self.ff2(nn.functional.gelu(self.ff1(self.ln3(x)))), present


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(MELS, D, 3, padding=1)
        self.conv2 = nn.Conv1d(D, D, 3, stride=2, padding=1)
        self.pos = nn.Parameter(torch.randn(ENC_POS, D) * 0.02)
        self.block, self.ln = Block(cross=False), nn.LayerNorm(D)

    def forward(self, input_features):
        x = nn.functional.gelu(self.conv2(nn.functional.gelu(self.conv1(input_features)))).transpose(1, 2)
        return self.ln(self.block(x + self.pos)[0])


class Decoder(nn.Module):
    def __init__(self, vocab, bias):
        super().__init__()
        self.embed = nn.Embedding(vocab, D)
        self.pos = nn.Embedding(DEC_POS, D)
        self.block, self.ln = Block(cross=True), nn.LayerNorm(D)
        self.register_buffer("logit_bias", bias)

    def forward(self, input_ids, encoder_hidden_states, past_key, past_value):
        start = past_key.shape[2]
        pos = torch.arange(input_ids.shape[1]) + start
        x = self.embed(input_ids) + self.pos(pos).unsqueeze(0)
        x, (k, v) = self.block(x, enc=encoder_hidden_states, past=(past_key, past_value))
        # Tied output projection, as Whisper's, plus the bias that keeps generation on word tokens.
        logits = self.ln(x) @ self.embed.weight.t() + self.logit_bias
        return logits, k, v


def main(out):
    torch.manual_seed(0)
    tok, vocab, words = tokenizer_json()
    V = len(vocab)
    bias = torch.zeros(V)
    bias[words:] = -1e4  # special tokens (end of text included) are never generated
    # Letters and the "Ġ" word starts are favoured, so that the random text reads as words.
    letters = [vocab[c] for c in "abcdefghijklmnopqrstuvwxyz"] + [vocab["Ġ"]] + list(range(words - 8, words))
    bias[letters] += 6.0
    enc, dec = Encoder().eval(), Decoder(V, bias).eval()
    os.makedirs(os.path.join(out, "onnx"), exist_ok=True)
    feats = torch.randn(1, MELS, FRAMES)
    with torch.no_grad():
        torch.onnx.export(
            enc,
            (feats,),
            os.path.join(out, "onnx", "encoder_model.onnx"),
            input_names=["input_features"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_features": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"}},
            opset_version=14,
        )
        hs = enc(feats)
        pk = torch.zeros(1, HEADS, 2, D // HEADS)
        torch.onnx.export(
            dec,
            (torch.tensor([[vocab["<|startoftranscript|>"], vocab["<|notimestamps|>"]]]), hs, pk, pk.clone()),
            os.path.join(out, "onnx", "decoder_model_merged.onnx"),
            input_names=["input_ids", "encoder_hidden_states", "past_key_values.0.decoder.key", "past_key_values.0.decoder.value"],
            output_names=["logits", "present.0.decoder.key", "present.0.decoder.value"],
            dynamic_axes={
                "input_ids": {0: "batch_size", 1: "decoder_sequence_length"},
                "encoder_hidden_states": {0: "batch_size", 1: "encoder_sequence_length"},
                "past_key_values.0.decoder.key": {0: "batch_size", 2: "past_decoder_sequence_length"},
                "past_key_values.0.decoder.value": {0: "batch_size", 2: "past_decoder_sequence_length"},
                "logits": {0: "batch_size", 1: "decoder_sequence_length"},
                "present.0.decoder.key": {0: "batch_size", 2: "past_decoder_sequence_length + 1"},
                "present.0.decoder.value": {0: "batch_size", 2: "past_decoder_sequence_length + 1"},
            },
            opset_version=14,
        )
    eot, sot, notimestamps = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"], vocab["<|notimestamps|>"]
    config = {
        "_name_or_path": "lemer-test/whisper-tiny-random",
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "vocab_size": V,
        "num_mel_bins": MELS,
        "d_model": D,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "encoder_attention_heads": HEADS,
        "decoder_attention_heads": HEADS,
        "encoder_ffn_dim": FFN,
        "decoder_ffn_dim": FFN,
        "max_source_positions": ENC_POS,
        "max_target_positions": DEC_POS,
        "pad_token_id": eot,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "decoder_start_token_id": sot,
        "is_encoder_decoder": True,
        "use_cache": True,
        "note": "random weights, made by tools/make_whisper_fixture.py for lemer's tests; transcribes nothing real",
    }
    generation = {
        "decoder_start_token_id": sot,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "no_timestamps_token_id": notimestamps,
        "is_multilingual": False,
        "max_length": MAX_LENGTH,
        "begin_suppress_tokens": [eot],
        "suppress_tokens": [],
    }
    preprocessor = {
        "feature_extractor_type": "WhisperFeatureExtractor",
        "processor_class": "WhisperProcessor",
        "feature_size": MELS,
        "sampling_rate": 16000,
        "hop_length": 160,
        "n_fft": 400,
        "chunk_length": 30,
        "n_samples": 480000,
        "nb_max_frames": FRAMES,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": False,
    }
    tok_config = {
        "tokenizer_class": "WhisperTokenizer",
        "model_max_length": 1024,
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "add_prefix_space": False,
        "errors": "replace",
    }
    for name, obj in [
        ("config.json", config),
        ("generation_config.json", generation),
        ("preprocessor_config.json", preprocessor),
        ("tokenizer.json", tok),
        ("tokenizer_config.json", tok_config),
    ]:
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=1)
            f.write("\n")
    print(json.dumps({"out": out, "vocab": V, "files": sorted(os.listdir(out)) + ["onnx/" + n for n in sorted(os.listdir(os.path.join(out, "onnx")))]}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "whisper-tiny"))
