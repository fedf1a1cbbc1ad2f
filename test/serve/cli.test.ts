import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../../src/cli/program.js';
import { exportedTinyModel, tone, wavBytes } from '../predict/helpers.js';

function lemer(argv: string[]): { done: Promise<number>; stderr: () => string } {
  let stderr = '';
  const io = { stdout: { write: () => true }, stderr: { write: (s: string) => (stderr += s) } };
  return { done: runCli(argv, io), stderr: () => stderr };
}

test('lemer serve refuses limits that are not positive numbers', async () => {
  for (const [flag, v] of [
    ['--body-timeout', '0'],
    ['--timeout', 'soon'],
    ['--max-seconds', '-1'],
  ]) {
    const r = lemer(['serve', '--model', 'unused', flag, v]);
    assert.notEqual(await r.done, 0);
    assert.match(r.stderr(), new RegExp(`${flag} must be a positive number`));
  }
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
