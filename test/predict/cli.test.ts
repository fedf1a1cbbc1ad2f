import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli/program.js';
import { SPEECH_WAV, exportedTinyModel, speechUtterance, tone, wavBytes } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'lemer-predict-cli-'));
test.after(() => rmSync(work, { recursive: true, force: true }));

async function lemer(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  };
  const code = await runCli(['--log-level', 'warn', ...argv], io);
  return { code, stdout, stderr };
}

test('lemer predict: one file with --text, a line on stdout, JSON Lines and a PNG plot', async () => {
  const { dir } = await exportedTinyModel();
  const a = join(work, 'a.wav');
  writeFileSync(a, wavBytes(tone(200, 0.6), 16000));
  const json = join(work, 'a.jsonl');
  const png = join(work, 'a.png');
  const r = await lemer('predict', a, '--model', dir, '--text', 'the low hum', '--json', json, '--plot', png);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /a\.wav: (low|high) \d+\.\d% \((low|high) \d+\.\d%\) \[speech\+text\]/);
  const rows = readFileSync(json, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(rows.length, 1);
  assert.equal(rows[0].name, a);
  assert.deepEqual(rows[0].transcript, { text: 'the low hum', source: 'given' });
  assert.ok(rows[0].tokens.length === 3 && rows[0].frames.length > 0);
  assert.ok(existsSync(png));
});

test('lemer predict: many files batched, no transcript (speech alone, said so)', async () => {
  const { dir } = await exportedTinyModel();
  const files = [200, 2000, 300].map((hz, i) => {
    const p = join(work, `m${i}.wav`);
    writeFileSync(p, wavBytes(tone(hz, 0.5 + 0.1 * i), 16000));
    return p;
  });
  const json = join(work, 'many.jsonl');
  const r = await lemer('predict', ...files, '--model', dir, '--json', json, '--batch-size', '2');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n').length, 3);
  assert.match(r.stdout, /\[speech alone\]/);
  const rows = readFileSync(json, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    rows.map((x) => x.name),
    files,
  );
  assert.ok(rows.every((x) => x.method === 'speech-label-attention' && x.modality === 'speech'));
});

test('lemer predict --segment: start and end per segment, JSON Lines and a timeline', async (t) => {
  const u = await speechUtterance();
  if (!u) {
    t.skip(`shared EmoDB absent (${SPEECH_WAV})`);
    return;
  }
  const { dir } = await exportedTinyModel();
  const rate = 22050;
  const x = new Float32Array(rate * 6); // two 1.9 s utterances at 1 s and 3.2 s
  x.set(u, rate);
  x.set(u, Math.round(rate * 3.2));
  const long = join(work, 'long.wav');
  writeFileSync(long, wavBytes(x, rate));
  const json = join(work, 'seg.jsonl');
  const svg = join(work, 'seg.svg');
  const r = await lemer('predict', long, '--model', dir, '--segment', '--json', json, '--plot', svg);
  assert.equal(r.code, 0, r.stderr);
  const rows = readFileSync(json, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(rows.length, 2);
  assert.ok(
    rows[0].start > 0.8 && rows[0].start < 1.3 && rows[1].start > 3,
    JSON.stringify(rows.map((x) => [x.start, x.end])),
  );
  assert.match(r.stdout, /long\.wav#0 \d\.\d\d-\d\.\d\d s: /);
  assert.ok(readFileSync(svg, 'utf8').includes('2 speech segments'));
});

test('lemer predict and export: bad arguments get clear errors', async () => {
  const { dir } = await exportedTinyModel();
  const a = join(work, 'b.wav');
  writeFileSync(a, wavBytes(tone(200, 0.5), 16000));
  // (No --model: the demo model, trained on first use: test/serve/demo-model.test.ts.)
  let r = await lemer('predict', a, a, '--model', dir, '--text', 'hi');
  assert.match(r.stderr, /--text applies to one audio file; 2 were given/);
  r = await lemer('predict', a, '--model', dir, '--segment', '--text', 'hi');
  assert.match(r.stderr, /every segment needs its own transcript/);
  r = await lemer('predict', a, '--model', dir, '--plot', join(work, 'x.jpg'));
  assert.match(r.stderr, /must end in \.svg or \.png/);
  r = await lemer('predict', join(work, 'none.wav'), '--model', dir);
  assert.match(r.stderr, /none\.wav: file not found/);
  r = await lemer('predict', a, '--model', join(work, 'nomodel'));
  assert.match(r.stderr, /model folder not found/);
  r = await lemer('predict', a, '--model', dir, '--asr', join(work, 'nowhisper'));
  assert.match(r.stderr, /ASR model folder not found/);
  r = await lemer('export', join(work, 'norun'), '--out', join(work, 'o'));
  assert.match(r.stderr, /norun: not found/);
  r = await lemer('export', work, '--out', join(work, 'o'));
  assert.match(r.stderr, /not a lemer run/);
});
