// Shared by the engine's tests: build a float64 graph from named inputs, run it once.
import { Graph, type Tensor } from '../../src/graph/graph.js';
import assert from 'node:assert/strict';
import type { TensorStore } from '../../src/graph/params.js';
import type { TrainerOptions } from '../../src/graph/train.js';
import { toyTransformerLoss, toyTransformerTrainInputs } from '../../src/models/toy/transformer.js';
import { CompiledGraph, type HostTensor } from '../../src/graph/runtime.js';

export const f64 = (data: ArrayLike<number>, shape: number[]): HostTensor => ({
  dtype: 'float64',
  shape,
  data: Float64Array.from(data),
});

/** Declares one graph input per feed, builds the outputs, runs once, returns them as float64 arrays. */
export async function runGraph(
  inputs: Record<string, HostTensor>,
  build: (g: Graph, t: Record<string, Tensor>) => Record<string, Tensor>,
): Promise<Record<string, Float64Array>> {
  const g = new Graph({ floatType: 'float64' });
  const t: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(inputs)) t[k] = g.input(k, v.dtype, [...v.shape]);
  for (const [k, v] of Object.entries(build(g, t))) g.output(k, v);
  const cg = await CompiledGraph.create(g);
  const out = await cg.run(inputs);
  await cg.release();
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float64Array]));
}

/** A tensor's raw bytes (for bitwise comparisons). */
export const bytes = (t: HostTensor): Uint8Array =>
  new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/** Asserts two stores hold the same names with bit-identical contents. */
export function sameBits(a: TensorStore, b: TensorStore, what: string): void {
  assert.deepEqual(a.names().sort(), b.names().sort(), what);
  for (const n of a.names()) assert.deepEqual(bytes(a.get(n)), bytes(b.get(n)), `${what}: '${n}' differs`);
}

/**
 * The toy transformer (1 layer, dropout off) with AdamW, a head group, warm-up + cosine
 * decay over `totalSteps` and clipping at `maxGradNorm`: the training setup of the
 * checkpoint and Loop tests.
 */
export function toyTrainerOptions(
  opts: { totalSteps: number; maxGradNorm: number },
  over: Partial<TrainerOptions> = {},
): TrainerOptions {
  return {
    inputs: toyTransformerTrainInputs(),
    build: (g, i) => toyTransformerLoss(g, i, { numLayers: 1 }),
    optimizer: {
      kind: 'adamw',
      lr: 3e-3,
      groups: [{ name: 'head', match: /^classifier\./, lr: 1e-2 }],
      schedule: { warmupSteps: 2, decay: 'cosine', totalSteps: opts.totalSteps },
      maxGradNorm: opts.maxGradNorm,
    },
    seed: 4,
    runtime: { threads: 1 },
    ...over,
  };
}
