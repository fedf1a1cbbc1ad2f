// Self-supervised pretraining of the log-mel conformer: a few steps on a tiny model lower
// the loss, the written folder is a config.json + model.safetensors that the conformer
// loader reads back (objective tensors set aside), BatchNorm statistics are written back,
// a run continues from its own folder, and a corpus' audio goes through the front end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Features } from '../../src/audio/logmel.js';
import { Rng } from '../../src/util/random.js';
import { readSafetensors } from '../../src/graph/safetensors.js';
import { loadConformerFolder, subsampledLength } from '../../src/models/conformer/index.js';
import {
  pretrainConformerOnFeatures,
  pretrainOnCorpus,
  padFeatures,
  pretrainWav2Vec2OnWaves,
  quantizerCodes,
  sslTargets,
} from '../../src/pretrain/index.js';
import { loadCorpus } from '../../src/data/corpus.js';
import { encodeWav } from '../audio/helpers.js';
import { runCli } from '../../src/cli/program.js';
import { loadEncoder } from '../../src/models/encoders.js';
import {
  featExtractOutputLength,
  parseWav2Vec2Config,
  wav2vec2Arch,
  wav2vec2Batch,
} from '../../src/models/wav2vec2/index.js';

const TINY = {
  model_type: 'lemer-conformer',
  num_mel_bins: 80,
  subsampling_channels: 4,
  hidden_size: 16,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 32,
  conv_depthwise_kernel_size: 5,
  hidden_dropout: 0.0,
  activation_dropout: 0.0,
  attention_dropout: 0.0,
  conformer_conv_dropout: 0.0,
  num_codevector_groups: 2,
  num_codevectors_per_group: 8,
  codevector_dim: 8,
  proj_codevector_dim: 8,
  num_negatives: 5,
};

/** Utterances made of runs of four prototype frames (+ noise): structure a model can learn. */
function syntheticFeatures(n: number, seed: number): Features[] {
  const rng = new Rng(seed);
  const protos = Array.from({ length: 4 }, () => Float32Array.from({ length: 80 }, () => rng.normal()));
  return Array.from({ length: n }, () => {
    const frames = 80 + rng.int(0, 60);
    const data = new Float32Array(frames * 80);
    let p = rng.int(0, 4);
    for (let t = 0; t < frames; t++) {
      if (t % 40 === 0) p = rng.int(0, 4);
      for (let b = 0; b < 80; b++) data[t * 80 + b] = protos[p][b] + 0.1 * rng.normal();
    }
    return { data, frames, bins: 80 };
  });
}

function encoderFolder(extra: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'lemer-pretrain-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...TINY, ...extra }));
  return dir;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

test('a tiny conformer: the loss drops below chance in 40 steps; the folder reloads; a second run continues from it', async () => {
  const enc = encoderFolder();
  const out = join(mkdtempSync(join(tmpdir(), 'lemer-pretrain-out-')), 'ssl');
  const feats = syntheticFeatures(16, 1);
  const warnings: string[] = [];
  const r = await pretrainConformerOnFeatures(feats, {
    encoderDir: enc,
    outDir: out,
    steps: 40,
    batchSize: 4,
    lr: 1e-2,
    maskProb: 0.3,
    maskLength: 2,
    warmupSteps: 4,
    seed: 1,
    runtime: { threads: 1 },
    onWarning: (m) => warnings.push(m),
  });
  assert.match(warnings.join('\n'), /no model\.safetensors, starting from random weights/);
  assert.equal(r.log.length, 40);
  const first = mean(r.log.slice(0, 5).map((s) => s.loss));
  const last = mean(r.log.slice(-10).map((s) => s.loss));
  // Chance level of the contrastive term is ln(1 + K) = ln 6 = 1.79 per masked frame.
  assert.ok(last < 0.9 * first && last < Math.log(6) - 0.2, `loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  assert.ok(r.log.every((s) => s.perplexity >= 1 && s.perplexity <= 16));

  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(cfg.model_type, 'lemer-conformer');
  assert.deepEqual(cfg.architectures, ['LemerConformerForPreTraining']);
  assert.equal(cfg.num_codevectors_per_group, 8);
  const tensors = readSafetensors(join(out, 'model.safetensors')).tensors;
  for (const k of [
    'quantizer.codevectors',
    'quantizer.weight_proj.weight',
    'project_q.weight',
    'project_hid.weight',
    'masked_spec_embed',
  ])
    assert.ok(tensors.has(k), k);
  assert.deepEqual(tensors.get('quantizer.codevectors')!.shape, [1, 16, 4]);
  // BatchNorm's running statistics were written back by the Trainer (not left at 0 / 1).
  const rm = tensors.get('encoder.layers.0.conv_module.batch_norm.running_mean')!.data as Float32Array;
  assert.ok(
    rm.some((v) => v !== 0),
    'running_mean moved',
  );

  const back = loadConformerFolder(out);
  assert.equal(back.weights!.size, tensors.size - 8, 'the encoder takes all but the 8 objective tensors');

  // Per-frame codes from the trained quantiser: one per valid encoder frame, in [0, V^G).
  const q = await quantizerCodes(out, [padFeatures(feats.slice(0, 3))]);
  assert.deepEqual(
    q.codes.map((c) => c.length),
    feats.slice(0, 3).map((f) => subsampledLength(f.frames)),
  );
  assert.ok(q.codes.every((c) => c.every((v) => v >= 0 && v < 64)));
  assert.ok(new Set(q.codes.flatMap((c) => [...c])).size > 1, 'more than one code in use');

  // Continue from the written folder: the objective's tensors come from it too.
  const out2 = join(out, '..', 'ssl2');
  const r2 = await pretrainConformerOnFeatures(feats, {
    encoderDir: out,
    outDir: out2,
    steps: 3,
    batchSize: 4,
    lr: 1e-3,
    seed: 2,
    runtime: { threads: 1 },
  });
  assert.ok(
    r2.log[0].loss < first,
    `continued run starts below the fresh one (${r2.log[0].loss} vs ${first})`,
  );
});

test('span masks and negatives stay inside each utterance; a batch shorter than a span still masks', () => {
  const t = sslTargets([9, 4, 2], 9, { maskProb: 0.65, spanLength: 5, minMasks: 1, numNegatives: 3 }, 7);
  const m = t.mask_time_indices.data as BigInt64Array;
  [9, 4, 2].forEach((len, b) => {
    for (let i = len; i < 9; i++) assert.equal(m[b * 9 + i], 0n, `row ${b} frame ${i} is padding`);
  });
  assert.ok(m.slice(0, 9).some((v) => v === 1n));
  const neg = t.sampled_negative_indices.data as BigInt64Array;
  for (let i = 0; i < 4 * 3; i++) {
    const v = Number(neg[9 * 3 + i]);
    assert.ok(v >= 9 && v < 13, `row 1 negatives point inside row 1: ${v}`);
  }
  const short = sslTargets([3], 3, { maskProb: 0.65, spanLength: 5, minMasks: 1, numNegatives: 2 }, 1);
  assert.ok((short.mask_time_indices.data as BigInt64Array).some((v) => v === 1n));
});

test('bad input: a HuBERT folder is pointed to k-means codes; no config.json; too-short audio', async () => {
  const w2v = mkdtempSync(join(tmpdir(), 'lemer-pretrain-w2v-'));
  writeFileSync(join(w2v, 'config.json'), JSON.stringify({ model_type: 'hubert' }));
  const base = { outDir: join(w2v, 'out'), steps: 1, batchSize: 1 };
  await assert.rejects(
    pretrainConformerOnFeatures([], { ...base, encoderDir: w2v }),
    /hubert has no quantiser objective in Hugging Face.*use k-means codes/,
  );
  await assert.rejects(
    pretrainConformerOnFeatures([], { ...base, encoderDir: join(w2v, 'none') }),
    /none: no config\.json/,
  );
  const short: Features = { data: new Float32Array(8 * 80), frames: 8, bins: 80 };
  await assert.rejects(
    pretrainConformerOnFeatures([short], { ...base, encoderDir: encoderFolder() }),
    /no utterance is long enough/,
  );
});

test("a manifest corpus' audio goes through the front end into two steps; `lemer pretrain` does the same", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lemer-pretrain-corpus-'));
  mkdirSync(join(dir, 'wav'));
  const rows = ['id,audio,label,speaker,session'];
  const rng = new Rng(4);
  for (let i = 0; i < 3; i++) {
    const n = 16000 * (0.6 + 0.2 * i);
    const x = Float32Array.from(
      { length: n },
      (_, t) => 0.3 * Math.sin((2 * Math.PI * (200 + 100 * i) * t) / 16000) + 0.02 * rng.normal(),
    );
    writeFileSync(join(dir, 'wav', `u${i}.wav`), encodeWav([x], 16000, 'pcm16'));
    rows.push(`u${i},wav/u${i}.wav,neu,s${i},S${i}`);
  }
  writeFileSync(join(dir, 'm.csv'), rows.join('\n') + '\n');
  const corpus = await loadCorpus(`manifest:${join(dir, 'm.csv')}`);
  let loaded = 0;
  const r = await pretrainOnCorpus(corpus, {
    encoderDir: encoderFolder(),
    outDir: join(dir, 'out'),
    steps: 2,
    batchSize: 2,
    runtime: { threads: 1 },
    onFeatures: (d) => (loaded = d),
  });
  assert.equal(loaded, 3);
  assert.equal(r.utterances, 3);
  assert.ok(r.log.every((s) => Number.isFinite(s.loss)));
  loadConformerFolder(join(dir, 'out'));

  // The same through the command line; the folder reads back through the Hugging Face loader.
  let stdout = '';
  let stderr = '';
  const io = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  };
  const args = [
    'pretrain',
    '--corpus',
    `manifest:${join(dir, 'm.csv')}`,
    '--encoder',
    encoderFolder(),
    '--out',
    join(dir, 'cli'),
  ];
  const code = await runCli(
    [...args, '--steps', '2', '--batch-size', '2', '--threads', '1', '--json', join(dir, 'r.json')],
    io,
  );
  assert.equal(code, 0, stderr);
  assert.match(stdout, /pretrained lemer-conformer for 2 steps on 3 utterances/);
  assert.match(stdout, /model\.safetensors \(\d+ tensors\)/);
  const enc = loadEncoder(join(dir, 'cli'));
  assert.equal(enc.modelType, 'lemer-conformer');
  assert.equal(enc.unused.length, 8, 'the objective tensors are listed as unused');
  const json = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8')) as { steps: number };
  assert.equal(json.steps, 2);
  const bad = await runCli(
    [
      'pretrain',
      '--corpus',
      `manifest:${join(dir, 'm.csv')}`,
      '--encoder',
      encoderFolder(),
      '--out',
      join(dir, 'x'),
      '--sessions',
      'S9',
    ],
    io,
  );
  assert.equal(bad, 1);
  assert.match(stderr, /--sessions: S9 not in the corpus/);
});

test('wav2vec2 (tiny fixture): Wav2Vec2ForPreTraining steps on waveforms; the HF-layout folder reloads', async () => {
  const src = join(import.meta.dirname, '..', 'fixtures', 'models', 'wav2vec2-tiny');
  const out = join(mkdtempSync(join(tmpdir(), 'lemer-pretrain-w2v2-')), 'ssl');
  const rng = new Rng(9);
  const waves = [4000, 3200, 2400, 5000].map((n) =>
    Float32Array.from({ length: n }, (_, t) => 0.3 * Math.sin(t / 7) + 0.1 * rng.normal()),
  );
  const warnings: string[] = [];
  const r = await pretrainWav2Vec2OnWaves(waves, {
    encoderDir: src,
    outDir: out,
    steps: 3,
    batchSize: 2,
    maskLength: 2,
    numNegatives: 4,
    runtime: { threads: 1 },
    onWarning: (m) => warnings.push(m),
  });
  assert.equal(r.modelType, 'wav2vec2');
  assert.ok(
    r.log.every((s) => Number.isFinite(s.loss) && s.contrastive >= 0),
    JSON.stringify(r.log),
  );
  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(cfg.architectures, ['Wav2Vec2ForPreTraining']);
  assert.equal(cfg.num_negatives, 4);
  const t = readSafetensors(join(out, 'model.safetensors')).tensors;
  assert.ok(t.has('wav2vec2.feature_projection.projection.weight'));
  assert.ok(t.has('wav2vec2.masked_spec_embed'));
  assert.ok(t.has('quantizer.codevectors') && t.has('project_q.weight') && t.has('project_hid.weight'));
  const enc = loadEncoder(out);
  assert.equal(enc.modelType, 'wav2vec2');
  for (const k of ['quantizer.codevectors', 'project_q.weight', 'project_hid.weight'])
    assert.ok(enc.unused.includes(k), `${k} set aside by the loader`);
  const b = wav2vec2Batch(waves.slice(0, 2));
  const q = await quantizerCodes(out, [{ input_values: b.input_values, attention_mask: b.attention_mask }]);
  assert.deepEqual(
    q.codes.map((c) => c.length),
    [4000, 3200].map((n) => featExtractOutputLength(wav2vec2Arch(parseWav2Vec2Config(cfg)), n)),
  );
  // A second run continues from the written folder, quantiser included.
  const r2 = await pretrainWav2Vec2OnWaves(waves, {
    encoderDir: out,
    outDir: out + '2',
    steps: 1,
    batchSize: 2,
    maskLength: 2,
    numNegatives: 4,
    runtime: { threads: 1 },
  });
  assert.ok(Number.isFinite(r2.log[0].loss));
  const q1 = t.get('quantizer.codevectors')!.data as Float32Array;
  const q2 = readSafetensors(join(out + '2', 'model.safetensors')).tensors.get('quantizer.codevectors')!
    .data as Float32Array;
  assert.ok(Math.abs(q1[0] - q2[0]) < 0.05, 'the quantiser was read back, not re-initialised');
});
