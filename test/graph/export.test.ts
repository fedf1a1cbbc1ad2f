/**
 * `lemer graph export`: the written ONNX file decodes (onnx-proto), is structurally
 * sound (opset 17, every node input defined), carries the parameters and, in train mode,
 * the optimiser state as inputs, and loads and runs in ONNX Runtime.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { runCli } from '../../src/cli/program.js';
import { exportModelGraph } from '../../src/cli/commands/graph-export.js';
import { ParameterStore } from '../../src/graph/params.js';
import { Predictor } from '../../src/graph/train.js';
import { getModel, modelNames } from '../../src/models/registry.js';
import { makeOrderBatch } from '../../src/models/toy/transformer.js';
import { Rng } from '../../src/util/random.js';

const dir = mkdtempSync(join(tmpdir(), 'lemer-export-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  });
  return { code, stdout, stderr };
}

type Model = ReturnType<typeof onnxProto.onnx.ModelProto.decode>;
type GraphProto = InstanceType<typeof onnxProto.onnx.GraphProto>;
type NodeProto = InstanceType<typeof onnxProto.onnx.NodeProto>;
/** The decoded graph, with its repeated fields typed as present (protobufjs fills them). */
const graphOf = (m: Model): GraphProto & { node: NodeProto[] } =>
  m.graph as GraphProto & { node: NodeProto[] };

/** Structural checks every exported graph must pass; returns the graph's input and output names. */
function checkStructure(model: Model): { inputs: Set<string>; outputs: Set<string> } {
  assert.deepEqual(
    model.opsetImport.map((o) => [o.domain ?? '', Number(o.version)]),
    [['', 17]],
  );
  const g = graphOf(model);
  const defined = new Set<string>([...g.input.map((i) => i.name!), ...g.initializer.map((t) => t.name!)]);
  for (const n of g.node) {
    for (const i of n.input)
      assert.ok(
        i === '' || defined.has(i),
        `node ${n.name} (${n.opType}) reads '${i}', which nothing defines before it`,
      );
    for (const o of n.output) {
      assert.ok(!defined.has(o), `'${o}' is defined twice`);
      defined.add(o);
    }
  }
  for (const o of g.output) assert.ok(defined.has(o.name!), `output '${o.name}' is not produced`);
  return { inputs: new Set(g.input.map((i) => i.name!)), outputs: new Set(g.output.map((o) => o.name!)) };
}

test('train mode with micro-batches: params, optimiser state and step are inputs; new values are outputs', async () => {
  const out = join(dir, 'train.onnx');
  const r = await cli(
    'graph',
    'export',
    '--model',
    'toy-transformer',
    '--mode',
    'train',
    '--micro-batches',
    '2',
    '--out',
    out,
    '--json',
    join(dir, 'train.json'),
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote .*train\.onnx: toy-transformer train graph, \d+ nodes/);
  const bytes = readFileSync(out);
  const model = onnxProto.onnx.ModelProto.decode(bytes);
  const { inputs, outputs } = checkStructure(model);
  const { graph } = exportModelGraph({ model: 'toy-transformer', mode: 'train', microBatches: 2 });
  const params = [...graph.params.keys()];
  assert.ok(params.length > 10);
  for (const p of params) {
    for (const n of [p, `${p}.adam_m`, `${p}.adam_v`]) assert.ok(inputs.has(n), `input '${n}' missing`);
    for (const n of [`${p}.next`, `${p}.adam_m.next`, `${p}.adam_v.next`])
      assert.ok(outputs.has(n), `output '${n}' missing`);
  }
  for (const n of ['step', 'input_ids', 'attention_mask', 'labels']) assert.ok(inputs.has(n), n);
  for (const n of ['loss', 'grad_norm', 'lr', 'metric.accuracy']) assert.ok(outputs.has(n), n);
  assert.equal(
    graphOf(model).node.filter((n) => n.opType === 'Split' && n.input?.length === 1).length,
    3,
    'one Split per batch input',
  );
  const summary = JSON.parse(readFileSync(join(dir, 'train.json'), 'utf8')) as {
    nodes: number;
    trained: number;
  };
  assert.equal(summary.nodes, graphOf(model).node.length);
  assert.equal(summary.trained, params.length);
  // ONNX Runtime loads the file as written.
  const session = await ort.InferenceSession.create(out, { logSeverityLevel: 3 });
  assert.ok(session.inputNames.includes('encoder.layer.0.attention.self.query.weight.adam_v'));
  assert.ok(session.outputNames.includes('loss'));
  await session.release();
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.endsWith('.tmp')),
    [],
    'no temporary files left',
  );
});

test('infer mode: no optimiser state; the file runs in ONNX Runtime and agrees with the engine', async () => {
  const out = join(dir, 'infer.onnx');
  const r = await cli('graph', 'export', '--model', 'toy-transformer', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  const model = onnxProto.onnx.ModelProto.decode(readFileSync(out));
  const { inputs, outputs } = checkStructure(model);
  assert.ok(![...inputs].some((n) => n.endsWith('.adam_m') || n === 'step'));
  assert.deepEqual([...outputs].sort(), ['logits', 'probs']);

  const entry = getModel('toy-transformer');
  const params = new ParameterStore();
  const pred = await Predictor.create({
    inputs: entry.inputs,
    build: entry.infer,
    params,
    seed: 3,
    runtime: { threads: 1 },
  });
  const batch = makeOrderBatch(new Rng(2), 4);
  const feeds = { input_ids: batch.input_ids, attention_mask: batch.attention_mask };
  const want = (await pred.run(feeds)).probs.data as Float32Array;
  const session = await ort.InferenceSession.create(out, { logSeverityLevel: 3 });
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [n, t] of Object.entries({ ...feeds, ...params.toRecord() }))
    ortFeeds[n] = new ort.Tensor(t.dtype, t.data as never, t.shape as number[]);
  const got = (await session.run(ortFeeds)).probs.data as Float32Array;
  assert.deepEqual(Array.from(got), Array.from(want));
  await session.release();
  await pred.release();
});

test('export errors: unknown model, micro-batches in infer mode, bad mode', async () => {
  const unknown = await cli('graph', 'export', '--model', 'nope', '--out', join(dir, 'x.onnx'));
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, new RegExp(`unknown model 'nope' \\(known: ${modelNames().join(', ')}\\)`));
  const mb = await cli(
    'graph',
    'export',
    '--model',
    'toy-transformer',
    '--micro-batches',
    '2',
    '--out',
    join(dir, 'x.onnx'),
  );
  assert.equal(mb.code, 1);
  assert.match(mb.stderr, /--micro-batches applies to --mode train only/);
  const mode = await cli(
    'graph',
    'export',
    '--model',
    'toy-transformer',
    '--mode',
    'eval',
    '--out',
    join(dir, 'x.onnx'),
  );
  assert.notEqual(mode.code, 0);
  assert.match(mode.stderr, /--mode/);
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.startsWith('x.onnx')),
    [],
  );
});
