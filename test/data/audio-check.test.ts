import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCorpusFromOptions, type CommandContext } from '../../src/cli/common.js';
import { defaultConfig } from '../../src/config/load.js';
import { AudioCheckError, checkCorpusAudio, readManifest } from '../../src/data/index.js';
import { createLogger } from '../../src/util/log.js';
import { encodeWav, sine } from '../audio/helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'lemer-audiocheck-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// Five utterances: three good files, a truncated one, one with a NaN sample, and a text-only row.
writeFileSync(join(tmp, 'g1.wav'), encodeWav([sine(8000, 440, 16000)], 16000, 'pcm16'));
writeFileSync(join(tmp, 'g2.wav'), encodeWav([sine(48000, 440, 48000)], 48000, 'pcm16'));
writeFileSync(join(tmp, 'g3.wav'), encodeWav([sine(4000, 440, 16000)], 16000, 'float32'));
writeFileSync(join(tmp, 'cut.wav'), encodeWav([sine(8000, 440, 16000)], 16000, 'pcm16').subarray(0, 1000));
const nan = sine(1600, 440, 16000);
nan[123] = NaN;
writeFileSync(join(tmp, 'nan.wav'), encodeWav([nan], 16000, 'float32'));
const manifest = join(tmp, 'm.jsonl');
writeFileSync(
  manifest,
  [
    { id: 'g1', audio: 'g1.wav', label: 'ang' },
    { id: 'cut', audio: 'cut.wav', label: 'hap' },
    { id: 'g2', audio: 'g2.wav', label: 'neu' },
    { id: 'nan', audio: 'nan.wav', label: 'hap' },
    { id: 't', text: 'text only', label: 'sad' },
    { id: 'g3', audio: 'g3.wav', label: 'sad' },
  ]
    .map((r) => JSON.stringify(r))
    .join('\n') + '\n',
);

test('checkCorpusAudio: fails naming every file that does not decode, in corpus order', async () => {
  const corpus = await readManifest(manifest);
  const progress: number[] = [];
  await assert.rejects(
    checkCorpusAudio(corpus, { onProgress: (d, n) => progress.push(d / n) }),
    (err: Error) => {
      assert.ok(err instanceof AudioCheckError);
      assert.deepEqual(
        err.failures.map((f) => f.id),
        ['cut', 'nan'],
      );
      assert.equal(
        err.message,
        `2 of 5 audio file(s) of corpus m do not decode:\n` +
          `  ${join(tmp, 'cut.wav')}: truncated WAV: data chunk says 16000 bytes, file has 956\n` +
          `  ${join(tmp, 'nan.wav')}: sample 123 of 1600, at 0.008 s, byte ${44 + 123 * 4} is NaN; NaN and infinite samples are refused\n` +
          `fix or remove them, or leave their utterances out with --skip-bad-audio`,
      );
      return true;
    },
  );
  assert.equal(progress.length, 5);
  assert.equal(progress.at(-1), 1);
});

test("checkCorpusAudio 'skip': the failing utterances are left out with a count; durations come with it", async () => {
  const corpus = await readManifest(manifest);
  const { corpus: ok, report } = await checkCorpusAudio(corpus, { onError: 'skip', concurrency: 2 });
  assert.deepEqual(
    ok.utterances.map((u) => u.id),
    ['g1', 'g2', 't', 'g3'],
  );
  assert.equal(report.checked, 5);
  assert.equal(report.failed.length, 2);
  assert.deepEqual(Object.fromEntries(report.seconds), { g1: 0.5, g2: 1, g3: 0.25 });
  assert.match(
    ok.warnings.at(-1)!,
    /^2 of 5 utterance\(s\) left out: their audio does not decode \(first: .*cut\.wav: truncated WAV/,
  );
  assert.equal(corpus.utterances.length, 6, 'the input corpus is untouched');
  // Nothing wrong: the same corpus object comes back.
  const good = { ...corpus, utterances: corpus.utterances.filter((u) => u.id.startsWith('g')) };
  assert.equal((await checkCorpusAudio(good)).corpus, good);
});

test('loadCorpusFromOptions with checkAudio: the CLI commands that read audio fail early, or skip with --skip-bad-audio', async () => {
  const lines: string[] = [];
  const ctx: CommandContext = {
    io: { stdout: { write: () => true }, stderr: { write: () => true } },
    log: createLogger({ level: 'warn', stream: { write: (s: string) => lines.push(s) } }),
    config: defaultConfig(),
    progress: () => ({ tick() {}, update() {}, stop() {} }),
    print: () => {},
  };
  const spec = `manifest:${manifest}`;
  await assert.rejects(loadCorpusFromOptions(ctx, { corpus: spec }, { checkAudio: true }), AudioCheckError);
  const { corpus } = await loadCorpusFromOptions(
    ctx,
    { corpus: spec, skipBadAudio: true },
    { checkAudio: true },
  );
  assert.equal(corpus.utterances.length, 4);
  assert.ok(lines.some((l) => /2 of 5 utterance\(s\) left out/.test(l)));
  // Without checkAudio (corpus info, folds) nothing is decoded.
  assert.equal((await loadCorpusFromOptions(ctx, { corpus: spec })).corpus.utterances.length, 6);
});
