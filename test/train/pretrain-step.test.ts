// 2nd-stage pretraining as a step of `lemer cv` (pretrain.enabled): per fold, on that fold's
// training audio only (changing the test fold's audio changes nothing in the pretrained
// encoder; changing a training utterance's does), saved in the fold's folder, kept on
// --resume, fine-tuning starting from it; speech label embeddings from its quantiser's codes,
// and codebook vectors through a projection (codebookMode projection).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { loadCorpus } from '../../src/data/corpus.js';
import { readSafetensors } from '../../src/graph/safetensors.js';
import { quantizerCodebook } from '../../src/pretrain/codes.js';
import { crossValidate, type FoldResult } from '../../src/train/cv.js';
import { inputNormStats } from '../../src/train/input-norm.js';
import { normalised } from '../../src/train/pretrain-step.js';
import { tinyConfigYaml, writeToneWav, writeTinyCorpus } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'lemer-pretrain-step-'));
after(() => rmSync(work, { recursive: true, force: true }));
const manifest = writeTinyCorpus(join(work, 'corpus'), { perSpeaker: 3, seconds: 0.4 });
const cfgFile = join(work, 'tiny.yaml');
writeFileSync(
  cfgFile,
  tinyConfigYaml(`pretrain:
  enabled: true
  steps: 3
  batchSize: 4
  maskLength: 2
  numNegatives: 3
  quantizer: { groups: 2, perGroup: 4, dim: 8, projDim: 8 }
`),
);
const cacheDir = join(work, 'cache');

async function run(
  out: string,
  opts: { spec?: string; resume?: boolean; over?: Record<string, unknown>; cache?: string } = {},
) {
  const config = loadConfig(cfgFile, {
    ...opts.over,
    train: {
      cacheDir: opts.cache ?? cacheDir,
      epochs: 1,
      inPlace: {
        speech: {
          kind: 'conformer',
          hiddenSize: 16,
          numLayers: 1,
          numHeads: 2,
          ffnDim: 32,
          convKernel: 3,
          dropout: 0,
        },
      },
      ...((opts.over?.train as object) ?? {}),
    },
  });
  const spec = opts.spec ?? `manifest:${manifest}`;
  const corpus = await loadCorpus(spec, { labels: config.classes });
  const logs: string[] = [];
  const r = await crossValidate({
    config,
    corpus,
    corpusSpec: spec,
    model: 'speech',
    out: join(work, out),
    resume: opts.resume ?? false,
    folds: ['ses1'],
    log: (m) => logs.push(m),
  });
  const fold = JSON.parse(
    readFileSync(join(work, out, 'folds', 'ses1', 'result.json'), 'utf8'),
  ) as FoldResult;
  return { r, logs, fold, dir: join(work, out, 'folds', 'ses1', 'pretrain') };
}

/** A copy of the corpus whose utterances of `session` (or the one `id`) have other audio. */
function alteredCorpus(name: string, pick: (row: { id: string; session: string }) => boolean): string {
  const rows = readFileSync(manifest, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { id: string; session: string; audio: string });
  const dir = join(work, 'corpus');
  const out = rows.map((x, k) => {
    if (!pick(x)) return x;
    const audio = `wav/${name}_${x.id}.wav`;
    writeToneWav(join(dir, audio), 300 + 10 * k, 0.4, 1000 + k);
    return { ...x, audio };
  });
  const path = join(dir, `${name}.jsonl`);
  writeFileSync(path, out.map((x) => JSON.stringify(x)).join('\n') + '\n');
  return path;
}

const weightsOf = (dir: string) => readFileSync(join(dir, 'model.safetensors'));

test('pretraining per fold on its training audio only; kept on --resume; fine-tuning and codes start from it', async () => {
  const a = await run('a');
  assert.ok(existsSync(join(a.dir, 'model.safetensors')) && existsSync(join(a.dir, 'done.json')));
  assert.equal(a.fold.pretrain!.steps, 3);
  assert.equal(a.fold.pretrain!.kept, false);
  // Fold ses1's training part: sessions 2 and 3 less the validation share; the test part unseen.
  assert.equal(a.fold.pretrain!.utterances, a.fold.trainSize);
  assert.ok(a.logs.some((m) => /test and validation parts unseen/.test(m)));
  // Fine-tuning read the pretrained folder, and the speech codes are its quantiser's.
  assert.match(a.fold.fits[0].description, /pretrain/);
  assert.equal(a.fold.fits[0].labelInit.codeSource, 'quantizer');
  assert.ok(a.fold.fits[0].labelInit.codes!.every((c) => c.every((x) => x >= 0 && x < 16)));

  // The test fold's audio changed: the pretrained encoder is the same, bit for bit.
  const testChanged = alteredCorpus('t', (x) => x.session === 'ses1');
  // (Another cache: the same training audio would otherwise be a cache hit.)
  const b = await run('b', { spec: `manifest:${testChanged}`, cache: join(work, 'cache-b') });
  assert.equal(b.fold.pretrain!.cached, false);
  assert.ok(weightsOf(a.dir).equals(weightsOf(b.dir)), 'the test fold shaped the pretrained encoder');
  // One training utterance's audio changed: it differs (the comparison can fail).
  const trainChanged = alteredCorpus('u', (x) => x.id === 's2a_0');
  const c = await run('c', { spec: `manifest:${trainChanged}` });
  assert.ok(!weightsOf(a.dir).equals(weightsOf(c.dir)));

  // Another run of the same step (an ablation row, a grid cell) copies it from the cache.
  const d = await run('d');
  assert.equal(d.fold.pretrain!.cached, true);
  assert.ok(d.logs.some((m) => /is in the cache: copied/.test(m)));
  assert.ok(weightsOf(a.dir).equals(weightsOf(d.dir)));

  // --resume: a finished pretraining step is kept, not redone (the fold itself reruns here).
  rmSync(join(work, 'a', 'folds', 'ses1', 'result.json'));
  const mtime = statSync(join(a.dir, 'model.safetensors')).mtimeMs;
  const again = await run('a', { resume: true });
  assert.ok(again.logs.some((m) => /pretraining finished in an earlier run, kept/.test(m)));
  assert.equal(statSync(join(a.dir, 'model.safetensors')).mtimeMs, mtime);
  assert.equal(again.fold.pretrain!.kept, true);
  // Other pretraining settings are not resumed from it (nor is the fine-tuning checkpoint).
  rmSync(join(work, 'a', 'folds', 'ses1', 'result.json'));
  rmSync(join(work, 'a', 'folds', 'ses1', 'last'), { recursive: true });
  const other = await run('a', { resume: true, over: { pretrain: { steps: 2 } } });
  assert.equal(other.fold.pretrain!.kept, false);
  assert.equal(other.fold.pretrain!.steps, 2);
});

test('codebookMode projection: L_s from the quantiser codebook vectors of each class top codes, through a learned projection', async () => {
  const p = await run('proj', { over: { speech: { codebookMode: 'projection', labelK: 3 } } });
  const codes = p.fold.fits[0].labelInit.codes!;
  const book = quantizerCodebook(p.dir);
  assert.equal(book.dim, 8);
  const best = readSafetensors(join(work, 'proj', 'folds', 'ses1', 'best', 'model.safetensors')).tensors;
  const cb = best.get('head.label_embeddings.speech_codebook')!;
  assert.deepEqual(cb.shape, [2, 8]);
  assert.deepEqual(best.get('head.label_embeddings.speech_projection.weight')!.shape, [16, 8]);
  assert.ok(!best.has('head.label_embeddings.speech'));
  codes.forEach((cs, c) => {
    for (let d = 0; d < 8; d++) {
      const want = cs.reduce((s, code) => s + book.vectorOf(code)[d], 0) / cs.length;
      assert.ok(Math.abs((cb.data[c * 8 + d] as number) - want) < 1e-5, `class ${c} dim ${d}`);
    }
  });
  // Packed code = idx_0 * V + idx_1 (V = 4): its vector is the two group entries side by side.
  const raw = readSafetensors(join(p.dir, 'model.safetensors')).tensors.get('quantizer.codevectors')!
    .data as Float32Array;
  const v = book.vectorOf(1 * 4 + 3);
  assert.deepEqual(Array.from(v), [
    ...Array.from(raw.slice(1 * 4, 1 * 4 + 4)),
    ...Array.from(raw.slice((4 + 3) * 4, (4 + 3) * 4 + 4)),
  ]);
});

test('global log-mel normalisation: pretraining and the quantiser codes read the normalised features', async () => {
  const g = await run('global', { over: { speech: { logMel: { numBins: 16, normalize: 'global' } } } });
  assert.equal(g.fold.pretrain!.cached, false);
  assert.equal(g.fold.fits[0].labelInit.codeSource, 'quantizer');
  const { mean, std } = inputNormStats([{ data: Float32Array.from([1, 10, 3, 30]), frames: 2, bins: 2 }]);
  assert.deepEqual(
    Array.from(normalised(Float32Array.from([2, 20, 1, 10]), 2, { mean, std })),
    [0, 0, -1, -1],
  );
});

test('pretrain.enabled with an encoder that cannot be pretrained stops before any work', async () => {
  const config = loadConfig(cfgFile, { train: { cacheDir } });
  const spec = `manifest:${manifest}`;
  await assert.rejects(
    crossValidate({
      config,
      corpus: await loadCorpus(spec, { labels: config.classes }),
      corpusSpec: spec,
      model: 'speech',
      out: join(work, 'bad'),
      resume: false,
    }),
    /pretrain\.enabled: the in-place compact speech encoder has no quantiser objective/,
  );
  assert.ok(!existsSync(join(work, 'bad', 'folds')));
});
