/**
 * Batches for self-supervised pretraining: padded log-mel features (or waveforms) with
 * their frame masks, plus the host-drawn span masks and negatives over the encoder's
 * frames (HF's data collator does the same in numpy). Each batch draws its own masks
 * from a seed derived from the run's seed and the step.
 */
import type { HostTensor } from '../graph/runtime.js';
import type { Features } from '../audio/logmel.js';
import { computeSpanMask, sampleNegatives } from '../graph/layers/ssl.js';

export interface MaskingOptions {
  maskProb: number;
  spanLength: number;
  minMasks: number;
  numNegatives: number;
}

/** mask_time_indices [B, T] and sampled_negative_indices [B, T, K] over encoder frames. */
export function sslTargets(
  lengths: readonly number[],
  T: number,
  m: MaskingOptions,
  seed: number,
): Record<string, HostTensor> {
  const B = lengths.length;
  // A batch shorter than one span: spans as long as the batch (else nothing could be masked).
  const span = Math.max(1, Math.min(m.spanLength, T));
  const mask = computeSpanMask(lengths, T, {
    maskProb: m.maskProb,
    spanLength: span,
    minMasks: m.minMasks,
    seed,
  });
  const neg = sampleNegatives(lengths, T, m.numNegatives, seed + 1);
  return {
    mask_time_indices: { dtype: 'int64', shape: [B, T], data: BigInt64Array.from(mask, (v) => BigInt(v)) },
    sampled_negative_indices: { dtype: 'int64', shape: [B, T, m.numNegatives], data: neg },
  };
}

/** input_features [B, F, bins] (zero padded) and attention_mask [B, F]. */
export function padFeatures(feats: readonly Features[]): Record<string, HostTensor> {
  const B = feats.length;
  const bins = feats[0].bins;
  const F = Math.max(...feats.map((f) => f.frames));
  const data = new Float32Array(B * F * bins);
  const mask = new BigInt64Array(B * F);
  feats.forEach((f, b) => {
    if (f.bins !== bins) throw new Error(`padFeatures: ${f.bins} bins after ${bins}`);
    data.set(f.data.subarray(0, f.frames * bins), b * F * bins);
    mask.fill(1n, b * F, b * F + f.frames);
  });
  return {
    input_features: { dtype: 'float32', shape: [B, F, bins], data },
    attention_mask: { dtype: 'int64', shape: [B, F], data: mask },
  };
}
