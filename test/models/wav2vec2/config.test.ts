// config.json and preprocessor_config.json of the wav2vec2 family, output-length
// arithmetic, weight names, and bad input (short audio, configs that disagree with weights).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph } from '../../../src/graph/graph.js';
import { CompiledGraph } from '../../../src/graph/runtime.js';
import { ConfigError } from '../../../src/config/load.js';
import {
  featExtractOutputLength,
  frameLengths,
  mapWav2Vec2Name,
  minInputSamples,
  parseWav2Vec2Config,
  readWav2Vec2FeatureConfig,
  wav2vec2Arch,
  wav2vec2Batch,
  wav2vec2Encoder,
  wav2vec2ParamSpecs,
  wav2vec2WeightsFromCheckpoint,
} from '../../../src/models/wav2vec2/index.js';
import { fixtureEncoder, loadFixture, maxAbsDiff, runEncoder } from './helpers.js';

const BASE = wav2vec2Arch(parseWav2Vec2Config({}));

test('defaults are wav2vec2-base: 7 convs, 768 hidden, 12 layers; 95M parameters; receptive field 400 samples', () => {
  assert.equal(BASE.conv.length, 7);
  assert.equal(BASE.hiddenSize, 768);
  assert.equal(BASE.numLayers, 12);
  assert.equal(BASE.featExtractNorm, 'group');
  assert.equal(BASE.stableLayerNorm, false);
  assert.equal(minInputSamples(BASE), 400);
  const n = wav2vec2ParamSpecs(BASE).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  // torchaudio's wav2vec2_base() counts 94,370,944 (measured); HF's Wav2Vec2Model adds masked_spec_embed (768).
  assert.equal(n, 94_370_944);
});

test("HF's output lengths: 1 s -> 49 frames, 400 samples -> 1, 399 -> 0; in-graph lengths agree", async () => {
  assert.equal(featExtractOutputLength(BASE, 16000), 49);
  assert.equal(featExtractOutputLength(BASE, 400), 1);
  assert.equal(featExtractOutputLength(BASE, 399), 0);
  assert.equal(featExtractOutputLength(BASE, 0), 0);
  const lengths = [0, 1, 9, 399, 400, 401, 719, 720, 16000, 48123, 80000];
  const S = Math.max(...lengths);
  const g = new Graph();
  const m = g.input('attention_mask', 'int64', ['batch', 'samples']);
  g.output('frames', frameLengths(BASE, m));
  const cg = await CompiledGraph.create(g, { threads: 1 });
  const mask = new BigInt64Array(lengths.length * S);
  lengths.forEach((l, b) => mask.fill(1n, b * S, b * S + l));
  const out = await cg.run({ attention_mask: { dtype: 'int64', shape: [lengths.length, S], data: mask } });
  await cg.release();
  assert.deepEqual(
    [...(out.frames.data as BigInt64Array)].map(Number),
    lengths.map((l) => featExtractOutputLength(BASE, l)),
  );
});

test('config errors name the file and the key; graph-changing values lemer does not build are rejected', () => {
  const bad = (raw: Record<string, unknown>, re: RegExp) =>
    assert.throws(
      () => parseWav2Vec2Config(raw, '/m/config.json'),
      (e: unknown) =>
        e instanceof ConfigError && /^\/m\/config\.json: /m.test(e.message) && re.test(e.message),
    );
  bad({ feat_extract_norm: 'batch' }, /feat_extract_norm: expected one of "group", "layer"/);
  bad({ model_type: 'bert' }, /model_type/);
  bad({ hidden_act: 'quick_gelu' }, /hidden_act/);
  bad({ add_adapter: true }, /add_adapter/);
  bad({ model_type: 'hubert', conv_pos_batch_norm: true }, /conv_pos_batch_norm/);
  bad({ position_embeddings_type: 'alibi' }, /position_embeddings_type/);
  bad({ conv_dim: [16, 16], conv_kernel: [10, 3, 3], conv_stride: [5, 2] }, /one length/);
  bad(
    { conv_dim: [16], conv_kernel: [10], conv_stride: [5], num_feat_extract_layers: 2 },
    /num_feat_extract_layers/,
  );
  bad({ hidden_size: 30, num_attention_heads: 4 }, /not divisible by num_attention_heads/);
  bad({ model_type: 'wav2vec2-conformer', conv_depthwise_kernel_size: 4 }, /must be odd/);
  // Keys that do not change the graph pass through.
  const c = parseWav2Vec2Config({ vocab_size: 99, mask_time_prob: 0.05, architectures: ['Wav2Vec2ForCTC'] });
  assert.equal((c as Record<string, unknown>).vocab_size, 99);
});

test('names: heads and prefixes stripped, both weight-norm spellings, unused tensors set aside', () => {
  assert.deepEqual(mapWav2Vec2Name('wav2vec2', 'wav2vec2.encoder.layers.3.attention.q_proj.weight'), {
    kind: 'param',
    name: 'encoder.layers.3.attention.q_proj.weight',
  });
  assert.deepEqual(
    mapWav2Vec2Name('hubert', 'hubert.encoder.pos_conv_embed.conv.parametrizations.weight.original0'),
    {
      kind: 'param',
      name: 'encoder.pos_conv_embed.conv.weight_g',
    },
  );
  assert.deepEqual(
    mapWav2Vec2Name('wavlm', 'encoder.pos_conv_embed.conv.parametrizations.weight.original1'),
    {
      kind: 'param',
      name: 'encoder.pos_conv_embed.conv.weight_v',
    },
  );
  for (const [mt, key] of [
    ['wav2vec2', 'lm_head.weight'],
    ['wav2vec2', 'wav2vec2.masked_spec_embed'],
    ['wav2vec2', 'quantizer.codevectors'],
    ['wav2vec2', 'project_hid.weight'],
    ['wavlm', 'projector.weight'],
    ['wavlm', 'feature_extractor.weight'],
    ['hubert', 'classifier.bias'],
    ['wav2vec2-conformer', 'wav2vec2_conformer.encoder.pos_conv_embed.conv.weight_g'],
    ['wav2vec2-conformer', 'encoder.layers.0.conv_module.batch_norm.num_batches_tracked'],
    ['wav2vec2-conformer', 'wav2vec2_conformer.encoder.embed_positions.inv_freq'],
  ] as const)
    assert.equal(mapWav2Vec2Name(mt, key).kind, 'unused', key);
});

test('both weight-norm spellings of one checkpoint give the same outputs', async () => {
  const fx = loadFixture('wav2vec2-tiny');
  const renamed = new Map(
    [...fx.tensors].map(([k, v]) => [
      k
        .replace('.weight_g', '.parametrizations.weight.original0')
        .replace('.weight_v', '.parametrizations.weight.original1'),
      v,
    ]),
  );
  assert.ok([...renamed.keys()].some((k) => k.includes('parametrizations.weight.original1')));
  const feeds = { input_values: fx.ref.get('input_values')!, attention_mask: fx.ref.get('attention_mask')! };
  const a = await runEncoder(fixtureEncoder(fx), feeds);
  const b = await runEncoder(fixtureEncoder(fx, {}, renamed), feeds);
  assert.equal(maxAbsDiff(a['hidden_states.2'], b['hidden_states.2'], 'last'), 0);
});

test('a config that disagrees with the weights lists every wrong, missing and unexpected tensor', () => {
  const fx = loadFixture('wav2vec2-tiny');
  const arch = wav2vec2Arch(
    parseWav2Vec2Config({ ...fx.config, intermediate_size: 48, num_hidden_layers: 3 }),
  );
  assert.throws(
    () => wav2vec2WeightsFromCheckpoint(arch, fx.tensors, '/m/model.safetensors'),
    (e: Error) =>
      /^\/m\/model\.safetensors: the weights do not fit config\.json/.test(e.message) &&
      /wav2vec2\.encoder\.layers\.0\.feed_forward\.intermediate_dense\.weight: the file has \[32, 16\], config\.json gives \[48, 16\]/.test(
        e.message,
      ) &&
      /missing:[\s\S]*encoder\.layers\.2\.attention\.q_proj\.weight \[16, 16\]/.test(e.message),
  );
  const ok = wav2vec2WeightsFromCheckpoint(wav2vec2Arch(parseWav2Vec2Config(fx.config)), fx.tensors, 'm');
  assert.deepEqual(ok.unused.sort(), ['lm_head.bias', 'lm_head.weight', 'wav2vec2.masked_spec_embed']);
  const extra = new Map(fx.tensors).set(
    'wav2vec2.encoder.layers.9.attention.q_proj.weight',
    fx.tensors.get('wav2vec2.encoder.layers.0.attention.q_proj.weight')!,
  );
  assert.throws(
    () => wav2vec2WeightsFromCheckpoint(wav2vec2Arch(parseWav2Vec2Config(fx.config)), extra, 'm'),
    /1 unexpected:\n {2}wav2vec2\.encoder\.layers\.9\.attention\.q_proj\.weight/,
  );
});

test('audio shorter than the receptive field is a clear error, in the batch and in the graph', () => {
  const enc = wav2vec2Encoder({});
  assert.throws(
    () =>
      wav2vec2Batch([new Float32Array(16000), new Float32Array(399)], undefined, {
        minSamples: enc.minSamples,
        names: ['a.wav', 'b.wav'],
      }),
    /^Error: b\.wav: 399 samples \(24\.9 ms\) is shorter than the encoder's receptive field of 400 samples \(25\.0 ms\)/,
  );
  assert.throws(
    () => wav2vec2Batch([new Float32Array(400)], undefined, { sampleRate: 8000 }),
    /8000 Hz.*16000 Hz/,
  );
  const g = new Graph();
  const inputs = {
    input_values: g.input('input_values', 'float32', [1, 300]),
    attention_mask: g.input('attention_mask', 'int64', [1, 300]),
  };
  assert.throws(() => enc.build(g, inputs, { training: false }), /shorter than the kernel's span/);
});

test('preprocessor_config.json: normalisation per utterance over its own samples, padding, mask', () => {
  const dir = mkdtempSync(join(tmpdir(), 'w2v2-pre-'));
  writeFileSync(
    join(dir, 'preprocessor_config.json'),
    JSON.stringify({
      feature_extractor_type: 'Wav2Vec2FeatureExtractor',
      do_normalize: true,
      sampling_rate: 16000,
      padding_value: 0.0,
      return_attention_mask: true,
    }),
  );
  const fc = readWav2Vec2FeatureConfig(dir);
  assert.deepEqual(fc, {
    samplingRate: 16000,
    doNormalize: true,
    paddingValue: 0,
    returnAttentionMask: true,
  });
  const b = wav2vec2Batch([Float32Array.from([1, 2, 3, 4]), Float32Array.from([10, 20])], fc);
  assert.deepEqual(b.input_values.shape, [2, 4]);
  const v = b.input_values.data as Float32Array;
  // (x - mean) / sqrt(var + 1e-7): [1, 2, 3, 4] -> +-1.342, +-0.447; [10, 20] -> -1, 1; then padding 0.
  const s = Math.sqrt(1.25 + 1e-7);
  [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s].forEach((x, i) => assert.ok(Math.abs(v[i] - x) < 1e-6));
  assert.ok(Math.abs(v[4] + 1) < 1e-6 && Math.abs(v[5] - 1) < 1e-6 && v[6] === 0 && v[7] === 0);
  assert.deepEqual([...(b.attention_mask.data as BigInt64Array)], [1n, 1n, 1n, 1n, 1n, 1n, 0n, 0n]);
  // A folder without the file gets Wav2Vec2FeatureExtractor's defaults; a wrong type is named.
  assert.equal(readWav2Vec2FeatureConfig(tmpdir()).samplingRate, 16000);
  writeFileSync(
    join(dir, 'preprocessor_config.json'),
    JSON.stringify({ feature_extractor_type: 'WhisperFeatureExtractor', feature_size: 80 }),
  );
  assert.throws(() => readWav2Vec2FeatureConfig(dir), /preprocessor_config\.json: feature_size/);
});
