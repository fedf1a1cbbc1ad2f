// Tiny in-place encoders and batches for the LE-MER tests (any Encoder implementation will do).
import type { Graph, Tensor } from '../../../src/graph/graph.js';
import * as ops from '../../../src/graph/ops/index.js';
import { embedding, linear } from '../../../src/graph/layers/linear.js';
import type { HostTensor } from '../../../src/graph/runtime.js';
import type { Encoder } from '../../../src/models/encoder.js';
import type { DType } from '../../../src/graph/dtype.js';

/** Word embedding + one tanh linear layer; names as BERT's embeddings table. */
export function tinyTextEncoder(vocab = 20, hidden = 6): Encoder {
  return {
    modality: 'text',
    modelType: 'tiny-text',
    hiddenSize: hidden,
    numLayers: 1,
    inputs: {
      input_ids: { dtype: 'int64', shape: ['batch', 'tokens'] },
      attention_mask: { dtype: 'int64', shape: ['batch', 'tokens'] },
    },
    build(g: Graph, i: Record<string, Tensor>) {
      const e = g.scope('embeddings', () =>
        embedding(i.input_ids, 'word_embeddings', vocab, hidden, { kind: 'normal', std: 1 }),
      );
      const h = ops.tanh(linear(e, 'encoder.dense', hidden, { init: { kind: 'normal', std: 0.5 } }));
      return { hidden: h, hiddenStates: [e, h], mask: i.attention_mask };
    },
    weights: null,
    config: { vocab, hidden },
    source: 'test: tiny text encoder',
  };
}

/** A linear layer over log-mel-like frames, then a stride-2 frame pick (so the output mask differs from the input's). */
export function tinySpeechEncoder(bins = 4, hidden = 5, stride = 1): Encoder {
  return {
    modality: 'speech',
    modelType: 'tiny-speech',
    hiddenSize: hidden,
    numLayers: 1,
    inputs: {
      input_features: { dtype: 'float32', shape: ['batch', 'frames', bins] },
      attention_mask: { dtype: 'int64', shape: ['batch', 'frames'] },
    },
    build(g: Graph, i: Record<string, Tensor>) {
      let x = i.input_features;
      let mask = i.attention_mask;
      if (x.dtype !== g.floatType) x = ops.cast(x, g.floatType);
      if (stride > 1) {
        x = ops.slice(x, [0], [2 ** 31 - 1], [1], [stride]).withShape(['batch', 'sub', bins]);
        mask = ops.slice(mask, [0], [2 ** 31 - 1], [1], [stride]).withShape(['batch', 'sub']);
      }
      const p = linear(x, 'proj', hidden, { init: { kind: 'normal', std: 0.5 } });
      const h = ops.tanh(linear(p, 'encoder.dense', hidden, { init: { kind: 'normal', std: 0.5 } }));
      return { hidden: h, hiddenStates: [p, h], mask };
    },
    weights: null,
    config: { bins, hidden, stride },
    source: 'test: tiny speech encoder',
  };
}

export const i64 = (data: ArrayLike<number>, shape: number[]): HostTensor => ({
  dtype: 'int64',
  shape,
  data: BigInt64Array.from(Array.from(data), (v) => BigInt(v)),
});
export const fl = (data: ArrayLike<number>, shape: number[], dtype: DType = 'float32'): HostTensor => ({
  dtype,
  shape,
  data: dtype === 'float64' ? Float64Array.from(data) : Float32Array.from(data),
});

/** Seeded uniform numbers in [-1, 1). */
export function uniform(n: number, seed: number): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  });
}

/**
 * A batch of 3: text lengths 4, 2, 3 of 4; frames 6, 3, 5 of 6. `pad` fills padded token
 * ids and padded frames (to show they change nothing).
 */
export function tinyBatch(
  opts: { padId?: number; padValue?: number; vocab?: number; bins?: number; dtype?: DType } = {},
): Record<string, HostTensor> {
  const vocab = opts.vocab ?? 20;
  const bins = opts.bins ?? 4;
  const [B, T, F] = [3, 4, 6];
  const tl = [4, 2, 3];
  const fLen = [6, 3, 5];
  const ids: number[] = [];
  const am: number[] = [];
  const lm: number[] = [];
  const u = uniform(B * T, 3);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      const real = t < tl[b];
      ids.push(real ? 1 + Math.floor(((u[b * T + t] + 1) / 2) * (vocab - 1)) : (opts.padId ?? 0));
      am.push(real ? 1 : 0);
      lm.push(real && t >= 1 ? 1 : 0); // the "current utterance": every real token but the first
    }
  const feats = uniform(B * F * bins, 5);
  const fm: number[] = [];
  for (let b = 0; b < B; b++)
    for (let f = 0; f < F; f++) {
      const real = f < fLen[b];
      fm.push(real ? 1 : 0);
      if (!real) for (let k = 0; k < bins; k++) feats[(b * F + f) * bins + k] = opts.padValue ?? 0;
    }
  return {
    'text.input_ids': i64(ids, [B, T]),
    'text.attention_mask': i64(am, [B, T]),
    'text.label_mask': i64(lm, [B, T]),
    'speech.input_features': fl(feats, [B, F, bins], opts.dtype ?? 'float32'),
    'speech.attention_mask': i64(fm, [B, F]),
    labels: i64([0, 2, 1], [B]),
  };
}

/** The feeds a model declares, from a fuller batch. */
export function feedsFor(
  decls: Record<string, unknown>,
  batch: Record<string, HostTensor>,
): Record<string, HostTensor> {
  return Object.fromEntries(Object.keys(decls).map((k) => [k, batch[k]]));
}
