// The Gumbel vector quantiser and the Wav2Vec2ForPreTraining objective against an
// independent PyTorch implementation (tools/make_quantizer_fixtures.py): eval-form codes,
// code vectors, perplexity and losses (codebook collisions included), training-form
// losses with fixed Gumbel uniforms and every gradient; code packing; the temperature schedule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Graph, type Tensor } from '../../src/graph/graph.js';
import { gradients } from '../../src/graph/autodiff.js';
import { CompiledGraph, type HostTensor } from '../../src/graph/runtime.js';
import { readSafetensors } from '../../src/graph/safetensors.js';
import {
  gumbelVectorQuantizer,
  packCodes,
  parsePretrainingConfig,
} from '../../src/models/wav2vec2/quantizer.js';
import { gumbelTemperature, wav2vec2PretrainingLoss } from '../../src/models/wav2vec2/pretraining.js';
import { ConfigError } from '../../src/config/load.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'models', 'quantizer-tiny');
const ref = readSafetensors(join(DIR, 'reference.safetensors')).tensors;
const weights = readSafetensors(join(DIR, 'model.safetensors')).tensors;
const raw = JSON.parse(readFileSync(join(DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
const cfg = parsePretrainingConfig(raw);
const R = (k: string): HostTensor => {
  const t = ref.get(k);
  assert.ok(t, `reference has ${k}`);
  return t;
};

function maxRel(a: HostTensor, b: HostTensor, what: string): number {
  assert.deepEqual([...a.shape], [...b.shape], `${what}: shape`);
  let m = 0;
  let s = 0;
  for (let i = 0; i < a.data.length; i++) {
    m = Math.max(m, Math.abs(Number(a.data[i]) - Number(b.data[i])));
    s = Math.max(s, Math.abs(Number(b.data[i])));
  }
  return m / Math.max(s, 1e-3);
}

const close = (a: number, b: number, tol = 1e-4) =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

async function run(training: boolean): Promise<Record<string, HostTensor>> {
  const g = new Graph({ name: 'quantizer', training });
  const f = R('features');
  const h = R('hidden');
  const features = g.input('features', 'float32', f.shape);
  const hidden = g.input('hidden', 'float32', h.shape);
  const mask = g.input('mask_time_indices', 'int64', R('mask_time_indices').shape);
  const neg = g.input('sampled_negative_indices', 'int64', R('sampled_negative_indices').shape);
  const uniform = g.input('uniform', 'float32', R('uniform').shape);
  const out = wav2vec2PretrainingLoss(
    { hidden, features, maskTimeIndices: mask, negatives: neg },
    { config: cfg, training, uniform: training ? uniform : undefined },
  );
  const q = g.reusing(() =>
    gumbelVectorQuantizer(features, {
      numGroups: cfg.num_codevector_groups,
      numVars: cfg.num_codevectors_per_group,
      codevectorDim: cfg.codevector_dim,
      mask,
      training: false,
    }),
  );
  g.output('loss', out.loss);
  g.output('contrastive', out.contrastive);
  g.output('diversity', out.diversity);
  g.output('perplexity', out.perplexity);
  g.output('codes', out.codes);
  g.output('code', out.code);
  g.output('eval.codevectors', q.codevectors);
  g.output('eval.perplexity', q.perplexity);
  const feeds: Record<string, HostTensor> = {
    features: f,
    hidden: h,
    mask_time_indices: R('mask_time_indices'),
    sampled_negative_indices: R('sampled_negative_indices'),
  };
  if (training) {
    feeds.uniform = R('uniform');
    const wrt: [string, Tensor][] = [
      ['features', features],
      ['hidden', hidden],
      ...g.trainableParams().map((p) => [p.spec.name, p.tensor] as [string, Tensor]),
    ];
    gradients(
      out.loss,
      wrt.map(([, t]) => t),
    ).forEach((gr, k) => g.output(`grad.${wrt[k][0]}`, gr!));
  } else g.output('uniform_unused', uniform);
  for (const [k, v] of weights) feeds[k] = v;
  if (!training) feeds.uniform = R('uniform');
  const cg = await CompiledGraph.create(g, { threads: 1 });
  const res = await cg.run(feeds);
  await cg.release();
  return res;
}

test('the fixture uses HF names: quantizer.codevectors [1, G*V, D/G], quantizer.weight_proj, project_q, project_hid', () => {
  assert.deepEqual([...weights.keys()].sort(), [
    'project_hid.bias',
    'project_hid.weight',
    'project_q.bias',
    'project_q.weight',
    'quantizer.codevectors',
    'quantizer.weight_proj.bias',
    'quantizer.weight_proj.weight',
  ]);
  assert.deepEqual(weights.get('quantizer.codevectors')!.shape, [1, 10, 4]);
});

test('eval form: codes, code vectors, perplexity and the losses (with codebook collisions) match PyTorch', async () => {
  const r = await run(false);
  assert.deepEqual([...(r.codes.data as BigInt64Array)], [...(R('eval.codes').data as BigInt64Array)]);
  const V = cfg.num_codevectors_per_group;
  assert.deepEqual(
    [...(r.code.data as BigInt64Array)].map(Number),
    packCodes(R('eval.codes').data as BigInt64Array, cfg.num_codevector_groups, V),
  );
  assert.ok(maxRel(r['eval.codevectors'], R('eval.codevectors'), 'codevectors') < 1e-6);
  close(r['eval.perplexity'].data[0] as number, R('eval.perplexity').data[0] as number);
  close(r.loss.data[0] as number, R('eval.loss').data[0] as number);
  close(r.contrastive.data[0] as number, R('eval.contrastive').data[0] as number);
  close(r.diversity.data[0] as number, R('eval.diversity').data[0] as number);
});

test('training form (fixed Gumbel uniforms): losses, perplexity and every gradient match PyTorch', async () => {
  const r = await run(true);
  close(r.loss.data[0] as number, R('train.loss').data[0] as number);
  close(r.contrastive.data[0] as number, R('train.contrastive').data[0] as number);
  close(r.diversity.data[0] as number, R('train.diversity').data[0] as number);
  close(r.perplexity.data[0] as number, R('train.perplexity').data[0] as number);
  const names = Object.keys(r).filter((k) => k.startsWith('grad.'));
  assert.equal(names.length, 2 + weights.size);
  for (const k of names) {
    const d = maxRel(r[k], R(k), k);
    assert.ok(d < 1e-4, `${k}: relative difference ${d}`);
  }
});

test('packCodes: group 0 is the most significant digit', () => {
  assert.deepEqual(packCodes([0, 0, 0, 1, 1, 0, 319, 319], 2, 320), [0, 1, 320, 320 * 320 - 1]);
  assert.deepEqual(packCodes([2, 1, 3], 3, 4), [2 * 16 + 4 + 3]);
});

test("Gumbel temperature: max(2 * 0.999995^step, 0.5), HF's schedule", async () => {
  const g = new Graph();
  const step = g.input('step', 'int64', []);
  g.output('tau', gumbelTemperature(step));
  const cg = await CompiledGraph.create(g, { threads: 1 });
  for (const s of [0, 1000, 100000, 1000000]) {
    const r = await cg.run({ step: { dtype: 'int64', shape: [], data: BigInt64Array.of(BigInt(s)) } });
    close(r.tau.data[0] as number, Math.max(2 * 0.999995 ** s, 0.5), 1e-5);
  }
  await cg.release();
});

test('pretraining config: defaults are wav2vec2-base; bad values name file and key', () => {
  const d = parsePretrainingConfig({});
  assert.equal(d.num_codevector_groups, 2);
  assert.equal(d.num_codevectors_per_group, 320);
  assert.equal(d.num_negatives, 100);
  assert.throws(
    () => parsePretrainingConfig({ codevector_dim: 9 }, '/m/config.json'),
    (e: unknown) =>
      e instanceof ConfigError && /\/m\/config\.json/.test(e.message) && /codevector_dim/.test(e.message),
  );
  assert.throws(() => parsePretrainingConfig({ num_negatives: 0 }, 'c.json'), /num_negatives/);
});
