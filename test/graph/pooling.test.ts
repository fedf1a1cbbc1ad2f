import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../../src/graph/graph.js';
import { CompiledGraph } from '../../src/graph/runtime.js';
import { gradients } from '../../src/graph/autodiff.js';
import { gradcheck, randn } from '../../src/graph/gradcheck.js';
import { f64, runGraph } from './helpers.js';
import {
  cosineSimilarity,
  maskedMax,
  maskedMean,
  maskedSoftmax,
  outerMask,
} from '../../src/graph/layers/pooling.js';

/** Builds a float64 graph from named inputs, runs it once, returns every output's data. */
const run = runGraph;

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(a.length, b.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    assert.ok(Number.isFinite(a[i]), `${what}[${i}] = ${a[i]}`);
    worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  }
  assert.ok(worst <= tol, `${what}: worst error ${worst}`);
};

// B = 3, T = 4, D = 2: row 0 full, row 1 two real frames, row 2 fully padded.
const MASK = [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0];
const [B, T, D] = [3, 4, 2];

test('maskedMean: mean over real frames only; padding values are ignored; a fully padded row gives 0', async () => {
  const x = randn(B * T * D, 1);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      if (!MASK[b * T + t]) for (let d = 0; d < D; d++) x[(b * T + t) * D + d] = 1e30;
  const out = await run({ x: f64(x, [B, T, D]), m: f64(MASK, [B, T]) }, (_g, t) => ({
    y: maskedMean(t.x, t.m),
    yb: maskedMean(t.x, t.m.cast('bool')),
  }));
  const want = new Float64Array(B * D);
  for (let b = 0; b < B; b++) {
    const n = MASK.slice(b * T, b * T + T).reduce((a, c) => a + c, 0);
    for (let d = 0; d < D; d++) {
      let s = 0;
      for (let t = 0; t < T; t++) if (MASK[b * T + t]) s += x[(b * T + t) * D + d];
      want[b * D + d] = n ? s / n : 0;
    }
  }
  close(out.y, want, 1e-15, 'maskedMean');
  close(out.yb, want, 1e-15, 'maskedMean (bool mask)');
  const res = await gradcheck(
    (_g, xx, m) => maskedMean(xx, m),
    [
      { name: 'x', shape: [B, T, D] },
      { name: 'm', shape: [B, T], data: Float64Array.from(MASK), differentiate: false },
    ],
  );
  assert.ok(res.maxError < 1e-6, res.worst);
});

test('maskedMax: padding never wins even when every real value is very negative; fully padded row gives 0', async () => {
  const x = Float64Array.from(randn(B * T * D, 2), (v) => v - 1e30);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) if (!MASK[b * T + t]) for (let d = 0; d < D; d++) x[(b * T + t) * D + d] = 0;
  x[(1 * T + 1) * D] = -3e38; // a real value far below anything: still a candidate
  const out = await run({ x: f64(x, [B, T, D]), m: f64(MASK, [B, T]) }, (_g, t) => ({
    y: maskedMax(t.x, t.m),
  }));
  const want = new Float64Array(B * D);
  for (let b = 0; b < B; b++)
    for (let d = 0; d < D; d++) {
      let m = -Infinity;
      for (let t = 0; t < T; t++) if (MASK[b * T + t]) m = Math.max(m, x[(b * T + t) * D + d]);
      want[b * D + d] = m === -Infinity ? 0 : m;
    }
  assert.deepEqual(Array.from(out.y), Array.from(want));
  assert.ok(want[2] < -1e29, 'row 1 really is all very negative');

  // Gradient: to the argmax of real frames only; nothing to padding or to a fully padded row.
  const g = new Graph({ floatType: 'float64' });
  const xt = g.input('x', 'float64', [B, T, D]);
  const mt = g.input('m', 'float64', [B, T]);
  const [dx] = gradients(maskedMax(xt, mt).sum([0, 1]), [xt]);
  g.output('dx', dx!);
  const cg = await CompiledGraph.create(g);
  const xs = randn(B * T * D, 3);
  const dxs = (await cg.run({ x: f64(xs, [B, T, D]), m: f64(MASK, [B, T]) })).dx.data as Float64Array;
  await cg.release();
  for (let b = 0; b < B; b++)
    for (let d = 0; d < D; d++) {
      let best = -1;
      for (let t = 0; t < T; t++)
        if (MASK[b * T + t] && (best < 0 || xs[(b * T + t) * D + d] > xs[(b * T + best) * D + d])) best = t;
      for (let t = 0; t < T; t++)
        assert.equal(dxs[(b * T + t) * D + d], t === best ? 1 : 0, `dx[${b},${t},${d}]`);
    }
  const res = await gradcheck(
    (_g, xx, m) => maskedMax(xx, m),
    [
      { name: 'x', shape: [B, T, D] },
      { name: 'm', shape: [B, T], data: Float64Array.from(MASK), differentiate: false },
    ],
  );
  assert.ok(res.maxError < 1e-6, res.worst);
});

test('maskedSoftmax: padded keys get exactly 0, rows of padding give zeros (no NaN); [B, L] and same-rank masks agree', async () => {
  const Tq = 2;
  const s = randn(B * Tq * T, 4);
  s[0] = 1e4; // a large score next to padding
  const out = await run({ s: f64(s, [B, Tq, T]), m: f64(MASK, [B, T]) }, (_g, t) => ({
    p: maskedSoftmax(t.s, t.m, -1),
    p3: maskedSoftmax(t.s, t.m.unsqueeze(1), 2),
  }));
  const want = new Float64Array(B * Tq * T);
  for (let b = 0; b < B; b++)
    for (let q = 0; q < Tq; q++) {
      const row = (b * Tq + q) * T;
      const valid = [...Array(T).keys()].filter((t) => MASK[b * T + t]);
      if (!valid.length) continue;
      const mx = Math.max(...valid.map((t) => s[row + t]));
      const z = valid.reduce((a, t) => a + Math.exp(s[row + t] - mx), 0);
      for (const t of valid) want[row + t] = Math.exp(s[row + t] - mx) / z;
    }
  close(out.p, want, 1e-15, 'maskedSoftmax');
  assert.deepEqual(Array.from(out.p3), Array.from(out.p));
  for (let i = 0; i < out.p.length; i++) if (want[i] === 0) assert.equal(out.p[i], 0);

  // Softmax over the middle axis with a [B, L] mask (LE-MER's text-side pooling shape).
  const out2 = await run({ s: f64(s, [B, T, Tq]), m: f64(MASK, [B, T]) }, (_g, t) => ({
    p: maskedSoftmax(t.s, t.m, 1),
  }));
  for (let b = 0; b < 2; b++)
    for (let c = 0; c < Tq; c++) {
      let sum = 0;
      for (let t = 0; t < T; t++) {
        const v = out2.p[(b * T + t) * Tq + c];
        if (!MASK[b * T + t]) assert.equal(v, 0);
        sum += v;
      }
      assert.ok(Math.abs(sum - 1) < 1e-14);
    }
  assert.ok(out2.p.subarray(2 * T * Tq).every((v) => v === 0));

  const res = await gradcheck(
    (_g, ss, m) => maskedSoftmax(ss, m, -1),
    [
      { name: 's', shape: [B, Tq, T] },
      { name: 'm', shape: [B, T], data: Float64Array.from(MASK), differentiate: false },
    ],
  );
  assert.ok(res.maxError < 1e-6, res.worst);
  const g = new Graph();
  assert.throws(
    () => maskedSoftmax(g.input('s', 'float32', ['B', 'Tq', 'Tk']), g.input('m', 'float32', ['B', 'Tq']), 2),
    /maskedSoftmax.*does not fit/s,
  );
});

function cosRef(
  a: Float64Array,
  b: Float64Array,
  rowsA: number,
  rowsB: number,
  d: number,
  eps: number,
): Float64Array {
  const out = new Float64Array(rowsA * rowsB);
  const norm = (v: Float64Array, i: number) => Math.max(Math.hypot(...v.subarray(i * d, i * d + d)), eps);
  for (let i = 0; i < rowsA; i++)
    for (let j = 0; j < rowsB; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += a[i * d + k] * b[j * d + k];
      out[i * rowsB + j] = dot / norm(a, i) / norm(b, j);
    }
  return out;
}

test('cosineSimilarity: [B,T,D] x [C,D] and x [B,T2,D] against float64 reference; per-norm eps clamp; zero rows', async () => {
  const [Tx, C, Ty, d, eps] = [3, 4, 2, 5, 1e-8];
  const a = randn(B * Tx * d, 5);
  const l = randn(C * d, 6);
  const h = randn(B * Ty * d, 7);
  a.fill(0, 0, d); // a zero (padded) row
  for (let k = 0; k < d; k++) a[d + k] *= 1e-10; // a row with norm below eps
  const out = await run({ a: f64(a, [B, Tx, d]), l: f64(l, [C, d]), h: f64(h, [B, Ty, d]) }, (g, t) => {
    const gl = cosineSimilarity(t.a, t.l, eps);
    const [da] = gradients(gl.sum([0, 1, 2]), [t.a]);
    return { gl, gh: cosineSimilarity(t.a, t.h, eps), da: da! };
  });
  const wantL = cosRef(a, l, B * Tx, C, d, eps);
  close(out.gl, wantL, 1e-14, 'cos vs labels');
  for (let j = 0; j < C; j++) assert.equal(out.gl[j], 0, 'zero row has similarity 0');
  assert.ok(out.da.every(Number.isFinite), 'finite gradient at a zero row');
  const wantH = new Float64Array(B * Tx * Ty);
  for (let b = 0; b < B; b++)
    wantH.set(
      cosRef(
        a.subarray(b * Tx * d, (b + 1) * Tx * d),
        h.subarray(b * Ty * d, (b + 1) * Ty * d),
        Tx,
        Ty,
        d,
        eps,
      ),
      b * Tx * Ty,
    );
  close(out.gh, wantH, 1e-14, 'cos batched');
  // Per-norm clamp: the tiny row's similarity is (a.b) / (eps |b|), not (a.b) / max(|a| |b|, eps).
  for (let j = 0; j < C; j++) {
    let dot = 0;
    for (let k = 0; k < d; k++) dot += a[d + k] * l[j * d + k];
    const nb = Math.hypot(...l.subarray(j * d, j * d + d));
    assert.ok(Math.abs(out.gl[C + j] - dot / (eps * nb)) < 1e-12 * Math.abs(dot / (eps * nb)));
    assert.ok(Math.abs(out.gl[C + j] - dot / eps) > 1e-3 * Math.abs(dot / eps), 'not the product clamp');
  }

  const ga = randn(B * Tx * d, 8);
  const r1 = await gradcheck(
    (_g, x, y) => cosineSimilarity(x, y),
    [
      { name: 'a', shape: [B, Tx, d], data: ga },
      { name: 'l', shape: [C, d] },
    ],
  );
  assert.ok(r1.maxError < 1e-6, r1.worst);
  const r2 = await gradcheck(
    (_g, x, y) => cosineSimilarity(x, y),
    [
      { name: 'a', shape: [B, Tx, d], data: ga },
      { name: 'h', shape: [B, Ty, d] },
    ],
  );
  assert.ok(r2.maxError < 1e-6, r2.worst);
  const g = new Graph();
  assert.throws(
    () => cosineSimilarity(g.input('a', 'float32', ['B', 'T', 8]), g.input('l', 'float32', [4, 6])),
    /cosineSimilarity.*same D/s,
  );
});

test('outerMask is the product of row and column masks', async () => {
  const out = await run({ r: f64([1, 1, 0, 1, 0, 0], [2, 3]), c: f64([1, 0, 1, 1], [2, 2]) }, (_g, t) => ({
    m: outerMask(t.r, t.c),
  }));
  assert.deepEqual(Array.from(out.m), [1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0]);
});
