/**
 * One encoder layer's valid frames over batches of inputs, for fitting k-means or
 * assigning codes: the encoder runs in eval form (dropout off, running BatchNorm
 * statistics) through one Predictor.
 */
import type { HostTensor, RuntimeOptions } from '../../graph/runtime.js';
import { ParameterStore } from '../../graph/params.js';
import { Predictor } from '../../graph/train.js';
import type { Encoder } from '../encoder.js';
import { type FrameMatrix, concatFrames, maskedFrames } from './kmeans.js';

export interface LayerFramesOptions {
  /** Index into the encoder's hidden states: 0 = its input embedding, numLayers = last; negative counts from the end. */
  layer: number;
  runtime?: RuntimeOptions;
  /** Called after each batch (progress). */
  onBatch?: (done: number) => void;
}

export async function encoderLayerFrames(
  enc: Encoder,
  batches: Iterable<Record<string, HostTensor>> | AsyncIterable<Record<string, HostTensor>>,
  opts: LayerFramesOptions,
): Promise<{ frames: FrameMatrix; lengths: number[] }> {
  const n = enc.numLayers + 1;
  const layer = opts.layer < 0 ? n + opts.layer : opts.layer;
  if (!Number.isInteger(layer) || layer < 0 || layer >= n)
    throw new Error(
      `${enc.source}: layer ${opts.layer} is out of range (${enc.modelType} has hidden states 0..${n - 1})`,
    );
  const params = new ParameterStore();
  for (const [k, v] of enc.weights ?? []) params.set(k, v);
  const p = await Predictor.create({
    inputs: enc.inputs,
    params,
    runtime: opts.runtime ?? { threads: 1 },
    build: (g, i) => {
      const out = enc.build(g, i, { training: false });
      return { hidden: out.hiddenStates[layer], mask: out.mask };
    },
  });
  const parts: FrameMatrix[] = [];
  const lengths: number[] = [];
  let done = 0;
  try {
    for await (const feeds of batches) {
      const out = await p.run(feeds);
      const r = maskedFrames(out.hidden, out.mask);
      parts.push(r.frames);
      lengths.push(...r.lengths);
      opts.onBatch?.(++done);
    }
  } finally {
    await p.release();
  }
  return { frames: concatFrames(parts), lengths };
}

/** Splits per-frame codes back into utterances (lengths as `encoderLayerFrames` returns them). */
export function splitCodes(codes: Int32Array, lengths: readonly number[]): Int32Array[] {
  const out: Int32Array[] = [];
  let off = 0;
  for (const l of lengths) {
    out.push(codes.slice(off, off + l));
    off += l;
  }
  if (off !== codes.length) throw new Error(`splitCodes: ${codes.length} codes for ${off} frames`);
  return out;
}
