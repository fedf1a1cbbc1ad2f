/**
 * Weighted losses over micro-batches: a loss given as a term { sum, count } (class
 * weights, ignored labels) is the full batch's weighted mean whatever the number of
 * micro-batches, in the reported loss, its gradients and so the update; a plain `loss`
 * is the mean of the chunks' values (documented, checked here too).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linear } from '../../src/graph/layers/linear.js';
import {
  accuracyTerm,
  crossEntropy,
  crossEntropyTerm,
  maskedMseTerm,
} from '../../src/graph/layers/losses.js';
import type { Tensor } from '../../src/graph/graph.js';
import type { HostTensor } from '../../src/graph/runtime.js';
import { Trainer, type TrainBuildResult, type TrainerOptions } from '../../src/graph/train.js';
import { Rng } from '../../src/util/random.js';

const B = 8;
const D = 4;
const K = 3;
const IGNORE = -100;
// Chunk 2 of 4 (rows 2, 3) is wholly ignored: its count is 0.
const LABELS = [0, 2, IGNORE, IGNORE, 1, 1, 0, 2];
const CLASS_W = [1, 3, 0.5];

function batch(seed: number): Record<string, HostTensor> {
  const r = new Rng(seed);
  return {
    x: { dtype: 'float32', shape: [B, D], data: Float32Array.from({ length: B * D }, () => r.normal()) },
    labels: { dtype: 'int64', shape: [B], data: BigInt64Array.from(LABELS.map(BigInt)) },
    w: {
      dtype: 'float32',
      shape: [B],
      data: Float32Array.from(LABELS.map((l) => (l < 0 ? 1 : CLASS_W[l]))),
    },
  };
}

const inputs = {
  x: { dtype: 'float32' as const, shape: ['batch', D] },
  labels: { dtype: 'int64' as const, shape: ['batch'] },
  w: { dtype: 'float32' as const, shape: ['batch'] },
};

function logitsOf(i: Record<string, Tensor>): Tensor {
  return linear(i.x, 'classifier', K, { init: { kind: 'normal', std: 0.5 } });
}

const termBuild = (_g: unknown, i: Record<string, Tensor>): TrainBuildResult => {
  const logits = logitsOf(i);
  const opts = { weights: i.w, ignoreIndex: IGNORE };
  return {
    terms: { ce: { ...crossEntropyTerm(logits, i.labels, opts), weight: 0.5 } },
    metrics: { acc: accuracyTerm(logits, i.labels, { ignoreIndex: IGNORE }) },
  };
};

const opts = (microBatches: number, over: Partial<TrainerOptions> = {}): TrainerOptions => ({
  inputs,
  build: termBuild,
  optimizer: { lr: 0.1 },
  microBatches,
  seed: 3,
  runtime: { threads: 1 },
  ...over,
});

/** The full batch's weighted cross-entropy (torch's CrossEntropyLoss(weight, ignore_index)) in float64. */
function reference(tr: Trainer, b: Record<string, HostTensor>, rows: number[]): { ce: number; acc: number } {
  const W = tr.params.get('classifier.weight').data as Float32Array; // [K, D]
  const bias = tr.params.get('classifier.bias').data as Float32Array;
  const x = b.x.data as Float32Array;
  let num = 0;
  let den = 0;
  let correct = 0;
  let n = 0;
  for (const r of rows) {
    const l = LABELS[r];
    if (l < 0) continue;
    const z = Array.from({ length: K }, (_, k) => {
      let s = bias[k];
      for (let d = 0; d < D; d++) s += W[k * D + d] * x[r * D + d];
      return s;
    });
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
    num += CLASS_W[l] * (lse - z[l]);
    den += CLASS_W[l];
    correct += z.indexOf(m) === l ? 1 : 0;
    n += 1;
  }
  return { ce: den > 0 ? num / den : 0, acc: n > 0 ? correct / n : 0 };
}

const all = Array.from({ length: B }, (_, i) => i);
const near = (a: number, b: number, what: string, tol = 1e-6) =>
  assert.ok(Math.abs(a - b) <= tol * (1 + Math.abs(b)), `${what}: ${a} vs ${b}`);

test('loss terms: 1, 2 and 4 micro-batches give the full batch weighted mean, its gradients and the same update', async () => {
  const trainers = await Promise.all([1, 2, 4].map((m) => Trainer.create(opts(m))));
  for (const [s, seed] of [11, 12].entries()) {
    const b = batch(seed);
    const ref = reference(trainers[0], b, all);
    for (const tr of trainers) {
      const r = await tr.step(b);
      const what = `step ${s}, M=${tr.built.microBatches}`;
      near(r.loss, 0.5 * ref.ce, `${what}: loss`);
      near(r.metrics.ce, ref.ce, `${what}: term ce`);
      near(r.metrics.acc, ref.acc, `${what}: accuracy over non-ignored rows`);
    }
  }
  for (const n of ['classifier.weight', 'classifier.bias'])
    for (const tr of trainers.slice(1)) {
      const a = trainers[0].params.get(n).data as Float32Array;
      const b = tr.params.get(n).data as Float32Array;
      a.forEach((v, i) => near(b[i], v, `${n}[${i}], M=${tr.built.microBatches} vs 1`, 1e-5));
    }
  // The graph stays in topological order after the chunks' nodes are interleaved.
  const g = trainers[2].graph;
  const made = new Set<Tensor>();
  for (const n of g.nodes) {
    for (const t of n.inputs)
      if (t && t.kind === 'node') assert.ok(made.has(t), `node ${n.name} reads ${t.name} before it is made`);
    n.outputs.forEach((o) => made.add(o));
  }
  // evaluate() gives the same value in one chunk.
  const b = batch(13);
  const ev = await trainers[1].evaluate(b);
  near(ev.loss, 0.5 * reference(trainers[1], b, all).ce, 'evaluate loss');
  await Promise.all(trainers.map((t) => t.release()));
});

test("a plain weighted loss over micro-batches is the mean of the chunks' weighted means (documented)", async () => {
  const plain = (_g: unknown, i: Record<string, Tensor>): TrainBuildResult => ({
    loss: crossEntropy(logitsOf(i), i.labels, { weights: i.w, ignoreIndex: IGNORE }),
  });
  const tr = await Trainer.create(opts(2, { build: plain }));
  const b = batch(11);
  const halves = [reference(tr, b, [0, 1, 2, 3]).ce, reference(tr, b, [4, 5, 6, 7]).ce];
  const r = await tr.step(b);
  near(r.loss, (halves[0] + halves[1]) / 2, 'mean of chunk means');
  assert.ok(Math.abs(r.loss - reference(tr, b, all).ce) > 1e-3, 'differs from the batch mean here');
  await tr.release();
});

test('maskedMseTerm: the mean over valid cells of the whole batch, broadcast mask dims counted', async () => {
  // a, b [B, 2, 3]; mask [B, 1, 3] valid in the first k(b) columns.
  const r = new Rng(4);
  const a = Float32Array.from({ length: B * 6 }, () => r.normal());
  const mask = BigInt64Array.from({ length: B * 3 }, (_, i) =>
    i % 3 < 1 + (Math.floor(i / 3) % 3) ? 1n : 0n,
  );
  const tr = await Trainer.create({
    inputs: {
      a: { dtype: 'float32', shape: ['batch', 2, 3] },
      m: { dtype: 'int64', shape: ['batch', 1, 3] },
    },
    build: (g, i) => {
      const p = g.param('p', [1], { init: { kind: 'constant', value: 0.25 } });
      return { terms: { lc: maskedMseTerm(i.a, i.a.mul(p), i.m) } };
    },
    optimizer: { lr: 0.1 },
    microBatches: 4,
    runtime: { threads: 1 },
  });
  let num = 0;
  let den = 0;
  for (let n = 0; n < B; n++)
    for (let q = 0; q < 2; q++)
      for (let k = 0; k < 3; k++)
        if (mask[n * 3 + k]) {
          num += (a[(n * 2 + q) * 3 + k] * 0.75) ** 2;
          den += 1;
        }
  const res = await tr.step({
    a: { dtype: 'float32', shape: [B, 2, 3], data: a },
    m: { dtype: 'int64', shape: [B, 1, 3], data: mask },
  });
  near(res.loss, num / den, 'masked mean');
  await tr.release();
});

test('loss term errors are named', async () => {
  await assert.rejects(
    () => Trainer.create(opts(1, { build: () => ({}) })),
    /must return \{ loss \} or \{ terms \}/,
  );
  await assert.rejects(
    () =>
      Trainer.create(
        opts(1, {
          build: (g, i) => {
            const t = crossEntropyTerm(logitsOf(i), i.labels);
            return { terms: { ce: t }, metrics: { ce: t } };
          },
        }),
      ),
    /'ce' is both a loss term and a metric/,
  );
});
