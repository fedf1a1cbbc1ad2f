// Score fusion weighting on hand-made logits: none is the plain sum (paper); validation-ua
// gives a chance-level model no weight; temperature divides by the validation-NLL optimum.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitTemperature, fuseScores, recallMean, temperatureNll } from '../../src/train/score-fusion.js';

// Speech: right on the test part; text: confidently wrong on it (its training fold's prior).
const speechTest = [
  [2, 0],
  [0, 1],
  [1, 0],
];
const textTest = [
  [0, 3],
  [3, 0],
  [0, 3],
];
const yTest = [0, 1, 0];
const pred = (l: number[][]) => l.map((r) => (r[0] >= r[1] ? 0 : 1));

// Validation: speech gets 3 of 4 right (UA 0.75), text 2 of 4 with one class always (UA 0.5 = chance).
const speechValid = {
  logits: [
    [1, -1],
    [-1, 1],
    [1, -1],
    [1, -1],
  ],
  yTrue: [0, 1, 0, 1],
};
const textValid = {
  logits: [
    [0, 2],
    [0, 2],
    [0, 2],
    [0, 2],
  ],
  yTrue: [0, 1, 0, 1],
};

test('none: the plain sum of the logits (the text model outvotes speech here)', () => {
  const r = fuseScores(
    [
      { test: textTest, valid: textValid },
      { test: speechTest, valid: speechValid },
    ],
    'none',
    2,
  );
  assert.deepEqual(r.logits, [
    [2, 3],
    [3, 1],
    [1, 3],
  ]);
  assert.deepEqual(r.factors, [1, 1]);
  assert.deepEqual(pred(r.logits), [1, 0, 1]);
});

test('validation-ua: weight = UA above chance, normalised; the chance-level text model gets 0', () => {
  assert.equal(recallMean(speechValid.logits, speechValid.yTrue, 2), 0.75);
  assert.equal(recallMean(textValid.logits, textValid.yTrue, 2), 0.5);
  const r = fuseScores(
    [
      { test: textTest, valid: textValid },
      { test: speechTest, valid: speechValid },
    ],
    'validation-ua',
    2,
  );
  assert.deepEqual(r.factors, [0, 1]);
  assert.deepEqual(r.validUa, [0.5, 0.75]);
  assert.deepEqual(pred(r.logits), yTest);
  // Both at chance: equal weights.
  const eq = fuseScores(
    [
      { test: textTest, valid: textValid },
      { test: speechTest, valid: textValid },
    ],
    'validation-ua',
    2,
  );
  assert.deepEqual(eq.factors, [0.5, 0.5]);
  assert.throws(
    () => fuseScores([{ test: textTest }, { test: speechTest }], 'temperature', 2),
    /no validation logits/,
  );
});

test('temperature: T where p(right) = sigmoid(2 / T) matches the validation hit rate 3/4: T = 2 / ln 3', () => {
  // Logits +-1: p(right) = sigmoid(2 / T) for every row; 3 of 4 right, so the NLL optimum has
  // sigmoid(2 / T) = 3/4, i.e. 2 / T = ln 3.
  const T = fitTemperature(speechValid.logits, speechValid.yTrue);
  assert.ok(Math.abs(T - 2 / Math.log(3)) < 1e-6, `T = ${T}`);
  assert.ok(
    temperatureNll(speechValid.logits, speechValid.yTrue, T) <
      temperatureNll(speechValid.logits, speechValid.yTrue, 1),
  );
  // The text model is always 2 apart and right half the time: its optimum is flat (T at the top of the range).
  const r = fuseScores(
    [
      { test: textTest, valid: textValid },
      { test: speechTest, valid: speechValid },
    ],
    'temperature',
    2,
  );
  assert.ok(r.temperatures![0] > 50, `text T ${r.temperatures![0]}`);
  assert.ok(Math.abs(r.factors[1] - Math.log(3) / 2) < 1e-6);
  assert.deepEqual(pred(r.logits), yTest);
});

test('lemer cv --model score-fusion with scoreFusion.weighting validation-ua: the factors come from the validation logits kept per model', async () => {
  const { mkdtempSync, rmSync, writeFileSync, readFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { loadConfig } = await import('../../src/config/load.js');
  const { loadCorpus } = await import('../../src/data/corpus.js');
  const { crossValidate } = await import('../../src/train/cv.js');
  const { tinyConfigYaml, writeTinyCorpus } = await import('./helpers.js');
  const work = mkdtempSync(join(tmpdir(), 'lemer-sf-'));
  try {
    const manifest = writeTinyCorpus(join(work, 'corpus'), { perSpeaker: 3, seconds: 0.3 });
    writeFileSync(join(work, 'tiny.yaml'), tinyConfigYaml('scoreFusion: { weighting: validation-ua }\n'));
    const config = loadConfig(join(work, 'tiny.yaml'), {
      train: { cacheDir: join(work, 'cache'), epochs: 1 },
    });
    const spec = `manifest:${manifest}`;
    await crossValidate({
      config,
      corpus: await loadCorpus(spec, { labels: config.classes }),
      corpusSpec: spec,
      model: 'score-fusion',
      out: join(work, 'sf'),
      resume: false,
      folds: ['ses1'],
    });
    const fold = JSON.parse(readFileSync(join(work, 'sf', 'folds', 'ses1', 'result.json'), 'utf8')) as {
      fusion: { weighting: string; factors: number[]; validUa: number[] };
      fits: { valid: { logits: number[][]; yTrue: number[] } }[];
    };
    assert.equal(fold.fusion.weighting, 'validation-ua');
    assert.deepEqual(
      fold.fusion.validUa,
      fold.fits.map((f) => recallMean(f.valid.logits, f.valid.yTrue, 2)),
    );
    const above = fold.fusion.validUa.map((u) => Math.max(0, u - 0.5));
    const total = above[0] + above[1];
    fold.fusion.factors.forEach((f, k) =>
      assert.ok(Math.abs(f - (total > 0 ? above[k] / total : 0.5)) < 1e-12),
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
