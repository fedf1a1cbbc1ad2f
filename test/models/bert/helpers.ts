// Shared by the BERT / RoBERTa / loader tests: committed fixture folders, running an encoder.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readSafetensors } from '../../../src/graph/safetensors.js';
import { ParameterStore } from '../../../src/graph/params.js';
import { Predictor } from '../../../src/graph/train.js';
import type { HostTensor } from '../../../src/graph/runtime.js';
import type { Tensor } from '../../../src/graph/graph.js';
import type { Encoder } from '../../../src/models/encoder.js';

export const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'models');

export function fixtureDir(name: string): string {
  return join(FIXTURES, name);
}

/** reference.safetensors of a fixture folder: inputs, hidden_states.i, projection, grad.<param>. */
export function reference(name: string): Map<string, HostTensor> {
  return readSafetensors(join(FIXTURES, name, 'reference.safetensors')).tensors;
}

/** The encoder's text feeds from a reference (token_type_ids only when the encoder takes them). */
export function textFeeds(enc: Encoder, ref: Map<string, HostTensor>): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const k of Object.keys(enc.inputs)) feeds[k] = ref.get(k)!;
  return feeds;
}

/** Runs the encoder (eval) and returns hidden_states.i and mask. */
export async function runEncoder(
  enc: Encoder,
  feeds: Record<string, HostTensor>,
): Promise<Record<string, HostTensor>> {
  const params = new ParameterStore();
  for (const [k, v] of enc.weights ?? []) params.set(k, v);
  const p = await Predictor.create({
    inputs: enc.inputs,
    params,
    runtime: { threads: 1 },
    build: (g, i) => {
      const out = enc.build(g, i, { training: false });
      const o: Record<string, Tensor> = { mask: out.mask };
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

/** Row b of an int64 [B, T] tensor cut to its first n entries, as [1, n]. */
export function rowOf(t: HostTensor, b: number, n: number): HostTensor {
  const T = t.shape[1];
  return { dtype: t.dtype, shape: [1, n], data: (t.data as BigInt64Array).slice(b * T, b * T + n) };
}

/** Positions [0, n) of batch row b of x [B, T, D], as [1, n, D]. */
export function rowPrefix(x: HostTensor, b: number, n: number): HostTensor {
  const [, T, D] = x.shape;
  return {
    dtype: x.dtype,
    shape: [1, n, D],
    data: (x.data as Float32Array).slice(b * T * D, b * T * D + n * D),
  };
}
