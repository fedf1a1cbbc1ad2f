import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../../src/graph/graph.js';
import { type HostTensor } from '../../src/graph/runtime.js';
import { gradients } from '../../src/graph/autodiff.js';
import { gradcheck, randn } from '../../src/graph/gradcheck.js';
import { f64, runGraph } from './helpers.js';
import { accuracy, crossEntropy, crossEntropyFromProbs, maskedMse } from '../../src/graph/layers/losses.js';
import { outerMask } from '../../src/graph/layers/pooling.js';

const i64 = (data: number[], shape: number[]): HostTensor => ({
  dtype: 'int64',
  shape,
  data: BigInt64Array.from(data.map(BigInt)),
});

const run = runGraph;

const near = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

const [B, C] = [5, 4];
const LABELS = [0, 3, 1, 1, 2];
const W = [1, 0.5, 0, 2, 1];

/** Per-row torch-style cross-entropy with label smoothing s. */
function ceRows(logits: Float64Array, labels: number[], s: number): number[] {
  return labels.map((y, b) => {
    const row = Array.from(logits.subarray(b * C, b * C + C));
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    const logp = row.map((v) => v - lse);
    return (1 - s) * -logp[y] + s * -(logp.reduce((a, v) => a + v, 0) / C);
  });
}

test('crossEntropy matches a float64 reference: reductions, sample weights, label smoothing, ignoreIndex, huge logits', async () => {
  const logits = Float64Array.from(randn(B * C, 1), (v) => 3 * v);
  const huge = Float64Array.from(logits, (v) => v * 1e4);
  const out = await run(
    { x: f64(logits, [B, C]), big: f64(huge, [B, C]), y: i64(LABELS, [B]), w: f64(W, [B]) },
    (_g, t) => ({
      mean: crossEntropy(t.x, t.y),
      sum: crossEntropy(t.x, t.y, { reduction: 'sum' }),
      none: crossEntropy(t.x, t.y, { reduction: 'none' }),
      wmean: crossEntropy(t.x, t.y, { weights: t.w }),
      wsum: crossEntropy(t.x, t.y, { weights: t.w, reduction: 'sum' }),
      smooth: crossEntropy(t.x, t.y, { labelSmoothing: 0.1 }),
      ignore: crossEntropy(t.x, t.y, { ignoreIndex: 1 }),
      hugeRows: crossEntropy(t.big, t.y, { reduction: 'none' }),
    }),
  );
  const rows = ceRows(logits, LABELS, 0);
  const sum = rows.reduce((a, v) => a + v, 0);
  near(out.mean[0], sum / B, 1e-14, 'mean');
  near(out.sum[0], sum, 1e-14, 'sum');
  rows.forEach((r, i) => near(out.none[i], r, 1e-14, `none[${i}]`));
  const wsum = rows.reduce((a, v, i) => a + W[i] * v, 0);
  near(out.wsum[0], wsum, 1e-14, 'weighted sum');
  near(out.wmean[0], wsum / W.reduce((a, v) => a + v, 0), 1e-14, 'weighted mean');
  near(out.smooth[0], ceRows(logits, LABELS, 0.1).reduce((a, v) => a + v, 0) / B, 1e-14, 'label smoothing');
  const kept = rows.filter((_, i) => LABELS[i] !== 1);
  near(out.ignore[0], kept.reduce((a, v) => a + v, 0) / kept.length, 1e-14, 'ignoreIndex');
  ceRows(huge, LABELS, 0).forEach((r, i) => near(out.hugeRows[i], r, 1e-12, `huge logits row ${i}`));
});

test('crossEntropy gradients pass gradcheck (weights + smoothing) and equal softmax - target', async () => {
  const res = await gradcheck(
    (_g, x, y, w) => crossEntropy(x, y, { weights: w, labelSmoothing: 0.2 }).unsqueeze(0),
    [
      { name: 'x', shape: [B, C] },
      {
        name: 'labels',
        shape: [B],
        dtype: 'int64',
        raw: BigInt64Array.from(LABELS.map(BigInt)),
        differentiate: false,
      },
      { name: 'w', shape: [B], data: Float64Array.from(W), differentiate: false },
    ],
  );
  assert.ok(res.maxError < 1e-6, res.worst);
  const logits = randn(B * C, 2);
  const out = await run({ x: f64(logits, [B, C]), y: i64(LABELS, [B]) }, (_g, t) => {
    const [dx] = gradients(crossEntropy(t.x, t.y, { reduction: 'sum' }), [t.x]);
    return { dx: dx! };
  });
  for (let b = 0; b < B; b++) {
    const row = Array.from(logits.subarray(b * C, b * C + C));
    const z = row.reduce((a, v) => a + Math.exp(v), 0);
    row.forEach((v, c) =>
      near(out.dx[b * C + c], Math.exp(v) / z - (c === LABELS[b] ? 1 : 0), 1e-14, `dx[${b},${c}]`),
    );
  }
});

test('crossEntropyFromProbs: -log p_y (clamped), reference and gradcheck', async () => {
  const probs = new Float64Array(B * C);
  const raw = randn(B * C, 3);
  for (let b = 0; b < B; b++) {
    const e = Array.from(raw.subarray(b * C, b * C + C), Math.exp);
    const s = e.reduce((a, v) => a + v, 0);
    e.forEach((v, c) => (probs[b * C + c] = v / s));
  }
  probs[1 * C + 3] = 0; // the label's probability is 0: clamped, finite
  const out = await run({ p: f64(probs, [B, C]), y: i64(LABELS, [B]), w: f64(W, [B]) }, (_g, t) => ({
    none: crossEntropyFromProbs(t.p, t.y, { reduction: 'none' }),
    wmean: crossEntropyFromProbs(t.p, t.y, { weights: t.w }),
  }));
  const rows = LABELS.map((y, b) => -Math.log(Math.max(probs[b * C + y], 1e-12)));
  rows.forEach((r, i) => near(out.none[i], r, 1e-14, `row ${i}`));
  near(out.wmean[0], rows.reduce((a, v, i) => a + W[i] * v, 0) / 4.5, 1e-14, 'weighted mean');
  const pos = Float64Array.from(randn(B * C, 4), (v) => 0.2 + 0.1 * Math.tanh(v));
  const res = await gradcheck(
    (_g, p, y) => crossEntropyFromProbs(p, y).unsqueeze(0),
    [
      { name: 'p', shape: [B, C], data: pos },
      {
        name: 'labels',
        shape: [B],
        dtype: 'int64',
        raw: BigInt64Array.from(LABELS.map(BigInt)),
        differentiate: false,
      },
    ],
  );
  assert.ok(res.maxError < 1e-6, res.worst);
});

test('maskedMse averages over valid cells only (outerMask of text and speech masks); gradcheck', async () => {
  const [Tt, Ts] = [3, 4];
  const tm = [1, 1, 0, 1, 1, 1];
  const sm = [1, 1, 1, 0, 1, 0, 0, 0];
  const a = randn(2 * Tt * Ts, 5);
  const b = randn(2 * Tt * Ts, 6);
  const out = await run(
    { a: f64(a, [2, Tt, Ts]), b: f64(b, [2, Tt, Ts]), tm: f64(tm, [2, Tt]), sm: f64(sm, [2, Ts]) },
    (_g, t) => {
      const m = outerMask(t.tm, t.sm);
      return {
        mse: maskedMse(t.a, t.b, m),
        sum: maskedMse(t.a, t.b, m, { reduction: 'sum' }),
        row: maskedMse(t.a, t.b, t.tm.unsqueeze(2)),
      };
    },
  );
  let s = 0;
  let n = 0;
  let sRow = 0;
  let nRow = 0;
  for (let bb = 0; bb < 2; bb++)
    for (let i = 0; i < Tt; i++)
      for (let j = 0; j < Ts; j++) {
        const k = (bb * Tt + i) * Ts + j;
        const d2 = (a[k] - b[k]) ** 2;
        if (tm[bb * Tt + i] && sm[bb * Ts + j]) {
          s += d2;
          n++;
        }
        if (tm[bb * Tt + i]) {
          sRow += d2;
          nRow++;
        }
      }
  near(out.mse[0], s / n, 1e-14, 'masked mean');
  near(out.sum[0], s, 1e-14, 'masked sum');
  near(out.row[0], sRow / nRow, 1e-14, 'broadcast [B, Tt, 1] mask');
  const res = await gradcheck(
    (_g, x, y, m) => maskedMse(x, y, m).unsqueeze(0),
    [
      { name: 'a', shape: [2, Tt, Ts] },
      { name: 'b', shape: [2, Tt, Ts] },
      {
        name: 'm',
        shape: [2, Tt, Ts],
        data: Float64Array.from({ length: 2 * Tt * Ts }, (_, k) => (k % 3 ? 1 : 0)),
        differentiate: false,
      },
    ],
  );
  assert.ok(res.maxError < 1e-6, res.worst);
  const g = new Graph();
  const x = g.input('x', 'float32', ['B', 'Tt', 'Ts']);
  assert.throws(() => maskedMse(x, x, g.input('m', 'float32', ['B', 'Ts'])), /maskedMse.*outerMask/s);
});

test('accuracy: fraction of argmax hits, weighted variant, and no gradient', async () => {
  const logits = [
    [2, 1, 0, 0],
    [0, 0, 0, 5],
    [3, 1, 0, 0],
    [0, 4, 0, 0],
    [0, 0, -1, 0],
  ].flat();
  const out = await run({ x: f64(logits, [B, C]), y: i64(LABELS, [B]), w: f64(W, [B]) }, (_g, t) => {
    const acc = accuracy(t.x, t.y);
    assert.equal(gradients(acc, [t.x])[0], null);
    return { acc, wacc: accuracy(t.x, t.y, { weights: t.w }) };
  });
  // hits: rows 0, 1, 3 -> 3/5; weighted: (1 + 0.5 + 2) / 4.5
  near(out.acc[0], 3 / 5, 1e-15, 'accuracy');
  near(out.wacc[0], 3.5 / 4.5, 1e-15, 'weighted accuracy');
  const g = new Graph();
  assert.throws(
    () => crossEntropy(g.input('x', 'float32', ['B', 4]), g.input('y', 'float32', ['B'])),
    /crossEntropy.*labels must be int64/s,
  );
  assert.throws(
    () => crossEntropy(g.input('x2', 'float32', ['B', 4]), g.input('y2', 'int64', ['N'])),
    /crossEntropy.*labels of shape \[B\]/s,
  );
});
