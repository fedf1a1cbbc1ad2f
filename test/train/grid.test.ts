import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { loadCorpus } from '../../src/data/corpus.js';
import { getConfigValue, parseGridValues, runGrid, withConfigValues } from '../../src/train/grid.js';
import { parseParamOption } from '../../src/cli/commands/grid.js';
import { runCli } from '../../src/cli/program.js';
import { tinyConfigYaml, writeTinyCorpus } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'lemer-grid-'));
after(() => rmSync(work, { recursive: true, force: true }));
const manifest = writeTinyCorpus(join(work, 'corpus'), { perSpeaker: 3, seconds: 0.3 });
const cfgFile = join(work, 'tiny.yaml');
writeFileSync(cfgFile, tinyConfigYaml());
const spec = `manifest:${manifest}`;

test('grid values and config keys: YAML values, duplicates, unknown keys and bad values are errors', () => {
  assert.deepEqual(parseGridValues('speech.labelK', '25, 50,100'), [25, 50, 100]);
  assert.deepEqual(parseGridValues('head.fusion', 'sum,vanilla'), ['sum', 'vanilla']);
  assert.throws(() => parseGridValues('speech.labelK', '25,25'), /given twice/);
  assert.throws(() => parseGridValues('speech.labelK', ' , '), /no values/);
  assert.deepEqual(parseParamOption(['speech.labelK', '25,50']), {
    param: 'speech.labelK',
    values: [25, 50],
  });
  assert.deepEqual(parseParamOption(['speech.labelK=3,4']), { param: 'speech.labelK', values: [3, 4] });
  const cfg = loadConfig(cfgFile);
  assert.equal(getConfigValue(cfg, 'speech.labelK'), 100);
  assert.equal(getConfigValue(cfg, 'speech.nope'), undefined);
  assert.equal(withConfigValues(cfg, { 'speech.labelK': 7 }, 'x').speech.labelK, 7);
  assert.throws(() => withConfigValues(cfg, { 'speech.labelK': -1 }, '--param speech.labelK=-1'), /labelK/);
});

test('grid: one cross-validation per value, table + JSON + plot; finished cells are kept, a new value runs alone', async () => {
  const config = loadConfig(cfgFile, { train: { cacheDir: join(work, 'cache'), epochs: 1 } });
  const corpus = await loadCorpus(spec, { labels: config.classes });
  const out = join(work, 'grid');
  const logs: string[] = [];
  const o = {
    config,
    corpus,
    corpusSpec: spec,
    out,
    model: 'speech' as const,
    param: 'speech.labelK',
    values: [2, 4],
    folds: ['ses1'],
    log: (m: string) => logs.push(m),
  };
  await assert.rejects(runGrid({ ...o, param: 'speech.nope' }), /no such config key/);
  await assert.rejects(runGrid({ ...o, folds: ['nope'] }), /no fold named nope/);
  const r = await runGrid(o);
  assert.equal(r.format, 'lemer-grid');
  assert.deepEqual(
    r.cells.map((c) => c.value),
    [2, 4],
  );
  for (const c of r.cells) {
    assert.equal(c.reused, false);
    assert.deepEqual(
      c.folds.map((f) => f.name),
      ['ses1'],
    );
    assert.ok(c.mean.ua >= 0 && c.mean.ua <= 100);
    const cfgYaml = readFileSync(join(c.dir, 'config.yaml'), 'utf8');
    assert.match(cfgYaml, new RegExp(`labelK: ${String(c.value)}\\b`));
  }
  assert.ok(r.best !== null && [2, 4].includes(r.best.value as number));
  for (const f of ['grid.md', 'grid.json', 'grid.svg', 'grid.png']) assert.ok(existsSync(join(out, f)), f);
  const md = readFileSync(join(out, 'grid.md'), 'utf8');
  assert.match(md, /\| speech\.labelK \| folds \| WA \| UA \|/);
  assert.match(readFileSync(join(out, 'grid.svg'), 'utf8'), /<svg/);
  const json = JSON.parse(readFileSync(join(out, 'grid.json'), 'utf8')) as {
    cells: { mean: { ua: number } }[];
  };
  assert.equal(json.cells[1].mean.ua, r.cells[1].mean.ua);

  // Again: nothing is trained, the fold results stay as they were.
  const foldFile = join(r.cells[0].dir, 'folds', 'ses1', 'result.json');
  const mtime = statSync(foldFile).mtimeMs;
  logs.length = 0;
  const again = await runGrid(o);
  assert.deepEqual(
    again.cells.map((c) => c.reused),
    [true, true],
  );
  assert.deepEqual(
    again.cells.map((c) => c.mean),
    r.cells.map((c) => c.mean),
  );
  assert.equal(statSync(foldFile).mtimeMs, mtime);
  assert.ok(logs.some((m) => /finished in an earlier run/.test(m)));

  // A new value runs alone; the others are kept.
  const more = await runGrid({ ...o, values: [2, 3] });
  assert.deepEqual(
    more.cells.map((c) => c.reused),
    [true, false],
  );
});

test('lemer grid: the command prints the table and writes the JSON', async () => {
  const out: string[] = [];
  const err: string[] = [];
  const io = {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
  };
  const json = join(work, 'grid-cli.json');
  const code = await runCli(
    [
      '--config',
      cfgFile,
      'grid',
      '--corpus',
      spec,
      '--model',
      'text',
      '--param',
      'text.labelK',
      '2,3',
      '--fold',
      'ses2',
      '--set',
      'train.epochs=1',
      '--set',
      `train.cacheDir=${join(work, 'cache')}`,
      '--out',
      join(work, 'grid-cli'),
      '--json',
      json,
    ],
    io,
  );
  assert.equal(code, 0, err.join(''));
  assert.match(out.join(''), /text\.labelK\s+folds\s+WA %\s+UA %/);
  const r = JSON.parse(readFileSync(json, 'utf8')) as { param: string; cells: { value: number }[] };
  assert.equal(r.param, 'text.labelK');
  assert.deepEqual(
    r.cells.map((c) => c.value),
    [2, 3],
  );
  const bad = await runCli(
    ['--config', cfgFile, 'grid', '--corpus', spec, '--param', 'text.nope', '1,2'],
    io,
  );
  assert.notEqual(bad, 0);
  assert.match(err.join(''), /text\.nope: no such config key/);
});

test('experiments: every config file in experiments/ is a valid config', () => {
  const dir = join(import.meta.dirname, '..', '..', 'experiments');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 2);
  for (const f of files) assert.doesNotThrow(() => loadConfig(join(dir, f)), f);
});
