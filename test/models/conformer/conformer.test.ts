// The log-mel conformer against an independent PyTorch implementation
// (tools/make_conformer_fixtures.py): every hidden state of a padded batch in eval form,
// training-form outputs, gradients and BatchNorm running statistics; float64 gradients
// against finite differences; padded rows against the same rows alone; config errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Graph, type Tensor } from '../../../src/graph/graph.js';
import { gradients } from '../../../src/graph/autodiff.js';
import { CompiledGraph, type HostTensor } from '../../../src/graph/runtime.js';
import { randn } from '../../../src/graph/gradcheck.js';
import { readSafetensors } from '../../../src/graph/safetensors.js';
import { ParameterStore } from '../../../src/graph/params.js';
import { Predictor, buildTrainingGraph } from '../../../src/graph/train.js';
import { ConfigError } from '../../../src/config/load.js';
import {
  type ConformerEncoder,
  buildConformer,
  conformerArch,
  conformerEncoder,
  conformerFrameLengths,
  conformerParamSpecs,
  conformerWeightsFromCheckpoint,
  loadConformerFolder,
  parseConformerConfig,
  subsampledLength,
} from '../../../src/models/conformer/index.js';

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'models');
const ref = (name: string) => readSafetensors(join(FIXTURES, name, 'reference.safetensors')).tensors;

function maxAbsDiff(a: HostTensor, b: HostTensor, what: string): number {
  assert.deepEqual([...a.shape], [...b.shape], `${what}: shape`);
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(Number(a.data[i]) - Number(b.data[i])));
  return m;
}

async function runEval(
  enc: ConformerEncoder,
  feeds: Record<string, HostTensor>,
): Promise<Record<string, HostTensor>> {
  const params = new ParameterStore();
  for (const [k, v] of enc.weights ?? []) params.set(k, v);
  const p = await Predictor.create({
    inputs: enc.inputs,
    params,
    runtime: { threads: 1 },
    build: (g, i) => {
      const out = enc.build(g, i, { training: false });
      const o: Record<string, Tensor> = { mask: out.mask };
      out.hiddenStates.forEach((h, k) => (o[`hidden_states.${k}`] = h));
      return o;
    },
  });
  if (enc.weights) assert.deepEqual(p.initialised, [], 'every parameter comes from the checkpoint');
  const out = await p.run(feeds);
  await p.release();
  return out;
}

test('defaults: hidden 144, 4 layers, 4 heads, FFN 576, kernel 15, BatchNorm; 80 -> 19 bins; x4 lengths', () => {
  const a = conformerArch(parseConformerConfig({}));
  assert.equal(a.hiddenSize, 144);
  assert.equal(a.numLayers, 4);
  assert.equal(a.numHeads, 4);
  assert.equal(a.intermediateSize, 576);
  assert.equal(a.depthwiseKernel, 15);
  assert.equal(a.convNorm, 'batch_norm');
  assert.equal(a.subsampledBins, 19);
  // Conv2d(3, stride 2) twice: 7 frames -> 1, 6 -> 0, 100 -> 24, 1000 (10 s) -> 249.
  assert.deepEqual(
    [0, 1, 2, 3, 6, 7, 10, 11, 100, 1000].map(subsampledLength),
    [0, 0, 0, 0, 0, 1, 1, 2, 24, 249],
  );
  const n = conformerParamSpecs(a).reduce((s, p) => s + p.shape.reduce((x, y) => x * y, 1), 0);
  assert.ok(n > 1.5e6 && n < 3e6, `default size ${n} parameters`);
});

test('in-graph encoder lengths agree with the host arithmetic for every length 0..60', async () => {
  const lengths = Array.from({ length: 61 }, (_, i) => i);
  const T = 60;
  const g = new Graph();
  const m = g.input('attention_mask', 'int64', ['batch', 'frames']);
  g.output('frames', conformerFrameLengths(m));
  const cg = await CompiledGraph.create(g, { threads: 1 });
  const mask = new BigInt64Array(lengths.length * T);
  lengths.forEach((l, b) => mask.fill(1n, b * T, b * T + l));
  const out = await cg.run({ attention_mask: { dtype: 'int64', shape: [lengths.length, T], data: mask } });
  await cg.release();
  assert.deepEqual([...(out.frames.data as BigInt64Array)].map(Number), lengths.map(subsampledLength));
});

test('config errors name the file and the key', () => {
  const bad = (raw: Record<string, unknown>, re: RegExp) =>
    assert.throws(
      () => parseConformerConfig(raw, '/m/config.json'),
      (e: unknown) => e instanceof ConfigError && /\/m\/config\.json/.test(e.message) && re.test(e.message),
    );
  bad({ model_type: 'wav2vec2' }, /model_type/);
  bad({ hidden_size: 30, num_attention_heads: 4 }, /not divisible by num_attention_heads/);
  bad({ conv_depthwise_kernel_size: 4 }, /must be odd/);
  bad({ conv_norm: 'group_norm' }, /conv_norm/);
  bad({ num_mel_bins: 5 }, /num_mel_bins/);
  bad({ position_embeddings_type: 'rotary' }, /position_embeddings_type/);
});

for (const name of ['conformer-tiny', 'conformer-tiny-ln'])
  test(`${name}: every hidden state of a padded batch matches PyTorch (eval) to 1e-4`, async () => {
    const r = ref(name);
    const enc = loadConformerFolder(join(FIXTURES, name));
    assert.equal(enc.modelType, 'lemer-conformer');
    assert.equal(enc.modality, 'speech');
    const out = await runEval(enc, {
      input_features: r.get('input_features')!,
      attention_mask: r.get('attention_mask')!,
    });
    assert.deepEqual(
      [...(out.mask.data as BigInt64Array)],
      [...(r.get('frame_mask')!.data as BigInt64Array)],
    );
    const meta = JSON.parse(readFileSync(join(FIXTURES, name, 'reference.json'), 'utf8')) as {
      num_hidden_states: number;
    };
    for (let k = 0; k < meta.num_hidden_states; k++) {
      const d = maxAbsDiff(out[`hidden_states.${k}`], r.get(`hidden_states.${k}`)!, `hidden_states.${k}`);
      assert.ok(d < 1e-4, `${name} hidden_states.${k}: max abs diff ${d}`);
    }
  });

test('padded rows equal the same utterances run alone (eval form)', async () => {
  const r = ref('conformer-tiny');
  const enc = loadConformerFolder(join(FIXTURES, 'conformer-tiny'));
  const feats = r.get('input_features')!;
  const [B, T, M] = feats.shape;
  const batch = await runEval(enc, { input_features: feats, attention_mask: r.get('attention_mask')! });
  const last = batch[`hidden_states.${enc.numLayers}`];
  const Tp = last.shape[1];
  const D = enc.hiddenSize;
  for (const b of [1, 2]) {
    const n = [40, 29, 11][b];
    const alone = await runEval(enc, {
      input_features: {
        dtype: 'float32',
        shape: [1, n, M],
        data: (feats.data as Float32Array).slice(b * T * M, (b * T + n) * M),
      },
      attention_mask: { dtype: 'int64', shape: [1, n], data: new BigInt64Array(n).fill(1n) },
    });
    const a = alone[`hidden_states.${enc.numLayers}`];
    const frames = subsampledLength(n);
    assert.equal(a.shape[1], frames);
    let m = 0;
    for (let t = 0; t < frames; t++)
      for (let d = 0; d < D; d++)
        m = Math.max(
          m,
          Math.abs((a.data as Float32Array)[t * D + d] - (last.data as Float32Array)[(b * Tp + t) * D + d]),
        );
    assert.ok(m < 1e-5, `row ${b}: max abs diff ${m}`);
  }
  void B;
});

test('training form (batch statistics): output, every parameter gradient and the new running statistics match PyTorch', async () => {
  const name = 'conformer-tiny';
  const r = ref(name);
  const enc = loadConformerFolder(join(FIXTURES, name));
  const g = new Graph({ name: 'conformer-train', training: true });
  const x = g.input('input_features', 'float32', r.get('input_features')!.shape);
  const m = g.input('attention_mask', 'int64', r.get('attention_mask')!.shape);
  const out = enc.build(g, { input_features: x, attention_mask: m }, { training: true });
  const proj = g.input('projection', 'float32', out.hidden.shape);
  const keep = out.mask.cast('float32').unsqueeze(2);
  const loss = out.hidden.mul(proj).mul(keep).sum([0, 1, 2]);
  const params = g.trainableParams();
  const grads = gradients(
    loss,
    params.map((p) => p.tensor),
  );
  g.output('loss', loss);
  g.output('hidden', out.hidden);
  grads.forEach((gr, k) => g.output(`grad.${params[k].spec.name}`, gr!));
  const ups = g.bufferUpdates;
  assert.equal(ups.size, 2 * enc.numLayers, 'running mean and variance of each BatchNorm');
  for (const [k, t] of ups) g.output(`new.${k}`, t);
  const cg = await CompiledGraph.create(g, { threads: 1 });
  const feeds: Record<string, HostTensor> = {
    input_features: r.get('input_features')!,
    attention_mask: r.get('attention_mask')!,
    projection: r.get('train.projection')!,
  };
  for (const [k, v] of enc.weights!) feeds[k] = v;
  const res = await cg.run(feeds);
  await cg.release();
  assert.ok(maxAbsDiff(res.hidden, r.get('train.hidden')!, 'hidden') < 1e-4);
  const lossRef = r.get('train.loss')!.data[0] as number;
  assert.ok(Math.abs((res.loss.data[0] as number) - lossRef) < 1e-4 * Math.max(1, Math.abs(lossRef)));
  let worst = 0;
  let where = '';
  for (const p of params) {
    const want = r.get(`grad.${p.spec.name}`);
    assert.ok(want, `PyTorch has a gradient for ${p.spec.name}`);
    const got = res[`grad.${p.spec.name}`];
    let scale = 0;
    for (const v of want.data as Float32Array) scale = Math.max(scale, Math.abs(v));
    const d = maxAbsDiff(got, want, p.spec.name) / Math.max(scale, 1e-2); // linear_k.bias: exactly 0 in theory, float noise
    if (d > worst) [worst, where] = [d, p.spec.name];
  }
  assert.ok(worst < 1e-4, `worst relative gradient difference ${worst} at ${where}`);
  for (const [k] of ups) {
    const d = maxAbsDiff(res[`new.${k}`], r.get(`new.${k}`)!, k);
    assert.ok(d < 1e-5, `${k}: ${d}`);
  }
});

test('float64 gradients of every trainable tensor and the input features match finite differences', async () => {
  const name = 'conformer-tiny';
  const dir = join(FIXTURES, name);
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const arch = conformerArch(parseConformerConfig(cfg));
  const { weights } = conformerWeightsFromCheckpoint(
    arch,
    readSafetensors(join(dir, 'model.safetensors')).tensors,
    dir,
  );
  const [B, T, M] = [2, 19, arch.melBins];
  const g = new Graph({ name: 'conformer-grad', floatType: 'float64', training: true });
  const x = g.input('input_features', 'float64', [B, T, M]);
  const m = g.input('attention_mask', 'int64', [B, T]);
  const out = buildConformer(arch, { input_features: x, attention_mask: m });
  const Tp = subsampledLength(T);
  const proj = g.input('projection', 'float64', [B, Tp, arch.hiddenSize]);
  const loss = out.hidden.withShape([B, Tp, arch.hiddenSize]).mul(proj).sum([0, 1, 2]);
  const wrt: Tensor[] = [x, ...g.trainableParams().map((p) => p.tensor)];
  const names = ['input_features', ...g.trainableParams().map((p) => p.spec.name)];
  gradients(loss, wrt).forEach((gr, k) => {
    assert.ok(gr, `no gradient path to ${names[k]}`);
    g.output(`grad.${k}`, gr);
  });
  g.output('loss', loss);
  const cg = await CompiledGraph.create(g, { threads: 1 });
  const mask = new BigInt64Array(B * T).fill(1n);
  mask.fill(0n, T + 13, 2 * T); // second row: 13 frames -> 2 encoder frames
  const feeds: Record<string, HostTensor> = {
    input_features: { dtype: 'float64', shape: [B, T, M], data: randn(B * T * M, 3) },
    attention_mask: { dtype: 'int64', shape: [B, T], data: mask },
    projection: {
      dtype: 'float64',
      shape: [B, Tp, arch.hiddenSize],
      data: randn(B * Tp * arch.hiddenSize, 4),
    },
  };
  for (const [k, v] of weights)
    feeds[k] = { ...v, dtype: 'float64', data: Float64Array.from(v.data as Float32Array) };
  for (const p of g.params.values()) assert.ok(feeds[p.spec.name], `${p.spec.name} fed`);
  const analytic = await cg.run(feeds);
  const lossAt = async (): Promise<number> => (await cg.run(feeds, ['loss'])).loss.data[0] as number;
  const eps = 1e-6;
  let worst = 0;
  let where = '';
  for (let k = 0; k < wrt.length; k++) {
    const xs = feeds[names[k]].data as Float64Array;
    const ga = analytic[`grad.${k}`].data as Float64Array;
    const picks =
      k === 0 ? [5 * M + 7, 11 * M + 40, (T + 3) * M + 1] : [0, Math.floor(xs.length / 2), xs.length - 1];
    for (const i of picks) {
      const orig = xs[i];
      xs[i] = orig + eps;
      const lp = await lossAt();
      xs[i] = orig - eps;
      const lm = await lossAt();
      xs[i] = orig;
      const num = (lp - lm) / (2 * eps);
      const err = Math.abs(ga[i] - num) / Math.max(Math.abs(num), 1e-3);
      if (err > worst) [worst, where] = [err, `${names[k]}[${i}]: analytic ${ga[i]}, numeric ${num}`];
    }
  }
  await cg.release();
  assert.ok(worst < 1e-5, `worst relative error ${worst} at ${where}`);
});

test('as an Encoder: random init builds a symbolic-length training graph; every parameter trains', () => {
  const enc = conformerEncoder({
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    intermediate_size: 64,
  });
  assert.equal(enc.weights, null);
  assert.match(enc.source, /random init/);
  const built = buildTrainingGraph({
    inputs: enc.inputs,
    optimizer: { kind: 'adamw', lr: 1e-3 },
    build: (g, i) => {
      const out = enc.build(g, i, { training: true });
      assert.equal(out.hiddenStates.length, 3);
      return { loss: out.hidden.mul(out.hidden).mean([0, 1, 2]) };
    },
  });
  assert.deepEqual(built.unused, []);
});

test('a checkpoint that does not fit its config lists every missing, unexpected and wrong-shaped tensor', () => {
  const dir = join(FIXTURES, 'conformer-tiny');
  const t = readSafetensors(join(dir, 'model.safetensors')).tensors;
  const arch = conformerArch(
    parseConformerConfig({
      ...JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
      intermediate_size: 48,
    }),
  );
  t.delete('encoder.layers.0.final_layer_norm.bias');
  t.set('encoder.layers.9.extra', { dtype: 'float32', shape: [1], data: new Float32Array(1) });
  t.set('quantizer.codevectors', { dtype: 'float32', shape: [1], data: new Float32Array(1) });
  assert.throws(
    () => conformerWeightsFromCheckpoint(arch, t, '/x/model.safetensors'),
    (e: unknown) =>
      e instanceof Error &&
      /^\/x\/model\.safetensors: /.test(e.message) &&
      /wrong-shaped:[\s\S]*ffn1\.intermediate_dense\.weight: checkpoint \[32, 16\], config gives \[48, 16\]/.test(
        e.message,
      ) &&
      /13 missing:[\s\S]*encoder\.layers\.0\.final_layer_norm\.bias/.test(e.message) &&
      /1 unexpected:\n  encoder\.layers\.9\.extra/.test(e.message),
  );
});

test('the encoder registry: loadEncoder reads a lemer-conformer folder, createEncoder builds one in place', async () => {
  const { loadEncoder, createEncoder, encoderModelTypes } = await import('../../../src/models/encoders.js');
  assert.ok(encoderModelTypes().includes('lemer-conformer'));
  const e = loadEncoder(join(FIXTURES, 'conformer-tiny'));
  assert.equal(e.modelType, 'lemer-conformer');
  assert.equal(e.weights!.size, conformerParamSpecs(conformerArch(parseConformerConfig(e.config))).length);
  assert.deepEqual(e.unused, []);
  const fresh = createEncoder('lemer-conformer', { num_hidden_layers: 2 });
  assert.equal(fresh.numLayers, 2);
  assert.equal(fresh.hiddenSize, 144);
});
