import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../../src/cli/program.js';
import { exportedTinyModel, tone, wavBytes } from '../predict/helpers.js';

function lemer(argv: string[]): { done: Promise<number>; stderr: () => string } {
  let stderr = '';
  const io = { stdout: { write: () => true }, stderr: { write: (s: string) => (stderr += s) } };
  return { done: runCli(argv, io), stderr: () => stderr };
}

test('lemer serve without --model says a model folder is needed', async () => {
  const saved = process.env.LEMER_MODEL;
  delete process.env.LEMER_MODEL;
  const r = lemer(['serve']);
  assert.notEqual(await r.done, 0);
  assert.match(r.stderr(), /--model <dir> is required/);
  if (saved !== undefined) process.env.LEMER_MODEL = saved;
});

test('lemer serve: serves on a free port, predicts, and stops on SIGTERM', async () => {
  const { dir } = await exportedTinyModel();
  const r = lemer(['--log-level', 'info', 'serve', '--model', dir, '--port', '0', '--threads', '1']);
  let url: string | undefined;
  while (!url) {
    url = r.stderr().match(/on (http:\/\/127\.0\.0\.1:\d+)/)?.[1];
    await new Promise((res) => setTimeout(res, 20));
  }
  assert.equal((await fetch(`${url}/healthz`)).status, 200);
  const f = new FormData();
  f.append('audio', new Blob([wavBytes(tone(2000, 0.6), 16000)]), 'b.wav');
  f.append('text', 'the high whistle');
  const p = await fetch(`${url}/v1/predict`, { method: 'POST', body: f });
  assert.equal(p.status, 200);
  assert.equal(((await p.json()) as { name: string }).name, 'b.wav');
  process.emit('SIGTERM');
  assert.equal(await r.done, 0);
  assert.match(r.stderr(), /SIGTERM: finishing/);
  await assert.rejects(fetch(`${url}/healthz`));
});
