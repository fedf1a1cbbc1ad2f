/**
 * Global input normalisation of log-mel features (`speech.logMel.normalize: global`): every
 * bin minus its mean, over its standard deviation, both over all frames of the fold's
 * TRAINING utterances (ESPnet's global_mvn, SpeechBrain's InputNormalization 'global').
 * Unlike per-utterance CMVN it keeps what tells emotions apart between utterances: loudness,
 * spectral tilt and dynamic range. The statistics are frozen parameters inside the model
 * (`speech_encoder.input_norm.mean|std`), so checkpoints, the exported ONNX graph and the
 * browser carry them without a second file, and the front end feeds raw log-mel features.
 */
import type { Graph, Tensor } from '../graph/graph.js';
import * as ops from '../graph/ops/index.js';
import type { HostTensor } from '../graph/runtime.js';
import type { Encoder } from '../models/encoder.js';
import { PARAM_PREFIXES } from '../models/lemer/model.js';
import type { SpeechInput } from './audio-cache.js';

export const INPUT_NORM_SCOPE = 'input_norm';
export const INPUT_NORM_PARAMS = {
  mean: `${PARAM_PREFIXES.speech}${INPUT_NORM_SCOPE}.mean`,
  std: `${PARAM_PREFIXES.speech}${INPUT_NORM_SCOPE}.std`,
} as const;

/** A log-mel encoder that first normalises its input with frozen per-bin statistics. */
export function withInputNorm(enc: Encoder): Encoder {
  const decl = enc.inputs.input_features;
  if (!decl)
    throw new Error(`${enc.source}: global input normalisation needs a log-mel encoder (input_features)`);
  const bins = decl.shape[2];
  if (typeof bins !== 'number')
    throw new Error(`${enc.source}: input_features needs a static number of bins`);
  return {
    ...enc,
    source: `${enc.source}, global log-mel normalisation`,
    build(g: Graph, inputs: Record<string, Tensor>, opts) {
      const [mean, std] = g.scope(INPUT_NORM_SCOPE, () => [
        g.param('mean', [bins], { init: { kind: 'zeros' }, trainable: false }),
        g.param('std', [bins], { init: { kind: 'ones' }, trainable: false }),
      ]);
      // Padded frames become -mean/std here; every encoder zeroes padded frames before mixing them in.
      const x = ops.div(ops.sub(inputs.input_features, mean), std);
      return enc.build(g, { ...inputs, input_features: x }, opts);
    },
  };
}

/**
 * Per-bin mean and standard deviation over every frame of the given utterances (float64
 * sums), with the standard deviation floored at `stdFloor` so that a silent bin is not blown up.
 */
export function inputNormStats(
  speech: readonly SpeechInput[],
  stdFloor = 1e-2,
): { mean: HostTensor; std: HostTensor } {
  if (speech.length === 0)
    throw new Error('global log-mel normalisation: no training utterances to take statistics from');
  const bins = speech[0].bins;
  const sum = new Float64Array(bins);
  const sq = new Float64Array(bins);
  let n = 0;
  for (const s of speech) {
    if (s.bins !== bins)
      throw new Error(`global log-mel normalisation: utterances with ${bins} and ${s.bins} bins`);
    for (let t = 0; t < s.frames; t++)
      for (let b = 0; b < bins; b++) {
        const v = s.data[t * bins + b];
        sum[b] += v;
        sq[b] += v * v;
      }
    n += s.frames;
  }
  if (n === 0) throw new Error('global log-mel normalisation: the training utterances have no frames');
  const mean = new Float32Array(bins);
  const std = new Float32Array(bins);
  for (let b = 0; b < bins; b++) {
    const m = sum[b] / n;
    mean[b] = m;
    std[b] = Math.max(stdFloor, Math.sqrt(Math.max(0, sq[b] / n - m * m)));
  }
  return {
    mean: { dtype: 'float32', shape: [bins], data: mean },
    std: { dtype: 'float32', shape: [bins], data: std },
  };
}
