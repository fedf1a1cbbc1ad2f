import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { loadCorpus } from '../../src/data/corpus.js';
import { crossValidate, type RunModel } from '../../src/train/cv.js';
import { DEMO_PRESET } from '../../src/train/presets.js';
import { runCli } from '../../src/cli/program.js';
import { tinyConfigYaml, writeTinyCorpus } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'lemer-cv-'));
after(() => rmSync(work, { recursive: true, force: true }));
const manifest = writeTinyCorpus(join(work, 'corpus'));
const cfgFile = join(work, 'tiny.yaml');
writeFileSync(cfgFile, tinyConfigYaml());
const cacheDir = join(work, 'cache');

async function run(
  out: string,
  over: Record<string, unknown> = {},
  model: RunModel = 'lemer',
  spec = `manifest:${manifest}`,
) {
  const config = loadConfig(cfgFile, { train: { cacheDir }, ...over });
  const corpus = await loadCorpus(spec, { labels: config.classes });
  const warnings: string[] = [];
  const r = await crossValidate({
    config,
    corpus,
    corpusSpec: spec,
    model,
    out: join(work, out),
    resume: false,
    warn: (m) => warnings.push(m),
  });
  return { r, warnings };
}

const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;

test('cv: every fold, per-fold and mean WA/UA in percent, report files; same seed, same metrics', async () => {
  const { r } = await run('a');
  assert.deepEqual(
    r.folds.map((f) => f.name),
    ['ses1', 'ses2', 'ses3'],
  );
  for (const f of r.folds) {
    assert.ok(f.wa >= 0 && f.wa <= 100 && f.ua >= 0 && f.ua <= 100);
    assert.equal(f.n, 8);
  }
  const mean = r.folds.reduce((s, f) => s + f.ua, 0) / 3;
  assert.ok(Math.abs(r.mean.ua - mean) < 0.01);
  assert.ok(r.mean.ua > 50, `the tiny corpus is separable: mean UA ${r.mean.ua}`);
  for (const f of [
    'report.md',
    'report.json',
    'confusion.svg',
    'confusion.png',
    'curves.png',
    'config.yaml',
    'results.json',
  ])
    assert.ok(existsSync(join(work, 'a', f)), f);
  const fold = readJson(join(work, 'a', 'folds', 'ses1', 'result.json'));
  for (const k of ['configHash', 'corpusHash', 'codeVersion', 'logits', 'yPred', 'fits'])
    assert.ok(k in fold, k);
  assert.ok(existsSync(join(work, 'a', 'folds', 'ses1', 'curves.png')));
  assert.ok(existsSync(join(work, 'a', 'folds', 'ses1', 'best', 'model.safetensors')));
  const yaml = parseYaml(readFileSync(join(work, 'a', 'config.yaml'), 'utf8')) as object;
  assert.deepEqual(parseConfig(yaml).train.inPlace, loadConfig(cfgFile).train.inPlace);

  const { r: again } = await run('b');
  assert.deepEqual(
    again.folds.map((f) => [f.wa, f.ua]),
    r.folds.map((f) => [f.wa, f.ua]),
  );
  const fb = readJson(join(work, 'b', 'folds', 'ses1', 'result.json'));
  assert.deepEqual(fb.logits, fold.logits);
  const { r: other } = await run('c', { seed: 8 });
  const fc = readJson(join(work, 'c', 'folds', 'ses1', 'result.json'));
  assert.notDeepEqual(fc.logits, fold.logits);
  assert.notEqual(other.corpusHash, '');
  assert.equal(other.corpusHash, r.corpusHash);
  assert.notEqual(other.configHash, r.configHash);
});

test('early stopping: no better validation UA for `patience` validations ends the fold', async () => {
  // lr 0: the model never changes, so validation UA never improves after the first epoch.
  const { r } = await run(
    'stop',
    { optim: { lr: { text: 0, speech: 0, head: 0 } }, train: { cacheDir, patience: 2, epochs: 20 } },
    'text',
  );
  const fold = readJson(join(work, 'stop', 'folds', 'ses1', 'result.json')) as {
    fits: { epochs: number; best: { epoch: number } }[];
  };
  assert.equal(fold.fits[0].epochs, 3);
  assert.equal(fold.fits[0].best.epoch, 1);
  assert.equal(r.folds.length, 3);
});

test('score fusion trains both unimodal models per fold and sums their logits', async () => {
  await run('sf', { train: { cacheDir, epochs: 2 } }, 'score-fusion');
  const fold = readJson(join(work, 'sf', 'folds', 'ses2', 'result.json')) as { fits: { kind: string }[] };
  assert.deepEqual(
    fold.fits.map((f) => f.kind),
    ['text', 'speech'],
  );
  assert.ok(existsSync(join(work, 'sf', 'folds', 'ses2', 'speech', 'best')));
});

test('bad input is refused before training; a failed run leaves earlier results as they were', async () => {
  // A class missing from a training fold.
  const lines = readFileSync(manifest, 'utf8').trim().split('\n');
  const rows = lines.map((l) => JSON.parse(l) as { label: string; session: string; audio: string });
  const onlyHere = join(work, 'corpus', 'missing.jsonl');
  writeFileSync(
    onlyHere,
    rows
      .filter((x) => x.label === 'lo' || x.session === 'ses2')
      .map((x) => JSON.stringify(x))
      .join('\n') + '\n',
  );
  await assert.rejects(
    run('bad1', {}, 'lemer', `manifest:${onlyHere}`),
    /fold ses2: class hi has no utterance in the training part/,
  );

  // Audio that does not decode: a count, then fail (default) or skip.
  const broken = join(work, 'corpus', 'broken.jsonl');
  writeFileSync(join(work, 'corpus', 'wav', 'junk.wav'), 'not audio at all');
  writeFileSync(
    broken,
    [...lines, JSON.stringify({ ...rows[0], id: 'junk', audio: 'wav/junk.wav' })].join('\n') + '\n',
  );
  const before = readFileSync(join(work, 'a', 'results.json'), 'utf8');
  await assert.rejects(
    crossValidate({
      config: loadConfig(cfgFile, { train: { cacheDir } }),
      corpus: await loadCorpus(`manifest:${broken}`),
      corpusSpec: 'broken',
      model: 'lemer',
      out: join(work, 'a'),
      resume: false,
    }),
    /1 of 25 utterances have audio that cannot be used:\n {2}.*junk\.wav/,
  );
  assert.equal(readFileSync(join(work, 'a', 'results.json'), 'utf8'), before);
  const { r, warnings } = await run(
    'skip',
    { train: { cacheDir, badAudio: 'skip', epochs: 1 } },
    'lemer',
    `manifest:${broken}`,
  );
  assert.equal(r.pooled.n, 24);
  assert.match(warnings.join('\n'), /1 of 25 utterances .*\n.*junk\.wav[\s\S]*left out/);
  // A text-only model needs no audio at all.
  await run('textonly', { train: { cacheDir, epochs: 1 } }, 'text', `manifest:${broken}`);
});

test('frozen encoders: features computed once into the on-disk cache, the head trains on them (SUPERB layer weights)', async () => {
  const fcache = join(work, 'fcache');
  const over = {
    encoders: { text: { freeze: true }, speech: { freeze: true } },
    train: { cacheDir: fcache, epochs: 2, layerWeights: true },
  };
  const { r } = await run('frozen', over);
  const files = readdirSync(join(fcache, 'features'), { recursive: true }).filter((f) =>
    String(f).endsWith('.bin'),
  );
  // Speech: one file per utterance, shared by the folds; text: keyed by token ids (the in-place vocabulary is per fold).
  assert.ok(files.length >= 24 + 8, `${files.length} cached feature files`);
  const { r: again } = await run('frozen2', over);
  assert.deepEqual(
    again.folds.map((f) => [f.wa, f.ua]),
    r.folds.map((f) => [f.wa, f.ua]),
  );
  const fold = readJson(join(work, 'frozen', 'folds', 'ses1', 'result.json')) as {
    fits: { description: string }[];
  };
  assert.ok(fold.fits.length === 1);
});

test('the built-in demo settings are experiments/demo.yaml', () => {
  const file = parseYaml(
    readFileSync(resolve(import.meta.dirname, '../../experiments/demo.yaml'), 'utf8'),
  ) as object;
  assert.deepEqual(parseConfig(file), parseConfig(DEMO_PRESET));
});

let hasEspeak = true;
try {
  createRequire(import.meta.url).resolve('espeak-ng');
} catch {
  hasEspeak = false;
}

test(
  'lemer cv on the demo corpus (a short run): per-fold and mean WA/UA in --json',
  { skip: hasEspeak ? false : 'optional dependency espeak-ng is not installed' },
  async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = {
      stdout: { write: (s: string) => out.push(s) },
      stderr: { write: (s: string) => err.push(s) },
    };
    const json = join(work, 'demo.json');
    const code = await runCli(
      [
        'cv',
        '--set',
        'train.epochs=2',
        '--set',
        `train.cacheDir=${cacheDir}`,
        '--set',
        'train.inPlace.text.numLayers=1',
        '--set',
        'train.inPlace.speech.numLayers=1',
        '--out',
        join(work, 'demo'),
        '--json',
        json,
      ],
      io,
    );
    assert.equal(code, 0, err.join(''));
    const r = readJson(json) as {
      folds: { name: string; wa: number; ua: number }[];
      mean: { wa: number; ua: number };
    };
    assert.deepEqual(
      r.folds.map((f) => f.name),
      ['ses1', 'ses2', 'ses3'],
    );
    for (const f of r.folds) assert.ok(Number.isFinite(f.wa) && Number.isFinite(f.ua));
    assert.ok(Number.isFinite(r.mean.wa) && Number.isFinite(r.mean.ua));
    assert.match(out.join(''), /mean of 3/);
    assert.match(err.join(''), /built-in demo settings/);
  },
);
