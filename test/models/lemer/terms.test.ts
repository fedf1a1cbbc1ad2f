// Class-weighted LE-MER losses over micro-batches: the head's CE terms (and L_c) are Trainer
// terms { sum, count }, so 1 micro-batch of 8 and 2 micro-batches of 4 give the same loss
// and the same gradients (seen through one update with Adam's eps large, where the update
// -lr g / (|g| + eps) is a one-to-one function of the gradient), while a mean of the two
// halves' weighted means differs from it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Trainer } from '../../../src/graph/train.js';
import type { HostTensor } from '../../../src/graph/runtime.js';
import { lemerModel, type LemerModelSpec } from '../../../src/models/lemer/index.js';
import { fl, i64, tinySpeechEncoder, tinyTextEncoder, uniform } from './helpers.js';

const B = 8;
const [T, F, BINS] = [5, 6, 4];
// Half 1 mostly class 0, half 2 mostly class 1: with weight 3 on class 1 the halves' means
// weigh differently from the batch's.
const LABELS = [0, 0, 0, 1, 1, 1, 2, 1];
const CLASS_WEIGHTS = [1, 3, 0.5];

function batch(): Record<string, HostTensor> {
  const tl = [5, 3, 4, 2, 5, 4, 3, 5];
  const fLen = [6, 4, 5, 3, 6, 2, 5, 6];
  const u = uniform(B * T, 9);
  const ids: number[] = [];
  const am: number[] = [];
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      ids.push(t < tl[b] ? 1 + Math.floor(((u[b * T + t] + 1) / 2) * 19) : 0);
      am.push(t < tl[b] ? 1 : 0);
    }
  const feats = uniform(B * F * BINS, 11);
  const fm: number[] = [];
  for (let b = 0; b < B; b++) for (let f = 0; f < F; f++) fm.push(f < fLen[b] ? 1 : 0);
  return {
    'text.input_ids': i64(ids, [B, T]),
    'text.attention_mask': i64(am, [B, T]),
    'speech.input_features': fl(feats, [B, F, BINS]),
    'speech.attention_mask': i64(fm, [B, F]),
    labels: i64(LABELS, [B]),
  };
}

function half(b: Record<string, HostTensor>, k: 0 | 1): Record<string, HostTensor> {
  return Object.fromEntries(
    Object.entries(b).map(([n, t]) => {
      const per = t.data.length / B;
      const data = t.data.slice(k * (B / 2) * per, (k + 1) * (B / 2) * per);
      return [n, { ...t, shape: [B / 2, ...t.shape.slice(1)], data } as HostTensor];
    }),
  );
}

const spec = (kind: 'lemer' | 'speech'): LemerModelSpec => ({
  kind,
  textEncoder: kind === 'lemer' ? tinyTextEncoder() : undefined,
  speechEncoder: tinySpeechEncoder(BINS, 5, 2),
  numClasses: 3,
  useLabelEmbeddings: true,
  head: { dropout: 0 },
  classWeights: CLASS_WEIGHTS,
});

const near = (a: number, b: number, what: string, tol = 1e-5) =>
  assert.ok(Math.abs(a - b) <= tol * (1 + Math.abs(b)), `${what}: ${a} vs ${b}`);

for (const kind of ['lemer', 'speech'] as const)
  test(`${kind}: class-weighted loss and gradients of 1 micro-batch of 8 equal 2 micro-batches of 4`, async () => {
    const m = lemerModel(spec(kind));
    const feeds = Object.fromEntries(Object.keys(m.trainInputs).map((k) => [k, batch()[k]]));
    const make = (microBatches: number) =>
      Trainer.create({
        inputs: m.trainInputs,
        build: m.train,
        // eps 1: the update -g / (|g| + 1) shows gradient differences (eps 1e-8 would give sign(g)).
        optimizer: { kind: 'adam', lr: 1, eps: 1 },
        microBatches,
        seed: 5,
        runtime: { threads: 1 },
      });
    const [one, two] = [await make(1), await make(2)];
    const before = new Map(
      one.params.entries().map(([n, t]) => [n, Float32Array.from(t.data as Float32Array)]),
    );
    const halves = [await one.evaluate(half(feeds, 0)), await one.evaluate(half(feeds, 1))];
    const full = await one.evaluate(feeds);
    const r1 = await one.step(feeds);
    const r2 = await two.step(feeds);
    near(r1.loss, full.loss, 'step loss = evaluate loss');
    near(r2.loss, r1.loss, 'loss, 2 micro-batches vs 1');
    const meanOfHalves = (halves[0].loss + halves[1].loss) / 2;
    assert.ok(
      Math.abs(meanOfHalves - r1.loss) > 2e-4,
      `the halves' mean ${meanOfHalves} should differ from the batch's weighted mean ${r1.loss}`,
    );
    let checked = 0;
    let moved = 0;
    for (const [n, t0] of before) {
      const a = one.params.get(n).data as Float32Array;
      const b = two.params.get(n).data as Float32Array;
      a.forEach((v, i) => {
        near(b[i], v, `${n}[${i}] after one update, 2 micro-batches vs 1`, 1e-4);
        if (Math.abs(v - t0[i]) > 1e-6) moved++;
        checked++;
      });
    }
    assert.ok(moved > checked / 2, `most parameters moved (${moved} of ${checked})`);
    assert.ok('term_main' in r2.metrics && 'loss_main' in r2.metrics);
    await one.release();
    await two.release();
  });
