/**
 * The trainer end to end: a small transformer learns a task that needs attention and
 * positions; micro-batches give the same update as one batch; the padding mask works;
 * evaluation and prediction share the live weights; errors name what is wrong.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linear } from '../../src/graph/layers/linear.js';
import * as ops from '../../src/graph/ops/index.js';
import { ParameterStore } from '../../src/graph/params.js';
import { Predictor, Trainer } from '../../src/graph/train.js';
import {
  makeOrderBatch,
  toyTransformer,
  toyTransformerInputs,
  toyTransformerLoss,
  toyTransformerTrainInputs,
  type ToyTransformerConfig,
} from '../../src/models/toy/transformer.js';
import { Rng } from '../../src/util/random.js';

test('a 2-layer transformer learns the A-before-B task (loss < 0.05, held-out accuracy >= 0.95)', async () => {
  const t0 = performance.now();
  const trainer = await Trainer.create({
    inputs: toyTransformerTrainInputs(),
    build: (g, i) => toyTransformerLoss(g, i, { numLayers: 2 }),
    optimizer: { kind: 'adamw', lr: 3e-3, schedule: { warmupSteps: 20 }, maxGradNorm: 1 },
    seed: 1,
    runtime: { threads: 1 },
  });
  const rng = new Rng(5);
  const recent: number[] = [];
  let first = NaN;
  let reachedAt = -1;
  for (let s = 0; s < 600 && reachedAt < 0; s++) {
    const r = await trainer.step(makeOrderBatch(rng, 32));
    if (s === 0) first = r.loss;
    assert.ok(
      Number.isFinite(r.loss) && Number.isFinite(r.gradNorm),
      `step ${s}: loss ${r.loss}, grad norm ${r.gradNorm}`,
    );
    recent.push(r.loss);
    if (recent.length > 10) recent.shift();
    if (recent.length === 10 && recent.reduce((a, b) => a + b, 0) / 10 < 0.05) reachedAt = s + 1;
  }
  assert.ok(first > 0.6, `starts near ln 2, got ${first}`);
  assert.ok(
    reachedAt > 0,
    `mean loss of the last 10 steps never fell below 0.05 in 600 steps (last: ${recent.map((x) => x.toFixed(3))})`,
  );
  const heldOut = await trainer.evaluate(makeOrderBatch(new Rng(1234), 256));
  assert.ok(heldOut.metrics.accuracy >= 0.95, `held-out accuracy ${heldOut.metrics.accuracy}`);
  console.log(
    `  reached loss < 0.05 after ${reachedAt} steps; held-out loss ${heldOut.loss.toFixed(4)}, accuracy ${heldOut.metrics.accuracy}; ` +
      `${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  assert.equal(trainer.state.step, reachedAt);
  await trainer.release();
});

async function updates(
  M: number,
  ft: 'float32' | 'float64',
  cfg: Partial<ToyTransformerConfig>,
): Promise<{ params: ParameterStore; losses: number[]; norms: number[] }> {
  const trainer = await Trainer.create({
    inputs: toyTransformerTrainInputs(),
    build: (g, i) => toyTransformerLoss(g, i, cfg),
    optimizer: {
      kind: 'adamw',
      lr: ft === 'float64' ? 1e-2 : 1e-3,
      schedule: { warmupSteps: 2 },
      maxGradNorm: 0.5,
    },
    microBatches: M,
    floatType: ft,
    seed: 7,
    runtime: { threads: 1 },
  });
  const rng = new Rng(3);
  const losses: number[] = [];
  const norms: number[] = [];
  for (let s = 0; s < 2; s++) {
    const r = await trainer.step(makeOrderBatch(rng, 8));
    losses.push(r.loss);
    norms.push(r.gradNorm);
  }
  await trainer.release();
  return { params: trainer.params, losses, norms };
}

function worstDiff(a: ParameterStore, b: ParameterStore): { worst: number; where: string } {
  let worst = 0;
  let where = '';
  for (const n of a.names()) {
    const x = a.get(n).data as Float64Array | Float32Array;
    const y = b.get(n).data as Float64Array | Float32Array;
    for (let i = 0; i < x.length; i++) {
      const e = Math.abs(x[i] - y[i]);
      if (e > worst) [worst, where] = [e, n];
    }
  }
  return { worst, where };
}

test('gradient accumulation over M=2 and M=4 micro-batches gives the same updates as M=1', async () => {
  // float64, gelu_new (float64 erf is a long composite: ORT has no float64 Erf).
  const cfg64: Partial<ToyTransformerConfig> = {
    numLayers: 1,
    hiddenSize: 16,
    intermediateSize: 32,
    hiddenAct: 'gelu_new',
  };
  const one = await updates(1, 'float64', cfg64);
  for (const M of [2, 4]) {
    const many = await updates(M, 'float64', cfg64);
    const { worst, where } = worstDiff(one.params, many.params);
    console.log(`  float64 M=${M}: worst weight difference ${worst.toExponential(2)} (${where})`);
    assert.ok(worst < 1e-9, `M=${M}: weights differ by ${worst} in ${where}`);
    // Loss and gradient norm: a sum instead of a mean over chunks would show here (Adam hides scale).
    one.losses.forEach((l, i) =>
      assert.ok(Math.abs(l - many.losses[i]) < 1e-12, `loss ${l} vs ${many.losses[i]}`),
    );
    one.norms.forEach((l, i) =>
      assert.ok(Math.abs(l - many.norms[i]) < 1e-12, `grad norm ${l} vs ${many.norms[i]}`),
    );
  }
  // float32, the default 2-layer model with erf GELU.
  const a = await updates(1, 'float32', {});
  const b = await updates(2, 'float32', {});
  const { worst, where } = worstDiff(a.params, b.params);
  console.log(`  float32 M=2: worst weight difference ${worst.toExponential(2)} (${where})`);
  assert.ok(worst < 5e-6, `float32 M=2: weights differ by ${worst} in ${where}`);
  a.norms.forEach((l, i) =>
    assert.ok(Math.abs(l - b.norms[i]) / l < 1e-5, `grad norm ${l} vs ${b.norms[i]}`),
  );
});

test('the training graph splits the batch with one Split per input and differentiates chunk by chunk', async () => {
  const trainer = await Trainer.create({
    inputs: toyTransformerTrainInputs(),
    build: (g, i) => toyTransformerLoss(g, i, { numLayers: 1 }),
    optimizer: { lr: 1e-3 },
    microBatches: 2,
    runtime: { threads: 1 },
  });
  const g = trainer.graph;
  const splits = g.nodes.filter((n) => n.op === 'Split' && n.inputs.length === 1);
  assert.equal(splits.length, 3);
  for (const s of splits) assert.equal(s.outputs.length, 2);
  // Chunk 1's backward comes before chunk 2's forward: the first gradient node precedes
  // the second chunk's first MatMul of the forward pass.
  const firstGrad = g.nodes.findIndex((n) => n.scope.startsWith('grad/'));
  const forwardMatMuls = g.nodes
    .map((n, i) => [n, i] as const)
    .filter(([n]) => n.op === 'MatMul' && !n.scope.startsWith('grad/'));
  const perChunk = forwardMatMuls.length / 2;
  assert.ok(firstGrad < forwardMatMuls[perChunk][1], 'chunk 2 forward must come after chunk 1 backward');
  await assert.rejects(
    trainer.step(makeOrderBatch(new Rng(1), 5)),
    /batch size 5, not divisible into 2 micro-batches/,
  );
  // Evaluation runs the whole batch at once: any size works.
  assert.ok(Number.isFinite((await trainer.evaluate(makeOrderBatch(new Rng(1), 5))).loss));
  await trainer.release();
});

test('padding is masked: tokens in padded positions do not change the logits', async () => {
  const params = new ParameterStore();
  const p = await Predictor.create({
    inputs: toyTransformerInputs(),
    build: (g, i) => ({
      logits: toyTransformer(
        g,
        { input_ids: i.input_ids, attention_mask: i.attention_mask },
        { numLayers: 2 },
      ),
    }),
    params,
    seed: 2,
    runtime: { threads: 1 },
  });
  assert.equal(p.initialised.length, params.size);
  const b = makeOrderBatch(new Rng(9), 6, { minLen: 3, maxLen: 8 });
  const ids = b.input_ids.data as BigInt64Array;
  const mask = b.attention_mask.data as BigInt64Array;
  const feed = (idData: BigInt64Array) => ({
    input_ids: { ...b.input_ids, data: idData },
    attention_mask: b.attention_mask,
  });
  const base = (await p.run(feed(ids))).logits.data as Float32Array;
  const noisy = ids.map((v, i) => (mask[i] === 0n ? BigInt(3 + (i % 10)) : v));
  assert.ok(
    noisy.some((v, i) => v !== ids[i]),
    'the batch must have padding',
  );
  const other = (await p.run(feed(noisy))).logits.data as Float32Array;
  const diff = Math.max(...base.map((v, i) => Math.abs(v - other[i])));
  assert.ok(diff < 1e-6, `padded tokens changed the logits by ${diff}`);
  // And a real token does change them.
  const changed = ids.slice();
  changed[0] = changed[0] === 5n ? 6n : 5n;
  const moved = (await p.run(feed(changed))).logits.data as Float32Array;
  assert.ok(Math.abs(moved[0] - base[0]) + Math.abs(moved[1] - base[1]) > 1e-6);
  await p.release();
});

test('evaluate and predictors see the weights the last step wrote', async () => {
  const trainer = await Trainer.create({
    inputs: { x: { dtype: 'float32', shape: ['batch', 2] }, y: { dtype: 'float32', shape: ['batch', 1] } },
    build: (g, i) => {
      const d = ops.sub(linear(i.x, 'lin', 1, { init: { kind: 'constant', value: 0.5 } }), i.y);
      return { loss: d.mul(d).mean([0, 1]), metrics: { bias: g.params.get('lin.bias')!.tensor.mean([0]) } };
    },
    optimizer: { lr: 0.1 },
    runtime: { threads: 1 },
  });
  const batch = {
    x: { dtype: 'float32' as const, shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
    y: { dtype: 'float32' as const, shape: [2, 1], data: new Float32Array([1, -1]) },
  };
  const before = await trainer.evaluate(batch);
  const step = await trainer.step(batch);
  assert.equal(step.loss, before.loss, 'the step reports the loss before its update');
  const after = await trainer.evaluate(batch);
  assert.ok(after.loss < before.loss, `loss ${before.loss} -> ${after.loss}`);
  assert.ok(
    Math.abs(after.metrics.bias - -0.1) < 1e-6,
    `bias after one Adam step of lr 0.1: ${after.metrics.bias}`,
  );
  const pred = await trainer.predictor({ x: { dtype: 'float32', shape: ['batch', 2] } }, (g, i) => ({
    y: linear(i.x, 'lin', 1),
  }));
  const y = (await pred.run({ x: batch.x })).y.data as Float32Array;
  const w = trainer.params.get('lin.weight').data as Float32Array;
  const b = (trainer.params.get('lin.bias').data as Float32Array)[0];
  assert.ok(Math.abs(y[0] - (w[0] * 1 + w[1] * 2 + b)) < 1e-6);
  await trainer.step(batch);
  const y2 = (await pred.run({ x: batch.x })).y.data as Float32Array;
  assert.notEqual(y2[0], y[0], 'the predictor must read the live weights');
  await pred.release();
  await trainer.release();
});

test('trainer errors name the input, the parameter and the shapes', async () => {
  const build = (
    g: import('../../src/graph/graph.js').Graph,
    i: Record<string, import('../../src/graph/graph.js').Tensor>,
  ) => {
    const d = linear(i.x, 'lin', 1);
    return { loss: d.mul(d).mean([0, 1]) };
  };
  const inputs = { x: { dtype: 'float32' as const, shape: ['batch', 2] } };
  const params = new ParameterStore();
  params.put('lin.weight', { dtype: 'float32', shape: [2, 1], data: new Float32Array(2) });
  await assert.rejects(
    Trainer.create({ inputs, build, optimizer: { lr: 1 }, params }),
    /'lin\.weight': graph wants float32\[1, 2\], store has float32\[2, 1\]/,
  );
  const t = await Trainer.create({ inputs, build, optimizer: { lr: 1 }, runtime: { threads: 1 } });
  assert.deepEqual(t.initialised.sort(), ['lin.bias', 'lin.weight']);
  await assert.rejects(t.step({}), /batch lacks input 'x' \(float32\[batch, 2\]\)/);
  await assert.rejects(
    t.step({
      x: { dtype: 'float32', shape: [1, 2], data: new Float32Array(2) },
      z: { dtype: 'float32', shape: [1], data: new Float32Array(1) },
    }),
    /input 'z' the model does not declare/,
  );
  await assert.rejects(
    t.step({ x: { dtype: 'float32', shape: [1, 3], data: new Float32Array(3) } }),
    /input 'x' expects float32\[batch, 2\], got float32\[1, 3\]/,
  );
  await assert.rejects(
    Trainer.create({ inputs, build: (g, i) => ({ loss: linear(i.x, 'lin', 1) }), optimizer: { lr: 1 } }),
    /the loss must be a scalar, got shape \[batch, 1\]/,
  );
  await assert.rejects(
    Trainer.create({ inputs, build, optimizer: { lr: 1 }, trainable: () => false }),
    /no trainable parameter reaches the loss/,
  );
  await t.release();
});
