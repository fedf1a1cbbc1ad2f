import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createProgress, formatDuration } from '../../src/util/progress.js';
import { createLogger, resolveLogLevel } from '../../src/util/log.js';

function fakeStream(isTTY = false) {
  const chunks: string[] = [];
  return { chunks, isTTY, write: (s: string) => chunks.push(s) };
}

test('non-TTY: plain lines with count, rate and ETA, at most once per interval, and a summary', () => {
  const out = fakeStream();
  let now = 0;
  const p = createProgress({ total: 100, label: 'synth', stream: out, intervalMs: 5000, now: () => now });
  for (let i = 0; i < 10; i++) {
    now += 1000; // 1 item per second
    p.tick();
  }
  // 10 s elapsed, interval 5 s: lines at 5 s and 10 s only.
  assert.equal(out.chunks.length, 2);
  assert.equal(out.chunks[0], 'synth: 5/100 (5%) 1.00/s, ETA 1m35s\n');
  assert.equal(out.chunks[1], 'synth: 10/100 (10%) 1.00/s, ETA 1m30s\n');
  now += 10_000;
  p.tick(90);
  p.stop();
  p.stop(); // idempotent
  assert.equal(out.chunks.length, 3, 'no periodic line once complete, one summary');
  assert.equal(out.chunks[2], 'synth: 100/100 done in 20s (5.00/s)\n');
});

test('non-TTY: update() sets the absolute count and caps at total', () => {
  const out = fakeStream();
  let now = 0;
  const p = createProgress({ total: 10, label: 'x', stream: out, intervalMs: 1000, now: () => now });
  now = 2000;
  p.update(4);
  assert.match(out.chunks[0], /^x: 4\/10 \(40%\) 2\.00\/s, ETA 3s\n$/);
  p.update(50);
  p.stop();
  assert.match(out.chunks.at(-1)!, /^x: 10\/10 done in 2s/);
});

test('TTY: a bar with count, rate and ETA', () => {
  const out = fakeStream(true);
  let now = 0;
  const p = createProgress({ total: 10, label: 'bar', stream: out, now: () => now, tty: true });
  now = 5000;
  p.tick(5);
  p.stop();
  const text = out.chunks.join('');
  assert.match(text, /bar \[/);
  assert.match(text, /5\/10 \| 1\.00\/s \| ETA 5s/);
});

test('formatDuration', () => {
  assert.equal(formatDuration(42.4), '42s');
  assert.equal(formatDuration(185), '3m05s');
  assert.equal(formatDuration(3720), '1h02m');
  assert.equal(formatDuration(NaN), '?');
});

test('log level from flag, then LEMER_LOG_LEVEL; unknown names are errors; pretty lines on stderr', () => {
  assert.equal(resolveLogLevel(undefined, {}), 'info');
  assert.equal(resolveLogLevel(undefined, { LEMER_LOG_LEVEL: 'debug' }), 'debug');
  assert.equal(resolveLogLevel('warn', { LEMER_LOG_LEVEL: 'debug' }), 'warn');
  assert.throws(() => resolveLogLevel('loud', {}), /--log-level: unknown log level "loud"/);
  const out = fakeStream();
  const log = createLogger({ level: 'info', stream: out, format: 'pretty' });
  log.debug('hidden');
  log.warn({ file: 'a.wav' }, 'skipped');
  assert.deepEqual(out.chunks, ['lemer warn: skipped file=a.wav\n']);
  const json = fakeStream();
  createLogger({ level: 'info', stream: json, format: 'json' }).info('hello');
  assert.equal(JSON.parse(json.chunks[0]).msg, 'hello');
});
