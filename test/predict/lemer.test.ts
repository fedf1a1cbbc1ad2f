import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { Lemer, type Prediction } from '../../src/predict/lemer.js';
import { MANIFEST_FILE } from '../../src/predict/folder.js';
import { exportedTinyModel, LABELS, tone, wavBytes } from './helpers.js';

function copyModel(dir: string): string {
  const d = join(mkdtempSync(join(tmpdir(), 'lemer-model-copy-')), 'm');
  cpSync(dir, d, { recursive: true });
  return d;
}

test('export writes a self-contained folder; model.onnx is standard ONNX with the weights inside', async () => {
  const { dir, manifest } = await exportedTinyModel();
  for (const f of [
    MANIFEST_FILE,
    'model.onnx',
    'speech.onnx',
    'model.safetensors',
    'label-embeddings.safetensors',
    'labels.json',
    'tokenizer.json',
    'preprocessor.json',
    'config.yaml',
  ])
    assert.ok(existsSync(join(dir, f)), f);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'labels.json'), 'utf8')), LABELS);
  // Any ONNX Runtime session loads it from the file alone: inputs are data only, no weights.
  const s = await ort.InferenceSession.create(join(dir, 'model.onnx'));
  assert.deepEqual([...s.inputNames].sort(), Object.keys(manifest.inputs).sort());
  assert.ok(!s.inputNames.some((n) => n.includes('weight')));
  const sp = await ort.InferenceSession.create(join(dir, 'speech.onnx'));
  assert.deepEqual([...sp.inputNames].sort(), ['speech.attention_mask', 'speech.input_features']);
  await s.release();
  await sp.release();
  assert.equal(manifest.speechOnly?.method, 'speech-label-attention');
});

test('predict: probabilities, label, token and frame attention; the same from a path, bytes and samples', async () => {
  const { dir } = await exportedTinyModel();
  const model = await Lemer.load(dir);
  const x = tone(200, 0.7);
  const tmp = mkdtempSync(join(tmpdir(), 'lemer-wav-'));
  const path = join(tmp, 'a.wav');
  writeFileSync(path, wavBytes(x, 16000));
  const a = await model.predict({ audio: path, text: 'the low hum' });
  assert.equal(a.modality, 'speech+text');
  assert.deepEqual(Object.keys(a.probs), LABELS);
  assert.ok(Math.abs(a.probs.low + a.probs.high - 1) < 1e-5);
  assert.equal(a.label, a.probs.low >= a.probs.high ? 'low' : 'high');
  assert.deepEqual(
    a.tokens!.map((t) => t.token),
    ['the', 'low', 'hum'],
  );
  for (const t of a.tokens!) assert.ok(t.weight >= -1 && t.weight <= 1);
  // 68 log-mel frames (Kaldi snip_edges), subsampled about 4x by the conformer: frames from 0 s across the clip.
  const nf = a.frames!.length;
  assert.ok(nf >= 15 && nf <= 17, `${nf} frames`);
  assert.equal(a.frames![0].time, 0);
  assert.ok(a.frames![nf - 1].time < 0.7 && a.frames![nf - 1].time > 0.6);
  const b = await model.predict({ audio: readFileSync(path), text: 'the low hum' });
  assert.deepEqual(b.probs, a.probs);
  const q = await model.predict({
    audio: {
      samples: Float32Array.from(new Int16Array(wavBytes(x, 16000).buffer.slice(44)), (v) => v / 32768),
      sampleRate: 16000,
    },
    text: 'the low hum',
  });
  for (const l of LABELS) assert.ok(Math.abs(q.probs[l] - a.probs[l]) < 1e-6);
  await model.release();
  rmSync(tmp, { recursive: true, force: true });
});

test('concurrent predict calls on one instance give the results of sequential calls; batches equal single calls', async () => {
  const { dir } = await exportedTinyModel();
  const model = await Lemer.load(dir);
  const inputs = [200, 2000, 300, 1800, 250].map((hz, i) => ({
    audio: { samples: tone(hz, 0.4 + 0.15 * i, 16000, i + 3), sampleRate: 16000 },
    text: hz < 1000 ? 'a deep low sound' : 'the high whistle',
  }));
  const seq: Prediction[] = [];
  for (const i of inputs) seq.push(await model.predict(i));
  const par = await Promise.all(inputs.map((i) => model.predict(i)));
  assert.deepEqual(par, seq);
  let last = 0;
  const batch = await model.predictBatch(inputs, { batchSize: 3, onProgress: (d) => (last = d) });
  assert.equal(last, inputs.length);
  batch.forEach((b, i) => {
    for (const l of LABELS) assert.ok(Math.abs(b.probs[l] - seq[i].probs[l]) < 1e-4, `utterance ${i}`);
    assert.equal(b.frames!.length, seq[i].frames!.length);
  });
  await model.release();
});

test('no transcript: speech alone from the speech branch, said so; an injected transcriber supplies text', async () => {
  const { dir } = await exportedTinyModel();
  const model = await Lemer.load(dir);
  const audio = { samples: tone(2000, 0.5), sampleRate: 16000 };
  const s = await model.predict({ audio });
  assert.equal(s.modality, 'speech');
  assert.equal(s.method, 'speech-label-attention');
  assert.match(s.note!, /speech alone/);
  assert.equal(s.tokens, undefined);
  assert.ok(Math.abs(s.probs.low + s.probs.high - 1) < 1e-6);
  await model.release();
  const heard: number[] = [];
  const withAsr = await Lemer.load(dir, {
    transcriber: {
      source: 'test-transcriber',
      transcribe: async (x, rate) => {
        heard.push(x.length, rate);
        return 'the high whistle';
      },
    },
  });
  const t = await withAsr.predict({ audio });
  assert.deepEqual(heard, [8000, 16000]);
  assert.equal(t.modality, 'speech+text');
  assert.deepEqual(t.transcript, { text: 'the high whistle', source: 'test-transcriber' });
  const given = await withAsr.predict({ audio, text: 'the high whistle' });
  assert.deepEqual(given.probs, t.probs);
  assert.equal(given.transcript!.source, 'given');
  await withAsr.release();
});

test('model folder from another format version, or with a missing file: the error names it', async () => {
  const { dir } = await exportedTinyModel();
  const d = copyModel(dir);
  const m = JSON.parse(readFileSync(join(d, MANIFEST_FILE), 'utf8'));
  writeFileSync(join(d, MANIFEST_FILE), JSON.stringify({ ...m, version: 99 }));
  await assert.rejects(Lemer.load(d), /lemer-model\.json: model folder format version 99.*newer lemer/);
  writeFileSync(join(d, MANIFEST_FILE), JSON.stringify({ ...m, format: 'something-else' }));
  await assert.rejects(Lemer.load(d), /format is "something-else"/);
  writeFileSync(join(d, MANIFEST_FILE), JSON.stringify(m));
  rmSync(join(d, 'tokenizer.json'));
  await assert.rejects(Lemer.load(d), (e: Error) => {
    assert.ok(e.message.includes(join(d, 'tokenizer.json')), e.message);
    assert.match(e.message, /missing/);
    return true;
  });
  rmSync(join(d, MANIFEST_FILE));
  await assert.rejects(Lemer.load(d), /lemer-model\.json: missing: .* is not a lemer model folder/);
  await assert.rejects(Lemer.load(join(d, 'nope')), /model folder not found/);
  const e = copyModel(dir);
  writeFileSync(join(e, 'model.onnx'), 'not onnx');
  await assert.rejects(Lemer.load(e), /model\.onnx: ONNX Runtime cannot load it/);
  await assert.rejects(Lemer.load(dir, { int8: true }), /no int8 graph in this folder/);
});

test('bad inputs to predict get clear errors naming the input', async () => {
  const { dir } = await exportedTinyModel();
  const model = await Lemer.load(dir);
  const tmp = mkdtempSync(join(tmpdir(), 'lemer-bad-'));
  const empty = join(tmp, 'empty.wav');
  writeFileSync(empty, '');
  await assert.rejects(model.predict({ audio: empty, text: 'x' }), /empty\.wav: empty file/);
  await assert.rejects(model.predict({ text: 'the low hum' }), /needs audio/);
  await assert.rejects(
    model.predict({
      audio: { samples: tone(200, 0.5), sampleRate: 16000 },
      text: Buffer.from([0x61, 0xff, 0x62]),
    }),
    /text: not valid UTF-8 \(first bad byte at offset 1\)/,
  );
  await assert.rejects(
    model.predict({ audio: { samples: tone(200, 0.5), sampleRate: 16000 }, text: 'a'.repeat(200_001) }),
    /200001 characters is too long/,
  );
  const long = await model.predict({
    audio: { samples: tone(200, 0.5), sampleRate: 16000 },
    text: 'low '.repeat(100),
  });
  assert.ok(long.warnings.some((w) => /the text is 100 tokens; the model reads at most 30/.test(w)));
  await model.release();
  rmSync(tmp, { recursive: true, force: true });
});
