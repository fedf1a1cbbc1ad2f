import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { loadCorpus } from '../../src/data/corpus.js';
import type { Corpus } from '../../src/data/types.js';
import { ABLATION_ROWS, corpusAbilities, planAblation, runAblation } from '../../src/train/ablate.js';
import { tinyConfigYaml, writeTinyCorpus } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'lemer-ablate-'));
after(() => rmSync(work, { recursive: true, force: true }));
const manifest = writeTinyCorpus(join(work, 'corpus'), { perSpeaker: 3, seconds: 0.3 });
const cfgFile = join(work, 'tiny.yaml');
writeFileSync(cfgFile, tinyConfigYaml());
const spec = `manifest:${manifest}`;
const config = loadConfig(cfgFile, { train: { cacheDir: join(work, 'cache'), epochs: 1 } });
const corpus = await loadCorpus(spec, { labels: config.classes });

const ids = (xs: { id: string }[]) => xs.map((x) => x.id);

test('plan: every row of Tables 1-3 that the corpus and code allow; identical settings share a cell', () => {
  assert.deepEqual(corpusAbilities(corpus), { text: true, speech: true, history: true });
  const plan = planAblation(config, corpus);
  assert.deepEqual(ids(plan.rows), [
    'A1',
    'A2',
    'A3',
    'A4',
    'A5',
    'B1',
    'B3',
    'B4',
    'B5',
    'SF',
    'LE-MER',
    'C1',
    'C2',
    'C3',
    'C4',
  ]);
  // B2 (2nd stage) cannot run with the compact in-place speech encoder, and says why.
  assert.deepEqual(ids(plan.skipped), ['B2']);
  assert.match(plan.skipped[0].reason, /compact speech encoder .* train\.inPlace\.speech\.kind to conformer/);
  assert.equal(plan.rows.find((r) => r.id === 'B5')!.name, '+ LE (codebook init)');
  // LE-MER is C1: one cell. A1 has no history, A2 the config's (tiny config: 10).
  const row = (id: string) => plan.rows.find((r) => r.id === id)!;
  assert.equal(row('LE-MER').cell, 'C1');
  assert.equal(plan.cells.length, plan.rows.length - 1);
  const cell = (id: string) => plan.cells.find((c) => c.name === row(id).cell)!;
  assert.equal(cell('A1').config.text.history, 0);
  assert.equal(cell('A1').config.train.labelEmbeddings, false);
  assert.equal(cell('A2').config.text.history, config.text.history);
  assert.equal(cell('A4').config.text.labelInit, 'label-words');
  assert.equal(cell('B3').config.speech.labelInit, 'random');
  assert.equal(cell('B1').model, 'speech');
  assert.equal(cell('SF').model, 'score-fusion');
  assert.deepEqual(
    ['C1', 'C2', 'C3', 'C4'].map((c) => cell(c).config.head.fusion),
    ['constraint', 'sum', 'label-only', 'vanilla'],
  );
  // Subsets by row or table; an unknown row is an error naming the known ones.
  assert.deepEqual(ids(planAblation(config, corpus, { tables: [3] }).rows), ['C1', 'C2', 'C3', 'C4']);
  assert.deepEqual(ids(planAblation(config, corpus, { rows: ['A1', 'C2'] }).rows), ['A1', 'C2']);
  assert.throws(() => planAblation(config, corpus, { rows: ['Z9'] }), /no row Z9 \(rows: A1, A2/);
  assert.equal(ABLATION_ROWS.length, 16);
});

test('plan: a text-only corpus keeps the text rows; no dialogues drops A2 and the history', () => {
  const textOnly: Corpus = {
    ...corpus,
    utterances: corpus.utterances.map((u) => ({ ...u, audioPath: null })),
  };
  const p = planAblation(config, textOnly);
  assert.deepEqual(ids(p.rows), ['A1', 'A2', 'A3', 'A4', 'A5']);
  assert.ok(p.skipped.some((s) => s.id === 'C3' && /no audio/.test(s.reason)));
  const single: Corpus = {
    ...corpus,
    utterances: corpus.utterances.map((u) => ({ ...u, dialogue: u.id })),
  };
  const q = planAblation(config, single);
  assert.equal(q.history, 0);
  assert.ok(q.skipped.some((s) => s.id === 'A2' && /no dialogue history/.test(s.reason)));
  assert.equal(q.rows.find((r) => r.id === 'A5')!.name, '+ LE (TF-IDF init)');
  assert.ok(q.cells.filter((c) => c.model !== 'speech').every((c) => c.config.text.history === 0));
  const speechless: Corpus = { ...corpus, utterances: corpus.utterances.map((u) => ({ ...u, text: '' })) };
  assert.deepEqual(ids(planAblation(config, speechless).rows), ['B1', 'B3', 'B5']);
});

test('plan: with a pretrainable speech encoder B2 runs, and B3-B5 build on the 2nd stage', () => {
  const conf = loadConfig(cfgFile, {
    train: { cacheDir: join(work, 'cache'), inPlace: { speech: { kind: 'conformer' } } },
  });
  const p = planAblation(conf, corpus);
  assert.deepEqual(ids(p.skipped), []);
  const cell = (id: string) => p.cells.find((c) => c.name === p.rows.find((r) => r.id === id)!.cell)!;
  assert.equal(cell('B1').config.pretrain.enabled, false);
  for (const id of ['B2', 'B3', 'B4', 'B5']) assert.equal(cell(id).config.pretrain.enabled, true, id);
  assert.equal(cell('B4').config.speech.labelInit, 'bert');
  assert.equal(p.rows.find((r) => r.id === 'B5')!.name, '+ 2nd stage + LE (codebook init)');
  // Other rows keep the config's setting (off).
  assert.equal(cell('C1').config.pretrain.enabled, false);
});

test('ablate: the chosen rows cross-validated into one table (markdown, JSON, plot), shared cells run once', async () => {
  const out = join(work, 'ablate');
  const r = await runAblation({
    config,
    corpus,
    corpusSpec: spec,
    out,
    rows: ['A1', 'LE-MER', 'C1'],
    folds: ['ses1'],
  });
  assert.equal(r.format, 'lemer-ablation');
  assert.deepEqual(ids(r.rows), ['A1', 'LE-MER', 'C1']);
  for (const x of r.rows) {
    assert.ok(x.result !== null);
    assert.equal(x.result.folds.length, 1);
    assert.ok(x.result.mean.ua >= 0 && x.result.mean.ua <= 100);
  }
  assert.deepEqual(r.rows[1].result, r.rows[2].result);
  assert.ok(existsSync(join(out, 'cells', 'A1', 'results.json')));
  assert.ok(existsSync(join(out, 'cells', 'C1', 'results.json')));
  assert.ok(!existsSync(join(out, 'cells', 'LE-MER')));
  for (const f of ['ablation.md', 'ablation.json', 'ablation.svg', 'ablation.png'])
    assert.ok(existsSync(join(out, f)), f);
  const md = readFileSync(join(out, 'ablation.md'), 'utf8');
  assert.match(md, /\| 1 \| A1 \| text encoder \| text: train\.labelEmbeddings=false, text\.history=0 \|/);
  assert.match(md, /\| 2 \| LE-MER \| LE-MER \| lemer: .*\(cell C1\)/);
  assert.match(md, /67\.66/);
  const again = await runAblation({
    config,
    corpus,
    corpusSpec: spec,
    out,
    rows: ['A1', 'C1'],
    folds: ['ses1'],
  });
  assert.ok(again.rows.every((x) => x.result?.reused === true));
});
