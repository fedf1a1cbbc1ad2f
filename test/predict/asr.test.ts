import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { whisperTranscriber } from '../../src/predict/asr.js';
import { runCli } from '../../src/cli/program.js';
import { exportedTinyModel, tone, wavBytes } from './helpers.js';

/** A tiny random Whisper in the transformers.js layout (tools/make_whisper_fixture.py). */
const WHISPER = join(import.meta.dirname, '..', 'fixtures', 'whisper-tiny');

// No Whisper weights ship with lemer: these check the folder before the library sees it,
// and the real library path runs on a tiny random Whisper fixture (below). Transcripts in
// predictions are also tested through an injected Transcriber (lemer.test.ts, cli.test.ts).
test('--asr folder checks: missing folder, missing files, no ONNX weights, unknown dtype', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lemer-asr-'));
  await assert.rejects(whisperTranscriber(join(dir, 'none')), /ASR model folder not found/);
  const w = join(dir, 'whisper-tiny');
  mkdirSync(join(w, 'onnx'), { recursive: true });
  await assert.rejects(
    whisperTranscriber(w),
    /whisper-tiny\/config\.json: missing; --asr wants a Whisper ONNX folder/,
  );
  for (const f of ['config.json', 'tokenizer.json', 'preprocessor_config.json'])
    writeFileSync(join(w, f), '{}');
  await assert.rejects(whisperTranscriber(w), /no Whisper ONNX weights in onnx\//);
  writeFileSync(join(w, 'onnx', 'encoder_model_quantized.onnx'), '');
  writeFileSync(join(w, 'onnx', 'decoder_model_merged_quantized.onnx'), '');
  await assert.rejects(
    whisperTranscriber(w, { dtype: 'fp32' }),
    /no onnx\/encoder_model\.onnx with its decoder for dtype fp32/,
  );
  await assert.rejects(whisperTranscriber(w, { dtype: 'x9' }), /dtype x9: unknown/);
  // A folder that passes the checks but holds no real model: the library's error, with the folder named.
  await assert.rejects(whisperTranscriber(w), (e: Error) =>
    e.message.startsWith(`${w}: cannot load the Whisper model`),
  );
  rmSync(dir, { recursive: true, force: true });
});

test('the real path: @huggingface/transformers runs a Whisper ONNX folder (tiny, random weights)', async () => {
  const t = await whisperTranscriber(WHISPER);
  assert.equal(t.source, `whisper-onnx:${WHISPER} (fp32)`);
  const x = tone(300, 1.5);
  const a = await t.transcribe(x, 16000);
  // Random weights say nothing real, but the same audio gives the same words, and some.
  assert.ok(a.length > 0, 'a non-empty transcript');
  assert.equal(await t.transcribe(x, 16000), a);
  await assert.rejects(t.transcribe(x, 8000), /wants 16 kHz audio, got 8000 Hz/);
  await t.release?.();
});

test('lemer predict --asr <folder>: the transcript and its source are in the output', async () => {
  const { dir } = await exportedTinyModel();
  const work = mkdtempSync(join(tmpdir(), 'lemer-asr-cli-'));
  const wav = join(work, 'a.wav');
  writeFileSync(wav, wavBytes(tone(300, 1.2), 16000));
  let stdout = '';
  let stderr = '';
  const io = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  };
  const json = join(work, 'a.jsonl');
  const code = await runCli(
    ['--log-level', 'warn', 'predict', wav, '--model', dir, '--asr', WHISPER, '--json', json],
    io,
  );
  assert.equal(code, 0, stderr);
  const row = JSON.parse(readFileSync(json, 'utf8').trim());
  assert.equal(row.transcript.source, `whisper-onnx:${WHISPER} (fp32)`);
  assert.ok(row.transcript.text.length > 0);
  assert.equal(row.modality, 'speech+text');
  assert.ok(row.tokens.length > 0, 'the transcript went through the text branch');
  assert.ok(stdout.includes(`"${row.transcript.text}"`), stdout);
  rmSync(work, { recursive: true, force: true });
});
