/** Activations: forward against float64 JS formulas, gradients by float64 finite differences. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gradients } from '../../src/graph/autodiff.js';
import { gradcheck, randn } from '../../src/graph/gradcheck.js';
import { Graph, type Tensor } from '../../src/graph/graph.js';
import { gelu, geluTanh, glu, silu, swish } from '../../src/graph/layers/activations.js';
import { CompiledGraph } from '../../src/graph/runtime.js';

/** erf by its Maclaurin series: for |x| <= 3.5 the cancellation error stays below 1e-12. */
function erfRef(x: number): number {
  let sum = 0;
  let p = x; // (-1)^n x^(2n+1) / n!
  for (let n = 0; n < 400; n++) {
    const t = p / (2 * n + 1);
    sum += t;
    if (Math.abs(t) < 1e-18) break;
    p *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
const sigmoidRef = (x: number): number => 1 / (1 + Math.exp(-x));

// Inputs from -3.5 to 3.5 plus random values.
const XS = Float64Array.from([...Array.from({ length: 29 }, (_, i) => -3.5 + i * 0.25), ...randn(19, 3)]);

async function run(
  fn: (x: Tensor) => Tensor,
  dtype: 'float32' | 'float64',
  x: Float64Array,
  shape: number[],
): Promise<{ y: Float64Array; shape: number[] }> {
  const g = new Graph({ name: 'act', floatType: dtype });
  g.output('y', fn(g.input('x', dtype, shape)));
  const cg = await CompiledGraph.create(g, { threads: 1 });
  const out = await cg.run({ x: { dtype, shape, data: dtype === 'float32' ? Float32Array.from(x) : x } });
  await cg.release();
  return { y: Float64Array.from(out.y.data as Float64Array), shape: [...out.y.shape] };
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('erf reference is right (known values)', () => {
  assert.ok(Math.abs(erfRef(1) - 0.8427007929497149) < 1e-15);
  assert.ok(Math.abs(erfRef(2) - 0.9953222650189527) < 1e-15);
  assert.ok(Math.abs(erfRef(-0.5) + 0.5204998778130465) < 1e-15);
  assert.ok(Math.abs(erfRef(3.5) - 0.9999992569016276) < 1e-12);
});

const REFS: [string, (x: Tensor) => Tensor, (x: number) => number][] = [
  ['gelu (erf)', gelu, (x) => 0.5 * x * (1 + erfRef(x / Math.SQRT2))],
  [
    'gelu (fused node in float32)',
    (t) => gelu(t, { fused: true }),
    (x) => 0.5 * x * (1 + erfRef(x / Math.SQRT2)),
  ],
  ['geluTanh', geluTanh, (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)))],
  ['silu', silu, (x) => x * sigmoidRef(x)],
];

test('activations: forward vs JS formulas (float64 at 1e-12, float32 at 1e-6)', async () => {
  for (const [name, fn, ref] of REFS) {
    const want = XS.map(ref);
    const e64 = maxAbs((await run(fn, 'float64', XS, [XS.length])).y, want);
    const e32 = maxAbs((await run(fn, 'float32', XS, [XS.length])).y, want);
    assert.ok(e64 < 1e-12, `${name} float64: ${e64}`);
    assert.ok(e32 < 1e-6, `${name} float32: ${e32}`);
  }
  // Spot values: gelu(1) = Phi(1), gelu(-1) = -Phi(-1), silu(1) = sigmoid(1).
  const y = (await run(gelu, 'float64', Float64Array.from([1, -1]), [2])).y;
  assert.ok(Math.abs(y[0] - 0.8413447460685429) < 1e-12 && Math.abs(y[1] + 0.15865525393145707) < 1e-12);
  assert.equal(swish, silu);
});

test('float32 forms (fused Gelu node with its own rule; x * sigmoid(x)): gradients vs float64 JS central differences', async () => {
  const cases: [string, (x: Tensor) => Tensor, (x: number) => number, string][] = [
    ['gelu (fused)', (t) => gelu(t, { fused: true }), (x) => 0.5 * x * (1 + erfRef(x / Math.SQRT2)), 'Gelu'],
    ['gelu (standard)', gelu, (x) => 0.5 * x * (1 + erfRef(x / Math.SQRT2)), 'Erf'],
    ['silu', silu, (x) => x * sigmoidRef(x), 'Sigmoid'],
  ];
  for (const [name, fn, ref, op] of cases) {
    const g = new Graph({ name: `${name}32` });
    const x = g.input('x', 'float32', [XS.length]);
    const y = fn(x);
    const r = g.input('r', 'float32', [XS.length]);
    const [dx] = gradients(y.mul(r).sum(0), [x]);
    g.output('dx', dx!);
    assert.ok(
      g.nodes.some((n) => n.op === op),
      `${name}: float32 uses ${op}`,
    );
    const cg = await CompiledGraph.create(g, { threads: 1 });
    const proj = randn(XS.length, 8);
    const out = await cg.run({
      x: { dtype: 'float32', shape: [XS.length], data: Float32Array.from(XS) },
      r: { dtype: 'float32', shape: [XS.length], data: Float32Array.from(proj) },
    });
    await cg.release();
    const x32 = Float64Array.from(Float32Array.from(XS));
    const p32 = Float64Array.from(Float32Array.from(proj));
    const h = 1e-5;
    const want = x32.map((v, i) => ((ref(v + h) - ref(v - h)) / (2 * h)) * p32[i]);
    const err = maxAbs(out.dx.data as Float32Array, want);
    assert.ok(err < 1e-5, `${name}: ${err}`);
  }
  // The Gelu rule against the closed form Phi(x) + x phi(x) at a few points, to 1e-6.
  const g = new Graph({ name: 'gelu-closed' });
  const x = g.input('x', 'float32', [5]);
  g.output('dx', gradients(gelu(x, { fused: true }).sum(0), [x])[0]!);
  const cg = await CompiledGraph.create(g, { threads: 1 });
  const pts = [-3, -1, 0, 0.5, 2];
  const out = await cg.run({ x: { dtype: 'float32', shape: [5], data: Float32Array.from(pts) } });
  await cg.release();
  const closed = pts.map(
    (v) => 0.5 * (1 + erfRef(v / Math.SQRT2)) + (v * Math.exp((-v * v) / 2)) / Math.sqrt(2 * Math.PI),
  );
  assert.ok(maxAbs(out.dx.data as Float32Array, closed) < 1e-6);
});

test('gelu: standard opset by default; the contrib node only where allowed (graph, subgraph) or asked', () => {
  const g = new Graph();
  const x = g.input('x', 'float32', [3]);
  gelu(x);
  assert.ok(!g.nodes.some((n) => n.domain), 'default: standard ops only');
  gelu(x, { fused: true });
  assert.equal(g.nodes.filter((n) => n.op === 'Gelu' && n.domain === 'com.microsoft').length, 1);
  const h = new Graph({ ortContribOps: true });
  const sub = new Graph({ parent: h });
  gelu(sub.input('y', 'float32', [3]));
  assert.equal(sub.nodes.filter((n) => n.op === 'Gelu').length, 1, 'a subgraph follows its root');
  const d = new Graph({ floatType: 'float64', ortContribOps: true });
  gelu(d.input('z', 'float64', [3]), { fused: true });
  assert.ok(!d.nodes.some((n) => n.domain), 'float64 has no contrib kernel: composition');
});

test('glu: halves along an axis, a * sigmoid(b), vs JS', async () => {
  const [A, B, C] = [2, 4, 3];
  const x = randn(A * B * C, 5);
  // axis 1 (conformer: GLU over channels of [N, 2C, T])
  const r1 = await run((t) => glu(t, 1), 'float64', x, [A, B, C]);
  assert.deepEqual(r1.shape, [A, B / 2, C]);
  const want1 = new Float64Array(A * (B / 2) * C);
  for (let a = 0; a < A; a++)
    for (let b = 0; b < B / 2; b++)
      for (let c = 0; c < C; c++)
        want1[(a * (B / 2) + b) * C + c] =
          x[(a * B + b) * C + c] * sigmoidRef(x[(a * B + b + B / 2) * C + c]);
  assert.ok(maxAbs(r1.y, want1) < 1e-12);
  // default axis -1
  const x2 = randn(3 * 6, 6);
  const r2 = await run((t) => glu(t), 'float64', x2, [3, 6]);
  const want2 = Array.from(
    { length: 9 },
    (_, i) => x2[Math.floor(i / 3) * 6 + (i % 3)] * sigmoidRef(x2[Math.floor(i / 3) * 6 + (i % 3) + 3]),
  );
  assert.ok(maxAbs(r2.y, want2) < 1e-12);
  const g = new Graph();
  assert.throws(() => glu(g.input('x', 'float32', [2, 5])), /glu.*static even size, got 5/s);
  assert.throws(() => glu(g.input('y', 'float32', [2, 'n'])), /static even size, got n/);
});

test('activations: gradients by finite differences (float64)', async () => {
  const data = Float64Array.from(XS.subarray(0, 24));
  for (const [name, fn] of [
    ...REFS.map(([n, f]) => [n, f] as const),
    ['glu axis 1', (t: Tensor) => glu(t, 1)] as const,
  ]) {
    const r = await gradcheck(
      (_g, x) => fn(x),
      [{ name: 'x', shape: [2, 4, 3], data: Float64Array.from(data) }],
    );
    assert.ok(r.maxError < 1e-6, `${name}: ${r.worst}`);
  }
});
