/** Checkpoints: exact resume, the fit report against a model, atomic saves. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CheckpointError,
  loadCheckpoint,
  saveCheckpoint,
  type TrainerFile,
} from '../../src/graph/checkpoint.js';
import type { ParamSpec } from '../../src/graph/graph.js';
import { ParameterStore, TensorStore } from '../../src/graph/params.js';
import { Trainer, type TrainerOptions } from '../../src/graph/train.js';
import { makeOrderBatch } from '../../src/models/toy/transformer.js';
import { sameBits, toyTrainerOptions } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'lemer-checkpoint-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

const options = (): TrainerOptions =>
  toyTrainerOptions({ totalSteps: 10, maxGradNorm: 1 }, { microBatches: 2 });

/** Batches drawn from the trainer's own generator, so its state must be restored too. */
const stepOnce = (t: Trainer) => t.step(makeOrderBatch(t.rng, 8));

test('3 steps straight == 2 steps + save + load into a fresh trainer + 1 step, bit for bit', async () => {
  const straight = await Trainer.create(options());
  for (let i = 0; i < 3; i++) await stepOnce(straight);

  const first = await Trainer.create(options());
  for (let i = 0; i < 2; i++) await stepOnce(first);
  const dir = join(root, 'resume');
  first.saveCheckpoint(dir, { model: 'toy-transformer', note: 'test' });
  await first.release();

  const resumed = await Trainer.create(options());
  const ck = resumed.restore(dir);
  assert.equal(resumed.state.step, 2);
  assert.equal(ck.trainer.lemerVersion, JSON.parse(readFileSync('package.json', 'utf8')).version);
  const last = await stepOnce(resumed);
  assert.equal(resumed.state.step, 3);
  assert.equal(resumed.rng.state(), straight.rng.state());
  sameBits(resumed.params, straight.params, 'weights');
  sameBits(resumed.optimizerState, straight.optimizerState, 'optimizer state');
  assert.ok(Number.isFinite(last.loss));
  await straight.release();
  await resumed.release();
});

test('trainer.json holds step, RNG state, optimiser config (patterns as text), run config and version', async () => {
  const t = await Trainer.create(options());
  await stepOnce(t);
  const dir = t.saveCheckpoint(join(root, 'meta'), { fold: 3 });
  const file = JSON.parse(readFileSync(join(dir, 'trainer.json'), 'utf8')) as TrainerFile;
  assert.equal(file.format, 'lemer-checkpoint');
  assert.equal(file.trainer.step, 1);
  assert.equal(file.trainer.rngState, t.rng.state());
  assert.equal(file.trainer.microBatches, 2);
  assert.deepEqual(file.config, { fold: 3 });
  const opt = file.optimizer as { groups: { match: string }[]; schedule: { decay: string } };
  assert.equal(opt.groups[0].match, '/^classifier\\./');
  assert.equal(opt.schedule.decay, 'cosine');
  assert.deepEqual(file.files.model.tensors, t.params.size);
  assert.deepEqual(file.files.optimizer?.tensors, t.optimizerState.size);
  assert.deepEqual(readdirSync(dir).sort(), ['model.safetensors', 'optimizer.safetensors', 'trainer.json']);
  await assert.rejects(
    (async () => (await Trainer.create({ ...options(), seed: 5 })).restore(dir))(),
    /saved with seed 4, this trainer has seed 5/,
  );
  await t.release();
});

const spec = (name: string, shape: number[]): ParamSpec => ({
  name,
  shape,
  dtype: 'float32',
  init: { kind: 'zeros' },
  trainable: true,
});

test('loading reports every missing, unexpected and mis-shaped tensor in one message', () => {
  const params = new ParameterStore();
  params.put('a.weight', { dtype: 'float32', shape: [2, 3], data: new Float32Array(6) });
  params.put('b.weight', { dtype: 'float32', shape: [4], data: new Float32Array(4) });
  params.put('old.bias', { dtype: 'float32', shape: [1], data: new Float32Array(1) });
  params.put('c.weight', { dtype: 'float64', shape: [1], data: new Float64Array(1) });
  const dir = saveCheckpoint(join(root, 'fit'), { params });
  const expect = [
    spec('a.weight', [2, 3]),
    spec('b.weight', [2, 2]),
    spec('c.weight', [1]),
    spec('new.bias', [3]),
  ];
  let msg = '';
  try {
    loadCheckpoint(dir, { expect });
  } catch (err) {
    assert.ok(err instanceof CheckpointError);
    msg = err.message;
  }
  assert.match(msg, /model\.safetensors does not fit the model/);
  assert.match(
    msg,
    /2 of a different shape or dtype:\n {4}b\.weight: model float32\[2, 2\], checkpoint float32\[4\]\n {4}c\.weight: model float32\[1\], checkpoint float64\[1\]/,
  );
  assert.match(msg, /1 missing \(the model has them, the file does not\):\n {4}new\.bias/);
  assert.match(msg, /1 unexpected \(in the file, not in the model\):\n {4}old\.bias/);
  // Not strict: missing and unexpected are tolerated (and reported), a wrong shape never is.
  assert.throws(() => loadCheckpoint(dir, { expect, strict: false }), /b\.weight: model float32\[2, 2\]/);
  const ok = loadCheckpoint(dir, {
    expect: [spec('a.weight', [2, 3]), spec('new.bias', [3])],
    strict: false,
  });
  assert.deepEqual(ok.paramsCheck.missing, ['new.bias']);
  assert.deepEqual(ok.paramsCheck.unexpected.sort(), ['b.weight', 'c.weight', 'old.bias']);
  assert.deepEqual(ok.params.names(), ['a.weight']);
  assert.equal(ok.optimizerState, null);
  // Everything loads when nothing is expected.
  assert.equal(loadCheckpoint(dir).params.size, 4);
});

test('saves are atomic: a failed save leaves the previous checkpoint whole and no temporary folders', () => {
  const dir = join(root, 'atomic');
  const good = new ParameterStore();
  good.put('w', { dtype: 'float32', shape: [3], data: Float32Array.from([1, 2, 3]) });
  saveCheckpoint(dir, { params: good, trainerState: { step: 7 } });
  // The second save fails half-way (the optimiser file cannot be encoded) after model.safetensors was written.
  const bad = new TensorStore('optimizer state');
  bad.put('w.adam_m', { dtype: 'float32', shape: [3], data: new Float32Array(3) });
  (bad.get('w.adam_m') as { shape: readonly number[] }).shape = [4];
  const newer = new ParameterStore();
  newer.put('w', { dtype: 'float32', shape: [3], data: Float32Array.from([9, 9, 9]) });
  assert.throws(
    () => saveCheckpoint(dir, { params: newer, optimizerState: bad, trainerState: { step: 8 } }),
    /w\.adam_m/,
  );
  const ck = loadCheckpoint(dir);
  assert.deepEqual(Array.from(ck.params.get('w').data as Float32Array), [1, 2, 3]);
  assert.equal(ck.trainer.trainer.step, 7);
  assert.deepEqual(
    readdirSync(root).filter((n) => n.startsWith('atomic.')),
    [],
  );
  // A successful save replaces the directory as a whole (nothing of the old one stays).
  mkdirSync(join(dir, 'stray'));
  saveCheckpoint(dir, { params: newer, trainerState: { step: 8 } });
  assert.ok(!existsSync(join(dir, 'stray')));
  assert.deepEqual(Array.from(loadCheckpoint(dir).params.get('w').data as Float32Array), [9, 9, 9]);
  assert.deepEqual(
    readdirSync(root).filter((n) => n.startsWith('atomic.')),
    [],
  );
});

test('a missing checkpoint names leftovers of an interrupted save', () => {
  mkdirSync(join(root, 'gone.tmp-123-abcd'));
  assert.throws(
    () => loadCheckpoint(join(root, 'gone')),
    /no checkpoint at .*gone; an interrupted save left .*gone\.tmp-123-abcd/,
  );
  assert.throws(
    () => loadCheckpoint(join(root, 'never')),
    (e: Error) => e instanceof CheckpointError && !/interrupted/.test(e.message),
  );
});
