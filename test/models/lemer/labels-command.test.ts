import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeWav } from '../../audio/helpers.js';
import type { FoldLabels } from '../../../src/cli/commands/labels.js';
import { runCli } from '../../../src/cli/program.js';

const work = mkdtempSync(join(tmpdir(), 'lemer-labels-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Runs `lemer ...` in this process (the same entry point as the binary), capturing its output. */
async function lemer(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  });
  return { code, stdout, stderr };
}

/** A mono 16-bit WAV: a tone at `freq` Hz. */
function writeWav(path: string, seconds: number, freq: number, rate = 16000): void {
  const n = Math.round(seconds * rate);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++)
    x[i] =
      Math.round(
        3000 * Math.sin((2 * Math.PI * freq * i) / rate) + 300 * Math.sin(i * 0.37 * (1 + (i % 7))),
      ) / 32768;
  writeFileSync(path, encodeWav([x], rate, 'pcm16'));
}

// Two sessions; each class has two utterances per session. Session s2's texts hold words
// ("testonly...") that appear nowhere in s1: in the fold tested on s2 they must not show.
const TEXT: Record<string, string[]> = {
  ang: ['hate this mess', 'furious now'],
  hap: ['love this day', 'wonderful news'],
  neu: ['schedule the meeting', 'folder on table'],
};
const rows: Record<string, string | number>[] = [];
for (const session of ['s1', 's2'])
  for (const [c, label] of ['ang', 'hap', 'neu'].entries())
    for (let k = 0; k < 2; k++) {
      const id = `${session}_${label}_${k}`;
      writeWav(join(work, `${id}.wav`), 0.3, 200 + 300 * c + 50 * k);
      const text = session === 's2' ? `testonly${label} ${TEXT[label][k]}` : TEXT[label][k];
      rows.push({ id, audio: `${id}.wav`, text, label, speaker: session, session });
    }
const manifest = join(work, 'm.jsonl');
writeFileSync(manifest, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');

test('lemer labels: per fold, keywords and codes from the training part only', async () => {
  const out = join(work, 'labels.json');
  const r = await lemer(
    'labels',
    '--corpus',
    `manifest:${manifest}`,
    '--labels',
    'ang,hap,neu',
    '--k',
    '3',
    '--speech-k',
    '4',
    '--kmeans-k',
    '6',
    '--json',
    out,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /fold s1 \(trained on 6 utterances, tested on 6\)/);
  assert.match(r.stdout, /codes: /);
  const res = JSON.parse(readFileSync(out, 'utf8')) as { folds: FoldLabels[] };
  assert.deepEqual(
    res.folds.map((f) => f.fold),
    ['s1', 's2'],
  );
  const testedOnS2 = res.folds[1];
  const words = testedOnS2.classes.flatMap((c) => c.keywords.map((k) => k.word));
  assert.ok(!words.some((w) => w.startsWith('testonly')), `test-fold words leaked: ${words}`);
  assert.ok(
    res.folds[0].classes.some((c) => c.keywords.some((k) => k.word.startsWith('testonly'))),
    'fold s1 trains on s2',
  );
  for (const f of res.folds)
    for (const c of f.classes) assert.ok(c.codes && c.codes.length >= 1 && c.codes.length <= 4);
  // --fold by number, codes off, K above a class's distinct words: a warning, not a failure.
  const one = await lemer(
    'labels',
    '--corpus',
    `manifest:${manifest}`,
    '--labels',
    'ang,hap,neu',
    '--fold',
    '2',
    '--codes',
    'none',
    '--k',
    '50',
  );
  assert.equal(one.code, 0, one.stderr);
  assert.match(one.stdout, /1 fold\(s\)/);
  assert.match(one.stdout, /speech codes: off/);
  assert.match(one.stderr, /fewer than K = 50/);
  // Codes from an encoder folder's hidden states (the tiny conformer fixture).
  const conf = await lemer(
    'labels',
    '--corpus',
    `manifest:${manifest}`,
    '--labels',
    'ang,hap,neu',
    '--fold',
    's1',
    '--k',
    '2',
    '--speech-k',
    '2',
    '--kmeans-k',
    '5',
    '--speech-encoder',
    join(import.meta.dirname, '../../fixtures/models/conformer-tiny'),
  );
  assert.equal(conf.code, 0, conf.stderr);
  assert.match(conf.stdout, /k-means \(k = 5\) over training frames of lemer-conformer/);
  assert.equal(conf.stdout.match(/^ +codes: /gm)?.length, 3);
  // A class that only the test session has: an error naming the fold, before any audio is read.
  const lopsided = join(work, 'lopsided.jsonl');
  const extra = {
    id: 's2_sad_0',
    audio: 's2_ang_0.wav',
    text: 'so sad',
    label: 'sad',
    speaker: 's2',
    session: 's2',
  };
  writeFileSync(lopsided, [...rows, extra].map((r) => JSON.stringify(r)).join('\n') + '\n');
  const missing = await lemer('labels', '--corpus', `manifest:${lopsided}`, '--labels', 'ang,hap,neu,sad');
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /fold s2: text label keywords: class 'sad' has no training utterances/);
  assert.doesNotMatch(missing.stderr, /log-mel/);
  const bad = await lemer(
    'labels',
    '--corpus',
    `manifest:${manifest}`,
    '--labels',
    'ang,hap,neu',
    '--fold',
    '9',
  );
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--fold 9: no such fold; give 1..2 or a name \(s1, s2\)/);
});
