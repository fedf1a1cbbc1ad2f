#!/usr/bin/env python3
"""Reference values for test/audio/logmel.test.ts from torchaudio.compliance.kaldi.fbank with
128 mel bins at 16 kHz and 25 ms frames, where one filter covers no FFT bin and stays at
the log floor (AST-style front ends use this setting).

Run (never by the tests; they read the committed JSON):
  OMP_NUM_THREADS=2 /usr/bin/python3 tools/fbank_reference.py > test/audio/fixtures/torchaudio-fbank128.json

Written with Debian's python3-torchaudio 0.13.1 (PyTorch 1.13). The signal is lcgNoise of
test/audio/helpers.ts (0.2 s, amplitude 0.3, seed 11), reproduced here bit for bit, run in
float64.
"""
import json
import sys

import torch
import torchaudio
from torchaudio.compliance import kaldi


def lcg_noise(n, amp=1.0, seed=12345):
    s = seed & 0xFFFFFFFF
    out = []
    for _ in range(n):
        s = (1664525 * s + 1013904223) % 2**32
        out.append(amp * ((s / 2**32) * 2 - 1))
    return torch.tensor(out, dtype=torch.float32)


x = lcg_noise(3200, 0.3, 11).to(torch.float64)
fb = kaldi.fbank(x[None], num_mel_bins=128, frame_length=25.0, frame_shift=10.0, dither=0.0, sample_frequency=16000)
banks, _ = kaldi.get_mel_banks(128, 512, 16000.0, 20.0, 0.0, 100.0, -500.0, 1.0)
empty = [b for b in range(128) if float(banks[b].abs().sum()) == 0.0]
out = {
    "torchaudio": torchaudio.__version__,
    "options": {"numBins": 128, "frameLengthMs": 25, "frameShiftMs": 10, "sampleRate": 16000, "dither": 0},
    "signal": {"n": 3200, "amp": 0.3, "seed": 11},
    "emptyBins": empty,
    "frames": fb.shape[0],
    "bins": fb.shape[1],
    "data": [round(v, 6) for v in fb.flatten().tolist()],
}
json.dump(out, sys.stdout, separators=(",", ":"))
sys.stdout.write("\n")
