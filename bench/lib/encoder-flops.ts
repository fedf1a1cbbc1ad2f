// Floating-point operations of the encoder benchmark's steps (multiply-add = 2), from
// the base configurations: matmuls, attention products and convolutions; elementwise
// work is left out. A training step counts the forward once and the backward twice
// (input and weight gradients) for every part that trains; a frozen feature encoder
// runs forward only. Estimates for "share of the matmul peak", not exact counts.

export interface TransformerSize {
  layers: number;
  hidden: number;
  ffn: number;
}

const BASE: TransformerSize = { layers: 12, hidden: 768, ffn: 3072 };

/** One forward of `tokens` tokens in sequences of `seq` through a post-LN transformer. */
function transformer(tokens: number, seq: number, s: TransformerSize = BASE): number {
  const dense = 2 * tokens * (4 * s.hidden * s.hidden + 2 * s.hidden * s.ffn);
  const attention = 2 * 2 * tokens * seq * s.hidden; // QK^T and PV over full (padded) sequences
  return s.layers * (dense + attention);
}

export function bertFlops(batch: number, seq: number): { forward: number; train: number } {
  const f = transformer(batch * seq, seq);
  return { forward: f, train: 3 * f };
}

/** wav2vec2-base: conv feature encoder, projection 512 -> 768, positional conv (k 128, 16 groups), 12 layers. */
export function w2v2Flops(
  batch: number,
  samples: number,
): { forward: number; frames: number; feature: number; rest: number } {
  const conv = [
    [512, 10, 5],
    [512, 3, 2],
    [512, 3, 2],
    [512, 3, 2],
    [512, 3, 2],
    [512, 2, 2],
    [512, 2, 2],
  ];
  let t = samples;
  let cin = 1;
  let feature = 0;
  for (const [cout, k, s] of conv) {
    t = Math.floor((t - k) / s) + 1;
    feature += 2 * batch * t * cout * cin * k;
    cin = cout;
  }
  const tokens = batch * t;
  const rest = 2 * tokens * 512 * 768 + 2 * tokens * 768 * (768 / 16) * 128 + transformer(tokens, t);
  return { forward: feature + rest, frames: t, feature, rest };
}

export function w2v2TrainFlops(batch: number, samples: number, frozenFeatures: boolean): number {
  const f = w2v2Flops(batch, samples);
  return (frozenFeatures ? f.feature : 3 * f.feature) + 3 * f.rest;
}
