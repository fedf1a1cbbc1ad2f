// No --model: `lemer serve` and `lemer predict` train the demo model on first use (the quick
// recipe here: a tiny model on a 16-utterance demo corpus, seconds), cache it atomically, and
// reuse it on later starts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli/program.js';
import { demoModelDir, readDemoStamp } from '../../src/predict/demo-model.js';
import { tone, wavBytes } from '../predict/helpers.js';

let hasEspeak = true;
try {
  createRequire(import.meta.url).resolve('espeak-ng');
} catch {
  hasEspeak = false;
}
const skip = hasEspeak ? false : 'optional dependency espeak-ng is not installed (the demo corpus needs it)';

const cache = mkdtempSync(join(tmpdir(), 'lemer-demo-model-'));
process.env.LEMER_CACHE = cache;
process.env.LEMER_DEMO_QUICK = '1';
delete process.env.LEMER_MODEL;
after(() => rmSync(cache, { recursive: true, force: true }));

function lemer(argv: string[]): { done: Promise<number>; stderr: () => string; stdout: () => string } {
  let stderr = '';
  let stdout = '';
  const io = {
    stdout: { write: (s: string) => ((stdout += s), true) },
    stderr: { write: (s: string) => ((stderr += s), true) },
  };
  return { done: runCli(argv, io), stderr: () => stderr, stdout: () => stdout };
}

/** Starts `lemer serve` with no --model; resolves with its URL once it listens. */
async function serve(): Promise<{ url: string; r: ReturnType<typeof lemer> }> {
  const r = lemer(['--log-level', 'info', 'serve', '--port', '0', '--threads', '1']);
  let url: string | undefined;
  let exited = false;
  void r.done.then(() => (exited = true));
  while (!url) {
    if (exited) throw new Error(`lemer serve exited: ${r.stderr()}`);
    url = r.stderr().match(/on (http:\/\/127\.0\.0\.1:\d+)/)?.[1];
    await new Promise((res) => setTimeout(res, 50));
  }
  return { url, r };
}

async function stop(r: ReturnType<typeof lemer>): Promise<void> {
  process.emit('SIGTERM');
  assert.equal(await r.done, 0);
}

const clip = wavBytes(tone(180, 1.2), 16000);

test(
  'with no --model, lemer serve trains the demo model once, caches it, and later starts reuse it',
  { skip },
  async () => {
    const dir = demoModelDir();
    assert.equal(dir, join(cache, 'demo-model-v1-quick'));
    // What a crash leaves: a folder without its stamp, and a work folder of a dead process.
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'lemer-model.json'), '{"half": true}');
    const stale = `${dir}.tmp-999999-dead`;
    mkdirSync(stale);
    assert.equal(readDemoStamp(dir, true), null, 'a folder without its stamp never counts');

    const first = await serve();
    assert.match(first.r.stderr(), /no --model: training the demo model once on the synthetic demo corpus/);
    assert.match(first.r.stderr(), /demo model ready in .*demo-model-v1-quick .*later starts reuse it/);
    const h = (await (await fetch(`${first.url}/healthz`)).json()) as {
      model: { dir: string; labels: string[] };
    };
    assert.equal(h.model.dir, dir);
    assert.deepEqual(h.model.labels, ['ang', 'hap', 'sad', 'neu']);
    const f = new FormData();
    f.append('audio', new Blob([clip]), 'clip.wav');
    f.append('text', 'I got the letter this morning.');
    const p = await fetch(`${first.url}/v1/predict`, { method: 'POST', body: f });
    assert.equal(p.status, 200);
    const got = (await p.json()) as { label: string; probs: Record<string, number> };
    assert.ok(['ang', 'hap', 'sad', 'neu'].includes(got.label));
    assert.ok(Math.abs(Object.values(got.probs).reduce((a, b) => a + b, 0) - 1) < 1e-5);
    await stop(first.r);

    const stamp = readDemoStamp(dir, true);
    assert.ok(stamp && stamp.quick && stamp.fold === 'ses1', JSON.stringify(stamp));
    assert.ok(existsSync(join(dir, 'model.onnx')));
    assert.ok(!existsSync(stale), 'the dead work folder is removed');
    assert.deepEqual(
      readdirSync(cache).filter((n) => n.includes('.tmp-')),
      [],
      'no work folder left beside the cache',
    );
    const manifest = readFileSync(join(dir, 'lemer-model.json'), 'utf8');

    const second = await serve();
    assert.match(second.r.stderr(), /using the demo model cached in .*demo-model-v1-quick/);
    assert.doesNotMatch(second.r.stderr(), /training the demo model/);
    await stop(second.r);
    assert.equal(readFileSync(join(dir, 'lemer-model.json'), 'utf8'), manifest, 'the cache is not rewritten');

    // lemer predict without --model uses the same cached model.
    const wav = join(cache, 'clip.wav');
    writeFileSync(wav, clip);
    const pr = lemer(['--log-level', 'info', 'predict', wav, '--text', 'I got the letter this morning.']);
    assert.equal(await pr.done, 0, pr.stderr());
    assert.match(pr.stderr(), /using the demo model cached/);
    assert.match(pr.stdout(), new RegExp(`clip\\.wav: ${got.label} `));
  },
);
