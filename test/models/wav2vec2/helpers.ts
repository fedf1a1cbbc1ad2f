// Shared by the wav2vec2-family tests: load a committed fixture folder, run an encoder.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '../../../src/graph/safetensors.js';
import { ParameterStore } from '../../../src/graph/params.js';
import { Predictor } from '../../../src/graph/train.js';
import type { HostTensor } from '../../../src/graph/runtime.js';
import {
  type Wav2Vec2BuildOptions,
  wav2vec2EncoderFromCheckpoint,
} from '../../../src/models/wav2vec2/index.js';
import type { Encoder } from '../../../src/models/encoder.js';

export const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'models');

export interface Fixture {
  dir: string;
  config: Record<string, unknown>;
  tensors: Map<string, HostTensor>;
  ref: Map<string, HostTensor>;
  meta: { lengths: number[]; num_hidden_states: number; weight_norm: string };
}

export function loadFixture(name: string): Fixture {
  const dir = join(FIXTURES, name);
  return {
    dir,
    config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>,
    tensors: readSafetensors(join(dir, 'model.safetensors')).tensors,
    ref: readSafetensors(join(dir, 'reference.safetensors')).tensors,
    meta: JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as Fixture['meta'],
  };
}

/** The fixture's encoder with its checkpoint mapped onto the graph's names. */
export function fixtureEncoder(
  fx: Fixture,
  opts: Wav2Vec2BuildOptions = {},
  tensors: Map<string, HostTensor> = fx.tensors,
): Encoder {
  return wav2vec2EncoderFromCheckpoint(fx.config, tensors, fx.dir, opts);
}

/** Runs the encoder (eval) on the feeds; outputs hidden_states.i, extract_features, mask. */
export async function runEncoder(
  enc: Encoder,
  feeds: Record<string, HostTensor>,
  training = false,
): Promise<Record<string, HostTensor>> {
  const params = new ParameterStore();
  for (const [k, v] of enc.weights ?? []) params.set(k, v);
  const p = await Predictor.create({
    inputs: enc.inputs,
    params,
    runtime: { threads: 1 },
    build: (g, i) => {
      const out = enc.build(g, i, { training });
      const o: Record<string, typeof out.hidden> = { mask: out.mask, extract_features: out.extractFeatures! };
      out.hiddenStates.forEach((h, k) => (o[`hidden_states.${k}`] = h));
      return o;
    },
  });
  if (enc.weights) assert.deepEqual(p.initialised, [], 'every parameter comes from the checkpoint');
  const out = await p.run(feeds);
  await p.release();
  return out;
}

/** Largest |a - b| over every element; shapes must agree. */
export function maxAbsDiff(a: HostTensor, b: HostTensor, what: string): number {
  assert.deepEqual([...a.shape], [...b.shape], `${what}: shape`);
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(Number(a.data[i]) - Number(b.data[i])));
  return m;
}

/** Rows [0, n) of batch row b of x [B, T, D], as a [1, n, D] tensor. */
export function rowPrefix(x: HostTensor, b: number, n: number): HostTensor {
  const [, T, D] = x.shape;
  const data = (x.data as Float32Array).slice(b * T * D, b * T * D + n * D);
  return { dtype: x.dtype, shape: [1, n, D], data };
}
