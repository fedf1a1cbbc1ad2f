/**
 * Normalisation layers: forward values against plain-JS float64 references, parameter
 * names and shapes (Hugging Face / PyTorch), and gradients by float64 finite differences.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gradients } from '../../src/graph/autodiff.js';
import { gradcheck, randn } from '../../src/graph/gradcheck.js';
import { Graph, type Tensor } from '../../src/graph/graph.js';
import {
  batchNorm1d,
  batchNorm1dWithStats,
  batchNormInference,
  batchNormTraining,
  bufferUpdates,
  groupNorm,
  groupNormalization,
  layerNormLayer,
} from '../../src/graph/layers/norm.js';
import { CompiledGraph, type HostTensor } from '../../src/graph/runtime.js';

type F = 'float32' | 'float64';

/** Builds `build` in a graph, feeds `x` and the named params, returns every output. */
async function runWith(
  dtype: F,
  xShape: (number | string)[],
  x: Float64Array,
  xRun: number[],
  build: (g: Graph, x: Tensor) => Record<string, Tensor>,
  params: Record<string, Float64Array>,
): Promise<{ out: Record<string, HostTensor>; graph: Graph }> {
  const g = new Graph({ name: 'norm', floatType: dtype });
  const xt = g.input('x', dtype, xShape);
  for (const [k, t] of Object.entries(build(g, xt))) g.output(k, t);
  const as = (a: Float64Array) => (dtype === 'float32' ? Float32Array.from(a) : a);
  const feeds: Record<string, HostTensor> = { x: { dtype, shape: xRun, data: as(x) } };
  for (const { spec } of g.params.values()) {
    const v = params[spec.name];
    assert.ok(v, `no test value for param ${spec.name}`);
    assert.equal(
      v.length,
      spec.shape.reduce((a, b) => a * b, 1),
      `size of ${spec.name}`,
    );
    feeds[spec.name] = { dtype, shape: spec.shape, data: as(v) };
  }
  const cg = await CompiledGraph.create(g, { threads: 1 });
  const out = await cg.run(feeds);
  await cg.release();
  return { out, graph: g };
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Normalises each of `groups` index sets of `x` in place-free fashion (biased variance). */
function normaliseSets(x: Float64Array, sets: number[][], eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (const set of sets) {
    let m = 0;
    for (const i of set) m += x[i];
    m /= set.length;
    let v = 0;
    for (const i of set) v += (x[i] - m) ** 2;
    v /= set.length;
    for (const i of set) y[i] = (x[i] - m) / Math.sqrt(v + eps);
  }
  return y;
}

// ---- LayerNorm ----

test('layerNormLayer: HF names, forward vs JS, symbolic leading dims', async () => {
  const [B, T, D] = [2, 3, 5];
  const x = randn(B * T * D, 1);
  const w = randn(D, 2);
  const b = randn(D, 3);
  for (const dtype of ['float32', 'float64'] as const) {
    const { out, graph } = await runWith(
      dtype,
      ['batch', 'time', D],
      x,
      [B, T, D],
      (_g, xt) => ({ y: layerNormLayer(xt, 'encoder.layer_norm', 1e-5) }),
      {
        'encoder.layer_norm.weight': w,
        'encoder.layer_norm.bias': b,
      },
    );
    assert.deepEqual([...graph.params.keys()], ['encoder.layer_norm.weight', 'encoder.layer_norm.bias']);
    assert.deepEqual(graph.params.get('encoder.layer_norm.weight')!.spec.init, { kind: 'ones' });
    const sets = Array.from({ length: B * T }, (_, r) => Array.from({ length: D }, (_, j) => r * D + j));
    const ref = normaliseSets(x, sets, 1e-5).map((v, i) => v * w[i % D] + b[i % D]);
    const err = maxAbs(out.y.data as Float64Array, ref);
    assert.ok(err < (dtype === 'float32' ? 1e-5 : 1e-6), `${dtype}: ${err}`);
  }
});

// ---- GroupNorm ----

function groupNormRef(
  x: Float64Array,
  [N, C, T]: number[],
  G: number,
  w: Float64Array | null,
  b: Float64Array | null,
  eps: number,
): Float64Array {
  const per = C / G;
  const sets: number[][] = [];
  for (let n = 0; n < N; n++)
    for (let gr = 0; gr < G; gr++) {
      const s: number[] = [];
      for (let c = gr * per; c < (gr + 1) * per; c++) for (let t = 0; t < T; t++) s.push((n * C + c) * T + t);
      sets.push(s);
    }
  const y = normaliseSets(x, sets, eps);
  return y.map((v, i) => {
    const c = Math.floor(i / T) % C;
    return v * (w ? w[c] : 1) + (b ? b[c] : 0);
  });
}

test('groupNorm: forward vs JS for groups = C (wav2vec2), 3 and 1; affine or not; both lowerings; symbolic T', async () => {
  const [N, C, T] = [2, 6, 7];
  const x = randn(N * C * T, 4).map((v, i) => v * 3 + (i % 5)); // non-zero means
  const w = randn(C, 5);
  const b = randn(C, 6);
  let worst32 = 0;
  let worst64 = 0;
  for (const G of [6, 3, 1])
    for (const affine of [true, false])
      for (const impl of ['fused', 'decomposed'] as const)
        for (const dtype of ['float32', 'float64'] as const)
          for (const symbolic of [false, true]) {
            const { out, graph } = await runWith(
              dtype,
              symbolic ? ['batch', C, 'time'] : [N, C, T],
              x,
              [N, C, T],
              (_g, xt) => {
                const y = groupNorm(xt, 'conv_layers.0.layer_norm', { groups: G, affine, impl, eps: 1e-5 });
                assert.deepEqual(y.shape, xt.shape);
                return { y };
              },
              affine ? { 'conv_layers.0.layer_norm.weight': w, 'conv_layers.0.layer_norm.bias': b } : {},
            );
            assert.equal(graph.params.size, affine ? 2 : 0);
            const err = maxAbs(
              out.y.data as Float64Array,
              groupNormRef(x, [N, C, T], G, affine ? w : null, affine ? b : null, 1e-5),
            );
            if (dtype === 'float32') worst32 = Math.max(worst32, err);
            else worst64 = Math.max(worst64, err);
          }
  console.log(
    `  groupNorm forward: worst |error| float32 ${worst32.toExponential(2)}, float64 ${worst64.toExponential(2)}`,
  );
  assert.ok(worst32 < 1e-5, `float32 ${worst32}`);
  assert.ok(worst64 < 1e-6, `float64 ${worst64}`);
});

test('groupNorm: gradients by finite differences (float64), both lowerings', async () => {
  for (const impl of ['fused', 'decomposed'] as const)
    for (const G of [4, 2]) {
      const r = await gradcheck(
        (_g, x, w, b) => groupNormalization(x, G, w, b, 1e-5, impl),
        [
          { name: 'x', shape: [2, 4, 5] },
          { name: 'w', shape: [4] },
          { name: 'b', shape: [4] },
        ],
      );
      assert.ok(r.maxError < 1e-5, `${impl} G=${G}: ${r.worst}`);
    }
});

test('groupNorm: errors name the layer and the sizes', () => {
  const g = new Graph({ name: 'gn' });
  const x = g.input('x', 'float32', [2, 6, 'time']);
  assert.throws(() => groupNorm(x, 'gn', { groups: 4 }), /4 groups do not divide the 6 channels/);
  assert.throws(
    () => groupNorm(g.input('x2', 'float32', [2, 6]), 'gn2', { groups: 3 }),
    /\[batch, channels, time\]/,
  );
});

// ---- BatchNorm1d ----

function batchStatsRef(x: Float64Array, [N, C, T]: number[]): { mean: Float64Array; varB: Float64Array } {
  const mean = new Float64Array(C);
  const varB = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let m = 0;
    for (let n = 0; n < N; n++) for (let t = 0; t < T; t++) m += x[(n * C + c) * T + t];
    m /= N * T;
    let v = 0;
    for (let n = 0; n < N; n++) for (let t = 0; t < T; t++) v += (x[(n * C + c) * T + t] - m) ** 2;
    mean[c] = m;
    varB[c] = v / (N * T);
  }
  return { mean, varB };
}

test('batchNorm1d eval form: running statistics, HF names, vs JS', async () => {
  const [N, C, T] = [3, 4, 5];
  const x = randn(N * C * T, 7);
  const p = {
    'conv_module.batch_norm.weight': randn(C, 8),
    'conv_module.batch_norm.bias': randn(C, 9),
    'conv_module.batch_norm.running_mean': randn(C, 10),
    'conv_module.batch_norm.running_var': randn(C, 11).map((v) => 0.5 + v * v),
  };
  for (const dtype of ['float32', 'float64'] as const) {
    const { out, graph } = await runWith(
      dtype,
      ['batch', C, 'time'],
      x,
      [N, C, T],
      (_g, xt) => ({ y: batchNorm1d(xt, 'conv_module.batch_norm', { training: false }) }),
      p,
    );
    assert.equal(graph.params.get('conv_module.batch_norm.running_mean')!.spec.trainable, false);
    assert.equal(graph.params.get('conv_module.batch_norm.running_var')!.spec.trainable, false);
    assert.deepEqual(graph.params.get('conv_module.batch_norm.running_var')!.spec.init, { kind: 'ones' });
    assert.equal(graph.trainableParams().length, 2);
    const ref = x.map((v, i) => {
      const c = Math.floor(i / T) % C;
      return (
        ((v - p['conv_module.batch_norm.running_mean'][c]) /
          Math.sqrt(p['conv_module.batch_norm.running_var'][c] + 1e-5)) *
          p['conv_module.batch_norm.weight'][c] +
        p['conv_module.batch_norm.bias'][c]
      );
    });
    const err = maxAbs(out.y.data as Float64Array, ref);
    assert.ok(err < (dtype === 'float32' ? 1e-5 : 1e-12), `${dtype}: ${err}`);
  }
});

test('batchNorm1d training form: batch statistics, running-stat updates (unbiased variance), rank 2 and 3', async () => {
  for (const shape of [
    [3, 4, 5],
    [6, 4],
  ]) {
    const [N, C] = shape;
    const T = shape[2] ?? 1;
    const x = randn(N * C * T, 12).map((v, i) => v * 2 + (i % 3));
    const p = {
      'bn.weight': randn(C, 13),
      'bn.bias': randn(C, 14),
      'bn.running_mean': randn(C, 15),
      'bn.running_var': randn(C, 16).map((v) => 0.5 + v * v),
    };
    const { out } = await runWith(
      'float64',
      shape,
      x,
      shape,
      (g, xt) => {
        const r = batchNorm1dWithStats(xt, 'bn', { momentum: 0.2, training: true });
        assert.equal(bufferUpdates(g).get('bn.running_mean'), r.runningMean);
        assert.equal(bufferUpdates(g).get('bn.running_var'), r.runningVar);
        return { y: r.y, rm: r.runningMean!, rv: r.runningVar! };
      },
      p,
    );
    const { mean, varB } = batchStatsRef(x, [N, C, T]);
    const ref = x.map((v, i) => {
      const c = Math.floor(i / T) % C;
      return ((v - mean[c]) / Math.sqrt(varB[c] + 1e-5)) * p['bn.weight'][c] + p['bn.bias'][c];
    });
    assert.ok(maxAbs(out.y.data as Float64Array, ref) < 1e-12);
    const n = N * T;
    const rm = p['bn.running_mean'].map((v, c) => 0.8 * v + 0.2 * mean[c]);
    const rv = p['bn.running_var'].map((v, c) => 0.8 * v + 0.2 * varB[c] * (n / (n - 1)));
    assert.ok(maxAbs(out.rm.data as Float64Array, rm) < 1e-12);
    assert.ok(maxAbs(out.rv.data as Float64Array, rv) < 1e-12);
  }
});

test('batchNorm1d follows the graph training flag', () => {
  const train = new Graph({ training: true });
  batchNorm1d(train.input('x', 'float32', [2, 3, 4]), 'bn');
  assert.equal(bufferUpdates(train).size, 2);
  const evalG = new Graph({ training: false });
  batchNorm1d(evalG.input('x', 'float32', [2, 3, 4]), 'bn');
  assert.equal(bufferUpdates(evalG).size, 0);
});

test('batchNorm: gradients by finite differences (float64), both forms', async () => {
  const train = await gradcheck(
    (_g, x, w, b) => batchNormTraining(x, w, b).y,
    [
      { name: 'x', shape: [3, 2, 4] },
      { name: 'w', shape: [2] },
      { name: 'b', shape: [2] },
    ],
  );
  assert.ok(train.maxError < 1e-5, train.worst);
  const evalForm = await gradcheck(
    (_g, x, rm, rv, w, b) => batchNormInference(x, rm, rv, w, b),
    [
      { name: 'x', shape: [3, 2, 4] },
      { name: 'rm', shape: [2] },
      { name: 'rv', shape: [2], data: Float64Array.from([0.7, 1.9]) },
      { name: 'w', shape: [2] },
      { name: 'b', shape: [2] },
    ],
  );
  assert.ok(evalForm.maxError < 1e-5, evalForm.worst);
});

test('groupNorm fused (InstanceNormalization, float32): gradient rule vs float64 JS central differences', async () => {
  const [N, C, T] = [2, 4, 9];
  const x = Float64Array.from(Float32Array.from(randn(N * C * T, 41).map((v, i) => v * 2 + (i % 7) * 0.3)));
  const w = Float64Array.from(Float32Array.from(randn(C, 42)));
  const b = Float64Array.from(Float32Array.from(randn(C, 43)));
  const proj = Float64Array.from(Float32Array.from(randn(N * C * T, 44)));
  let worst = 0;
  for (const G of [4, 2])
    for (const symbolic of [false, true]) {
      const g = new Graph({ name: 'gn32' });
      const xt = g.input('x', 'float32', symbolic ? ['batch', C, 'time'] : [N, C, T]);
      const wt = g.input('w', 'float32', [C]);
      const bt = g.input('b', 'float32', [C]);
      const y = groupNormalization(xt, G, wt, bt, 1e-5);
      assert.ok(g.nodes.some((n) => n.op === 'InstanceNormalization'));
      const rt = g.input('r', 'float32', xt.shape);
      const grads = gradients(y.mul(rt).sum([0, 1, 2]), [xt, wt, bt]);
      ['gx', 'gw', 'gb'].forEach((k, i) => g.output(k, grads[i]!));
      const cg = await CompiledGraph.create(g, { threads: 1 });
      const out = await cg.run({
        x: { dtype: 'float32', shape: [N, C, T], data: Float32Array.from(x) },
        w: { dtype: 'float32', shape: [C], data: Float32Array.from(w) },
        b: { dtype: 'float32', shape: [C], data: Float32Array.from(b) },
        r: { dtype: 'float32', shape: [N, C, T], data: Float32Array.from(proj) },
      });
      await cg.release();
      const loss = () => groupNormRef(x, [N, C, T], G, w, b, 1e-5).reduce((s, v, i) => s + v * proj[i], 0);
      const numeric = (v: Float64Array): Float64Array =>
        v.map((_, i) => {
          const o = v[i];
          v[i] = o + 1e-5;
          const lp = loss();
          v[i] = o - 1e-5;
          const lm = loss();
          v[i] = o;
          return (lp - lm) / 2e-5;
        });
      for (const [k, v] of [
        ['gx', x],
        ['gw', w],
        ['gb', b],
      ] as const) {
        const want = numeric(v);
        const got = out[k].data as Float32Array;
        for (let i = 0; i < want.length; i++)
          worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(Math.abs(want[i]), 1e-2));
      }
    }
  console.log(`  InstanceNormalization rule (float32) worst relative error ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-3, `${worst}`);
});
