// The encoder benchmark's inputs (bench/torch_encoders.py builds the same shapes and
// padding): BERT-base batch 16 x 150 tokens with padded tails and history / current
// token types; wav2vec2-base batch 4 x 5 s of 16 kHz audio, unpadded (base checkpoints
// take no attention mask in Hugging Face; here a mask of ones).
import type { HostTensor } from '../../src/graph/runtime.js';

export const BERT_SHAPE = { batch: 16, tokens: 150, vocab: 30522 };
export const W2V2_SHAPE = { batch: 4, samples: 80000 };

/** Tokens kept by sequence b (the engine bench's padding rule): S - (13 b) mod (S / 3). */
export const bertLength = (b: number, S = BERT_SHAPE.tokens): number => S - ((b * 13) % Math.floor(S / 3));

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
}

export function bertBatch(): Record<string, HostTensor> {
  const { batch: B, tokens: S, vocab } = BERT_SHAPE;
  const r = lcg(7);
  const ids = new BigInt64Array(B * S);
  const mask = new BigInt64Array(B * S);
  const types = new BigInt64Array(B * S);
  for (let b = 0; b < B; b++) {
    const n = bertLength(b);
    for (let t = 0; t < n; t++) {
      ids[b * S + t] = BigInt(t === 0 ? 101 : 1000 + Math.floor(r() * (vocab - 1000)));
      mask[b * S + t] = 1n;
      // History first (type 0), the current utterance last (type 1).
      types[b * S + t] = t >= Math.floor(0.6 * n) ? 1n : 0n;
    }
  }
  const shape = [B, S];
  return {
    input_ids: { dtype: 'int64', shape, data: ids },
    attention_mask: { dtype: 'int64', shape, data: mask },
    token_type_ids: { dtype: 'int64', shape, data: types },
  };
}

export function w2v2Batch(): Record<string, HostTensor> {
  const { batch: B, samples: N } = W2V2_SHAPE;
  const r = lcg(11);
  const wave = new Float32Array(B * N);
  for (let i = 0; i < wave.length; i += 2) {
    const u = r();
    const v = r();
    const m = 0.1 * Math.sqrt(-2 * Math.log(u));
    wave[i] = m * Math.cos(2 * Math.PI * v);
    if (i + 1 < wave.length) wave[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return {
    input_values: { dtype: 'float32', shape: [B, N], data: wave },
    attention_mask: { dtype: 'int64', shape: [B, N], data: new BigInt64Array(B * N).fill(1n) },
  };
}
