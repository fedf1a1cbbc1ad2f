// train.validBy: the validation part is drawn by utterance (default), or by whole speakers /
// sessions of the training part, disjoint from the training and the test speakers.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { loadCorpus } from '../../src/data/corpus.js';
import type { Corpus } from '../../src/data/types.js';
import { configHash, protocolFolds } from '../../src/train/cv.js';
import { writeTinyCorpus } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'lemer-validby-'));
after(() => rmSync(work, { recursive: true, force: true }));
const manifest = writeTinyCorpus(join(work, 'corpus'), { perSpeaker: 4, seconds: 0.1 });
const corpus = await loadCorpus(`manifest:${manifest}`, { labels: ['hi', 'lo'] });

const groupsOf = (c: Corpus, idx: number[], key: 'speaker' | 'session') =>
  new Set(idx.map((i) => c.utterances[i][key]));

test('validBy speaker / session: whole groups held out, disjoint from training and test; utterance: as before', () => {
  for (const [protocol, by] of [
    ['session', 'speaker'],
    ['session', 'session'],
    ['speaker', 'speaker'],
    ['speaker', 'session'],
  ] as const) {
    const cfg = parseConfig({ protocol, seed: 3, train: { validBy: by, validFraction: 0.1 } });
    const folds = protocolFolds(cfg, corpus);
    for (const f of folds) {
      const what = `${protocol}/${by} fold ${f.name}`;
      const v = groupsOf(corpus, f.valid!, by);
      const tr = groupsOf(corpus, f.train, by);
      assert.ok(v.size >= 1, what);
      for (const g of v) assert.ok(!tr.has(g), `${what}: validation ${by} ${g} also in training`);
      const all = new Set([...f.train, ...f.valid!, ...f.test]);
      assert.equal(all.size, corpus.utterances.length, `${what}: every utterance in exactly one part`);
      assert.equal(f.train.length + f.valid!.length + f.test.length, corpus.utterances.length, what);
      if (by === protocol) for (const g of v) assert.ok(!groupsOf(corpus, f.test, by).has(g), what);
    }
  }
  // Default (utterance): single utterances, a validFraction share; the config hash is unchanged by the new key.
  const plain = parseConfig({ seed: 3 });
  const folds = protocolFolds(plain, corpus);
  assert.equal(folds[0].valid!.length, Math.round(0.1 * (folds[0].train.length + folds[0].valid!.length)));
  assert.equal(configHash(plain), configHash(parseConfig({ seed: 3, train: { validBy: 'utterance' } })));
  assert.notEqual(configHash(plain), configHash(parseConfig({ seed: 3, train: { validBy: 'speaker' } })));
});

test('validBy session: a training part of one session is a clear error', () => {
  const two: Corpus = { ...corpus, utterances: corpus.utterances.filter((u) => u.session !== 'ses3') };
  const cfg = parseConfig({ train: { validBy: 'session' } });
  assert.throws(
    () => protocolFolds(cfg, two),
    /train\.validBy session: fold ses1's training part has 1 session; a validation session held out of it needs at least 2/,
  );
});
