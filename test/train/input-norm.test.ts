import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { protocolFolds } from '../../src/train/cv.js';
import { configFrontEnd } from '../../src/train/model.js';
import { AudioCache } from '../../src/train/audio-cache.js';
import { inputNormStats, INPUT_NORM_PARAMS } from '../../src/train/input-norm.js';
import { loadCheckpoint } from '../../src/graph/checkpoint.js';
import { firstSpeechFold } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'lemer-inorm-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('inputNormStats: per-bin mean and population std over all frames, std floored', () => {
  const a = { data: new Float32Array([1, 5, 3, 5]), frames: 2, bins: 2 };
  const b = { data: new Float32Array([5, 5]), frames: 1, bins: 2 };
  const s = inputNormStats([a, b], 0.5);
  assert.deepEqual(Array.from(s.mean.data as Float32Array), [3, 5]);
  // bin 0: 1, 3, 5 -> population std sqrt(8/3); bin 1 constant -> the floor
  assert.ok(Math.abs((s.std.data as Float32Array)[0] - Math.sqrt(8 / 3)) < 1e-6);
  assert.equal((s.std.data as Float32Array)[1], 0.5);
  assert.throws(() => inputNormStats([]), /no training utterances/);
});

test("speech.logMel.normalize global: frozen statistics of the fold's training part only, inside the model", async () => {
  const {
    config,
    corpus,
    cacheDir,
    result: r,
    foldDir,
  } = await firstSpeechFold(work, {
    train: { epochs: 2 },
    speech: { logMel: { numBins: 16, normalize: 'global' } },
  });
  assert.ok(r.folds.length >= 1);
  const fold = protocolFolds(config, corpus)[0];
  const cache = new AudioCache(cacheDir, configFrontEnd(config));
  const feats = async (idx: number[]) =>
    Promise.all(idx.map((i) => cache.get(corpus.utterances[i].audioPath!)));
  const want = inputNormStats(await feats(fold.train));
  const leaky = inputNormStats(await feats([...fold.train, ...(fold.valid ?? []), ...fold.test]));
  for (const ck of ['best', 'last']) {
    const p = loadCheckpoint(join(foldDir, ck), { optimizer: false }).params;
    for (const k of ['mean', 'std'] as const) {
      const got = p.get(INPUT_NORM_PARAMS[k])!.data as Float32Array;
      const w = want[k].data as Float32Array;
      for (let i = 0; i < w.length; i++)
        assert.ok(
          Math.abs(got[i] - w[i]) <= 1e-5 * (1 + Math.abs(w[i])),
          `${ck} ${k}[${i}]: ${got[i]} vs ${w[i]}`,
        );
      const l = leaky[k].data as Float32Array;
      assert.ok(
        l.some((v, i) => Math.abs(v - w[i]) > 1e-3),
        'statistics over every utterance differ from the training part',
      );
    }
  }
});

test('SpecAugment under global normalisation: masks take the training means, 0 once the model normalises', async () => {
  const { parseConfig } = await import('../../src/config/load.js');
  const { specAugmentOptions } = await import('../../src/train/cv.js');
  const { specAugment } = await import('../../src/audio/logmel.js');
  const cfg = parseConfig({ speech: { logMel: { normalize: 'global' } } });
  assert.equal(
    specAugmentOptions(parseConfig({ speech: { specAugment: { enabled: false } } }).speech.specAugment),
    null,
  );
  const frames = 50;
  const bins = 80;
  const raw = {
    data: Float32Array.from({ length: frames * bins }, (_, i) => -5 + Math.sin(i)),
    frames,
    bins,
  };
  const { mean, std } = inputNormStats([raw]);
  const m = mean.data as Float32Array;
  const sd = std.data as Float32Array;
  const opts = specAugmentOptions(cfg.speech.specAugment, m)!;
  assert.equal(opts.fillPerBin, m);
  let masked = 0;
  for (let seed = 0; seed < 10; seed++) {
    const a = specAugment(raw, { ...opts, seed });
    for (let t = 0; t < frames; t++)
      for (let b = 0; b < bins; b++) {
        const inMask =
          a.masks.time.some(([s, e]) => t >= s && t < e) || a.masks.freq.some(([s, e]) => b >= s && b < e);
        if (!inMask) continue;
        masked++;
        assert.ok(Math.abs((a.data[t * bins + b] - m[b]) / sd[b]) < 1e-6, `seed ${seed} cell ${t},${b}`);
      }
  }
  assert.ok(masked > 0);
});
