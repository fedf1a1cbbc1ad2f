#!/usr/bin/env python3
"""Reference values for test/audio/resample.test.ts from torchaudio.functional.resample.

Run (never by the tests; they read the committed JSON):
  OMP_NUM_THREADS=2 /usr/bin/python3 tools/resample_reference.py > test/audio/fixtures/torchaudio-resample.json

Written with Debian's python3-torchaudio 0.13.1 (PyTorch 1.13). Signals are the LCG noise of
test/audio/helpers.ts (lcgNoise), reproduced here bit for bit, and pure tones, in float32
as audio files give them. Three parts:
  samples:  resample() output of 50 ms of noise, per rate pair (exact comparison);
  response: gain in dB of a 1 s tone at each frequency after resampling to 16 kHz;
  logmel:   per-bin mean of kaldi.fbank (80 bins, 25/10 ms, dither 0) over 1 s of noise
            resampled to 16 kHz, the figure that showed the top-band loss (bins 77-79).
"""
import json
import math
import sys

import torch
import torchaudio
import torchaudio.functional as F
from torchaudio.compliance import kaldi


def lcg_noise(n, amp=1.0, seed=12345):
    s = seed & 0xFFFFFFFF
    out = []
    for _ in range(n):
        s = (1664525 * s + 1013904223) % 2**32
        out.append(amp * ((s / 2**32) * 2 - 1))
    return torch.tensor(out, dtype=torch.float32)


def gain_db(rate, freq, amp=0.5):
    n = rate  # 1 s
    t = torch.arange(n, dtype=torch.float64) / rate
    x = (amp * torch.sin(2 * math.pi * freq * t)).to(torch.float32)
    y = F.resample(x, rate, 16000).to(torch.float64)
    # Project the middle 0.5 s onto sin and cos at freq (edges see the zero padding).
    tt = torch.arange(len(y), dtype=torch.float64) / 16000
    a, b = 4000, len(y) - 4000
    s = (y[a:b] * torch.sin(2 * math.pi * freq * tt[a:b])).mean() * 2
    c = (y[a:b] * torch.cos(2 * math.pi * freq * tt[a:b])).mean() * 2
    return 20 * math.log10(math.hypot(s, c) / amp)


PAIRS = [(48000, 16000), (22050, 16000), (44100, 16000), (8000, 16000), (16000, 22050)]
FREQS = [100, 1000, 2000, 3000, 4000, 5000, 6000, 6500, 7000, 7250, 7500, 7750, 7900]

out = {
    "torchaudio": torchaudio.__version__,
    "torch": torch.__version__,
    "method": "sinc_interpolation (Hann), lowpass_filter_width 6, rolloff 0.99",
    "samples": [],
    "response": [],
    "logmel": [],
}
for k, (a, b) in enumerate(PAIRS):
    n = a // 20 + k  # 50 ms plus a few samples, so that ceil(n * b / a) is exercised
    seed = 100 + k
    y = F.resample(lcg_noise(n, 0.5, seed), a, b)
    out["samples"].append(
        {"from": a, "to": b, "n": n, "amp": 0.5, "seed": seed, "y": [float(f"{v:.8g}") for v in y.tolist()]}
    )
for rate in (48000, 22050, 44100):
    out["response"].append({"from": rate, "to": 16000, "freqs": FREQS, "db": [round(gain_db(rate, f), 4) for f in FREQS]})
for rate in (48000, 22050):
    x = lcg_noise(rate, 0.5, 7)
    y = F.resample(x, rate, 16000)
    fb = kaldi.fbank(y[None], num_mel_bins=80, frame_length=25.0, frame_shift=10.0, dither=0.0, sample_frequency=16000)
    out["logmel"].append(
        {"from": rate, "to": 16000, "n": rate, "amp": 0.5, "seed": 7, "binMean": [round(v, 5) for v in fb.mean(0).tolist()]}
    )
json.dump(out, sys.stdout, separators=(",", ":"))
sys.stdout.write("\n")
