// Gradients through the whole encoder (float64: ORT has no float64 Conv, the engine
// lowers it) against central finite differences, for every trainable tensor and the
// waveform; and freezeFeatureEncoder as Hugging Face's (no gradient into the conv stack).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, type Tensor } from '../../../src/graph/graph.js';
import { gradients } from '../../../src/graph/autodiff.js';
import { CompiledGraph, type HostTensor } from '../../../src/graph/runtime.js';
import { randn } from '../../../src/graph/gradcheck.js';
import { Trainer, buildTrainingGraph } from '../../../src/graph/train.js';
import { ParameterStore } from '../../../src/graph/params.js';
import {
  buildWav2Vec2,
  isFeatureEncoderParam,
  parseWav2Vec2Config,
  wav2vec2Arch,
  wav2vec2Encoder,
  wav2vec2WeightsFromCheckpoint,
} from '../../../src/models/wav2vec2/index.js';
import { loadFixture } from './helpers.js';

const LENGTHS = [120, 90];
const S = 120;

function shortBatch(ref: Map<string, HostTensor>): { wave: Float64Array; mask: BigInt64Array } {
  const src = ref.get('input_values')!.data as Float32Array;
  const srcS = ref.get('input_values')!.shape[1];
  const wave = new Float64Array(2 * S);
  const mask = new BigInt64Array(2 * S);
  LENGTHS.forEach((n, b) => {
    for (let t = 0; t < n; t++) {
      wave[b * S + t] = src[b * srcS + t];
      mask[b * S + t] = 1n;
    }
  });
  return { wave, mask };
}

async function checkGradients(name: string): Promise<void> {
  const fx = loadFixture(name);
  const arch = wav2vec2Arch(parseWav2Vec2Config(fx.config));
  const { weights } = wav2vec2WeightsFromCheckpoint(arch, fx.tensors, name);
  const g = new Graph({ name: 'w2v2-grad', floatType: 'float64' });
  const wave = g.input('input_values', 'float64', [2, S]);
  const mask = g.input('attention_mask', 'int64', [2, S]);
  const out = buildWav2Vec2(arch, { input_values: wave, attention_mask: mask });
  const r = g.input('projection', 'float64', out.hidden.shape);
  const loss = out.hidden.mul(r).sum([0, 1, 2]);
  const wrt: Tensor[] = [wave, ...g.trainableParams().map((p) => p.tensor)];
  const grads = gradients(loss, wrt);
  g.output('loss', loss);
  grads.forEach((gr, k) => {
    assert.ok(gr, `no gradient path to ${wrt[k].name}`);
    g.output(`grad.${k}`, gr);
  });
  const cg = await CompiledGraph.create(g, { threads: 1 });
  const { wave: w, mask: m } = shortBatch(fx.ref);
  const feeds: Record<string, HostTensor> = {
    input_values: { dtype: 'float64', shape: [2, S], data: w },
    attention_mask: { dtype: 'int64', shape: [2, S], data: m },
  };
  for (const [k, v] of weights)
    feeds[k] =
      v.dtype === 'float32' ? { ...v, dtype: 'float64', data: Float64Array.from(v.data as Float32Array) } : v;
  // The projection's shape is the hidden state's: one run without it fails, so probe with the graph's static shape.
  const T = out.hidden.shape[1];
  assert.equal(typeof T, 'number', 'a static input length gives static frames');
  feeds.projection = {
    dtype: 'float64',
    shape: [2, T as number, arch.hiddenSize],
    data: randn(2 * (T as number) * arch.hiddenSize, 5),
  };
  const analytic = await cg.run(feeds);
  const lossAt = async (): Promise<number> => (await cg.run(feeds, ['loss'])).loss.data[0] as number;
  const eps = 1e-6;
  let worst = 0;
  let where = '';
  for (let k = 0; k < wrt.length; k++) {
    const feedName = k === 0 ? 'input_values' : g.trainableParams()[k - 1].spec.name;
    const x = feeds[feedName].data as Float64Array;
    const ga = analytic[`grad.${k}`].data as Float64Array;
    assert.equal(ga.length, x.length, feedName);
    // One element per parameter tensor, two of the waveform (inside both rows).
    const picks = k === 0 ? [60, S + 40] : [Math.floor(x.length * 0.61)];
    for (const i of picks) {
      const orig = x[i];
      x[i] = orig + eps;
      const lp = await lossAt();
      x[i] = orig - eps;
      const lm = await lossAt();
      x[i] = orig;
      const num = (lp - lm) / (2 * eps);
      const err = Math.abs(ga[i] - num) / Math.max(Math.abs(num), 1e-3);
      if (err > worst) [worst, where] = [err, `${feedName}[${i}]: analytic ${ga[i]}, numeric ${num}`];
    }
  }
  await cg.release();
  assert.ok(worst < 1e-5, `${name}: worst relative error ${worst} at ${where}`);
}

for (const name of [
  'wav2vec2-tiny',
  'wav2vec2-tiny-stable',
  'wavlm-tiny',
  'w2v2-conformer-rel',
  'w2v2-conformer-rotary',
])
  test(`${name}: float64 gradients of every trainable tensor and the waveform match finite differences`, () =>
    checkGradients(name));

test('freezeFeatureEncoder: the conv stack gets no gradient and no update; the projection still trains', () => {
  const fx = loadFixture('wav2vec2-tiny');
  for (const freeze of [true, false]) {
    const enc = wav2vec2Encoder(fx.config, { freezeFeatureEncoder: freeze });
    const built = buildTrainingGraph({
      inputs: enc.inputs,
      optimizer: { kind: 'adamw', lr: 1e-3 },
      build: (g, i) => {
        const out = enc.build(g, i, { training: true });
        return { loss: out.hidden.mul(out.hidden).mean([0, 1, 2]) };
      },
    });
    const trained = built.trained.map((s) => s.name);
    const conv = [...built.graph.params.keys()].filter(isFeatureEncoderParam);
    assert.ok(conv.length >= 4, 'the conv stack has parameters');
    if (freeze) {
      assert.deepEqual(trained.filter(isFeatureEncoderParam), [], 'no conv parameter is updated');
      assert.deepEqual(built.unused.filter(isFeatureEncoderParam).sort(), conv.sort());
      // No backward node reads the conv stack: its convolutions appear once (forward only).
      const convNodes = built.graph.nodes.filter(
        (n) => n.op === 'Conv' && n.scope.startsWith('feature_extractor'),
      );
      assert.equal(convNodes.length, fx.config.num_feat_extract_layers);
    } else assert.deepEqual(trained.filter(isFeatureEncoderParam).sort(), conv.sort());
    assert.ok(trained.includes('feature_projection.projection.weight'));
    assert.ok(trained.includes('encoder.layers.1.feed_forward.output_dense.weight'));
  }
});

// Symbolic batch and length (what training uses): every variant's training graph builds.
for (const name of [
  'wav2vec2-tiny',
  'wav2vec2-tiny-stable',
  'hubert-tiny',
  'wavlm-tiny',
  'w2v2-conformer-rel',
  'w2v2-conformer-rotary',
])
  test(`${name}: the training graph (float32, symbolic lengths, fused GELU) builds`, () => {
    const fx = loadFixture(name);
    const enc = wav2vec2Encoder(fx.config);
    const built = buildTrainingGraph({
      inputs: enc.inputs,
      optimizer: { kind: 'adamw', lr: 1e-3 },
      build: (g, i) => {
        const out = enc.build(g, i, { training: true });
        // One frame dim everywhere: a head can mix hidden states, the mask and the CNN features.
        for (const t of [...out.hiddenStates, out.mask, out.extractFeatures!])
          assert.deepEqual(t.shape.slice(0, 2), out.hidden.shape.slice(0, 2));
        assert.equal(out.hidden.shape[0], 'batch');
        return { loss: out.hidden.mul(out.hidden).mean([0, 1, 2]) };
      },
    });
    assert.deepEqual(built.unused, []);
  });

test('one training step (dropout on): frozen conv weights stay bit for bit, the rest moves', async () => {
  for (const name of ['wav2vec2-tiny', 'w2v2-conformer-rel']) {
    const fx = loadFixture(name);
    const arch = wav2vec2Arch(parseWav2Vec2Config(fx.config));
    const { weights } = wav2vec2WeightsFromCheckpoint(arch, fx.tensors, name);
    const enc = wav2vec2Encoder(fx.config, { freezeFeatureEncoder: true, weights });
    const params = new ParameterStore();
    for (const [k, v] of weights) params.set(k, { ...v, data: v.data.slice() as Float32Array });
    const trainer = await Trainer.create({
      inputs: enc.inputs,
      optimizer: { kind: 'adamw', lr: 1e-2 },
      params,
      seed: 3,
      runtime: { threads: 1 },
      build: (g, i) => {
        const out = enc.build(g, i, { training: true });
        return { loss: out.hidden.mul(out.hidden).mean([0, 1, 2]) };
      },
    });
    const r = await trainer.step({
      input_values: fx.ref.get('input_values')!,
      attention_mask: fx.ref.get('attention_mask')!,
    });
    assert.ok(Number.isFinite(r.loss), `${name}: loss ${r.loss}`);
    for (const [k, v] of weights) {
      const now = trainer.params.get(k).data as Float32Array;
      const same = now.every((x, j) => x === (v.data as Float32Array)[j]);
      if (isFeatureEncoderParam(k)) assert.ok(same, `${name}: ${k} changed although frozen`);
      else if (/projection\.weight$|q_proj\.weight$|linear_q\.weight$/.test(k))
        assert.ok(!same, `${name}: ${k} did not train`);
    }
    await trainer.release();
  }
});
