import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { Graph } from '../../src/graph/graph.js';
import { toOnnx } from '../../src/graph/onnx.js';
import { linear } from '../../src/graph/layers/linear.js';
import { inlineParams, markInt8, pruneGraph, quantizeMatMulsInt8 } from '../../src/predict/graph-passes.js';
import { Lemer } from '../../src/predict/lemer.js';
import { exportedTinyModel, LABELS, tone } from './helpers.js';

function rand(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = s / 2 ** 32 - 0.5;
  }
  return x;
}

function linearGraph(w: Float32Array, b: Float32Array): Graph {
  const g = new Graph({ name: 'lin' });
  const x = g.input('x', 'float32', ['batch', 'time', 64]);
  g.output('y', linear(x, 'proj', 32));
  inlineParams(g, (n) =>
    n === 'proj.weight'
      ? { dtype: 'float32', shape: [32, 64], data: w }
      : { dtype: 'float32', shape: [32], data: b },
  );
  return g;
}

test('int8 pass: DynamicQuantizeLinear + MatMulInteger replace the linear MatMul; output matches hand-computed int8 maths', async () => {
  const w = rand(32 * 64, 1);
  const b = rand(32, 2);
  const x = rand(3 * 5 * 64, 3);
  const g = linearGraph(w, b);
  const q = linearGraph(w, b);
  const summary = quantizeMatMulsInt8(q, { minValues: 1 });
  assert.equal(summary.matmuls, 1);
  const ops = q.nodes.map((n) => n.op);
  assert.ok(ops.includes('DynamicQuantizeLinear') && ops.includes('MatMulInteger'));
  assert.ok(!ops.includes('Transpose'), 'the float weight and its transpose are gone');
  assert.ok(![...q.initializers.values()].some((c) => c.dtype === 'float32' && c.data.length === 32 * 64));
  assert.equal(summary.int8Initializers.length, 2);
  const run = async (gr: Graph, int8: string[] = []) => {
    const s = await ort.InferenceSession.create(markInt8(toOnnx(gr), int8));
    const r = await s.run({ x: new ort.Tensor('float32', x, [3, 5, 64]) });
    await s.release();
    return r.y.data as Float32Array;
  };
  const yf = await run(g);
  const yq = await run(q, summary.int8Initializers);
  // Reference: ONNX's DynamicQuantizeLinear (uint8, range including 0) and per-column symmetric weights.
  let lo = 0;
  let hi = 0;
  for (const v of x) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  const xs = (hi - lo) / 255;
  const xz = Math.max(0, Math.min(255, Math.round(-lo / xs)));
  const xq = Array.from(x, (v) => Math.max(0, Math.min(255, Math.round(v / xs) + xz)));
  let maxErr = 0;
  for (let r = 0; r < 15; r++)
    for (let j = 0; j < 32; j++) {
      let m = 0;
      for (let k = 0; k < 64; k++) m = Math.max(m, Math.abs(w[j * 64 + k]));
      const ws = m / 127;
      let acc = 0;
      for (let k = 0; k < 64; k++) acc += (xq[r * 64 + k] - xz) * Math.round(w[j * 64 + k] / ws);
      const ref = acc * xs * ws + b[j];
      assert.ok(Math.abs(yq[r * 32 + j] - ref) < 1e-4, `row ${r} col ${j}: ${yq[r * 32 + j]} vs ${ref}`);
      maxErr = Math.max(maxErr, Math.abs(yq[r * 32 + j] - yf[r * 32 + j]));
    }
  assert.ok(maxErr > 0 && maxErr < 0.05, `int8 vs float error ${maxErr}`);
});

test('prune keeps only what the named outputs need', () => {
  const g = new Graph({ name: 'p' });
  const a = g.input('a', 'float32', [2]);
  const b = g.input('b', 'float32', [2]);
  g.output('ya', a.mul(2));
  g.output('yb', b.add(1));
  pruneGraph(g, ['ya']);
  assert.deepEqual(
    g.inputs.map((t) => t.name),
    ['a'],
  );
  assert.deepEqual(
    g.outputs.map((o) => o.name),
    ['ya'],
  );
  assert.equal(g.nodes.length, 1);
  assert.throws(() => pruneGraph(g, ['nope']), /no output nope/);
});

test('export --quantize int8 writes model.int8.onnx; Lemer.load({ int8 }) runs it close to fp32', async () => {
  const { dir, int8 } = await exportedTinyModel({ quantize: true });
  assert.ok(int8 && int8.matmuls > 0);
  const f = await Lemer.load(dir);
  const q = await Lemer.load(dir, { int8: true });
  assert.equal(q.graphFile, 'model.int8.onnx');
  const input = { audio: { samples: tone(300, 0.6), sampleRate: 16000 }, text: 'a deep low sound' };
  const a = await f.predict(input);
  const b = await q.predict(input);
  for (const l of LABELS)
    assert.ok(Math.abs(a.probs[l] - b.probs[l]) < 0.05, `${l}: ${a.probs[l]} vs ${b.probs[l]}`);
  await f.release();
  await q.release();
});
