import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { Lemer } from '../../src/predict/lemer.js';
import type { Server } from '../../src/serve/index.js';
import { LABELS, tone, wavBytes } from '../predict/helpers.js';
import { form, startServer } from './helpers.js';

let server: Server;
let url: string;
let dir: string;
const wav = wavBytes(tone(200, 0.7), 16000);

before(async () => {
  ({ server, url, dir } = await startServer({ maxQueue: 2, maxTextChars: 200, maxSeconds: 5 }));
});
after(async () => {
  await server.close();
});

test('healthz answers with the model', async () => {
  const r = await fetch(`${url}/healthz`);
  assert.equal(r.status, 200);
  const b = (await r.json()) as { status: string; model: { labels: string[] } };
  assert.equal(b.status, 'ok');
  assert.deepEqual(b.model.labels, LABELS);
});

test('predict (multipart and JSON) gives what Lemer.predict gives', async () => {
  const model = await Lemer.load(dir, { threads: 1 });
  const want = await model.predict({ audio: wav, text: 'the low hum' });
  await model.release();
  const r = await fetch(`${url}/v1/predict`, {
    method: 'POST',
    body: form({ audio: { bytes: wav, filename: 'a.wav' }, text: 'the low hum' }),
  });
  assert.equal(r.status, 200);
  const got = (await r.json()) as typeof want;
  assert.equal(got.name, 'a.wav');
  assert.equal(got.label, want.label);
  for (const l of LABELS) assert.ok(Math.abs(got.probs[l] - want.probs[l]) < 1e-6);
  assert.deepEqual(got.tokens, want.tokens);
  assert.equal(got.frames?.length, want.frames?.length);
  const j = await fetch(`${url}/v1/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ audio: Buffer.from(wav).toString('base64'), text: 'the low hum' }),
  });
  assert.equal(j.status, 200);
  const gj = (await j.json()) as typeof want;
  for (const l of LABELS) assert.ok(Math.abs(gj.probs[l] - want.probs[l]) < 1e-6);
});

interface ErrorJson {
  error: { code: string; message: string };
}

async function expectError(r: Response, status: number, code: string): Promise<ErrorJson> {
  const text = await r.text();
  assert.equal(r.status, status, text);
  assert.match(r.headers.get('content-type') ?? '', /application\/json/);
  const b = JSON.parse(text) as ErrorJson;
  assert.equal(b.error.code, code, text);
  assert.ok(b.error.message.length > 0);
  return b;
}

const post = (body: RequestInit['body'], headers: Record<string, string> = {}) =>
  fetch(`${url}/v1/predict`, { method: 'POST', body, headers });
const json = (v: unknown) => post(JSON.stringify(v), { 'content-type': 'application/json' });

test('bad input: each gets a JSON error, and the service keeps serving', async () => {
  const audio = (bytes: Uint8Array, extra: Record<string, string> = { text: 'the low hum' }) =>
    post(form({ audio: { bytes, filename: 'x.wav' }, ...extra }));
  await expectError(await audio(new Uint8Array(0)), 422, 'empty_audio');
  await expectError(
    await audio(new TextEncoder().encode('this is not audio at all, just words')),
    422,
    'invalid_audio',
  );
  await expectError(await audio(wav.subarray(0, 30)), 422, 'invalid_audio');
  await expectError(await audio(wavBytes(tone(200, 6), 16000)), 413, 'audio_too_long');
  await expectError(await post(form({ text: 'the low hum' })), 400, 'missing_audio');
  await expectError(await json({ text: 'the low hum' }), 400, 'missing_audio');
  await expectError(await post(form({ audio: 'not a file', text: 'x' })), 400, 'invalid_audio_field');
  await expectError(await post('hello', { 'content-type': 'text/plain' }), 415, 'unsupported_media_type');
  await expectError(await fetch(`${url}/v1/predict`, { method: 'POST' }), 415, 'unsupported_media_type');
  await expectError(await audio(wav, { text: 'x'.repeat(5000) }), 413, 'text_too_long');
  await expectError(
    await json({ audio: Buffer.from(wav).toString('base64'), text: 'y'.repeat(201) }),
    413,
    'text_too_long',
  );
  // Invalid UTF-8: in a multipart field, in a text file part, and as the JSON body itself.
  const bad = new Uint8Array([0x74, 0x68, 0xff, 0xfe, 0x65]);
  const f = new FormData();
  f.append('audio', new Blob([wav]), 'a.wav');
  f.append('text', new Blob([bad], { type: 'text/plain' }), 't.txt');
  await expectError(await post(f), 400, 'invalid_utf8');
  const boundary = 'xyzBOUNDARY';
  const raw = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n`,
    ),
    Buffer.from(wav),
    Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\n`),
    Buffer.from(bad),
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  await expectError(
    await post(raw, { 'content-type': `multipart/form-data; boundary=${boundary}` }),
    400,
    'invalid_utf8',
  );
  await expectError(
    await post(Buffer.concat([Buffer.from('{"text":"'), Buffer.from(bad), Buffer.from('"}')]), {
      'content-type': 'application/json',
    }),
    400,
    'invalid_utf8',
  );
  await expectError(await post('{"audio": ', { 'content-type': 'application/json' }), 400, 'invalid_json');
  await expectError(await json({ audio: '***not base64***', text: 'x' }), 400, 'invalid_base64');
  await expectError(await json([1, 2]), 400, 'invalid_body');
  await expectError(await json({ audio: '', text: 'x', extra: 1 }), 400, 'unknown_field');
  await expectError(await json({ audio: '', text: 'x' }), 422, 'empty_audio');
  await expectError(await fetch(`${url}/nowhere`), 404, 'not_found');
  // The text is optional: this model has a speech-only path.
  const s = await post(form({ audio: { bytes: wav, filename: 'a.wav' } }));
  assert.equal(s.status, 200);
  assert.equal(((await s.json()) as { modality: string }).modality, 'speech');
  const h = await fetch(`${url}/healthz`);
  assert.equal(h.status, 200);
});

const until = async (cond: () => boolean) => {
  while (!cond()) await new Promise((r) => setTimeout(r, 10));
};

test('a full queue answers 503 with Retry-After; /healthz answers while the worker is busy', async () => {
  const held = server.pool.hold(1500);
  const queued = post(form({ audio: { bytes: wav, filename: 'a.wav' }, text: 'the low hum' }));
  await until(() => server.pool.depth === 2);
  const h = await fetch(`${url}/healthz`);
  assert.equal(h.status, 200);
  assert.equal(
    ((await h.json()) as { queue: { depth: number } }).queue.depth,
    2,
    'healthz waited for the worker',
  );
  const r = await post(form({ audio: { bytes: wav, filename: 'a.wav' }, text: 'the low hum' }));
  await expectError(r, 503, 'queue_full');
  assert.ok(Number(r.headers.get('retry-after')) >= 1);
  await held;
  assert.equal((await queued).status, 200);
});

test('a slow prediction is answered 504; close() finishes the requests in flight', async () => {
  const { server: s2, url: u2 } = await startServer({ timeoutMs: 1000 });
  const body = () => form({ audio: { bytes: wav, filename: 'a.wav' }, text: 'the low hum' });
  const held = s2.pool.hold(3000);
  await expectError(await fetch(`${u2}/v1/predict`, { method: 'POST', body: body() }), 504, 'timeout');
  await held;
  await until(() => s2.pool.depth === 0);
  const held2 = s2.pool.hold(300);
  const inFlight = fetch(`${u2}/v1/predict`, { method: 'POST', body: body() });
  await until(() => s2.pool.depth === 2);
  const closing = s2.close();
  const r = await inFlight;
  assert.equal(r.status, 200);
  assert.ok(((await r.json()) as { probs: Record<string, number> }).probs.low > 0);
  await held2;
  await closing;
  await assert.rejects(fetch(`${u2}/healthz`));
});

test('metrics count requests by status, latency and errors; openapi.json parses', async () => {
  const m = await fetch(`${url}/metrics`);
  assert.equal(m.status, 200);
  assert.match(m.headers.get('content-type') ?? '', /text\/plain/);
  const text = await m.text();
  const value = (re: RegExp) => Number(text.match(re)?.[1] ?? NaN);
  assert.ok(
    value(/lemer_http_requests_total\{route="\/v1\/predict",method="POST",status="200"\} (\d+)/) >= 3,
  );
  assert.ok(
    value(/lemer_http_requests_total\{route="\/v1\/predict",method="POST",status="422"\} (\d+)/) >= 3,
  );
  assert.equal(value(/lemer_errors_total\{code="queue_full"\} (\d+)/), 1);
  assert.ok(value(/lemer_http_request_duration_seconds_count\{route="\/v1\/predict"\} (\d+)/) >= 10);
  assert.match(text, /lemer_http_request_duration_seconds_bucket\{route="\/v1\/predict",le="\+Inf"\} \d+/);
  assert.equal(value(/^lemer_queue_depth (\d+)$/m), 0);
  for (const line of text.trim().split('\n'))
    assert.match(line, /^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? [\d.e+-]+)$/, line);
  const o = await fetch(`${url}/openapi.json`);
  const doc = (await o.json()) as { openapi: string; paths: Record<string, unknown> };
  assert.match(doc.openapi, /^3\./);
  assert.deepEqual(Object.keys(doc.paths).sort(), [
    '/',
    '/healthz',
    '/metrics',
    '/model/{file}',
    '/openapi.json',
    '/v1/predict',
  ]);
});
