/**
 * Buffers a training step updates (BatchNorm's running statistics): written back by the
 * Trainer, the K-steps Loop and checkpoints, with torch.nn.BatchNorm1d's rule
 * (momentum 0.1, unbiased variance for running_var, num_batches_tracked + 1 per
 * forward), so that evaluation and predictors normalise with trained statistics.
 * The references are torch's documented update, computed here in float64.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { batchNorm1d } from '../../src/graph/layers/norm.js';
import * as ops from '../../src/graph/ops/index.js';
import type { HostTensor } from '../../src/graph/runtime.js';
import { Predictor, Trainer, type TrainerOptions } from '../../src/graph/train.js';
import { Rng } from '../../src/util/random.js';

const root = mkdtempSync(join(tmpdir(), 'lemer-buffers-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

const N = 4;
const C = 3;
const T = 5;

function batchOf(seed: number): Record<string, HostTensor> {
  const r = new Rng(seed);
  const x = new Float32Array(N * C * T);
  // Channel c has mean c and scale 1 + c: the statistics differ per channel.
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / T) % C;
    x[i] = c + (1 + c) * r.normal();
  }
  const t = Float32Array.from({ length: N * C * T }, () => r.normal());
  return {
    x: { dtype: 'float32', shape: [N, C, T], data: x },
    t: { dtype: 'float32', shape: [N, C, T], data: t },
  };
}

function options(over: Partial<TrainerOptions> = {}): TrainerOptions {
  return {
    inputs: {
      x: { dtype: 'float32', shape: ['batch', C, T] },
      t: { dtype: 'float32', shape: ['batch', C, T] },
    },
    build: (_g, i) => {
      const y = batchNorm1d(i.x, 'conv_module.batch_norm', { trackBatches: true });
      return { loss: y.mul(i.t).mean([0, 1, 2]) };
    },
    optimizer: { lr: 0.05 },
    runtime: { threads: 1 },
    ...over,
  };
}

/** torch's update over the given samples of x, in float64. */
function torchUpdate(rm: number[], rv: number[], x: Float32Array, from: number, to: number): void {
  for (let c = 0; c < C; c++) {
    const vals: number[] = [];
    for (let n = from; n < to; n++) for (let k = 0; k < T; k++) vals.push(x[(n * C + c) * T + k]);
    const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
    const unbiased = vals.reduce((a, b) => a + (b - mean) ** 2, 0) / (vals.length - 1);
    rm[c] = 0.9 * rm[c] + 0.1 * mean;
    rv[c] = 0.9 * rv[c] + 0.1 * unbiased;
  }
}

function expected(batches: Record<string, HostTensor>[], chunks: number): { rm: number[]; rv: number[] } {
  const rm = [0, 0, 0];
  const rv = [1, 1, 1];
  for (const b of batches)
    for (let j = 0; j < chunks; j++)
      torchUpdate(rm, rv, b.x.data as Float32Array, (j * N) / chunks, ((j + 1) * N) / chunks);
  return { rm, rv };
}

function close(got: HostTensor, want: number[], what: string, tol = 2e-6): void {
  const g = Array.from(got.data as Float32Array);
  assert.equal(g.length, want.length, what);
  g.forEach((v, i) =>
    assert.ok(Math.abs(v - want[i]) <= tol * (1 + Math.abs(want[i])), `${what}[${i}]: ${v} vs ${want[i]}`),
  );
}

const stat = (tr: Trainer, n: string) => tr.params.get(`conv_module.batch_norm.${n}`);
const batches = [batchOf(1), batchOf(2), batchOf(3)];

test('the Trainer writes BatchNorm running statistics back after each step (torch rule, 3 steps)', async () => {
  const tr = await Trainer.create(options());
  assert.deepEqual(tr.built.bufferWrites.map((w) => w.name).sort(), [
    'conv_module.batch_norm.num_batches_tracked',
    'conv_module.batch_norm.running_mean',
    'conv_module.batch_norm.running_var',
  ]);
  for (const b of batches) await tr.step(b);
  const want = expected(batches, 1);
  close(stat(tr, 'running_mean'), want.rm, 'running_mean');
  close(stat(tr, 'running_var'), want.rv, 'running_var');
  assert.equal(stat(tr, 'num_batches_tracked').data[0], 3n);
  // The running statistics are buffers: no optimiser state, not trained.
  assert.ok(!tr.optimizerState.has('conv_module.batch_norm.running_mean.adam_m'));

  // Evaluation and predictors use them: y = (x - rm) / sqrt(rv + eps) * w + b.
  const pred = await tr.predictor({ x: { dtype: 'float32', shape: ['batch', C, T] } }, (_g, i) => ({
    y: batchNorm1d(i.x, 'conv_module.batch_norm', { trackBatches: true }),
  }));
  const x = batchOf(9).x;
  const y = (await pred.run({ x })).y.data as Float32Array;
  const w = tr.params.get('conv_module.batch_norm.weight').data as Float32Array;
  const bias = tr.params.get('conv_module.batch_norm.bias').data as Float32Array;
  const rm = stat(tr, 'running_mean').data as Float32Array;
  const rv = stat(tr, 'running_var').data as Float32Array;
  for (let i = 0; i < y.length; i++) {
    const c = Math.floor(i / T) % C;
    const ref = (((x.data[i] as number) - rm[c]) / Math.sqrt(rv[c] + 1e-5)) * w[c] + bias[c];
    assert.ok(Math.abs(y[i] - ref) < 1e-5, `y[${i}] ${y[i]} vs ${ref}`);
  }
  // evaluate() likewise: its loss is that of the eval-form output.
  const ev = await tr.evaluate(batchOf(9));
  const t = batchOf(9).t.data as Float32Array;
  const ref = y.reduce((a, v, i) => a + v * t[i], 0) / y.length;
  assert.ok(Math.abs(ev.loss - ref) < 1e-6, `evaluate loss ${ev.loss} vs ${ref}`);
  await pred.release();
  await tr.release();
});

test('micro-batches: each chunk updates the statistics once, chained (torch with gradient accumulation)', async () => {
  const tr = await Trainer.create(options({ microBatches: 2 }));
  for (const b of batches) await tr.step(b);
  const want = expected(batches, 2);
  close(stat(tr, 'running_mean'), want.rm, 'running_mean');
  close(stat(tr, 'running_var'), want.rv, 'running_var');
  assert.equal(stat(tr, 'num_batches_tracked').data[0], 6n, 'two forwards per step');
  await tr.release();
});

test('stepsPerRun 3: the Loop carries the statistics; same as 3 single steps, and checkpoints keep them', async () => {
  const single = await Trainer.create(options());
  for (const b of batches) await single.step(b);
  const loop = await Trainer.create(options({ stepsPerRun: 3 }));
  await loop.steps(batches);
  for (const n of ['running_mean', 'running_var', 'num_batches_tracked'])
    assert.deepEqual(stat(loop, n).data, stat(single, n).data, `${n}: Loop vs single steps`);

  const dir = loop.saveCheckpoint(join(root, 'ck'));
  const fresh = await Trainer.create(options());
  fresh.restore(dir);
  for (const n of ['running_mean', 'running_var', 'num_batches_tracked'])
    assert.deepEqual(stat(fresh, n).data, stat(single, n).data, `${n} after restore`);
  // And training continues from them.
  await fresh.step(batchOf(4));
  await single.step(batchOf(4));
  assert.deepEqual(stat(fresh, 'running_var').data, stat(single, 'running_var').data);
  await Promise.all([single.release(), loop.release(), fresh.release()]);
});

test('a Predictor or evaluation graph built in training mode is refused, naming dropout and batch statistics', async () => {
  const inputs = { x: { dtype: 'float32' as const, shape: ['batch', C, T] } };
  await assert.rejects(
    () =>
      Predictor.create({
        inputs,
        build: (_g, i) => ({ y: batchNorm1d(i.x, 'bn', { training: true }) }),
      }),
    /Predictor: the graph was built in training mode \(batch statistics .* at bn; updates of bn\.running_mean, bn\.running_var\)/,
  );
  await assert.rejects(
    () =>
      Predictor.create({
        inputs,
        build: (g, i) => {
          g.training = true;
          return { y: ops.dropout(i.x, 0.5) };
        },
      }),
    /Predictor: the graph was built in training mode \(graph\.training is true; dropout p=0\.5 at \(top level\)\)/,
  );
  // Built as it should be, dropout is off: the output is the input, run after run.
  const p = await Predictor.create({ inputs, build: (_g, i) => ({ y: ops.dropout(i.x, 0.5) }) });
  const x = batchOf(5).x;
  for (let k = 0; k < 2; k++) assert.deepEqual((await p.run({ x })).y.data, x.data);
  await p.release();

  const tr = await Trainer.create(
    options({
      build: (g, i) => {
        g.training = true; // a build that ignores ctx.training
        const y = batchNorm1d(i.x, 'bn');
        return { loss: y.mul(i.t).mean([0, 1, 2]) };
      },
    }),
  );
  await tr.step(batchOf(1));
  await assert.rejects(
    () => tr.evaluate(batchOf(1)),
    /Trainer\.evaluate: the graph was built in training mode \(graph\.training is true/,
  );
  await tr.release();
});
