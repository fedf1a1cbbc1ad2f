// Speech label embeddings initialised from the text label embeddings ("BERT", Table 1 B4) in a
// speech-only model: the model has no text branch, so a text encoder is built for the init
// alone; L_s is the same projection of the same L_t as the fused model's bert init.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { loadCorpus } from '../../src/data/corpus.js';
import { initLabelEmbeddings } from '../../src/train/labels.js';
import { buildModel } from '../../src/train/model.js';
import { protocolFolds } from '../../src/train/cv.js';
import { projectTextLabels } from '../../src/models/lemer/label-embeddings.js';
import type { Example } from '../../src/train/data.js';
import { tinyConfigYaml, writeTinyCorpus } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'lemer-label-init-'));
after(() => rmSync(work, { recursive: true, force: true }));
const manifest = writeTinyCorpus(join(work, 'corpus'), { perSpeaker: 3, seconds: 0.1 });
writeFileSync(join(work, 'tiny.yaml'), tinyConfigYaml());

test('speech-only bert init: L_s = the projected text label embeddings of the training fold keywords', async () => {
  const cfg = loadConfig(join(work, 'tiny.yaml'), { speech: { labelInit: 'bert' } });
  const corpus = await loadCorpus(`manifest:${manifest}`, { labels: cfg.classes });
  const fold = protocolFolds(cfg, corpus)[0];
  const train: Example[] = fold.train.map((i) => ({
    index: i,
    id: corpus.utterances[i].id,
    label: cfg.classes.indexOf(corpus.utterances[i].label),
  }));
  const texts = fold.train.map((i) => corpus.utterances[i].text);
  const speech = await buildModel(cfg, 'speech', { trainTexts: texts, classWeights: null });
  const info = await initLabelEmbeddings(cfg, speech, corpus, train, { runtime: { threads: 1 } });
  const ls = speech.initialParams.get('head.label_embeddings.speech')!;
  assert.deepEqual(ls.shape, [2, speech.speechEncoder!.hiddenSize]);
  assert.equal(info.keywords!.length, 2);
  assert.ok(info.keywords!.every((k) => k.length > 0));
  // The fused model's route: its own L_t (same vocabulary, seed and keywords), projected.
  const fused = await buildModel(cfg, 'lemer', { trainTexts: texts, classWeights: null });
  await initLabelEmbeddings(cfg, fused, corpus, train, { runtime: { threads: 1 } });
  const lt = fused.initialParams.get('head.label_embeddings.text')!;
  const want = projectTextLabels(lt, ls.shape[1], cfg.seed);
  assert.deepEqual(Array.from(ls.data as Float32Array), Array.from(want.data as Float32Array));
  assert.deepEqual(
    Array.from(fused.initialParams.get('head.label_embeddings.speech')!.data as Float32Array),
    Array.from(want.data as Float32Array),
  );
  // Random text init cannot feed it.
  const bad = loadConfig(join(work, 'tiny.yaml'), {
    speech: { labelInit: 'bert' },
    text: { labelInit: 'random' },
  });
  const m = await buildModel(bad, 'speech', { trainTexts: texts, classWeights: null });
  await assert.rejects(
    initLabelEmbeddings(bad, m, corpus, train, {}),
    /speech\.labelInit bert: needs text label embeddings from words/,
  );
});
