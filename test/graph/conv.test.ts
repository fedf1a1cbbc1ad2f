/**
 * conv1d: forward against a plain-JS float64 direct convolution, and the gradient rule
 * (float32 Conv / ConvTranspose on ONNX Runtime, which has no float64 Conv) against
 * central differences of that independent float64 reference. The float64 im2col
 * lowering is checked the same way at float64 tolerance, and by gradcheck.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gradients } from '../../src/graph/autodiff.js';
import { gradcheck, randn } from '../../src/graph/gradcheck.js';
import { Graph, type Tensor } from '../../src/graph/graph.js';
import { conv1d, conv1dOutputLength } from '../../src/graph/ops/index.js';
import { CompiledGraph, type HostTensor } from '../../src/graph/runtime.js';
import { conv1dLayer, weightNorm, weightNormConv1d } from '../../src/graph/layers/conv.js';

interface Case {
  name: string;
  n: number;
  cIn: number;
  cOut: number;
  t: number;
  k: number;
  stride?: number;
  padding?: number | [number, number];
  dilation?: number;
  groups?: number;
  bias?: boolean;
}

/** Direct float64 convolution: y[n, o, t] = b[o] + sum_{c,k} w[o,c,k] xpad[n, g*Cg + c, t*s + k*d]. */
function convRef(
  c: Case,
  x: Float64Array,
  w: Float64Array,
  b: Float64Array | null,
): { y: Float64Array; tOut: number } {
  const s = c.stride ?? 1;
  const d = c.dilation ?? 1;
  const G = c.groups ?? 1;
  const [l, r] = typeof c.padding === 'number' ? [c.padding, c.padding] : (c.padding ?? [0, 0]);
  const cg = c.cIn / G;
  const og = c.cOut / G;
  const tOut = Math.floor((c.t + l + r - d * (c.k - 1) - 1) / s) + 1;
  const y = new Float64Array(c.n * c.cOut * tOut);
  for (let n = 0; n < c.n; n++)
    for (let o = 0; o < c.cOut; o++) {
      const gr = Math.floor(o / og);
      for (let t = 0; t < tOut; t++) {
        let acc = b ? b[o] : 0;
        for (let ci = 0; ci < cg; ci++)
          for (let k = 0; k < c.k; k++) {
            const pos = t * s + k * d - l;
            if (pos < 0 || pos >= c.t) continue;
            acc += w[(o * cg + ci) * c.k + k] * x[(n * c.cIn + gr * cg + ci) * c.t + pos];
          }
        y[(n * c.cOut + o) * tOut + t] = acc;
      }
    }
  return { y, tOut };
}

/** Central differences of loss = sum(convRef(...) * proj) w.r.t. every element of `which`. */
function numericGrad(
  c: Case,
  x: Float64Array,
  w: Float64Array,
  b: Float64Array | null,
  proj: Float64Array,
  which: 'x' | 'w' | 'b',
): Float64Array {
  const loss = (): number => {
    const { y } = convRef(c, x, w, b);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i] * proj[i];
    return s;
  };
  const v = which === 'x' ? x : which === 'w' ? w : b!;
  const out = new Float64Array(v.length);
  const eps = 1e-3; // the loss is linear in each operand: the difference is exact up to rounding
  for (let i = 0; i < v.length; i++) {
    const o = v[i];
    v[i] = o + eps;
    const lp = loss();
    v[i] = o - eps;
    const lm = loss();
    v[i] = o;
    out[i] = (lp - lm) / (2 * eps);
  }
  return out;
}

/** Worst |a - b| / max(|b|, floor). */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-3): number {
  assert.equal(a.length, b.length, 'lengths differ');
  let worst = 0;
  for (let i = 0; i < a.length; i++)
    worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor));
  return worst;
}

const CASES: Case[] = [
  { name: 'plain', n: 2, cIn: 3, cOut: 4, t: 11, k: 3, bias: true },
  {
    name: 'stride 2, pads [1,2], dilation 2, odd T',
    n: 2,
    cIn: 2,
    cOut: 3,
    t: 17,
    k: 3,
    stride: 2,
    padding: [1, 2],
    dilation: 2,
    bias: true,
  },
  {
    name: 'groups 2, stride 3, pad 2',
    n: 2,
    cIn: 4,
    cOut: 6,
    t: 13,
    k: 4,
    stride: 3,
    padding: 2,
    groups: 2,
    bias: true,
  },
  {
    name: 'depthwise (conformer), same padding',
    n: 2,
    cIn: 5,
    cOut: 5,
    t: 9,
    k: 5,
    padding: 2,
    groups: 5,
    bias: true,
  },
  {
    name: 'depthwise x2 multiplier, stride 2, dilation 3',
    n: 1,
    cIn: 3,
    cOut: 6,
    t: 20,
    k: 3,
    stride: 2,
    dilation: 3,
    padding: [0, 1],
    groups: 3,
  },
  {
    name: 'wav2vec2 first layer shape (k10 s5), stride not dividing',
    n: 2,
    cIn: 1,
    cOut: 8,
    t: 53,
    k: 10,
    stride: 5,
  },
  // Stride 1 with uneven pads: the input gradient's Conv takes pads (K-1)*d - pad per side.
  { name: 'causal depthwise (pads [K-1, 0])', n: 2, cIn: 3, cOut: 3, t: 9, k: 4, padding: [3, 0], groups: 3 },
  {
    name: 'stride 1, pads [2, 1], dilation 2',
    n: 2,
    cIn: 2,
    cOut: 3,
    t: 10,
    k: 3,
    padding: [2, 1],
    dilation: 2,
    bias: true,
  },
  { name: 'stride 1, pad wider than the reach [0, 4]', n: 1, cIn: 2, cOut: 2, t: 7, k: 3, padding: [0, 4] },
  { name: 'stride > kernel', n: 2, cIn: 2, cOut: 2, t: 15, k: 2, stride: 4, padding: [0, 3], bias: true },
  {
    name: 'stride 1, pad wider than the kernel reach',
    n: 2,
    cIn: 2,
    cOut: 3,
    t: 6,
    k: 2,
    padding: [3, 1],
    bias: true,
  },
  { name: 'pointwise (conformer)', n: 2, cIn: 4, cOut: 6, t: 7, k: 1, bias: true },
  { name: 'pointwise, stride 2, pads [1, 0]', n: 2, cIn: 3, cOut: 2, t: 8, k: 1, stride: 2, padding: [1, 0] },
];

interface RunResult {
  y: HostTensor;
  gx: HostTensor;
  gw: HostTensor;
  gb?: HostTensor;
  graph: Graph;
}

type Dims = 'static' | 'time' | 'batch+time';

async function runConv(
  c: Case,
  dtype: 'float32' | 'float64',
  dims: Dims,
  impl?: 'conv' | 'im2col',
): Promise<RunResult & { x: Float64Array; w: Float64Array; b: Float64Array | null; proj: Float64Array }> {
  const g = new Graph({ name: 'conv', floatType: dtype });
  const x = g.input(
    'x',
    dtype,
    dims === 'static' ? [c.n, c.cIn, c.t] : [dims === 'time' ? c.n : 'batch', c.cIn, 'time'],
  );
  const w = g.input('w', dtype, [c.cOut, c.cIn / (c.groups ?? 1), c.k]);
  const b = c.bias ? g.input('b', dtype, [c.cOut]) : null;
  const y = conv1d(x, w, b, {
    stride: c.stride,
    padding: c.padding,
    dilation: c.dilation,
    groups: c.groups,
    impl,
  });
  const tOut = conv1dOutputLength(c.t, c.k, c)!;
  if (dims !== 'static') {
    assert.equal(y.shape[0], dims === 'time' ? c.n : 'batch');
    assert.equal(typeof y.shape[2], 'string', 'symbolic T gives a derived output length');
  } else assert.deepEqual(y.shape, [c.n, c.cOut, tOut]);
  const r = g.input('r', dtype, y.shape);
  const loss = y.mul(r).sum([0, 1, 2]);
  const wrt: Tensor[] = b ? [x, w, b] : [x, w];
  const grads = gradients(loss, wrt);
  g.output('y', y);
  g.output('gx', grads[0]!);
  g.output('gw', grads[1]!);
  if (b) g.output('gb', grads[2]!);
  const xd = randn(c.n * c.cIn * c.t, 11);
  const wd = randn(c.cOut * (c.cIn / (c.groups ?? 1)) * c.k, 12);
  const bd = c.bias ? randn(c.cOut, 13) : null;
  const proj = randn(c.n * c.cOut * tOut, 14);
  const as = (a: Float64Array) => (dtype === 'float32' ? Float32Array.from(a) : a);
  const feeds: Record<string, HostTensor> = {
    x: { dtype, shape: [c.n, c.cIn, c.t], data: as(xd) },
    w: { dtype, shape: [c.cOut, c.cIn / (c.groups ?? 1), c.k], data: as(wd) },
    r: { dtype, shape: [c.n, c.cOut, tOut], data: as(proj) },
  };
  if (bd) feeds.b = { dtype, shape: [c.cOut], data: as(bd) };
  const cg = await CompiledGraph.create(g, { threads: 1 });
  const out = await cg.run(feeds);
  await cg.release();
  // The float32 run saw float32-rounded values: the reference uses the same ones.
  const back = (a: Float64Array) => (dtype === 'float32' ? Float64Array.from(Float32Array.from(a)) : a);
  return {
    y: out.y,
    gx: out.gx,
    gw: out.gw,
    gb: out.gb,
    graph: g,
    x: back(xd),
    w: back(wd),
    b: bd ? back(bd) : null,
    proj: back(proj),
  };
}

async function checkCase(
  c: Case,
  dtype: 'float32' | 'float64',
  dims: Dims,
  tol: number,
  impl?: 'conv' | 'im2col',
): Promise<number> {
  const res = await runConv(c, dtype, dims, impl);
  const ref = convRef(c, res.x, res.w, res.b);
  assert.deepEqual(res.y.shape, [c.n, c.cOut, ref.tOut], `${c.name}: output shape`);
  const errs = {
    y: relErr(res.y.data as Float32Array, ref.y),
    x: relErr(res.gx.data as Float32Array, numericGrad(c, res.x, res.w, res.b, res.proj, 'x')),
    w: relErr(res.gw.data as Float32Array, numericGrad(c, res.x, res.w, res.b, res.proj, 'w')),
    b: res.gb ? relErr(res.gb.data as Float32Array, numericGrad(c, res.x, res.w, res.b, res.proj, 'b')) : 0,
  };
  for (const [k, e] of Object.entries(errs))
    assert.ok(e < tol, `${c.name} (${dtype}, symbolic: ${dims}): ${k} error ${e} >= ${tol}`);
  return Math.max(...Object.values(errs));
}

test('conv1d (ONNX Conv, float32): forward and gradients vs float64 JS reference, static shapes', async () => {
  let worst = 0;
  for (const c of CASES) worst = Math.max(worst, await checkCase(c, 'float32', 'static', 1e-3));
  console.log(`  conv1d float32 static: worst relative error ${worst.toExponential(2)}`);
});

test('conv1d (ONNX Conv, float32): symbolic T, and symbolic batch + T (other weight-gradient path)', async () => {
  let worst = 0;
  for (const c of CASES) {
    worst = Math.max(worst, await checkCase(c, 'float32', 'time', 1e-3));
    worst = Math.max(worst, await checkCase(c, 'float32', 'batch+time', 1e-3));
  }
  console.log(`  conv1d float32 symbolic: worst relative error ${worst.toExponential(2)}`);
});

test('conv1d im2col lowering (float64): forward and gradients vs JS reference at 1e-9', async () => {
  let worst = 0;
  for (const c of CASES) {
    worst = Math.max(worst, await checkCase(c, 'float64', 'static', 1e-9));
    worst = Math.max(worst, await checkCase(c, 'float64', 'batch+time', 1e-9));
  }
  console.log(`  conv1d float64 im2col: worst relative error ${worst.toExponential(2)}`);
});

test('conv1d im2col (float32, forced) agrees with the Conv form', async () => {
  const c = CASES[2];
  const a = await runConv(c, 'float32', 'static', 'conv');
  const b = await runConv(c, 'float32', 'static', 'im2col');
  assert.ok(relErr(a.y.data as Float32Array, Array.from(b.y.data as Float32Array)) < 1e-5);
  assert.ok(relErr(a.gw.data as Float32Array, Array.from(b.gw.data as Float32Array)) < 1e-5);
  assert.ok(relErr(a.gx.data as Float32Array, Array.from(b.gx.data as Float32Array)) < 1e-5);
});

test('conv1d float64 passes gradcheck (finite differences through the engine)', async () => {
  const r = await gradcheck(
    (_g, x, w, b) => conv1d(x, w, b, { stride: 2, padding: [1, 0], dilation: 2, groups: 2 }),
    [
      { name: 'x', shape: [2, 4, 10] },
      { name: 'w', shape: [4, 2, 3] },
      { name: 'b', shape: [4] },
    ],
  );
  assert.ok(r.maxError < 1e-6, r.worst);
});

test('causal conv1d (stride 1, pads [K-1, 0]) float64 passes gradcheck', async () => {
  const r = await gradcheck(
    (_g, x, w, b) => conv1d(x, w, b, { padding: [2, 0], groups: 2 }),
    [
      { name: 'x', shape: [2, 4, 7] },
      { name: 'w', shape: [4, 2, 3] },
      { name: 'b', shape: [4] },
    ],
  );
  assert.ok(r.maxError < 1e-6, r.worst);
});

test('conv1d: no input-gradient nodes when the input needs no gradient (raw waveform)', () => {
  const convs = (withX: boolean, stride: number): string[] => {
    const g = new Graph({ name: 'w2v' });
    const x = g.input('wave', 'float32', ['batch', 1, 'samples']);
    const w = g.param('w', [8, 1, 10]);
    const y = conv1d(x, w, null, { stride });
    const loss = y.mul(y).mean([0, 1, 2]);
    gradients(loss, withX ? [w, x] : [w]);
    return g.nodes
      .filter((n) => n.op === 'Conv' || n.op === 'ConvTranspose')
      .map((n) => n.op)
      .sort();
  };
  // forward Conv + the weight-gradient Conv; the input gradient adds a ConvTranspose (stride 5) or a Conv (stride 1).
  assert.deepEqual(convs(false, 5), ['Conv', 'Conv']);
  assert.deepEqual(convs(true, 5), ['Conv', 'Conv', 'ConvTranspose']);
  assert.deepEqual(convs(false, 1), ['Conv', 'Conv']);
  assert.deepEqual(convs(true, 1), ['Conv', 'Conv', 'Conv']);
});

test('conv1d: shape inference and clear errors', () => {
  const g = new Graph({ name: 'errs' });
  const x = g.input('x', 'float32', [2, 4, 20]);
  const w = (s: number[]) => g.input(`w${s.join('_')}_${g.inputs.length}`, 'float32', s);
  assert.deepEqual(conv1d(x, w([6, 4, 3]), null, { stride: 2, padding: 1 }).shape, [2, 6, 10]);
  assert.deepEqual(conv1d(x, w([6, 2, 3]), null, { groups: 2, dilation: 3 }).shape, [2, 6, 14]);
  assert.throws(() => conv1d(x, w([6, 3, 3])), /input has 4 channels but the weight expects 3/);
  assert.throws(
    () => conv1d(x, w([6, 4, 3]), null, { groups: 3 }),
    /groups 3 does not divide the 4 input channels/,
  );
  assert.throws(
    () => conv1d(x, w([5, 2, 3]), null, { groups: 2 }),
    /groups 2 does not divide the 5 output channels/,
  );
  assert.throws(() => conv1d(x, w([6, 4, 30])), /shorter than the kernel's span 30/);
  assert.throws(() => conv1d(x, w([6, 4, 3]), null, { padding: -1 }), /padding must be integers >= 0/);
  assert.throws(
    () => conv1d(x, w([6, 4, 3]), null, { stride: 0 }),
    /stride, dilation and groups must be integers >= 1/,
  );
  assert.throws(() => conv1d(x, w([6, 4, 3]), w([5])), /bias must be \[6\]/);
  assert.throws(
    () => conv1d(g.input('x2', 'float32', [4, 20]), w([6, 4, 3])),
    /Conv in .*: conv1d input must be \[batch, channels, time\]/,
  );
  assert.throws(() => conv1d(x, g.input('w64', 'float64', [6, 4, 3])), /dtype mismatch/);
});

// ---- layers ----

async function runLayer(
  build: (x: Tensor) => Tensor,
  xShape: number[],
  x: Float64Array,
  params: Record<string, Float64Array>,
): Promise<{ y: Float64Array; graph: Graph }> {
  const g = new Graph({ name: 'layer' });
  g.output('y', build(g.input('x', 'float32', xShape)));
  const feeds: Record<string, HostTensor> = {
    x: { dtype: 'float32', shape: xShape, data: Float32Array.from(x) },
  };
  for (const { spec } of g.params.values()) {
    assert.ok(params[spec.name], `no test value for param ${spec.name}`);
    feeds[spec.name] = { dtype: 'float32', shape: spec.shape, data: Float32Array.from(params[spec.name]) };
  }
  const cg = await CompiledGraph.create(g, { threads: 1 });
  const out = await cg.run(feeds);
  await cg.release();
  return { y: Float64Array.from(out.y.data as Float32Array), graph: g };
}

test('conv1dLayer: torch Conv1d names, shapes, init, forward vs JS', async () => {
  const c: Case = {
    name: 'layer',
    n: 2,
    cIn: 4,
    cOut: 6,
    t: 15,
    k: 3,
    stride: 2,
    padding: 1,
    groups: 2,
    bias: true,
  };
  const x = randn(c.n * c.cIn * c.t, 21);
  const w = randn(c.cOut * 2 * c.k, 22);
  const b = randn(c.cOut, 23);
  const { y, graph } = await runLayer(
    (xt) =>
      conv1dLayer(xt, 'conv_layers.0.conv', { outChannels: 6, kernel: 3, stride: 2, padding: 1, groups: 2 }),
    [c.n, c.cIn, c.t],
    x,
    { 'conv_layers.0.conv.weight': w, 'conv_layers.0.conv.bias': b },
  );
  const wSpec = graph.params.get('conv_layers.0.conv.weight')!.spec;
  assert.deepEqual(wSpec.shape, [6, 2, 3]);
  const bound = 1 / Math.sqrt(2 * 3);
  assert.deepEqual(wSpec.init, { kind: 'uniform', low: -bound, high: bound });
  assert.deepEqual(graph.params.get('conv_layers.0.conv.bias')!.spec.shape, [6]);
  assert.ok(relErr(y, convRef(c, x, w, b).y) < 1e-4);
  const g2 = new Graph();
  conv1dLayer(g2.input('x', 'float32', [1, 1, 100]), 'c', {
    outChannels: 8,
    kernel: 10,
    stride: 5,
    bias: false,
  });
  assert.deepEqual([...g2.params.keys()], ['c.weight']);
  assert.throws(
    () => conv1dLayer(g2.input('x2', 'float32', [1, 'ch', 100]), 'd', { outChannels: 8, kernel: 3 }),
    /conv1dLayer.*'d' needs input \[batch, channels, time\] with static channels/s,
  );
});

/** torch's _weight_norm(v, g, dim=2) in JS: w[o,c,k] = g[k] * v[o,c,k] / ||v[:,:,k]||. */
function weightNormRef(v: Float64Array, gain: Float64Array, [O, Cg, K]: number[], dim: number): Float64Array {
  const keptSize = [O, Cg, K][dim];
  const norms = new Float64Array(keptSize);
  const keptIndex = (i: number) =>
    dim === 2 ? i % K : dim === 1 ? Math.floor(i / K) % Cg : Math.floor(i / (Cg * K));
  v.forEach((x, i) => (norms[keptIndex(i)] += x * x));
  return v.map((x, i) => (gain[keptIndex(i)] * x) / Math.sqrt(norms[keptIndex(i)]));
}

test('weightNormConv1d: both checkpoint naming schemes, g shape per dim, forward vs JS', async () => {
  // wav2vec2 pos_conv_embed shape, scaled down: Conv1d(C, C, K, padding K/2, groups).
  const c: Case = { name: 'pos_conv', n: 2, cIn: 8, cOut: 8, t: 12, k: 6, padding: 3, groups: 4, bias: true };
  const x = randn(c.n * c.cIn * c.t, 31);
  const v = randn(8 * 2 * 6, 32);
  const b = randn(8, 34);
  for (const [dim, gLen] of [
    [2, 6],
    [0, 8],
  ] as const) {
    const gain = randn(gLen, 33).map((t) => 0.5 + Math.abs(t));
    for (const names of ['legacy', 'parametrizations'] as const) {
      const [gName, vName] =
        names === 'legacy'
          ? ['pos_conv_embed.conv.weight_g', 'pos_conv_embed.conv.weight_v']
          : [
              'pos_conv_embed.conv.parametrizations.weight.original0',
              'pos_conv_embed.conv.parametrizations.weight.original1',
            ];
      const { y, graph } = await runLayer(
        (xt) =>
          weightNormConv1d(xt, 'pos_conv_embed.conv', {
            outChannels: 8,
            kernel: 6,
            padding: 3,
            groups: 4,
            dim,
            paramNames: names,
          }),
        [c.n, c.cIn, c.t],
        x,
        { [gName]: gain, [vName]: v, 'pos_conv_embed.conv.bias': b },
      );
      assert.deepEqual([...graph.params.keys()], [gName, vName, 'pos_conv_embed.conv.bias']);
      assert.deepEqual(graph.params.get(gName)!.spec.shape, dim === 2 ? [1, 1, 6] : [8, 1, 1]);
      assert.deepEqual(graph.params.get(vName)!.spec.shape, [8, 2, 6]);
      const err = relErr(y, convRef(c, x, weightNormRef(v, gain, [8, 2, 6], dim), b).y);
      assert.ok(err < 1e-4, `dim ${dim} ${names}: ${err}`);
    }
  }
});

test('weight-norm conv: gradients w.r.t. x, v, g, bias by finite differences (float64)', async () => {
  const r = await gradcheck(
    (_g, x, v, gain, b) => conv1d(x, weightNorm(v, gain, 2), b, { padding: 2, groups: 2 }),
    [
      { name: 'x', shape: [2, 4, 7] },
      { name: 'v', shape: [4, 2, 4] },
      { name: 'gain', shape: [1, 1, 4] },
      { name: 'b', shape: [4] },
    ],
  );
  assert.ok(r.maxError < 1e-6, r.worst);
});
