// Every core op's gradient rule against central finite differences in float64,
// on random shapes with broadcasting, plus forward values checked by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, CompiledGraph, ops, gradients } from '../../src/graph/index.js';
import { gradcheck, type CheckInput } from '../../src/graph/gradcheck.js';
import type { Tensor } from '../../src/graph/graph.js';

const TOL = 1e-6;

async function check(
  name: string,
  fn: (g: Graph, ...xs: Tensor[]) => Tensor,
  inputs: CheckInput[],
  opts: { atolScale?: number } = {},
): Promise<void> {
  const r = await gradcheck(fn, inputs, opts);
  assert.ok(r.maxError < TOL, `${name}: max relative error ${r.maxError} (${r.worst})`);
}

const positive = (n: number, seed = 3): Float64Array => {
  const out = new Float64Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 16807) % 2147483647;
    out[i] = 0.5 + (s / 2147483647) * 2;
  }
  return out;
};

test('elementwise binary ops with broadcasting', async () => {
  const ins: CheckInput[] = [
    { name: 'a', shape: [2, 3, 4] },
    { name: 'b', shape: [3, 1] },
  ];
  await check('add', (_g, a, b) => ops.add(a, b), ins);
  await check('sub', (_g, a, b) => ops.sub(a, b), ins);
  await check('mul', (_g, a, b) => ops.mul(a, b), ins);
  await check('div', (_g, a, b) => ops.div(a, b), [ins[0], { name: 'b', shape: [3, 1], data: positive(3) }]);
  await check('pow', (_g, a, b) => ops.pow(a, b), [
    { name: 'a', shape: [2, 3], data: positive(6) },
    { name: 'b', shape: [1, 3] },
  ]);
  await check('where', (g, a, b) => ops.where(ops.greater(a, 0), a, b), [
    { name: 'a', shape: [2, 3] },
    { name: 'b', shape: [3] },
  ]);
  await check('maximum', (_g, a, b) => ops.maximum(a, b), [
    { name: 'a', shape: [4, 3] },
    { name: 'b', shape: [4, 3], data: new Float64Array(12).map((_, i) => (i % 5) - 2.3) },
  ]);
});

test('elementwise unary ops', async () => {
  const x: CheckInput[] = [{ name: 'x', shape: [3, 5] }];
  const px: CheckInput[] = [{ name: 'x', shape: [3, 5], data: positive(15) }];
  for (const [n, fn] of Object.entries({
    neg: ops.neg,
    exp: ops.exp,
    tanh: ops.tanh,
    sigmoid: ops.sigmoid,
    erf: ops.erf,
  }))
    await check(n, (_g, a) => fn(a), x);
  for (const [n, fn] of Object.entries({ log: ops.log, sqrt: ops.sqrt, reciprocal: ops.reciprocal }))
    await check(n, (_g, a) => fn(a), px);
  // Erf's own rule runs in float32 (ORT has no float64 Erf): central differences with a
  // large step, loose tolerance; float64 graphs use a series form, checked here too.
  const r = await gradcheck((_g, a) => ops.erf(ops.cast(a, 'float32')).cast('float64'), x, { eps: 1e-2 });
  assert.ok(r.maxError < 2e-3, `erf float32: ${r.maxError} ${r.worst}`);
  // Away from the kinks at 0 (random normals rarely land within eps of it).
  await check('relu', (_g, a) => ops.relu(a), x);
  await check('abs', (_g, a) => ops.abs(a), x);
});

test('float64 erf matches quadrature to 1e-12', async () => {
  const xs = [-6, -3, -2, -1.99, -0.5, 0, 0.1, 1, 1.5, 2, 2.01, 2.5, 4];
  const g = new Graph({ floatType: 'float64' });
  g.output('y', ops.erf(g.input('x', 'float64', [xs.length])));
  const out = await (
    await CompiledGraph.create(g)
  ).run({ x: { dtype: 'float64', shape: [xs.length], data: Float64Array.from(xs) } });
  const quad = (x: number): number => {
    const n = 20000;
    const h = x / n;
    let s = 0;
    for (let i = 0; i <= n; i++) s += (i === 0 || i === n ? 1 : i % 2 ? 4 : 2) * Math.exp(-((i * h) ** 2));
    return ((2 / Math.sqrt(Math.PI)) * s * h) / 3;
  };
  xs.forEach((x, i) => assert.ok(Math.abs((out.y.data[i] as number) - quad(x)) < 1e-12, `erf(${x})`));
});

test('matmul: batched, broadcast batch dims, shared weight', async () => {
  await check('matmul 3d x 2d', (_g, a, b) => ops.matmul(a, b), [
    { name: 'a', shape: [2, 3, 4] },
    { name: 'b', shape: [4, 5] },
  ]);
  await check('matmul broadcast', (_g, a, b) => ops.matmul(a, b), [
    { name: 'a', shape: [2, 1, 3, 4] },
    { name: 'b', shape: [3, 4, 2] },
  ]);
  await check('matmul symbolic batch', (_g, a, b) => ops.matmul(a, b), [
    { name: 'a', shape: [2, 3] },
    { name: 'b', shape: [3, 2] },
  ]);
});

test('shape ops: reshape, transpose, concat, slice, (un)squeeze, expand, pad, split, gather', async () => {
  await check('reshape', (_g, a) => ops.reshape(a, [3, -1]).mul(ops.reshape(a, [3, -1])), [
    { name: 'a', shape: [2, 3, 2] },
  ]);
  await check('transpose', (_g, a) => ops.transpose(a, [2, 0, 1]), [{ name: 'a', shape: [2, 3, 4] }]);
  await check('concat', (_g, a, b) => ops.concat([a, b, a], 1), [
    { name: 'a', shape: [2, 3] },
    { name: 'b', shape: [2, 1] },
  ]);
  await check('slice', (_g, a) => ops.slice(a, [1, -3], [3, 4], [0, 1]), [{ name: 'a', shape: [4, 5] }]);
  await check('unsqueeze/squeeze', (_g, a) => ops.squeeze(ops.unsqueeze(a, [0, 2]), [0]), [
    { name: 'a', shape: [3, 2] },
  ]);
  await check('expand', (g, a, like) => ops.expand(a, like), [
    { name: 'a', shape: [3, 1] },
    { name: 'like', shape: [2, 3, 4], differentiate: false },
  ]);
  await check('pad', (_g, a) => ops.pad(a, [1, 0, 2, 3]), [{ name: 'a', shape: [2, 3] }]);
  await check(
    'split',
    (_g, a) => {
      const [p, q] = ops.split(a, [1, 3], 1);
      return ops.mul(p, ops.reduceSum(q, 1, true));
    },
    [{ name: 'a', shape: [2, 4] }],
  );
  await check(
    'gather axis 0 (embedding, repeated ids)',
    (g, table) => {
      const ids = g.constant(BigInt64Array.from([0n, 2n, 2n, 4n, 1n, 0n]), [2, 3]);
      return ops.gather(table, ids, 0);
    },
    [{ name: 'table', shape: [5, 3] }],
  );
  await check(
    'gather axis 1',
    (g, table) => ops.gather(table, g.constant(BigInt64Array.from([3n, 0n, 3n]), [3]), 1),
    [{ name: 'table', shape: [2, 4, 3] }],
  );
});

test('reductions and softmax', async () => {
  const x: CheckInput[] = [{ name: 'x', shape: [2, 3, 4] }];
  await check('reduceSum', (_g, a) => ops.reduceSum(a, [0, 2]), x);
  await check('reduceSum keep', (_g, a) => ops.reduceSum(a, 1, true), x);
  await check('reduceMean', (_g, a) => ops.reduceMean(a, [1]), x);
  await check('reduceMax', (_g, a) => ops.reduceMax(a, 2), x);
  await check('softmax', (_g, a) => ops.softmax(a, 1), x);
  await check('logSoftmax', (_g, a) => ops.logSoftmax(a, -1), x);
});

test('layerNorm: gradients of input, gamma and beta', async () => {
  await check('layerNorm', (_g, a, gm, bt) => ops.layerNorm(a, gm, bt, 1e-5), [
    { name: 'a', shape: [2, 3, 6] },
    { name: 'gm', shape: [6] },
    { name: 'bt', shape: [6] },
  ]);
});

test('forward values match hand-computed ones', async () => {
  const g = new Graph();
  const x = g.input('x', 'float32', [2, 3]);
  g.output('softmax', ops.softmax(x, 1));
  g.output(
    'ln',
    ops.layerNorm(x, g.constant(new Float32Array([1, 1, 1])), g.constant(new Float32Array([0, 0, 0])), 0),
  );
  g.output('sum', ops.reduceSum(x, 0));
  const run = await CompiledGraph.create(g);
  const out = await run.run({
    x: { dtype: 'float32', shape: [2, 3], data: new Float32Array([1, 2, 3, 0, 0, 0]) },
  });
  const e = [Math.exp(1), Math.exp(2), Math.exp(3)];
  const z = e[0] + e[1] + e[2];
  [e[0] / z, e[1] / z, e[2] / z, 1 / 3, 1 / 3, 1 / 3].forEach((v, i) =>
    assert.ok(Math.abs((out.softmax.data[i] as number) - v) < 1e-6),
  );
  // (x - 2) / sqrt(2/3) for [1, 2, 3]
  const s = Math.sqrt(2 / 3);
  [-1 / s, 0, 1 / s].forEach((v, i) => assert.ok(Math.abs((out.ln.data[i] as number) - v) < 1e-5));
  assert.deepEqual(Array.from(out.sum.data as Float32Array), [1, 2, 3]);
});

test('float32 layerNorm backward (stashed stats) agrees with float64 (recomputed stats)', async () => {
  async function grads(dtype: 'float32' | 'float64'): Promise<number[]> {
    const g = new Graph({ floatType: dtype });
    const x = g.input('x', dtype, [2, 5]);
    const gm = g.param('gm', [5], { init: { kind: 'ones' } });
    const y = ops.layerNorm(x, gm, g.param('bt', [5]));
    const loss = ops.reduceSum(ops.mul(y, ops.exp(y)), [0, 1]);
    const [dx, dg] = gradients(loss, [x, gm]);
    g.output('dx', dx!);
    g.output('dg', dg!);
    const run = await CompiledGraph.create(g);
    const A = dtype === 'float32' ? Float32Array : Float64Array;
    const data = A.from([0.3, -1.2, 2.0, 0.7, 0.1, 1.5, -0.4, 0.9, -2.2, 0.05]);
    const out = await run.run({
      x: { dtype, shape: [2, 5], data },
      gm: { dtype, shape: [5], data: A.from([1, 0.5, 2, -1, 1]) },
      bt: { dtype, shape: [5], data: new A(5) },
    });
    return [...Array.from(out.dx.data as Float64Array), ...Array.from(out.dg.data as Float64Array)];
  }
  const a = await grads('float32');
  const b = await grads('float64');
  a.forEach((v, i) =>
    assert.ok(Math.abs(v - b[i]) < 1e-4 * Math.max(1, Math.abs(b[i])), `element ${i}: ${v} vs ${b[i]}`),
  );
});

test('gradients: unused branches and frozen inputs build no backward nodes', () => {
  const g = new Graph();
  const x = g.input('x', 'float32', ['batch', 4]);
  const w = g.param('w', [4, 4]);
  const frozen = g.param('frozen', [4, 4], { trainable: false });
  const unused = g.param('unused', [4, 4]);
  ops.exp(ops.matmul(x, unused)); // a branch that never reaches the loss
  const loss = ops.reduceMean(ops.matmul(ops.matmul(x, frozen), w), [0, 1]);
  const before = g.nodes.length;
  const [dw, du] = gradients(loss, [w, unused]);
  assert.ok(dw);
  assert.equal(du, null);
  const added = g.nodes.slice(before);
  // No node of the backward pass reads the unused branch, and d/d(frozen) is never formed:
  // the only MatMuls are dW = (x frozen)^T dy; x's gradient is not built (x is not asked for).
  assert.ok(!added.some((n) => n.inputs.includes(unused)));
  assert.equal(added.filter((n) => n.op === 'MatMul').length, 1);
});

test('lazy broadcast gradients of sums and means: correct through broadcasting ops, and no full-size Expand', async () => {
  // The lazy gradient meets a broadcasting Add (must be expanded first: b's gradient is a count).
  await check('mean(a + b)', (_g, a, b) => ops.reduceMean(ops.add(a, b), [0, 1]), [
    { name: 'a', shape: [2, 3] },
    { name: 'b', shape: [3] },
  ]);
  // ... flows through same-shape elementwise ops, then meets a MatMul and a Softmax.
  await check(
    'sum(exp(softmax(a @ w)) * c)',
    (_g, a, w, c) => ops.reduceSum(ops.mul(ops.exp(ops.softmax(ops.matmul(a, w), 1)), c), [1]),
    [
      { name: 'a', shape: [2, 3] },
      { name: 'w', shape: [3, 4] },
      { name: 'c', shape: [2, 4] },
    ],
  );
  const g = new Graph();
  const x = g.param('x', [64, 128]);
  const loss = ops.reduceMean(ops.mul(ops.exp(x), ops.tanh(x)), [0, 1]);
  const before = g.nodes.length;
  const [dx] = gradients(loss, [x]);
  assert.deepEqual(dx!.shape, [64, 128]);
  assert.ok(
    !g.nodes.slice(before).some((n) => n.op === 'Expand'),
    'no Expand: the mean gradient broadcasts inside the Mul',
  );
});
