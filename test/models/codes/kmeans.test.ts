// k-means codes: hand-checkable fits, separable clusters, determinism, files, and the
// frames of an encoder layer (the conformer fixture) turned into per-utterance codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../../src/util/random.js';
import { readSafetensors } from '../../../src/graph/safetensors.js';
import {
  assignCodes,
  encoderLayerFrames,
  fitKMeans,
  loadKMeans,
  maskedFrames,
  saveKMeans,
  splitCodes,
} from '../../../src/models/codes/index.js';
import { loadConformerFolder, subsampledLength } from '../../../src/models/conformer/index.js';

test('1-D by hand: {0, 1, 10, 11} with k = 2 -> centres 0.5 and 10.5, inertia 1', () => {
  const m = fitKMeans({ data: new Float64Array([0, 10, 1, 11]), n: 4, dim: 1 }, { k: 2, seed: 3 });
  assert.deepEqual(
    [...m.centroids].sort((a, b) => a - b),
    [0.5, 10.5],
  );
  assert.equal(m.inertia, 1);
  const codes = assignCodes(m, { data: new Float64Array([0, 10, 1, 11, 4, 7]), n: 6, dim: 1 });
  assert.equal(codes[0], codes[2]);
  assert.equal(codes[1], codes[3]);
  assert.notEqual(codes[0], codes[1]);
  assert.equal(codes[4], codes[0], '4 is nearer 0.5');
  assert.equal(codes[5], codes[1], '7 is nearer 10.5');
});

function blobs(seed: number): { data: Float64Array; truth: number[]; means: number[][] } {
  const centres = [
    [0, 0, 0],
    [10, 0, 0],
    [0, 10, 5],
    [-8, -8, 8],
  ];
  const rng = new Rng(seed);
  const data: number[] = [];
  const truth: number[] = [];
  const sums = centres.map(() => [0, 0, 0]);
  const counts = centres.map(() => 0);
  for (let i = 0; i < 200; i++) {
    const c = i % 4;
    const p = centres[c].map((v) => v + 0.5 * rng.normal());
    data.push(...p);
    truth.push(c);
    p.forEach((v, j) => (sums[c][j] += v));
    counts[c]++;
  }
  return { data: Float64Array.from(data), truth, means: sums.map((s, c) => s.map((v) => v / counts[c])) };
}

test('four separable blobs: each blob is one code and each centre is its blob mean', () => {
  const { data, truth, means } = blobs(1);
  const x = { data, n: 200, dim: 3 };
  const m = fitKMeans(x, { k: 4, seed: 0 });
  const codes = assignCodes(m, x);
  const codeOf = new Map<number, number>();
  truth.forEach((c, i) => {
    if (!codeOf.has(c)) codeOf.set(c, codes[i]);
    assert.equal(codes[i], codeOf.get(c), `frame ${i} of blob ${c}`);
  });
  assert.equal(new Set(codeOf.values()).size, 4);
  for (const [c, code] of codeOf)
    for (let j = 0; j < 3; j++) assert.ok(Math.abs(m.centroids[code * 3 + j] - means[c][j]) < 1e-9);
  assert.ok(m.iterations >= 1 && m.iterations < 10, `${m.iterations} iterations`);
  assert.equal(m.fittedOn, 200);
});

test('deterministic: same data and seed give identical centroids; another seed the same partition', () => {
  const { data } = blobs(2);
  const x = { data, n: 200, dim: 3 };
  const a = fitKMeans(x, { k: 4, seed: 7 });
  const b = fitKMeans(x, { k: 4, seed: 7 });
  assert.deepEqual([...a.centroids], [...b.centroids]);
  const c = fitKMeans(x, { k: 4, seed: 8 });
  const pa = assignCodes(a, x);
  const pc = assignCodes(c, x);
  const map = new Map<number, number>();
  pa.forEach((v, i) => {
    if (!map.has(v)) map.set(v, pc[i]);
    assert.equal(pc[i], map.get(v));
  });
});

test('bad input: k above the frame count, a non-integer k, NaN frames, a dim mismatch', () => {
  const x = { data: new Float64Array([1, 2, 3]), n: 3, dim: 1 };
  assert.throws(() => fitKMeans(x, { k: 4 }), /3 frames are fewer than k = 4/);
  assert.throws(() => fitKMeans(x, { k: 1.5 }), /k must be an integer/);
  assert.throws(() => fitKMeans({ data: new Float64Array([1, NaN]), n: 2, dim: 1 }, { k: 1 }), /frame 1/);
  const m = fitKMeans(x, { k: 2 });
  assert.throws(() => assignCodes(m, { data: new Float64Array(4), n: 2, dim: 2 }), /2 features, the model 1/);
});

test('duplicate frames: fewer distinct points than k still gives k centres and valid codes', () => {
  const x = { data: new Float64Array([1, 1, 1, 5, 5]), n: 5, dim: 1 };
  const m = fitKMeans(x, { k: 3, seed: 1 });
  const codes = assignCodes(m, x);
  assert.ok(codes.every((c) => c >= 0 && c < 3));
  assert.equal(m.inertia, 0);
});

test('save and load round-trip; a broken file is named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kmeans-'));
  const { data } = blobs(3);
  const m = fitKMeans({ data, n: 200, dim: 3 }, { k: 4, seed: 1 });
  saveKMeans(join(dir, 'kmeans.json'), m, { layer: 2 });
  const back = loadKMeans(join(dir, 'kmeans.json'));
  assert.deepEqual([...back.centroids], [...m.centroids]);
  assert.equal(back.layer, 2);
  writeFileSync(join(dir, 'bad.json'), '{"k": 2}');
  assert.throws(() => loadKMeans(join(dir, 'bad.json')), /bad\.json: not a lemer k-means file/);
});

test("an encoder layer's valid frames -> codes per utterance (conformer fixture, padded batch)", async () => {
  const dir = join(import.meta.dirname, '..', '..', 'fixtures', 'models', 'conformer-tiny');
  const ref = readSafetensors(join(dir, 'reference.safetensors')).tensors;
  const enc = loadConformerFolder(dir);
  const feeds = { input_features: ref.get('input_features')!, attention_mask: ref.get('attention_mask')! };
  const { frames, lengths } = await encoderLayerFrames(enc, [feeds], { layer: 1 });
  assert.deepEqual(lengths, [40, 29, 11].map(subsampledLength));
  // The frames are exactly the reference's layer-1 hidden state under its frame mask.
  const want = maskedFrames(ref.get('hidden_states.1')!, ref.get('frame_mask')!).frames;
  assert.equal(frames.n, want.n);
  let d = 0;
  for (let i = 0; i < frames.data.length; i++) d = Math.max(d, Math.abs(frames.data[i] - want.data[i]));
  assert.ok(d < 1e-4);
  const m = fitKMeans(frames, { k: 4, seed: 0 });
  const perUtt = splitCodes(assignCodes(m, frames), lengths);
  assert.deepEqual(
    perUtt.map((c) => c.length),
    lengths,
  );
  await assert.rejects(encoderLayerFrames(enc, [feeds], { layer: 3 }), /layer 3 is out of range .*0\.\.2/);
});
