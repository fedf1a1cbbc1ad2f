import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, type Tensor } from '../../src/graph/graph.js';
import { CompiledGraph, type HostTensor } from '../../src/graph/runtime.js';
import { gradients } from '../../src/graph/autodiff.js';
import { gradcheck, randn } from '../../src/graph/gradcheck.js';
import {
  BERT_ATTENTION_NAMES,
  WAV2VEC2_ATTENTION_NAMES,
  multiHeadAttention,
  relativePositionBucket,
  scaledDotProductAttention,
  type AttentionOptions,
} from '../../src/graph/layers/attention.js';

const f64 = (data: ArrayLike<number>, shape: number[]): HostTensor => ({
  dtype: 'float64',
  shape,
  data: Float64Array.from(data),
});

const [B, Tq, Tk, D, H] = [2, 3, 4, 8, 2];
// Batch row 0: keys 0..2 real; row 1: no real key (all padding).
const KEY_MASK = [1, 1, 1, 0, 0, 0, 0, 0];

/** y = x W^T + b for rows of x; W is [out, in]. */
function linearRef(
  x: Float64Array,
  w: Float64Array,
  b: Float64Array,
  inF: number,
  outF: number,
): Float64Array {
  const rows = x.length / inF;
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outF; o++) {
      let s = b[o];
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
      y[r * outF + o] = s;
    }
  return y;
}

interface RefParams {
  [name: string]: Float64Array;
}

/** Plain float64 multi-head attention: the reference the graph must match. */
function attentionRef(
  x: Float64Array,
  kv: Float64Array,
  p: RefParams,
  names: { query: string; key: string; value: string; output: string },
  opts: { mask?: number[]; bias?: Float64Array; tq: number; tk: number },
): { out: Float64Array; probs: Float64Array } {
  const { tq, tk } = opts;
  const dh = D / H;
  const q = linearRef(x, p[`${names.query}.weight`], p[`${names.query}.bias`], D, D);
  const k = linearRef(kv, p[`${names.key}.weight`], p[`${names.key}.bias`], D, D);
  const v = linearRef(kv, p[`${names.value}.weight`], p[`${names.value}.bias`], D, D);
  const probs = new Float64Array(B * H * tq * tk);
  const ctx = new Float64Array(B * tq * D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < tq; i++) {
        const s: number[] = [];
        for (let j = 0; j < tk; j++) {
          let dot = 0;
          for (let e = 0; e < dh; e++)
            dot += q[(b * tq + i) * D + h * dh + e] * k[(b * tk + j) * D + h * dh + e];
          s.push(dot / Math.sqrt(dh) + (opts.bias ? opts.bias[(h * tq + i) * tk + j] : 0));
        }
        const keep = s.map((_, j) => !opts.mask || opts.mask[b * tk + j] === 1);
        const anyKeep = keep.some(Boolean);
        const live = s.map((v2, j) => (keep[j] || !anyKeep ? v2 : -Infinity));
        const m = anyKeep ? Math.max(...live) : 0;
        const e = live.map((v2) => (anyKeep ? Math.exp(v2 - m) : 1));
        const z = e.reduce((a, c) => a + c, 0);
        for (let j = 0; j < tk; j++) {
          const pr = e[j] / z;
          probs[((b * H + h) * tq + i) * tk + j] = pr;
          for (let d = 0; d < dh; d++)
            ctx[(b * tq + i) * D + h * dh + d] += pr * v[(b * tk + j) * D + h * dh + d];
        }
      }
  return { out: linearRef(ctx, p[`${names.output}.weight`], p[`${names.output}.bias`], D, D), probs };
}

/** Random values for every parameter of g, by short name (scope prefix removed). */
function paramFeeds(
  g: Graph,
  prefix: string,
  seed: number,
): { feeds: Record<string, HostTensor>; byName: RefParams } {
  const feeds: Record<string, HostTensor> = {};
  const byName: RefParams = {};
  let k = 0;
  for (const [name, { spec }] of g.params) {
    const n = spec.shape.reduce((a, c) => a * c, 1);
    const data = Float64Array.from(randn(n, seed + 31 * k++), (v) => 0.5 * v);
    feeds[name] = f64(data, [...spec.shape]);
    byName[name.slice(prefix.length + 1)] = data;
  }
  return { feeds, byName };
}

test('BERT-named self-attention matches a float64 reference, with a key mask (a fully padded row stays finite)', async () => {
  const g = new Graph({ floatType: 'float64' });
  const x = g.input('x', 'float64', ['batch', 'tokens', D]);
  const m = g.input('mask', 'float64', ['batch', 'tokens']);
  const { context, probs } = g.scope('encoder.layer.0', () =>
    multiHeadAttention(x, 'attention', {
      numHeads: H,
      names: BERT_ATTENTION_NAMES,
      mask: m,
      returnProbs: true,
    }),
  );
  g.output('out', context);
  g.output('probs', probs!);
  const names = [...g.params.keys()].sort();
  assert.deepEqual(names, [
    'encoder.layer.0.attention.output.dense.bias',
    'encoder.layer.0.attention.output.dense.weight',
    'encoder.layer.0.attention.self.key.bias',
    'encoder.layer.0.attention.self.key.weight',
    'encoder.layer.0.attention.self.query.bias',
    'encoder.layer.0.attention.self.query.weight',
    'encoder.layer.0.attention.self.value.bias',
    'encoder.layer.0.attention.self.value.weight',
  ]);
  const { feeds, byName } = paramFeeds(g, 'encoder.layer.0.attention', 3);
  const xs = randn(B * Tk * D, 1);
  const cg = await CompiledGraph.create(g);
  const out = await cg.run({ ...feeds, x: f64(xs, [B, Tk, D]), mask: f64(KEY_MASK, [B, Tk]) });
  await cg.release();
  const ref = attentionRef(xs, xs, byName, BERT_ATTENTION_NAMES, { mask: KEY_MASK, tq: Tk, tk: Tk });
  let worst = 0;
  (out.out.data as Float64Array).forEach((v, i) => (worst = Math.max(worst, Math.abs(v - ref.out[i]))));
  (out.probs.data as Float64Array).forEach((v, i) => (worst = Math.max(worst, Math.abs(v - ref.probs[i]))));
  assert.ok(worst < 1e-13, `worst error ${worst}`);
  // Padded keys get exactly zero weight; the all-padding row is uniform, not NaN.
  const p = out.probs.data as Float64Array;
  for (let h = 0; h < H; h++)
    for (let i = 0; i < Tk; i++) assert.equal(p[((0 * H + h) * Tk + i) * Tk + 3], 0);
  for (let i = H * Tk * Tk; i < p.length; i++) assert.equal(p[i], 1 / Tk);
});

test('wav2vec2-named cross-attention with a position bias matches the reference', async () => {
  const g = new Graph({ floatType: 'float64' });
  const x = g.input('x', 'float64', ['batch', 'text', D]);
  const kv = g.input('kv', 'float64', ['batch', 'speech', D]);
  const m = g.input('mask', 'bool', ['batch', 'speech']);
  const bias = g.input('bias', 'float64', [1, H, 'text', 'speech']);
  const { context } = multiHeadAttention(x, 'attention', { numHeads: H, kv, mask: m, positionBias: bias });
  g.output('out', context);
  assert.ok(g.params.has('attention.q_proj.weight') && g.params.has('attention.out_proj.bias'));
  const { feeds, byName } = paramFeeds(g, 'attention', 5);
  const xs = randn(B * Tq * D, 1);
  const kvs = randn(B * Tk * D, 2);
  const bs = randn(H * Tq * Tk, 4);
  const mask = [1, 1, 0, 1, 0, 1, 1, 1];
  const cg = await CompiledGraph.create(g);
  const out = await cg.run({
    ...feeds,
    x: f64(xs, [B, Tq, D]),
    kv: f64(kvs, [B, Tk, D]),
    mask: { dtype: 'bool', shape: [B, Tk], data: Uint8Array.from(mask) },
    bias: f64(bs, [1, H, Tq, Tk]),
  });
  await cg.release();
  const ref = attentionRef(xs, kvs, byName, WAV2VEC2_ATTENTION_NAMES, { mask, bias: bs, tq: Tq, tk: Tk });
  let worst = 0;
  (out.out.data as Float64Array).forEach((v, i) => (worst = Math.max(worst, Math.abs(v - ref.out[i]))));
  assert.ok(worst < 1e-13, `worst error ${worst}`);
});

test('scaledDotProductAttention passes gradcheck with a key mask and a position bias', async () => {
  const dh = 3;
  const mask = Float64Array.from([1, 1, 0, 1, 0, 1, 1, 0]);
  const res = await gradcheck(
    (_g, q, k, v, bias, m) => scaledDotProductAttention(q, k, v, { positionBias: bias, mask: m }).context,
    [
      { name: 'q', shape: [B, H, Tq, dh] },
      { name: 'k', shape: [B, H, Tk, dh] },
      { name: 'v', shape: [B, H, Tk, dh] },
      { name: 'bias', shape: [1, H, Tq, Tk] },
      { name: 'm', shape: [B, Tk], data: mask, differentiate: false },
    ],
  );
  assert.ok(res.maxError < 1e-6, res.worst);
});

/** Central differences over every parameter element of a layer, against autodiff. */
async function paramGradcheck(
  build: (g: Graph, x: Tensor, kv: Tensor, m: Tensor) => Tensor,
  shapes: { x: number[]; kv: number[] },
  mask: number[],
): Promise<{ maxError: number; worst: string }> {
  const g = new Graph({ floatType: 'float64' });
  const x = g.input('x', 'float64', shapes.x);
  const kv = g.input('kv', 'float64', shapes.kv);
  const m = g.input('m', 'float64', [shapes.kv[0], shapes.kv[1]]);
  const y = build(g, x, kv, m);
  const r = g.input('r', 'float64', y.shape);
  const loss = y.mul(r).sum(Array.from({ length: y.rank }, (_, i) => i));
  const wrt = [x, kv, ...[...g.params.values()].map((p) => p.tensor)];
  const grads = gradients(loss, wrt);
  g.output('loss', loss);
  grads.forEach((d, i) => g.output(`d${i}`, d!));
  const { feeds } = paramFeeds(g, '', 9);
  const n = (s: readonly (number | string)[]) => (s as number[]).reduce((a, c) => a * c, 1);
  feeds.x = f64(randn(n(shapes.x), 1), shapes.x);
  feeds.kv = f64(randn(n(shapes.kv), 2), shapes.kv);
  feeds.m = f64(mask, [shapes.kv[0], shapes.kv[1]]);
  feeds.r = f64(randn(n(y.shape), 3), y.shape as number[]);
  const cg = await CompiledGraph.create(g, { threads: 1 });
  const analytic = await cg.run(feeds);
  let maxError = 0;
  let worst = '';
  const eps = 1e-5;
  for (let i = 0; i < wrt.length; i++) {
    const data = feeds[wrt[i].name].data as Float64Array;
    const ga = analytic[`d${i}`].data as Float64Array;
    for (let j = 0; j < data.length; j++) {
      const orig = data[j];
      data[j] = orig + eps;
      const lp = (await cg.run(feeds, ['loss'])).loss.data[0] as number;
      data[j] = orig - eps;
      const lm = (await cg.run(feeds, ['loss'])).loss.data[0] as number;
      data[j] = orig;
      const num = (lp - lm) / (2 * eps);
      // Absolute scale 1e-3: the key bias has zero gradient in theory (softmax ignores it).
      const err = Math.abs(ga[j] - num) / Math.max(Math.abs(num), 1e-3);
      if (err > maxError) {
        maxError = err;
        worst = `${wrt[i].name}[${j}]: analytic ${ga[j]}, numeric ${num}`;
      }
    }
  }
  await cg.release();
  return { maxError, worst };
}

test('multiHeadAttention: gradients of inputs and all projection weights pass finite differences (masked cross-attention)', async () => {
  const res = await paramGradcheck(
    (_g, x, kv, m) => multiHeadAttention(x, 'attn', { numHeads: H, kv, mask: m }).context,
    { x: [B, Tq, D], kv: [B, Tk, D] },
    [1, 1, 0, 1, 1, 0, 0, 0],
  );
  assert.ok(res.maxError < 1e-6, res.worst);
});

test('options: custom score function, additive mask, separate value source, dropout on probabilities, shape errors', async () => {
  const g = new Graph({ floatType: 'float64', training: true, seed: 4 });
  const x = g.input('x', 'float64', ['batch', 'time', D]);
  const add = g.input('add', 'float64', ['batch', 1, 1, 'time']);
  let called = 0;
  const opts = (extra: Partial<AttentionOptions>): AttentionOptions => ({
    numHeads: H,
    returnProbs: true,
    ...extra,
  });
  const custom = multiHeadAttention(
    x,
    'a1',
    opts({ scores: (q, k) => (called++, q.matmul(k.transpose([0, 1, 3, 2])).mul(0)) }),
  );
  assert.equal(called, 1);
  const additive = multiHeadAttention(x, 'a2', opts({ additiveMask: add }));
  const dropped = multiHeadAttention(x, 'a3', opts({ dropout: 0.5 }));
  g.output('uniform', custom.probs!);
  g.output('addp', additive.probs!);
  g.output('drop', dropped.context);
  assert.ok(g.nodes.some((n) => n.op === 'RandomUniformLike' && n.scope.startsWith('a3')));
  const { feeds } = paramFeeds(g, '', 2);
  const cg = await CompiledGraph.create(g);
  const run = () =>
    cg.run({
      ...feeds,
      x: f64(randn(B * Tk * D, 1), [B, Tk, D]),
      add: f64([0, 0, -1e9, 0, 0, -1e9, -1e9, -1e9], [B, 1, 1, Tk]),
    });
  const o1 = await run();
  const o2 = await run();
  await cg.release();
  assert.ok(
    (o1.uniform.data as Float64Array).every((v) => v === 1 / Tk),
    'zero scores give uniform weights',
  );
  const ap = o1.addp.data as Float64Array;
  for (let h = 0; h < H; h++) for (let i = 0; i < Tk; i++) assert.equal(ap[(h * Tk + i) * Tk + 2], 0);
  assert.notDeepEqual(o1.drop.data, o2.drop.data, 'attention dropout differs between steps');

  const e = new Graph();
  const xe = e.input('x', 'float32', ['batch', 'text', 8]);
  const kve = e.input('kv', 'float32', ['batch', 'speech', 8]);
  assert.throws(
    () =>
      multiHeadAttention(xe, 'att', {
        numHeads: 2,
        kv: kve,
        mask: e.input('m', 'float32', ['batch', 'text']),
      }),
    /attention.*mask must be \[B, Tk\] = \[batch, speech\]/s,
  );
  assert.throws(() => multiHeadAttention(xe, 'att2', { numHeads: 3 }), /divisible by numHeads 3/);
  assert.throws(
    () =>
      multiHeadAttention(xe, 'att3', {
        numHeads: 2,
        kv: kve,
        positionBias: e.input('pb', 'float32', [1, 2, 'speech', 'text']),
      }),
    /positionBias must broadcast/,
  );
});

test('relativePositionBucket follows the WavLM / T5 bucketing', () => {
  const T = 1001;
  const buckets = relativePositionBucket(1, T); // query 0: offsets 0..1000 (all > 0 but the first)
  const at = (rel: number) => Number(buckets[rel]);
  assert.equal(at(0), 0);
  assert.equal(at(1), 161);
  assert.equal(at(79), 160 + 79);
  assert.equal(at(80), 160 + 80); // first log bucket: 80 + trunc(0)
  assert.equal(at(100), 160 + 80 + Math.trunc((Math.log(100 / 80) / Math.log(10)) * 80));
  assert.equal(at(1000), 319); // beyond max distance: the last bucket
  const back = relativePositionBucket(T, 1); // key 0 seen from queries 0..1000: offsets <= 0
  assert.equal(Number(back[5]), 5);
  assert.equal(Number(back[799]), 80 + Math.trunc((Math.log(799 / 80) / Math.log(10)) * 80));
  assert.equal(Number(back[1000]), 159);
  const uni = relativePositionBucket(2, 2, { numBuckets: 32, maxDistance: 128, bidirectional: false });
  assert.deepEqual(Array.from(uni, Number), [0, 0, 1, 0]);
});
