/**
 * Optimiser corners: loading a checkpoint's optimiser state (a wrong shape, a missing
 * optimizer.safetensors), linear decay to a final ratio above 0, a parameter group's
 * own weight decay, and overlapping groups (the first group listed wins).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError, OPTIMIZER_FILE, saveCheckpoint } from '../../src/graph/checkpoint.js';
import * as ops from '../../src/graph/ops/index.js';
import type { OptimizerConfig } from '../../src/graph/optim.js';
import { Trainer } from '../../src/graph/train.js';

const root = mkdtempSync(join(tmpdir(), 'lemer-optim-state-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

const x1 = { x: { dtype: 'float64' as const, shape: [1, 2], data: new Float64Array([1, -2]) } };
const x0 = { x: { dtype: 'float64' as const, shape: [1, 2], data: new Float64Array(2) } };

/** Params a.weight, a.bias, b.weight [2] (constant 2); loss x . (a.weight + a.bias + b.weight). */
function trainer(optimizer: OptimizerConfig): Promise<Trainer> {
  return Trainer.create({
    inputs: { x: { dtype: 'float64', shape: ['batch', 2] } },
    build: (g, i) => {
      const p = ['a.weight', 'a.bias', 'b.weight'].map((n) =>
        g.param(n, [2], { init: { kind: 'constant', value: 2 } }),
      );
      return { loss: ops.mul(i.x, ops.add(ops.add(p[0], p[1]), p[2])).mean([0, 1]) };
    },
    optimizer,
    floatType: 'float64',
    runtime: { threads: 1 },
  });
}

const values = (t: Trainer, n: string) => Array.from(t.params.get(n).data as Float64Array);

test('restore: optimiser state of the wrong shape, unexpected or missing, and no optimizer.safetensors', async () => {
  const a = await trainer({ lr: 0.1 });
  await a.step(x1);
  const dir = a.saveCheckpoint(join(root, 'ok'));
  const m = a.optimizerState.get('a.weight.adam_m');
  assert.ok(Math.abs((m.data as Float64Array)[0]) > 0, 'the step wrote Adam state');

  // Restored state is used: the next step equals the uninterrupted one.
  const b = await trainer({ lr: 0.1 });
  b.restore(dir);
  assert.deepEqual(b.optimizerState.get('a.weight.adam_m').data, m.data);
  await a.step(x1);
  await b.step(x1);
  assert.deepEqual(values(b, 'a.weight'), values(a, 'a.weight'));

  // A state tensor of the wrong shape, and an unexpected one, in one message.
  const state = a.optimizerState.toRecord();
  const bad = saveCheckpoint(join(root, 'bad'), {
    params: a.params,
    optimizerState: {
      ...state,
      'a.weight.adam_v': { dtype: 'float64', shape: [3], data: new Float64Array(3) },
      'c.weight.adam_m': { dtype: 'float64', shape: [1], data: new Float64Array(1) },
    },
    trainerState: { step: 1 },
  });
  assert.throws(
    () => b.restore(bad),
    (err: Error) =>
      err instanceof CheckpointError &&
      /optimizer\.safetensors does not fit the model/.test(err.message) &&
      /a\.weight\.adam_v: model float64\[2\], checkpoint float64\[3\]/.test(err.message) &&
      /1 unexpected[^\n]*\n {4}c\.weight\.adam_m/.test(err.message),
  );
  // Not strict, a wrong shape is still an error.
  assert.throws(() => b.restore(bad, { strict: false }), /a\.weight\.adam_v: model float64\[2\]/);

  // No optimizer.safetensors: resuming needs it; not strict, the weights load and the state stays.
  const noState = a.saveCheckpoint(join(root, 'no-state'));
  unlinkSync(join(noState, OPTIMIZER_FILE));
  const c = await trainer({ lr: 0.1 });
  assert.throws(() => c.restore(noState), /has no optimizer\.safetensors \(the optimiser state is needed/);
  c.restore(noState, { strict: false });
  assert.deepEqual(values(c, 'a.weight'), values(a, 'a.weight'));
  assert.deepEqual(Array.from(c.optimizerState.get('a.weight.adam_m').data as Float64Array), [0, 0]);
  await Promise.all([a.release(), b.release(), c.release()]);
});

test('linear decay to finalLrRatio 0.25 after warm-up 2, ending at update 6', async () => {
  const t = await trainer({
    lr: 0.1,
    schedule: { warmupSteps: 2, decay: 'linear', totalSteps: 6, finalLrRatio: 0.25 },
  });
  const lrs: number[] = [];
  for (let s = 0; s < 8; s++) lrs.push((await t.step(x1)).lr);
  // Factor t/2 during warm-up, then 1 - 0.75 (t - 2) / 4, held at 0.25 from update 6.
  const want = [0.05, 0.1, 0.08125, 0.0625, 0.04375, 0.025, 0.025, 0.025];
  lrs.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-15, `update ${i + 1}: ${v} vs ${want[i]}`));
  await t.release();
});

test("a group's own weight decay replaces the default; the no-decay rule still wins (AdamW and Adam)", async () => {
  // Zero gradients: only the decay moves anything.
  const w = await trainer({
    kind: 'adamw',
    lr: 0.1,
    weightDecay: 0.5,
    groups: [{ name: 'a', match: 'a.', lr: 0.5, weightDecay: 0.2 }],
  });
  await w.step(x0);
  assert.deepEqual(
    values(w, 'a.weight'),
    [2 * (1 - 0.5 * 0.2), 2 * (1 - 0.5 * 0.2)],
    'group decay, group lr',
  );
  assert.deepEqual(values(w, 'a.bias'), [2, 2], 'biases are never decayed');
  assert.deepEqual(values(w, 'b.weight'), [2 * (1 - 0.1 * 0.5), 2 * (1 - 0.1 * 0.5)], 'default decay');
  await w.release();

  // Adam: the decay is an L2 gradient wd * p; the first Adam step is then lr * sign.
  const a = await trainer({
    lr: 0.1,
    weightDecay: 0,
    groups: [{ name: 'a', match: 'a.', lr: 0.5, weightDecay: 0.2 }],
  });
  await a.step(x0);
  values(a, 'a.weight').forEach((v) => assert.ok(Math.abs(v - (2 - 0.5)) < 1e-6, `a.weight ${v}`));
  assert.deepEqual(values(a, 'b.weight'), [2, 2], 'no default decay');
  assert.deepEqual(values(a, 'a.bias'), [2, 2]);
  await a.release();
});

test('overlapping groups: the first group listed that matches takes the parameter', async () => {
  const t = await trainer({
    lr: 0.1,
    groups: [
      { name: 'first', match: /^a\.weight$/, lr: 0.01 },
      { name: 'broad', match: (n) => n.startsWith('a.') || n.startsWith('b.'), lr: 0.02 },
    ],
  });
  assert.deepEqual(t.built.optimizer.groupOf, {
    'a.weight': 'first',
    'a.bias': 'broad',
    'b.weight': 'broad',
  });
  const r = await t.step(x1);
  assert.deepEqual(r.lrs, { first: 0.01, broad: 0.02 });
  // First Adam step: each element moves by its group's lr.
  values(t, 'a.weight').forEach((v) => assert.ok(Math.abs(Math.abs(v - 2) - 0.01) < 1e-6, `a.weight ${v}`));
  values(t, 'b.weight').forEach((v) => assert.ok(Math.abs(Math.abs(v - 2) - 0.02) < 1e-6, `b.weight ${v}`));
  await t.release();
});
