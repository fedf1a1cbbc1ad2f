/**
 * K training steps in one ONNX Runtime run (an ONNX Loop over the training step): the
 * same weights, Adam state, losses and figures bit for bit as K single-step runs, with
 * micro-batches and frozen parameters too; the graph's names and structure; checkpoints
 * across K; clear errors for batches that cannot be stacked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import type { Graph, Tensor } from '../../src/graph/graph.js';
import { linear } from '../../src/graph/layers/linear.js';
import { buildLoopTrainingGraph, LOOP_STEPS_DIM } from '../../src/graph/loop.js';
import { toOnnx } from '../../src/graph/onnx.js';
import { buildTrainingGraph, type StepResult, Trainer, type TrainerOptions } from '../../src/graph/train.js';
import { makeOrderBatch, toyTransformerLoss } from '../../src/models/toy/transformer.js';
import { Rng } from '../../src/util/random.js';
import { bytes, sameBits, toyTrainerOptions } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'lemer-loop-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

/** Toy transformer, dropout off; AdamW with a head group, warm-up + cosine decay, clipping. */
const options = (over: Partial<TrainerOptions> = {}): TrainerOptions =>
  toyTrainerOptions({ totalSteps: 12, maxGradNorm: 0.5 }, over);

const batchesOf = (seed: number, n: number, size = 8) => {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => makeOrderBatch(rng, size));
};

test('K=3 in one run == 3 single-step runs, bit for bit (weights, m, v, losses, figures); a partial run and step() continue it', async () => {
  const cases: [string, Partial<TrainerOptions>][] = [
    ['M=1', {}],
    ['M=2, frozen embeddings', { microBatches: 2, trainable: (n: string) => !n.startsWith('embeddings.') }],
    // Also with dropout: the body's random kernels keep their generators across iterations
    // and runs, as the single-step session does across runs (onnxruntime-node 1.30).
    ['dropout 0.1', { build: (g, i) => toyTransformerLoss(g, i, { numLayers: 1, dropout: 0.1 }) }],
  ];
  for (const [label, over] of cases) {
    const single = await Trainer.create(options(over));
    const looped = await Trainer.create(options({ ...over, stepsPerRun: 3 }));
    assert.equal(looped.stepsPerRun, 3);
    assert.equal(looped.graph.nodes.filter((n) => n.op === 'Loop').length, 1);
    const init = looped.params.clone();
    const batches = batchesOf(11, 6);

    const want: StepResult[] = [];
    for (const b of batches) want.push(await single.step(b));
    const got = [
      ...(await looped.steps(batches.slice(0, 3))),
      ...(await looped.steps(batches.slice(3, 5))), // fewer than K: same session
      await looped.step(batches[5]), // a one-step Loop
    ];
    assert.deepEqual(got, want, `${label}: per-step figures`);
    assert.equal(looped.state.step, 6);
    sameBits(looped.params, single.params, `${label}: weights`);
    sameBits(looped.optimizerState, single.optimizerState, `${label}: optimizer state`);

    // Not vacuous: the batches differ, the schedule moves, the weights moved (except frozen ones).
    assert.equal(new Set(want.map((r) => r.loss)).size, 6, `${label}: losses ${want.map((r) => r.loss)}`);
    assert.ok(want[0].lr < want[1].lr && want[5].lr < want[2].lr, `${label}: lr ${want.map((r) => r.lr)}`);
    assert.ok(want[0].lrs.head > want[0].lr);
    for (const n of looped.params.names()) {
      const same = bytes(init.get(n)).every((v, i) => v === bytes(looped.params.get(n))[i]);
      assert.equal(same, !!over.trainable && n.startsWith('embeddings.'), `${label}: '${n}' moved: ${!same}`);
    }
    // Evaluation reads the weights the Loop wrote.
    assert.deepEqual(await looped.evaluate(batches[0]), await single.evaluate(batches[0]));
    await single.release();
    await looped.release();
  }
});

test('the Loop graph: same input and output names as one step, batches stacked, scan outputs [K], names unique model-wide', () => {
  const opts = options({ microBatches: 2, trainable: (n) => n !== 'classifier.bias' });
  const one = buildTrainingGraph(opts);
  const loop = buildLoopTrainingGraph({ ...opts, stepsPerRun: 4 });
  const names = (ts: readonly { name: string }[]) => ts.map((t) => t.name).sort();
  assert.deepEqual(names(loop.graph.inputs), names(one.graph.inputs));
  assert.deepEqual(names(loop.graph.outputs), names(one.graph.outputs));
  assert.deepEqual(
    [...loop.graph.params.values()].map((p) => p.spec),
    [...one.graph.params.values()].map((p) => p.spec),
  );
  assert.deepEqual(loop.optimizer.stateSpecs, one.optimizer.stateSpecs);
  assert.deepEqual(loop.optimizer.writes, one.optimizer.writes);
  assert.deepEqual(loop.frozen, ['classifier.bias']);
  for (const [n, d] of Object.entries(opts.inputs))
    assert.deepEqual(loop.graph.findInput(n)!.shape, [LOOP_STEPS_DIM, ...d.shape]);
  const out = (n: string) => loop.graph.outputs.find((o) => o.name === n)!.tensor;
  for (const n of ['loss', 'metric.accuracy', 'grad_norm', 'lr', 'lr.head'])
    assert.deepEqual(out(n).shape, [LOOP_STEPS_DIM]);
  assert.deepEqual(out('classifier.weight.next').shape, [2, 32]);

  // The serialised model: every value defined once across graph and body, every read defined.
  const model = onnxProto.onnx.ModelProto.decode(toOnnx(loop.graph));
  type G = InstanceType<typeof onnxProto.onnx.GraphProto>;
  const seen = new Set<string>();
  const define = (n: string) => {
    assert.ok(!seen.has(n), `value '${n}' is defined twice in the model`);
    seen.add(n);
  };
  let body: G | null = null;
  const walk = (g: G, visible: Set<string>) => {
    const local = new Set(visible);
    for (const v of [...g.input, ...g.initializer]) {
      define(v.name!);
      local.add(v.name!);
    }
    for (const n of g.node) {
      for (const i of n.input ?? [])
        assert.ok(i === '' || local.has(i), `${n.opType} reads undefined '${i}'`);
      for (const a of n.attribute ?? []) if (a.g) walk((body = a.g as G), local);
      for (const o of n.output ?? []) {
        define(o);
        local.add(o);
      }
    }
    for (const o of g.output) assert.ok(local.has(o.name!), `output '${o.name}' is not produced`);
  };
  walk(model.graph as G, new Set());
  assert.ok(body, 'the Loop node carries its body');
  const b = body as G;
  // Body: (iter, cond, step, trained params, Adam m and v); the frozen bias is read from outside.
  assert.equal(b.input.length, 3 + loop.trained.length * 3);
  assert.ok(!b.input.some((i) => i.name!.endsWith('classifier.bias')));
  assert.ok(b.node.some((n) => n.input?.includes('classifier.bias')));
  assert.equal(b.output.length, 2 + loop.trained.length * 3 + 5); // cond, step, state, 5 scans
});

test('checkpoints move between K=3 and K=1 trainers; state.step advances by the steps run', async () => {
  const batches = batchesOf(21, 5);
  const straight = await Trainer.create(options());
  for (const b of batches) await straight.step(b);

  const looped = await Trainer.create(options({ stepsPerRun: 3 }));
  await looped.steps(batches.slice(0, 3));
  const dir = looped.saveCheckpoint(join(root, 'k3'));
  assert.equal(JSON.parse(readFileSync(join(dir, 'trainer.json'), 'utf8')).trainer.step, 3);
  const single = await Trainer.create(options());
  single.restore(dir);
  assert.equal(single.state.step, 3);
  await single.step(batches[3]);
  const dir2 = single.saveCheckpoint(join(root, 'k1'));
  const resumed = await Trainer.create(options({ stepsPerRun: 3 }));
  resumed.restore(dir2);
  await resumed.steps([batches[4]]);
  assert.equal(resumed.state.step, 5);
  sameBits(resumed.params, straight.params, 'weights');
  sameBits(resumed.optimizerState, straight.optimizerState, 'optimizer state');
  for (const t of [straight, looped, single, resumed]) await t.release();
});

test('steps() errors: wrong count, unequal shapes, missing inputs, micro-batch sizes; nothing is updated', async () => {
  await assert.rejects(
    Trainer.create(options({ stepsPerRun: 0 })),
    /stepsPerRun must be a whole number >= 1, got 0/,
  );
  await assert.rejects(
    Trainer.create(options({ stepsPerRun: 2.5 })),
    /stepsPerRun must be a whole number >= 1/,
  );
  const t = await Trainer.create(options({ stepsPerRun: 3, microBatches: 2 }));
  const before = t.params.clone();
  const [a, b, c, d] = batchesOf(5, 4);
  await assert.rejects(t.steps([]), /takes 1 to 3 batches \(stepsPerRun 3\), got 0/);
  await assert.rejects(t.steps([a, b, c, d]), /takes 1 to 3 batches \(stepsPerRun 3\), got 4/);
  const longer = makeOrderBatch(new Rng(1), 8, { maxLen: 12 });
  await assert.rejects(
    t.steps([a, longer]),
    /input 'input_ids' is int64\[8, ?12\] in batch 1 but int64\[8, ?10\] in batch 0: the batches of one run are stacked/,
  );
  const { labels: _labels, ...noLabels } = b;
  await assert.rejects(t.steps([a, noLabels, c]), /Trainer: batch 1 of 3 lacks input 'labels'/);
  await assert.rejects(
    t.steps([a, b, makeOrderBatch(new Rng(2), 5)]),
    /input 'input_ids' of batch 2 of 3 has batch size 5, not divisible into 2 micro-batches/,
  );
  await assert.rejects(t.step(noLabels), /lacks input 'labels'/);
  assert.equal(t.state.step, 0);
  for (const n of before.names()) assert.deepEqual(bytes(t.params.get(n)), bytes(before.get(n)));
  await t.release();

  const one = await Trainer.create(options());
  await assert.rejects(one.steps([a, b]), /takes 1 to 1 batches \(stepsPerRun 1\), got 2/);
  assert.ok(Number.isFinite((await one.steps([a]))[0].loss));
  await one.release();

  assert.throws(
    () =>
      buildLoopTrainingGraph({
        ...options(),
        inputs: { x: { dtype: 'float32', shape: [LOOP_STEPS_DIM, 2] } },
        stepsPerRun: 2,
      }),
    /input 'x' uses the dim name 'loop_steps', which stepsPerRun reserves/,
  );
  const mlp = (g: Graph, i: Record<string, Tensor>) => {
    const extra = g.input('scale', 'float32', []);
    const y = linear(i.x, 'lin', 1).mul(extra);
    return { loss: y.mul(y).mean([0, 1]) };
  };
  assert.throws(
    () =>
      buildLoopTrainingGraph({
        inputs: { x: { dtype: 'float32', shape: ['batch', 2] } },
        build: mlp,
        optimizer: { lr: 0.1 },
        stepsPerRun: 2,
      }),
    /declared graph inputs of its own \(scale\); declare batch inputs in 'inputs'/,
  );
});
