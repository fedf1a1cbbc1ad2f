import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { historyFor } from '../../src/data/context.js';
import { loadCorpus } from '../../src/data/corpus.js';
import { crossValidate } from '../../src/train/cv.js';
import { dialogueContext, exportRun, resolveRunPaths } from '../../src/predict/from-run.js';
import { tokenizerFromJson } from '../../src/text/tokenizer.js';
import { Lemer } from '../../src/predict/lemer.js';
import { runCli } from '../../src/cli/program.js';
import { tinyConfigYaml, writeTinyCorpus } from '../train/helpers.js';

const work = mkdtempSync(join(tmpdir(), 'lemer-export-run-'));
after(() => rmSync(work, { recursive: true, force: true }));
const manifest = writeTinyCorpus(join(work, 'corpus'));
const cfgFile = join(work, 'tiny.yaml');
writeFileSync(cfgFile, tinyConfigYaml());
const spec = `manifest:${manifest}`;
const runDir = join(work, 'run');

let trained: Promise<void> | null = null;
function trainRun(): Promise<void> {
  trained ??= (async () => {
    // 32 tokens: the dialogue history (up to 3 turns of 13-18 word pieces) must be cut to fit,
    // often to nothing, so that the test sees whether predict selects and lays it out as
    // training did (the tokenizer alone would keep the tail of the last turn).
    const config = loadConfig(cfgFile, {
      corpus: spec,
      text: { maxTokens: 32 },
      train: { cacheDir: join(work, 'cache'), epochs: 2 },
    });
    const corpus = await loadCorpus(spec, { labels: config.classes });
    await crossValidate({
      config,
      corpus,
      corpusSpec: spec,
      model: 'lemer',
      out: runDir,
      resume: false,
      folds: 'first',
    });
  })();
  return trained;
}

const load = (cfg: { corpus: string; classes: string[] }) => loadCorpus(cfg.corpus, { labels: cfg.classes });

const softmax = (l: number[]) => {
  const m = Math.max(...l);
  const e = l.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
};

test("export of a training run reproduces the run's own test predictions (with dialogue history) to 1e-5", async () => {
  await trainRun();
  const paths = resolveRunPaths(runDir);
  assert.match(paths.checkpoint, /folds\/ses1\/best$/);
  const out = join(work, 'model');
  const r = await exportRun(runDir, out, { loadCorpus: load });
  assert.equal(r.manifest.kind, 'lemer');
  const result = JSON.parse(readFileSync(join(paths.fold, 'result.json'), 'utf8'));
  const corpus = await loadCorpus(spec, { labels: result.labels });
  const model = await Lemer.load(out);
  const byId = new Map(corpus.utterances.map((u) => [u.id, u]));
  const cfg = loadConfig(join(runDir, 'config.yaml'));
  assert.equal(cfg.text.maxTokens, 32);
  // The vocabulary is the one the fold saved, byte for byte (not rebuilt from the corpus).
  assert.equal(
    readFileSync(join(out, 'tokenizer.json'), 'utf8'),
    JSON.stringify(JSON.parse(readFileSync(join(paths.fold, 'tokenizer.json'), 'utf8'))),
  );
  const tok = tokenizerFromJson(JSON.parse(readFileSync(join(paths.fold, 'tokenizer.json'), 'utf8')));
  let cut = 0;
  for (let k = 0; k < result.ids.length; k++) {
    const u = byId.get(result.ids[k])!;
    // Every previous turn: predict cuts them to the model's history budget itself.
    const context = dialogueContext(corpus, u);
    const kept = historyFor(corpus, u, {
      maxTurns: cfg.text.history,
      maxTokens: cfg.text.maxTokens - 3,
      countTokens: (s) => tok.countTokens(s),
    });
    if (kept.length < context.length) cut += 1;
    const p = await model.predict({ audio: u.audioPath!, text: u.text, context });
    const want = softmax(result.logits[k]);
    result.labels.forEach((c: string, j: number) =>
      assert.ok(Math.abs(p.probs[c] - want[j]) < 1e-5, `${u.id} ${c}: ${p.probs[c]} vs ${want[j]}`),
    );
    assert.ok(p.tokens!.length > 0 && p.frames!.length > 0);
  }
  assert.ok(cut > 0, 'some test utterances have a history that the token budget cuts');
  await model.release();
});

test('export reads the vocabulary the fold saved: a missing or unreadable tokenizer.json is an error naming it', async () => {
  await trainRun();
  const copy = join(work, 'run-copy');
  cpSync(runDir, copy, { recursive: true });
  const file = join(copy, 'folds', 'ses1', 'tokenizer.json');
  renameSync(file, `${file}.gone`);
  await assert.rejects(exportRun(copy, join(work, 'm-missing'), { loadCorpus: load }), (e: Error) =>
    e.message.startsWith(`${file}: missing: training saves the fold's in-place vocabulary there`),
  );
  writeFileSync(file, '{"model": ');
  await assert.rejects(exportRun(copy, join(work, 'm-bad'), { loadCorpus: load }), (e: Error) =>
    e.message.startsWith(`${file}: unreadable:`),
  );
  writeFileSync(file, '{"version": "1.0"}');
  await assert.rejects(exportRun(copy, join(work, 'm-bad'), { loadCorpus: load }), (e: Error) =>
    e.message.startsWith(file),
  );
});

test('a score-fusion fold exports to one model folder: fused probabilities as training summed them, speech alone from its speech model', async () => {
  const sfDir = join(work, 'run-sf');
  const config = loadConfig(cfgFile, { corpus: spec, train: { cacheDir: join(work, 'cache'), epochs: 2 } });
  const corpus = await loadCorpus(spec, { labels: config.classes });
  await crossValidate({
    config,
    corpus,
    corpusSpec: spec,
    model: 'score-fusion',
    out: sfDir,
    resume: false,
    folds: 'first',
  });
  const out = join(work, 'model-sf');
  const r = await exportRun(sfDir, out, { loadCorpus: load });
  assert.equal(r.manifest.kind, 'score-fusion');
  assert.equal(r.paths.parts?.length, 2);
  assert.equal(r.manifest.speechOnly?.method, 'speech-model');
  const result = JSON.parse(readFileSync(join(r.paths.fold, 'result.json'), 'utf8'));
  const byId = new Map(corpus.utterances.map((u) => [u.id, u]));
  const fused = await Lemer.load(out);
  // The speech model alone, exported from its own folder: the fused folder's speech-only path must match it.
  const speechOut = join(work, 'model-sf-speech');
  const rs = await exportRun(join(r.paths.fold, 'speech'), speechOut, { loadCorpus: load });
  assert.equal(rs.manifest.kind, 'speech');
  const speech = await Lemer.load(speechOut);
  for (let k = 0; k < result.ids.length; k++) {
    const u = byId.get(result.ids[k])!;
    const p = await fused.predict({ audio: u.audioPath!, text: u.text, context: dialogueContext(corpus, u) });
    assert.equal(p.modality, 'speech+text');
    const want = softmax(result.logits[k]);
    result.labels.forEach((c: string, j: number) =>
      assert.ok(Math.abs(p.probs[c] - want[j]) < 1e-5, `${u.id} ${c}: ${p.probs[c]} vs ${want[j]}`),
    );
    const a = await fused.predict({ audio: u.audioPath! });
    const b = await speech.predict({ audio: u.audioPath! });
    assert.equal(a.method, 'speech-model');
    assert.equal(a.modality, 'speech');
    for (const c of result.labels) assert.ok(Math.abs(a.probs[c] - b.probs[c]) < 1e-5, `${u.id} speech ${c}`);
  }
  await fused.release();
  await speech.release();
});

test('lemer export --quantize int8 prints the accuracy change and the speed-up on the fold test part', async () => {
  await trainRun();
  let stdout = '';
  let stderr = '';
  const io = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  };
  const out = join(work, 'model-int8');
  const code = await runCli(
    [
      '--log-level',
      'warn',
      'export',
      runDir,
      '--out',
      out,
      '--quantize',
      'int8',
      '--json',
      join(work, 'e.json'),
    ],
    io,
  );
  assert.equal(code, 0, stderr);
  assert.match(stdout, /wrote .*model-int8: lemer model \(hi, lo\)/);
  assert.match(
    stdout,
    /int8: \d+ MatMuls quantised; on the fold's \d+ test utterances WA [\d.]+% vs fp32 [\d.]+% \([+-][\d.]+ points\), UA [\d.]+% vs [\d.]+% \([+-][\d.]+ points\)/,
  );
  assert.match(stdout, /[\d.]+x the speed of fp32 in the graph/);
  const j = JSON.parse(readFileSync(join(work, 'e.json'), 'utf8'));
  assert.equal(typeof j.int8.speedup, 'number');
  assert.ok(j.int8.fp32.graphSeconds > 0 && j.int8.fp32.graphSeconds <= j.int8.fp32.seconds);
  assert.equal(typeof j.int8.run.ua, 'number');
  assert.equal(typeof j.manifest.quantized.int8.accuracyChange, 'number');
  const again = await runCli(['export', runDir, '--out', out, '--fold', 'nope'], io);
  assert.equal(again, 1);
  assert.match(stderr, /no finished fold nope \(finished: ses1\)/);
});
