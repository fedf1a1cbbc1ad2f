#!/usr/bin/python3
"""The classical EmoDB speech baseline of ../shared/baselines/speech_fbank_logreg.py (same
features: 80-bin Kaldi fbank + deltas, mean / std / max / min; standardised; class-balanced
logistic regression, C = 0.1), per fold, so that a lemer run on some folds can be read
beside the baseline on the same folds.
    /usr/bin/python3 experiments/emodb_baseline_folds.py ../shared/data/emodb [fold ...]
Prints one JSON object: per-fold WA / UA and their mean over the folds given (default all)."""
import glob
import json
import os
import sys

import numpy as np
import torch
import torchaudio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

src, only = sys.argv[1], set(sys.argv[2:])
m = {"W": "ang", "F": "hap", "T": "sad", "N": "neu"}
items = [(p, m[os.path.basename(p)[5]], os.path.basename(p)[:2])
         for p in sorted(glob.glob(os.path.join(src, "wav", "*.wav"))) if os.path.basename(p)[5] in m]


def feats(path):
    w, sr = torchaudio.load(path)
    w = w.mean(0, keepdim=True)
    if sr != 16000:
        w = torchaudio.functional.resample(w, sr, 16000)
    f = torchaudio.compliance.kaldi.fbank(w * 32768, num_mel_bins=80, frame_length=25, frame_shift=10,
                                          dither=0.0, sample_frequency=16000)
    d = torchaudio.functional.compute_deltas(f.T.unsqueeze(0)).squeeze(0).T
    return torch.cat([f.mean(0), f.std(0), d.mean(0), d.std(0), f.max(0).values, f.min(0).values]).numpy()


torch.set_num_threads(2)
X = np.stack([feats(p) for p, _, _ in items])
y = np.array([l for _, l, _ in items])
g = np.array([s for _, _, s in items])
folds = {}
for s in sorted(set(g)):
    if only and s not in only:
        continue
    tr, te = g != s, g == s
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=5000))
    clf.fit(X[tr], y[tr])
    p = clf.predict(X[te])
    t = y[te]
    ua = np.mean([(p[t == c] == c).mean() for c in sorted(set(t))]) * 100
    folds[s] = {"wa": round(float((p == t).mean() * 100), 2), "ua": round(float(ua), 2), "n": int(te.sum())}
print(json.dumps({"model": "fbank stats + logreg (C 0.1, balanced)", "folds": folds,
                  "mean_wa": round(float(np.mean([f["wa"] for f in folds.values()])), 2),
                  "mean_ua": round(float(np.mean([f["ua"] for f in folds.values()])), 2)}))
