import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { historyFor } from '../../src/data/context.js';
import { loadCorpus } from '../../src/data/corpus.js';
import { crossValidate } from '../../src/train/cv.js';
import { exportRun, resolveRunPaths } from '../../src/predict/from-run.js';
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
    const config = loadConfig(cfgFile, { corpus: spec, train: { cacheDir: join(work, 'cache'), epochs: 2 } });
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

test("export of a training run reproduces the run's own test predictions", async () => {
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
  for (let k = 0; k < result.ids.length; k++) {
    const u = byId.get(result.ids[k])!;
    const tok = (model as unknown as { tokenizer: { countTokens(s: string): number } }).tokenizer;
    const context = historyFor(corpus, u, {
      maxTurns: cfg.text.history,
      maxTokens: cfg.text.maxTokens - 3,
      countTokens: (s) => tok.countTokens(s) + 1,
    });
    const p = await model.predict({ audio: u.audioPath!, text: u.text, context });
    const l: number[] = result.logits[k];
    const m = Math.max(...l);
    const e = l.map((x) => Math.exp(x - m));
    const s = e.reduce((a, b) => a + b, 0);
    result.labels.forEach((c: string, j: number) =>
      assert.ok(Math.abs(p.probs[c] - e[j] / s) < 1e-5, `${u.id} ${c}: ${p.probs[c]} vs ${e[j] / s}`),
    );
    assert.ok(p.tokens!.length > 0 && p.frames!.length > 0);
  }
  await model.release();
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
    /int8: \d+ MatMuls quantised; on the fold's \d+ test utterances WA [\d.]+% vs fp32 [\d.]+% \([+-][\d.]+ points/,
  );
  const j = JSON.parse(readFileSync(join(work, 'e.json'), 'utf8'));
  assert.equal(typeof j.int8.speedup, 'number');
  assert.equal(typeof j.manifest.quantized.int8.accuracyChange, 'number');
  const again = await runCli(['export', runDir, '--out', out, '--fold', 'nope'], io);
  assert.equal(again, 1);
  assert.match(stderr, /no finished fold nope \(finished: ses1\)/);
});
