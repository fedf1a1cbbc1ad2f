// Bad input to the engine: each error names the op or input, the shapes, and where
// in the model it was built.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, CompiledGraph, ops, gradients, toOnnx, OPSET } from '../../src/graph/index.js';
import { linear } from '../../src/graph/layers/linear.js';
import onnxProto from 'onnx-proto';

test('shape mismatch names the op, the scope, both shapes and the model line', () => {
  const g = new Graph();
  const text = g.input('text', 'float32', ['batch', 'tokens', 8]);
  const speech = g.input('speech', 'float32', ['batch', 'frames', 8]);
  assert.throws(
    () => g.scope('fusion', () => ops.add(text, speech)),
    (e: Error) =>
      /Add in fusion/.test(e.message) &&
      /tokens vs frames/.test(e.message) &&
      /text: float32\[batch, tokens, 8\]/.test(e.message) &&
      /errors\.test\.ts:\d+/.test(e.message),
  );
  assert.throws(
    () => ops.matmul(text, g.param('w', [7, 4])),
    /MatMul.*inner dims differ: \[batch, tokens, 8\] @ \[7, 4\]/s,
  );
});

test('dtype errors name the op and the dtypes', () => {
  const g = new Graph();
  const ids = g.input('ids', 'int64', ['batch', 'seq']);
  const x = g.input('x', 'float32', ['batch', 'seq']);
  assert.throws(() => ops.add(x, ids), /Add.*dtype mismatch: float32 vs int64/s);
  assert.throws(() => ops.softmax(ids), /Softmax.*needs a float tensor, got int64/s);
  assert.throws(() => ops.gather(x, x), /Gather.*indices must be int64 or int32, got float32/s);
});

test('a parameter defined twice is an error unless reused on purpose', () => {
  const g = new Graph();
  const x = g.input('x', 'float32', ['batch', 4]);
  linear(x, 'proj', 3);
  assert.throws(() => linear(x, 'proj', 3), /parameter 'proj.weight' is defined twice/);
  const y = g.reusing(() => linear(x, 'proj', 3));
  assert.equal(g.params.size, 2);
  assert.deepEqual(y.shape, ['batch', 3]);
  assert.throws(() => g.reusing(() => linear(x, 'proj', 5)), /reused with shape \[5, 4\], defined \[3, 4\]/);
});

test('run-time feeds are checked by name, dtype and shape, symbolic dims consistently', async () => {
  const g = new Graph({ name: 'head' });
  const a = g.input('a', 'float32', ['batch', 3]);
  const b = g.input('b', 'float32', ['batch', 3]);
  g.output('y', ops.add(a, b));
  const run = await CompiledGraph.create(g);
  const t = (n: number, shape: number[]) => ({ dtype: 'float32' as const, shape, data: new Float32Array(n) });
  await assert.rejects(run.run({ a: t(6, [2, 3]) }), /input 'b' \(float32\[batch, 3\]\) was not fed/);
  await assert.rejects(run.run({ a: t(6, [2, 3]), b: t(9, [3, 3]) }), /'batch' is 3 here but 2 in input 'a'/);
  await assert.rejects(
    run.run({ a: t(8, [2, 4]), b: t(6, [2, 3]) }),
    /input 'a' expects float32\[batch, 3\], got float32\[2, 4\]: dim 1 must be 3/,
  );
  await assert.rejects(
    run.run({ a: { dtype: 'float64', shape: [2, 3], data: new Float64Array(6) }, b: t(6, [2, 3]) }),
    /dtype differs/,
  );
  await assert.rejects(run.run({ a: t(6, [2, 3]), b: t(6, [2, 3]), c: t(1, [1]) }), /has no input 'c'/);
  const ok = await run.run({ a: t(6, [2, 3]), b: t(6, [2, 3]) });
  assert.deepEqual(ok.y.shape, [2, 3]);
});

test('an op with no gradient rule on the path to the loss is named', () => {
  const g = new Graph();
  const x = g.param('x', [3]);
  const y = g.node('Cos', [x], [{ dtype: 'float32', shape: [3] }])[0];
  assert.throws(() => gradients(ops.reduceSum(y, 0), [x]), /no gradient rule for op Cos/);
});

test('a graph ONNX Runtime refuses: the error names the node and where it was built', async () => {
  const g = new Graph();
  const x = g.input('x', 'float32', [2]);
  g.output('y', g.node('NoSuchOp', [x], [{ dtype: 'float32', shape: [2] }])[0]);
  await assert.rejects(
    CompiledGraph.create(g),
    (e: Error) => /refused graph/.test(e.message) && /built at .*errors\.test\.ts/.test(e.message),
  );
});

test('an execution provider that is not installed gives a clear error', async () => {
  const g = new Graph();
  g.output('y', ops.neg(g.input('x', 'float32', [1])));
  await assert.rejects(
    CompiledGraph.create(g, { executionProvider: 'coreml' }),
    /execution provider 'coreml' is not available/,
  );
});

test('serialised model is structurally valid ONNX (decoded with an independent protobuf reader)', () => {
  const g = new Graph({ name: 'check' });
  const x = g.input('x', 'float32', ['batch', 4]);
  const y = ops.softmax(linear(x, 'proj', 3));
  const loss = ops.reduceMean(ops.mul(y, y), [0, 1]);
  const [dw] = gradients(loss, [g.params.get('proj.weight')!.tensor]);
  g.output('loss', loss);
  g.output('dw', dw!);
  const m = onnxProto.onnx.ModelProto.decode(toOnnx(g));
  assert.equal(Number(m.irVersion), 8);
  assert.equal(Number(m.opsetImport[0].version), OPSET);
  const gr = m.graph!;
  const inputs = gr.input ?? [];
  const known = new Set<string>([
    ...inputs.map((i) => i.name!),
    ...(gr.initializer ?? []).map((i) => i.name!),
  ]);
  for (const n of gr.node ?? []) {
    for (const i of n.input ?? [])
      if (i !== '') assert.ok(known.has(i), `node ${n.name} reads '${i}' before it is produced`);
    for (const o of n.output ?? []) {
      assert.ok(!known.has(o), `value '${o}' produced twice`);
      known.add(o);
    }
  }
  for (const o of gr.output ?? []) assert.ok(known.has(o.name!), `output ${o.name} is never produced`);
  const dims = inputs.find((i) => i.name === 'x')!.type!.tensorType!.shape!.dim!;
  assert.equal(dims[0].dimParam, 'batch');
  assert.equal(Number(dims[1].dimValue), 4);
});

test('a node ORT refuses inside a Loop body is named with where it was built', async () => {
  const g = new Graph({ name: 'outer' });
  const x = g.input('x', 'float32', [2]);
  const body = new Graph({ name: 'body', parent: g, valuePrefix: 'body/' });
  body.input('iter', 'int64', []);
  const cond = body.input('cond', 'bool', []);
  const carried = body.input('carried', 'float32', [2]);
  body.output('cond_out', ops.identity(cond));
  body.output(
    'carried_out',
    body.scope('inner', () => body.node('NoSuchOp', [carried], [{ dtype: 'float32', shape: [2] }])[0]),
  );
  const [y] = g.node(
    'Loop',
    [g.constant(BigInt64Array.from([2n]), []), null, x],
    [{ dtype: 'float32', shape: [2] }],
    {
      body,
    },
  );
  g.output('y', y);
  await assert.rejects(
    CompiledGraph.create(g),
    (e: Error) =>
      /refused graph/.test(e.message) &&
      /op NoSuchOp \(body\/inner\/NoSuchOp\)/.test(e.message) &&
      /built at .*errors\.test\.ts/.test(e.message),
  );
});
