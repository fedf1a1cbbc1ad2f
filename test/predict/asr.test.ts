import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { whisperTranscriber } from '../../src/predict/asr.js';

// The real Whisper path needs a model folder (no weights ship with lemer); these check the
// folder before the library sees it. Transcripts themselves are tested through an injected
// Transcriber (lemer.test.ts, cli.test.ts).
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
