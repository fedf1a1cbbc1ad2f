// `lemer encoder check`: architecture, parameters, dtype, one forward; with an ONNX export
// beside the folder, the largest difference from ONNX Runtime.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadEncoder } from '../../../src/models/encoders.js';
import { checkEncoderFolder, formatEncoderCheck } from '../../../src/models/hf/check.js';
import { fixtureDir } from '../bert/helpers.js';
import { writeOnnxFolder } from '../onnx/helpers.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const work = mkdtempSync(join(tmpdir(), 'lemer-enc-check-'));
after(() => rmSync(work, { recursive: true, force: true }));

function withExport(fixture: string, opts: { file?: string; quantize?: boolean } = {}): string {
  const dir = join(work, `${fixture}-${opts.file ?? 'model.onnx'}`);
  cpSync(fixtureDir(fixture), dir, { recursive: true });
  writeOnnxFolder(loadEncoder(dir), dir, opts);
  return dir;
}

function lemer(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) =>
    execFile(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args],
      { cwd: ROOT, env: { ...process.env, LEMER_LOG_LEVEL: '' }, timeout: 60_000 },
      (err, stdout, stderr) =>
        done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    ),
  );
}

test('BERT folder with an fp32 export beside it: report, and lemer = ONNX Runtime to 1e-4', async () => {
  const dir = withExport('bert-tiny');
  const r = await checkEncoderFolder(dir, { threads: 1 });
  assert.equal(r.modelType, 'bert');
  assert.equal(r.modality, 'text');
  assert.deepEqual(r.architectures, ['BertModel']);
  assert.equal(r.parameters, 21_696, 'the checkpoint less the pooler (22,752)');
  assert.deepEqual(r.storedDtypes, { F32: 39 });
  assert.equal(r.output.hiddenStates, 3);
  assert.equal(r.output.shape[0], 2);
  assert.ok(r.output.finite);
  assert.ok(r.input.description.includes('vocab.txt'), 'the folder tokenizer makes the input');
  assert.ok(r.onnx && r.onnx.maxAbsDiff < 1e-4, `differs by ${r.onnx?.maxAbsDiff}`);
  assert.ok(r.onnx.masksAgree);
  const text = formatEncoderCheck(r, 1e-4);
  assert.match(text, /architecture: bert \(text\), saved as BertModel; hidden 32, 2 layers/);
  assert.match(text, /largest \|lemer - ONNX Runtime\| over valid positions .* \(within 0\.0001\)/);
});

test('RoBERTa with a quantized export; an fp16 BERT without export says there is nothing to compare', async () => {
  const r = await checkEncoderFolder(
    withExport('roberta-tiny', { file: 'model_quantized.onnx', quantize: true }),
    { threads: 1 },
  );
  assert.equal(r.modelType, 'roberta');
  assert.ok(r.input.description.includes('tokenizer.json'));
  assert.ok(r.onnx && r.onnx.file.endsWith('model_quantized.onnx') && r.onnx.maxAbsDiff > 0);
  const half = await checkEncoderFolder(fixtureDir('bert-tiny-fp16'), { threads: 1 });
  assert.deepEqual(half.storedDtypes, { F16: 39 });
  assert.equal(half.onnx, null);
  assert.match(formatEncoderCheck(half), /stored F16 x 39; computed in float32/);
});

test('the CLI: --json and --tolerance; a difference above the tolerance and a bad folder fail with exit 1', async () => {
  const dir = withExport('roberta-tiny', { file: 'model_quantized.onnx', quantize: true });
  const json = join(work, 'check.json');
  // One run: the report and the JSON come out, then the tolerance fails the command.
  const strict = await lemer(
    'encoder',
    'check',
    dir,
    '--json',
    json,
    '--tolerance',
    '1e-9',
    '--threads',
    '1',
  );
  assert.equal(strict.code, 1);
  assert.match(strict.stdout, /parameters: [\d,]+ \(stored F32/);
  assert.match(
    strict.stderr,
    /model_quantized\.onnx: lemer and ONNX Runtime differ by .* above --tolerance 1e-9/,
  );
  const saved = JSON.parse(readFileSync(json, 'utf8')) as { onnx: { maxAbsDiff: number } };
  assert.ok(saved.onnx.maxAbsDiff > 0);
  const bad = await lemer('encoder', 'check', join(work, 'nope'));
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /lemer: .*nope: no such folder/);
});

// The speech families register themselves in src/models/encoders.ts; their fixtures live beside ours.
for (const fixture of ['wav2vec2-tiny', 'conformer-tiny']) {
  test(
    `a speech folder (${fixture}) with an export beside it: lemer = ONNX Runtime, frame masks agree`,
    { skip: !existsSync(fixtureDir(fixture)) },
    async () => {
      const r = await checkEncoderFolder(withExport(fixture), { threads: 1 });
      assert.equal(r.modality, 'speech');
      assert.ok(r.output.finite);
      assert.ok(r.onnx && r.onnx.maxAbsDiff < 1e-4, `${fixture}: differs by ${r.onnx?.maxAbsDiff}`);
      assert.ok(r.onnx.masksAgree, `${fixture}: the frozen encoder frame mask differs from lemer`);
    },
  );
}
