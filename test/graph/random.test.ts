import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, type Tensor } from '../../src/graph/graph.js';
import { CompiledGraph, type HostTensor } from '../../src/graph/runtime.js';
import { gradients } from '../../src/graph/autodiff.js';
import { gradcheck, randn } from '../../src/graph/gradcheck.js';
import {
  dropout,
  gumbelSoftmax,
  oneHotArgmax,
  randomUniformLike,
  stopGradient,
  argmax,
} from '../../src/graph/ops/index.js';

const f64 = (data: Float64Array, shape: number[]): HostTensor => ({ dtype: 'float64', shape, data });
const f32 = (data: Float32Array, shape: number[]): HostTensor => ({ dtype: 'float32', shape, data });

function uniformGraph(seed: number): Graph {
  const g = new Graph({ seed });
  const x = g.input('x', 'float32', [4, 8]);
  g.output('a', randomUniformLike(x));
  g.output('b', randomUniformLike(x));
  return g;
}

test('RandomUniformLike on ORT 1.30: a session advances per run, a fresh session repeats', async () => {
  const feeds = { x: f32(new Float32Array(32), [4, 8]) };
  const s1 = await CompiledGraph.create(uniformGraph(5));
  const r1 = await s1.run(feeds);
  const r2 = await s1.run(feeds);
  const s2 = await CompiledGraph.create(uniformGraph(5));
  const q1 = await s2.run(feeds);
  const q2 = await s2.run(feeds);
  const s3 = await CompiledGraph.create(uniformGraph(6));
  const o1 = await s3.run(feeds);
  for (const r of [r1, r2, q1, o1]) for (const v of r.a.data as Float32Array) assert.ok(v >= 0 && v < 1);
  assert.notDeepEqual(r1.a.data, r2.a.data, 'two runs of one session must draw differently');
  assert.deepEqual(q1.a.data, r1.a.data, 'a fresh session repeats the first run');
  assert.deepEqual(q2.a.data, r2.a.data, 'and the second');
  assert.notDeepEqual(r1.a.data, r1.b.data, 'two ops of one graph get different seeds');
  assert.notDeepEqual(o1.a.data, r1.a.data, 'another graph seed draws differently');
  await Promise.all([s1.release(), s2.release(), s3.release()]);
});

test('dropout: identity outside training or at p = 0; in training mask = U >= p, scaled by 1/(1-p)', async () => {
  const ev = new Graph({ training: false });
  const xe = ev.input('x', 'float32', [3]);
  assert.equal(dropout(xe, 0.5), xe);
  const tr = new Graph({ training: true });
  const xt = tr.input('x', 'float32', [3]);
  assert.equal(dropout(xt, 0), xt);
  assert.throws(() => dropout(xt, 1), /Dropout.*p must be in \[0, 1\)/);

  const p = 0.3;
  const n = 20000;
  const g = new Graph({ training: true, seed: 3 });
  const x = g.input('x', 'float32', [n]);
  g.output('y', dropout(x, p, { seed: 77 }));
  g.output('u', randomUniformLike(x, { seed: 77 })); // same seed: the same stream as dropout's draw
  const cg = await CompiledGraph.create(g);
  const xs = Float32Array.from(randn(n, 4));
  const first = await cg.run({ x: f32(xs, [n]) });
  const second = await cg.run({ x: f32(xs, [n]) });
  const y = first.y.data as Float32Array;
  const u = first.u.data as Float32Array;
  let dropped = 0;
  for (let i = 0; i < n; i++) {
    const want = u[i] >= p ? Math.fround(xs[i] * Math.fround(1 / (1 - p))) : 0;
    assert.ok(Math.abs(y[i] - want) <= 1e-6 * Math.abs(want), `element ${i}: ${y[i]} vs ${want}`);
    if (y[i] === 0) dropped++;
  }
  assert.ok(Math.abs(dropped / n - p) < 0.02, `dropped fraction ${dropped / n}`);
  assert.notDeepEqual(second.y.data, first.y.data, 'the mask changes from step to step');
  await cg.release();
});

test('dropout gradient is dy * mask / (1 - p) (mask read from the same run)', async () => {
  const p = 0.4;
  const n = 64;
  const g = new Graph({ training: true, floatType: 'float64', seed: 9 });
  const x = g.input('x', 'float64', [n]);
  const r = g.input('r', 'float64', [n]);
  const y = dropout(x, p);
  const loss = y.mul(r).sum(0);
  const [dx] = gradients(loss, [x]);
  g.output('y', y);
  g.output('dx', dx!);
  const cg = await CompiledGraph.create(g);
  const xs = randn(n, 1);
  const rs = randn(n, 2);
  const out = await cg.run({ x: f64(xs, [n]), r: f64(rs, [n]) });
  const ys = out.y.data as Float64Array;
  const dxs = out.dx.data as Float64Array;
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const keep = ys[i] !== 0;
    if (keep) kept++;
    assert.ok(Math.abs(dxs[i] - (keep ? rs[i] / (1 - p) : 0)) < 1e-12);
  }
  assert.ok(kept > 10 && kept < n - 10);
  await cg.release();
});

test('stopGradient: forward identity, backward zero', async () => {
  const g = new Graph({ floatType: 'float64' });
  const x = g.input('x', 'float64', [5]);
  const s = stopGradient(x);
  assert.equal(gradients(s.sum(0), [x])[0], null);
  const [dx] = gradients(s.mul(x).sum(0), [x]); // d/dx sum(sg(x) x) = sg(x) = x, not 2x
  g.output('s', s);
  g.output('dx', dx!);
  const cg = await CompiledGraph.create(g);
  const xs = randn(5, 3);
  const out = await cg.run({ x: f64(xs, [5]) });
  assert.deepEqual(Array.from(out.s.data as Float64Array), Array.from(xs));
  assert.deepEqual(Array.from(out.dx.data as Float64Array), Array.from(xs));
  await cg.release();
});

/** Float64 reference: softmax((logits + gumbel(u)) / tau) over rows of length c. */
function gumbelRef(logits: Float64Array, u: Float64Array, tau: number, c: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let r = 0; r < logits.length / c; r++) {
    const z = Array.from(
      { length: c },
      (_, j) => (logits[r * c + j] - Math.log(-Math.log(u[r * c + j]))) / tau,
    );
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    e.forEach((v, j) => (out[r * c + j] = v / s));
  }
  return out;
}

test('gumbelSoftmax with given draws: soft forward vs float64 reference; hard = one-hot with the soft gradient', async () => {
  const [rows, c, tau] = [6, 5, 0.7];
  const g = new Graph({ floatType: 'float64' });
  const logits = g.input('logits', 'float64', [rows, c]);
  const u = g.input('u', 'float64', [rows, c]);
  const r = g.input('r', 'float64', [rows, c]);
  const soft = gumbelSoftmax(logits, tau, { uniform: u });
  const hard = gumbelSoftmax(logits, tau, { uniform: u, hard: true });
  const [dSoft] = gradients(soft.mul(r).sum([0, 1]), [logits]);
  const [dHard] = gradients(hard.mul(r).sum([0, 1]), [logits]);
  const [dU] = gradients(soft.mul(r).sum([0, 1]), [u]);
  assert.equal(dU, null, 'the noise carries no gradient');
  for (const [k, t] of Object.entries({ soft, hard, dSoft: dSoft!, dHard: dHard! })) g.output(k, t as Tensor);
  const cg = await CompiledGraph.create(g);
  const ls = randn(rows * c, 11);
  const us = Float64Array.from(randn(rows * c, 12), (v) => 0.5 + 0.49 * Math.tanh(v));
  const rs = randn(rows * c, 13);
  const out = await cg.run({ logits: f64(ls, [rows, c]), u: f64(us, [rows, c]), r: f64(rs, [rows, c]) });
  const ref = gumbelRef(ls, us, tau, c);
  const sf = out.soft.data as Float64Array;
  const hd = out.hard.data as Float64Array;
  let worst = 0;
  for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(sf[i] - ref[i]));
  assert.ok(worst < 1e-14, `soft forward error ${worst}`);
  for (let row = 0; row < rows; row++) {
    const slice = Array.from(ref.subarray(row * c, row * c + c));
    const best = slice.indexOf(Math.max(...slice));
    for (let j = 0; j < c; j++) assert.ok(Math.abs(hd[row * c + j] - (j === best ? 1 : 0)) < 1e-15);
  }
  const ds = out.dSoft.data as Float64Array;
  const dh = out.dHard.data as Float64Array;
  for (let i = 0; i < ds.length; i++)
    assert.ok(Math.abs(ds[i] - dh[i]) < 1e-14, 'straight-through gradient = soft gradient');
  await cg.release();
});

test('gumbelSoftmax soft gradient passes gradcheck', async () => {
  const us = Float64Array.from(randn(12, 21), (v) => 0.5 + 0.45 * Math.tanh(v));
  const res = await gradcheck(
    (_g, logits, u) => gumbelSoftmax(logits, 0.5, { uniform: u }),
    [
      { name: 'logits', shape: [3, 4] },
      { name: 'u', shape: [3, 4], data: us, differentiate: false },
    ],
  );
  assert.ok(res.maxError < 1e-6, res.worst);
});

test('gumbelSoftmax in training draws noise (rows stay distributions); in eval hard = argmax one-hot', async () => {
  const [rows, c] = [200, 6];
  const tr = new Graph({ training: true, seed: 2 });
  const lt = tr.input('logits', 'float32', [rows, c]);
  tr.output('soft', gumbelSoftmax(lt, 1));
  tr.output('hard', gumbelSoftmax(lt, 1, { hard: true }));
  const ev = new Graph({ training: false });
  const le = ev.input('logits', 'float32', [rows, c]);
  ev.output('hard', gumbelSoftmax(le, 1, { hard: true }));
  ev.output('idx', argmax(le, -1));
  const ls = Float32Array.from(randn(rows * c, 5));
  const feeds = { logits: f32(ls, [rows, c]) };
  const ct = await CompiledGraph.create(tr);
  const a = await ct.run(feeds);
  const b = await ct.run(feeds);
  assert.notDeepEqual(a.soft.data, b.soft.data);
  const soft = a.soft.data as Float32Array;
  const hard = a.hard.data as Float32Array;
  let argmaxMoved = 0;
  for (let r = 0; r < rows; r++) {
    let s = 0;
    let ones = 0;
    for (let j = 0; j < c; j++) {
      s += soft[r * c + j];
      assert.ok(soft[r * c + j] >= 0 && Number.isFinite(soft[r * c + j]));
      if (Math.abs(hard[r * c + j] - 1) < 1e-6) ones++;
      else assert.ok(Math.abs(hard[r * c + j]) < 1e-6);
    }
    assert.ok(Math.abs(s - 1) < 1e-5);
    assert.equal(ones, 1);
    const row = Array.from(ls.subarray(r * c, r * c + c));
    if (hard[r * c + row.indexOf(Math.max(...row))] < 0.5) argmaxMoved++;
  }
  assert.ok(
    argmaxMoved > rows / 5,
    `Gumbel noise should move the argmax often, moved ${argmaxMoved}/${rows}`,
  );
  const ce = await CompiledGraph.create(ev);
  const e = await ce.run(feeds);
  const idx = e.idx.data as BigInt64Array;
  const eh = e.hard.data as Float32Array;
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < c; j++) assert.equal(eh[r * c + j], Number(idx[r]) === j ? 1 : 0);
  await Promise.all([ct.release(), ce.release()]);
});

test('oneHotArgmax works along a symbolic axis and picks the first of ties', async () => {
  const g = new Graph();
  const x = g.input('x', 'float32', ['rows', 'classes']);
  g.output('oh0', oneHotArgmax(x, 0));
  g.output('oh1', oneHotArgmax(x, -1));
  const cg = await CompiledGraph.create(g);
  const out = await cg.run({ x: f32(Float32Array.from([1, 3, 3, 0, 5, -1]), [2, 3]) });
  assert.deepEqual(Array.from(out.oh1.data as Float32Array), [0, 1, 0, 0, 1, 0]);
  assert.deepEqual(Array.from(out.oh0.data as Float32Array), [1, 0, 1, 0, 1, 0]);
  await cg.release();
});
