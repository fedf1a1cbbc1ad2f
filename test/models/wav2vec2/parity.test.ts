// Every hidden state of each wav2vec2-family variant against its independent PyTorch
// reference (tools/make_wav2vec2_fixtures.py), on a padded batch and on a row alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../../../src/graph/graph.js';
import { CompiledGraph, type HostTensor } from '../../../src/graph/runtime.js';
import {
  buildWav2Vec2,
  parseWav2Vec2Config,
  wav2vec2Arch,
  wav2vec2WeightsFromCheckpoint,
} from '../../../src/models/wav2vec2/index.js';
import { fixtureEncoder, loadFixture, maxAbsDiff, rowPrefix, runEncoder } from './helpers.js';

const TOL = 1e-4;

const VARIANTS: { name: string; what: string; paddingInvariant: boolean }[] = [
  { name: 'wav2vec2-tiny', what: 'wav2vec2, group norm, post-LN', paddingInvariant: false },
  { name: 'wav2vec2-tiny-stable', what: 'wav2vec2, layer norm, stable layer norm', paddingInvariant: true },
  { name: 'hubert-tiny', what: 'HuBERT, no projection LayerNorm', paddingInvariant: false },
  { name: 'wavlm-tiny', what: 'WavLM, gated relative position bias', paddingInvariant: false },
  { name: 'wavlm-tiny-stable', what: 'WavLM, layer norm, stable layer norm', paddingInvariant: true },
  { name: 'w2v2-conformer-rel', what: 'wav2vec2-conformer, relative positions', paddingInvariant: false },
  { name: 'w2v2-conformer-rotary', what: 'wav2vec2-conformer, rotary positions', paddingInvariant: false },
];

/** Row 1 of a [2, S] tensor cut to n samples, as [1, n]. */
function firstSamples(t: HostTensor, row: number, n: number): HostTensor {
  const S = t.shape[1];
  const data = t.data.slice(row * S, row * S + n) as HostTensor['data'];
  return { dtype: t.dtype, shape: [1, n], data };
}

for (const v of VARIANTS) {
  test(`${v.what}: every hidden state of a padded batch matches PyTorch to ${TOL}`, async () => {
    const fx = loadFixture(v.name);
    const out = await runEncoder(fixtureEncoder(fx), {
      input_values: fx.ref.get('input_values')!,
      attention_mask: fx.ref.get('attention_mask')!,
    });
    const n = fx.meta.num_hidden_states;
    assert.equal(n, (fx.config.num_hidden_layers as number) + 1);
    for (let i = 0; i < n; i++) {
      const d = maxAbsDiff(
        out[`hidden_states.${i}`],
        fx.ref.get(`hidden_states.${i}`)!,
        `hidden_states.${i}`,
      );
      assert.ok(d <= TOL, `${v.name} hidden_states.${i}: max |diff| ${d}`);
    }
    assert.equal(out[`hidden_states.${n}`], undefined);
    const e = maxAbsDiff(out.extract_features, fx.ref.get('extract_features')!, 'extract_features');
    assert.ok(e <= TOL, `${v.name} extract_features: max |diff| ${e}`);
    // The frame mask is HF's output-length arithmetic: 400 -> 19 frames, 300 -> 14.
    const T = out.mask.shape[1];
    const lengths = [...(fx.ref.get('frame_lengths')!.data as BigInt64Array)].map(Number);
    assert.deepEqual(lengths, [19, 14]);
    lengths.forEach((l, b) => {
      for (let t = 0; t < T; t++) assert.equal(out.mask.data[b * T + t], t < l ? 1n : 0n, `mask[${b}, ${t}]`);
    });
  });

  test(`${v.what}: the short row alone matches PyTorch${v.paddingInvariant ? ', and its padded run' : ''}`, async () => {
    const fx = loadFixture(v.name);
    const n = fx.meta.lengths[1];
    const enc = fixtureEncoder(fx);
    const alone = await runEncoder(enc, {
      input_values: firstSamples(fx.ref.get('input_values')!, 1, n),
      attention_mask: firstSamples(fx.ref.get('attention_mask')!, 1, n),
    });
    const frames = 14;
    for (let i = 0; i < fx.meta.num_hidden_states; i++) {
      const d = maxAbsDiff(
        alone[`hidden_states.${i}`],
        fx.ref.get(`alone.hidden_states.${i}`)!,
        `alone ${i}`,
      );
      assert.ok(d <= TOL, `${v.name} alone hidden_states.${i}: max |diff| ${d}`);
    }
    if (!v.paddingInvariant) return;
    // Layer-norm feature encoders see no padding: the padded row's real frames equal the row alone.
    const padded = await runEncoder(enc, {
      input_values: fx.ref.get('input_values')!,
      attention_mask: fx.ref.get('attention_mask')!,
    });
    for (let i = 0; i < fx.meta.num_hidden_states; i++) {
      const d = maxAbsDiff(
        rowPrefix(padded[`hidden_states.${i}`], 1, frames),
        alone[`hidden_states.${i}`],
        `${i}`,
      );
      assert.ok(d <= TOL, `${v.name} padded vs alone, hidden_states.${i}: max |diff| ${d}`);
    }
  });
}

test('LayerDrop in training: layerdrop 1 skips every layer (WavLM keeps layer 0, as HF)', async () => {
  for (const name of ['wav2vec2-tiny', 'wavlm-tiny']) {
    const fx = loadFixture(name);
    const config = {
      ...fx.config,
      hidden_dropout: 0,
      attention_dropout: 0,
      activation_dropout: 0,
      layerdrop: 1,
    };
    const enc = fixtureEncoder({ ...fx, config });
    const feeds = {
      input_values: fx.ref.get('input_values')!,
      attention_mask: fx.ref.get('attention_mask')!,
    };
    const train = await runEncoder(enc, feeds, true);
    const first = name === 'wavlm-tiny' ? 1 : 0;
    if (first === 1)
      assert.ok(maxAbsDiff(train['hidden_states.1'], fx.ref.get('hidden_states.1')!, 'l0') <= TOL);
    assert.equal(maxAbsDiff(train['hidden_states.2'], train[`hidden_states.${first}`], `${name} skipped`), 0);
    // Outside training the same config runs every layer.
    const evalOut = await runEncoder(enc, feeds, false);
    assert.ok(maxAbsDiff(evalOut['hidden_states.2'], fx.ref.get('hidden_states.2')!, 'eval') <= TOL);
  }
});

test('mask_time_indices: masked frames take masked_spec_embed before the encoder (as torchaudio pieces give)', async () => {
  const fx = loadFixture('wav2vec2-tiny');
  const g = new Graph();
  const wave = g.input('input_values', 'float32', ['batch', 'samples']);
  const mask = g.input('attention_mask', 'int64', ['batch', 'samples']);
  const timeMask = g.input('mask_time_indices', 'int64', ['batch', 'frames']);
  const arch = wav2vec2Arch(parseWav2Vec2Config(fx.config));
  const out = buildWav2Vec2(
    arch,
    { input_values: wave, attention_mask: mask },
    { maskTimeIndices: timeMask },
  );
  out.hiddenStates.forEach((h, i) => g.output(`h${i}`, h));
  const { weights } = wav2vec2WeightsFromCheckpoint(arch, fx.tensors, 'm', { maskTimeIndices: timeMask });
  assert.ok(weights.has('masked_spec_embed'));
  const cg = await CompiledGraph.create(g, { threads: 1 });
  const res = await cg.run({
    ...Object.fromEntries(weights),
    input_values: fx.ref.get('input_values')!,
    attention_mask: fx.ref.get('attention_mask')!,
    mask_time_indices: fx.ref.get('mask_time_indices')!,
  });
  await cg.release();
  for (let i = 0; i < 3; i++) {
    const d = maxAbsDiff(res[`h${i}`], fx.ref.get(`masked.hidden_states.${i}`)!, `masked ${i}`);
    assert.ok(d <= TOL, `masked hidden_states.${i}: ${d}`);
  }
  assert.ok(
    maxAbsDiff(res.h2, fx.ref.get('hidden_states.2')!, 'unmasked') > 0.01,
    'the mask changes the output',
  );
});
