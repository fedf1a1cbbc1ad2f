import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  ConfigError,
  configToYaml,
  deepMerge,
  defaultConfig,
  loadConfig,
  parseConfig,
} from '../../src/config/load.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'lemer-config-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The message lines of the ConfigError that `fn` throws. */
function errorLines(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.message.split('\n');
  }
  assert.fail('expected an error');
}

test("defaults are the paper's settings", () => {
  const c = defaultConfig();
  assert.deepEqual(c.classes, ['ang', 'hap', 'sad', 'neu']);
  assert.equal(c.corpus, 'demo');
  assert.equal(c.protocol, 'session');
  assert.deepEqual(
    {
      maxTokens: c.text.maxTokens,
      history: c.text.history,
      labelK: c.text.labelK,
      labelInit: c.text.labelInit,
    },
    { maxTokens: 150, history: 10, labelK: 9, labelInit: 'tfidf' },
  );
  assert.equal(c.speech.labelK, 100);
  assert.equal(c.speech.labelInit, 'codebook');
  assert.deepEqual(
    {
      b: c.speech.logMel.numBins,
      w: c.speech.logMel.frameLengthMs,
      h: c.speech.logMel.frameShiftMs,
      n: c.speech.logMel.normalize,
    },
    { b: 80, w: 25, h: 10, n: 'utterance' },
  );
  assert.equal(c.speech.specAugment.enabled, true);
  assert.equal(c.head.fusion, 'constraint');
  assert.equal(c.head.labelTemperature, 1);
  assert.equal(c.head.alNorm, 'softmax');
  assert.deepEqual(c.head.mu, { fusion: 1, constraint: 0.5, textLabel: 0.2, speechLabel: 0.2 });
  assert.equal(c.optim.name, 'adam');
  assert.equal(c.optim.warmupSteps, 8000);
  assert.deepEqual(c.optim.lr, { speech: 1e-6, text: 5e-6, head: 1e-4 });
  assert.equal(c.optim.batchSize, 16);
  assert.equal(c.optim.gradAccum, 1);
  assert.deepEqual(c.encoders, {
    text: { path: null, freeze: false },
    speech: { path: null, freeze: false },
  });
  assert.equal(typeof c.seed, 'number');
  assert.deepEqual(parseConfig(undefined), c);
});

test('YAML file: given keys override, the rest keep their defaults; relative paths are taken from the file', () => {
  withDir((dir) => {
    const p = join(dir, 'exp.yaml');
    writeFileSync(
      p,
      [
        'classes: [ang, hap, sad, neu, fru]',
        'corpus: manifest:data/m.jsonl',
        'head:',
        '  fusion: sum',
        '  mu: { constraint: 0 }',
        'optim:',
        '  lr: { head: 3.0e-4 }',
        'encoders:',
        '  text: { path: models/bert, freeze: true }',
      ].join('\n'),
    );
    const c = loadConfig(p);
    assert.deepEqual(c.classes, ['ang', 'hap', 'sad', 'neu', 'fru']);
    assert.equal(c.corpus, `manifest:${join(dir, 'data/m.jsonl')}`);
    assert.equal(c.head.fusion, 'sum');
    assert.deepEqual(c.head.mu, { fusion: 1, constraint: 0, textLabel: 0.2, speechLabel: 0.2 });
    assert.deepEqual(c.optim.lr, { speech: 1e-6, text: 5e-6, head: 3e-4 });
    assert.deepEqual(c.encoders.text, { path: join(dir, 'models/bert'), freeze: true });
    assert.equal(c.encoders.speech.path, null);
    assert.equal(c.text.maxTokens, 150);
  });
});

test('JSON file, empty file, and overrides (deep-merged, applied last)', () => {
  withDir((dir) => {
    const j = join(dir, 'exp.json');
    writeFileSync(j, JSON.stringify({ text: { history: 0 }, optim: { batchSize: 4, gradAccum: 4 } }));
    const c = loadConfig(j, { optim: { batchSize: 8 }, head: { fusion: 'vanilla' } });
    assert.equal(c.text.history, 0);
    assert.equal(c.optim.batchSize, 8);
    assert.equal(c.optim.gradAccum, 4);
    assert.equal(c.head.fusion, 'vanilla');
    const e = join(dir, 'empty.yaml');
    writeFileSync(e, '# nothing set\n');
    assert.deepEqual(loadConfig(e), defaultConfig());
    assert.equal(loadConfig(undefined, { seed: 7 }).seed, 7);
  });
});

test('errors name the file and the field path, with what was found', () => {
  withDir((dir) => {
    const p = join(dir, 'exp.yaml');
    writeFileSync(p, 'optim:\n  lr:\n    text: fast\n  batchSize: 1.5\nhead:\n  fusion: summ\n');
    const lines = errorLines(() => loadConfig(p));
    assert.ok(lines.includes(`${p}: optim.lr.text: expected number, got "fast"`), lines.join('\n'));
    assert.ok(lines.includes(`${p}: optim.batchSize: expected an integer, got 1.5`), lines.join('\n'));
    assert.ok(
      lines.some(
        (l) =>
          l.startsWith(`${p}: head.fusion: expected one of "constraint", "sum"`) && l.endsWith('got "summ"'),
      ),
    );
    // The example of the brief, relative path as the user typed it.
    const rel = errorLines(() => parseConfig({ optim: { lr: { text: 'fast' } } }, 'exp.yaml'));
    assert.deepEqual(rel, ['exp.yaml: optim.lr.text: expected number, got "fast"']);
  });
});

test('unknown keys are errors, with a suggestion for typos', () => {
  assert.deepEqual(
    errorLines(() => parseConfig({ text: { maxToken: 100 } }, 'a.yaml')),
    ['a.yaml: text.maxToken: unknown key (did you mean "maxTokens"?)'],
  );
  const top = errorLines(() => parseConfig({ optimiser: {} }, 'a.yaml'));
  assert.match(top[0], /^a\.yaml: optimiser: unknown key/);
  const deep = errorLines(() => parseConfig({ speech: { specAugment: { freqMask: 1 } } }, 'a.yaml'));
  assert.match(deep[0], /speech\.specAugment\.freqMask: unknown key \(did you mean "freqMasks"\?\)/);
});

test('range and shape errors', () => {
  assert.deepEqual(
    errorLines(() => parseConfig({ head: { mu: { constraint: -1 } } }, 'c')),
    ['c: head.mu.constraint: must be at least 0, got -1'],
  );
  assert.deepEqual(
    errorLines(() => parseConfig({ classes: ['ang'] }, 'c')),
    ['c: classes: needs at least 2 items'],
  );
  assert.match(
    errorLines(() => parseConfig({ classes: ['ang', 'ang'] }, 'c'))[0],
    /classes: class names must be unique/,
  );
  assert.match(
    errorLines(() => parseConfig({ classes: ['ang', 3] }, 'c'))[0],
    /^c: classes\[1\]: expected string, got 3$/,
  );
  assert.match(errorLines(() => parseConfig([1, 2], 'c'))[0], /top level, got a list/);
  assert.match(
    errorLines(() => parseConfig({ optim: { lr: 0.1 } }, 'c'))[0],
    /^c: optim\.lr: expected object, got 0\.1$/,
  );
});

test('file problems: missing file, YAML syntax, JSON syntax', () => {
  withDir((dir) => {
    assert.deepEqual(
      errorLines(() => loadConfig(join(dir, 'nope.yaml'))),
      [`${join(dir, 'nope.yaml')}: no such file`],
    );
    const y = join(dir, 'bad.yaml');
    writeFileSync(y, 'text:\n  maxTokens: [1,\n');
    assert.match(errorLines(() => loadConfig(y))[0], /bad\.yaml: YAML syntax error at line \d+, column \d+/);
    const j = join(dir, 'bad.json');
    writeFileSync(j, '{"seed": 1,}');
    assert.match(errorLines(() => loadConfig(j))[0], /bad\.json: JSON syntax error/);
  });
});

test('config YAML round-trips, and deepMerge replaces arrays', () => {
  const c = defaultConfig();
  assert.deepEqual(parseConfig(parseYaml(configToYaml(c))), c);
  assert.deepEqual(deepMerge({ a: { b: 1, c: [1, 2] } }, { a: { c: [3] } }), { a: { b: 1, c: [3] } });
});

test('runtime section: defaults, validation, and the engine options it maps to', async () => {
  const { runtimeOptions } = await import('../../src/config/engine.js');
  const d = defaultConfig();
  assert.deepEqual(d.runtime, { executionProvider: 'cpu', threads: null, stepsPerRun: 1 });
  assert.deepEqual(runtimeOptions(d), { executionProvider: 'cpu' });
  const c = loadConfig(undefined, { runtime: { executionProvider: 'cuda', threads: 4 } });
  assert.deepEqual(runtimeOptions(c), { executionProvider: 'cuda', threads: 4 });
  assert.throws(
    () => loadConfig(undefined, { runtime: { executionProvider: 'tpu' } }),
    /runtime\.executionProvider/,
  );
  assert.equal(loadConfig(undefined, { optim: { name: 'adamw' } }).optim.name, 'adamw');
});
