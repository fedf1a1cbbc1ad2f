// The service under hostile clients and a failing worker: every bad input of issue 14 item 4
// gets a 4xx JSON error and /healthz answers 200 right after; a stalled upload is cut off with
// 408; a crashed worker answers its requests 5xx and is replaced.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { Server } from '../../src/serve/index.js';
import { tone, wavBytes } from '../predict/helpers.js';
import { form, startServer } from './helpers.js';

let server: Server;
let url: string;
let port: number;
const wav = wavBytes(tone(200, 0.7), 16000);

before(async () => {
  ({ server, url } = await startServer({ maxSeconds: 60, maxTextChars: 5000, requestTimeoutMs: 1000 }));
  port = Number(new URL(url).port);
});
after(async () => {
  await server.close();
});

interface ErrorJson {
  error: { code: string; message: string };
}

/** The answer is the JSON error given, and the service still answers /healthz 200 after it. */
async function refused(r: Response, status: number, code: string, message?: RegExp): Promise<void> {
  const text = await r.text();
  assert.equal(r.status, status, text);
  assert.match(r.headers.get('content-type') ?? '', /application\/json/);
  const b = JSON.parse(text) as ErrorJson;
  assert.equal(b.error.code, code, text);
  assert.ok(b.error.message.length > 0);
  if (message) assert.match(b.error.message, message);
  const h = await fetch(`${url}/healthz`);
  assert.equal(h.status, 200, `healthz after ${code}`);
}

const post = (body: RequestInit['body'], headers: Record<string, string> = {}) =>
  fetch(`${url}/v1/predict`, { method: 'POST', body, headers });
const upload = (bytes: Uint8Array, text = 'the low hum') =>
  post(form({ audio: { bytes, filename: 'x.wav' }, text }));
const json = (v: unknown) => post(JSON.stringify(v), { 'content-type': 'application/json' });

/** A WAV header (format tag, rate, bits) over `dataBytes` of silence. */
function wavWith(o: { tag?: number; rate?: number; bits?: number; dataBytes: number; fill?: number }) {
  const bits = o.bits ?? 16;
  const rate = o.rate ?? 16000;
  const out = new Uint8Array(44 + o.dataBytes).fill(o.fill ?? 0);
  const v = new DataView(out.buffer);
  const ascii = (at: number, s: string) => [...s].forEach((c, i) => (out[at + i] = c.charCodeAt(0)));
  ascii(0, 'RIFF');
  v.setUint32(4, 36 + o.dataBytes, true);
  ascii(8, 'WAVEfmt ');
  v.setUint32(16, 16, true);
  v.setUint16(20, o.tag ?? 1, true);
  v.setUint16(22, 1, true);
  v.setUint32(24, rate, true);
  v.setUint32(28, (rate * bits) / 8, true);
  v.setUint16(32, bits / 8, true);
  v.setUint16(34, bits, true);
  ascii(36, 'data');
  v.setUint32(40, o.dataBytes, true);
  return out;
}

test('every bad input gets a 4xx JSON error, then /healthz answers 200', async () => {
  // Files that are not usable audio.
  await refused(await upload(new Uint8Array(0)), 422, 'empty_audio');
  await refused(await upload(new TextEncoder().encode('plain words, not a recording')), 422, 'invalid_audio');
  await refused(await upload(wav.subarray(0, 30)), 422, 'invalid_audio');
  await refused(await upload(wav.subarray(0, 44)), 422, 'invalid_audio');
  // A WAV whose header promises more data than the file holds is cut mid-sample.
  await refused(await upload(wav.subarray(0, 45)), 422, 'invalid_audio');
  // MP3 (0x55) and IMA ADPCM (0x11) inside a RIFF/WAVE container.
  await refused(
    await upload(wavWith({ tag: 0x55, dataBytes: 3200 })),
    422,
    'invalid_audio',
    /codec|format|0x0?55|MP3/i,
  );
  await refused(await upload(wavWith({ tag: 0x11, bits: 4 * 2, dataBytes: 3200 })), 422, 'invalid_audio');
  // 0-length audio: a well-formed WAV with no samples.
  await refused(await upload(wavWith({ dataBytes: 0 })), 422, 'invalid_audio');
  // An hour of audio (8-bit mono at 1 kHz: 3.6 MB) is refused from its header, before decoding.
  const hour = wavWith({ rate: 1000, bits: 8, dataBytes: 3600 * 1000, fill: 128 });
  await refused(await upload(hour), 413, 'audio_too_long', /3600\.0 s/);
  await refused(
    await json({ audio: Buffer.from(hour).toString('base64'), text: 'x' }),
    413,
    'audio_too_long',
  );
  // Missing fields.
  await refused(await post(form({ text: 'the low hum' })), 400, 'missing_audio');
  await refused(await json({ text: 'the low hum' }), 400, 'missing_audio');
  await refused(await json({}), 400, 'missing_audio');
  await refused(await post(form({ audio: 'not a file', text: 'x' })), 400, 'invalid_audio_field');
  // Wrong content types.
  await refused(await post('hello', { 'content-type': 'text/plain' }), 415, 'unsupported_media_type');
  await refused(await post(wav, { 'content-type': 'audio/wav' }), 415, 'unsupported_media_type');
  await refused(
    await post('x', { 'content-type': 'multipart/form-data' }),
    400,
    'invalid_multipart',
    /boundary/i,
  );
  await refused(await fetch(`${url}/v1/predict`, { method: 'POST' }), 415, 'unsupported_media_type');
  // Huge text: over the limit, and far over it (a megabyte) in a field, a file part and JSON.
  await refused(await upload(wav, 'x'.repeat(5001)), 413, 'text_too_long');
  const mega = 'word '.repeat(200_000);
  await refused(await upload(wav, mega), 413, 'text_too_long');
  const f = new FormData();
  f.append('audio', new Blob([wav]), 'a.wav');
  f.append('text', new Blob([mega], { type: 'text/plain' }), 't.txt');
  await refused(await post(f), 413, 'text_too_long');
  await refused(await json({ audio: Buffer.from(wav).toString('base64'), text: mega }), 413, 'text_too_long');
  // Invalid UTF-8 in the JSON body.
  const bad = Buffer.from([0x74, 0xc3, 0x28, 0x65]);
  await refused(
    await post(Buffer.concat([Buffer.from('{"text":"'), bad, Buffer.from('"}')]), {
      'content-type': 'application/json',
    }),
    400,
    'invalid_utf8',
  );
  // A body over the size limit.
  const big = await startServer({ maxBodyBytes: 64 * 1024 });
  try {
    const r = await fetch(`${big.url}/v1/predict`, {
      method: 'POST',
      body: form({ audio: { bytes: wavBytes(tone(200, 3), 16000), filename: 'a.wav' }, text: 'x' }),
    });
    assert.equal(r.status, 413);
    assert.equal(((await r.json()) as ErrorJson).error.code, 'body_too_large');
    assert.equal((await fetch(`${big.url}/healthz`)).status, 200);
  } finally {
    await big.server.close();
  }
  // And the service still predicts.
  assert.equal((await upload(wav)).status, 200);
});

/** Writes `head` on a raw socket, then stalls; resolves with all the server sent and when. */
function stall(head: string): Promise<{ text: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const s = connect(port, '127.0.0.1', () => s.write(head));
    let text = '';
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => resolve({ text, ms: Date.now() - t0 }));
    setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer within 10 s; got ${JSON.stringify(text)}`));
    }, 10_000).unref();
  });
}

test('a client that never finishes its upload gets 408 JSON after the body timeout; the service keeps serving', async () => {
  const boundary = 'stalledBOUNDARY';
  const part =
    `--${boundary}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n` +
    Buffer.from(wav.subarray(0, 2000)).toString('latin1');
  const cases = [
    // multipart: headers and part of the audio, then nothing.
    `POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\n` +
      `Content-Length: ${part.length + 100_000}\r\n\r\n${part}`,
    // JSON: half a body.
    `POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"audio": "UklGR`,
    // Headers never finished.
    `POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appli`,
  ];
  const count = async (code: string) =>
    Number(
      (await (await fetch(`${url}/metrics`)).text()).match(
        new RegExp(`lemer_errors_total\\{code="${code}"\\} (\\d+)`),
      )?.[1] ?? 0,
    );
  const [timeouts0, multipart0] = [await count('request_timeout'), await count('invalid_multipart')];
  const during = fetch(`${url}/healthz`);
  for (const head of cases) {
    const got = stall(head);
    // While a client stalls, the others are served.
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    const { text, ms } = await got;
    const [status, body] = [text.split('\r\n')[0], text.slice(text.indexOf('\r\n\r\n') + 4)];
    assert.match(status, /^HTTP\/1\.1 408 /, text);
    assert.match(text, /content-type: application\/json/i);
    const b = JSON.parse(body) as ErrorJson;
    assert.equal(b.error.code, 'request_timeout');
    assert.match(b.error.message, /not complete after 1 s/);
    assert.ok(ms >= 900 && ms < 4000, `answered after ${ms} ms (timeout 1000 ms)`);
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
  }
  assert.equal((await during).status, 200);
  assert.equal((await upload(wav)).status, 200);
  // Counted once each, as timeouts (not as the body reader's error that follows the cut).
  assert.equal(await count('request_timeout'), timeouts0 + 3);
  assert.equal(await count('invalid_multipart'), multipart0);
});

const until = async (cond: () => boolean | Promise<boolean>, what: string) => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > 30_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

test('a crashed or stopped worker: requests in flight get 503 JSON, a new worker starts, the next request succeeds', async () => {
  for (const how of ['crash', 'terminate'] as const) {
    const before = server.pool.restarts;
    const held = server.pool.hold(5000).then(
      () => null,
      (e: Error) => e,
    );
    const queued = upload(wav);
    await until(() => server.pool.depth === 2, 'two jobs in the queue');
    if (how === 'crash') server.pool.crashWorker();
    else await server.pool.terminateWorker();
    const r = await queued;
    const text = await r.text();
    assert.equal(r.status, 503, text);
    const b = JSON.parse(text) as ErrorJson;
    assert.equal(b.error.code, 'worker_crashed');
    assert.match(b.error.message, how === 'crash' ? /failed: crash requested/ : /exited/);
    assert.equal(r.headers.get('retry-after'), '1');
    const heldErr = await held;
    assert.equal((heldErr as { code?: string } | null)?.code, 'worker_crashed');
    // A request sent while the new worker loads waits for it.
    const next = await upload(wav);
    assert.equal(next.status, 200, await next.clone().text());
    assert.ok(((await next.json()) as { probs: Record<string, number> }).probs.low > 0);
    await until(async () => (await fetch(`${url}/healthz`)).status === 200, 'healthz 200');
    assert.equal(server.pool.restarts, before + 1);
  }
  const m = await (await fetch(`${url}/metrics`)).text();
  assert.match(m, /lemer_worker_restarts_total 2/);
});

test('requests that wait are run as one batch, each with its own answer (a bad one too)', async () => {
  const { Lemer } = await import('../../src/predict/lemer.js');
  const model = await Lemer.load(server.info.dir, { threads: 1 });
  const clips = [150, 200, 2000, 2500].map((hz, i) => wavBytes(tone(hz, 0.5 + 0.2 * i), 16000));
  const texts = ['the low hum', 'a deep low sound', 'the high whistle', 'a bright high sound'];
  const want = [];
  for (let i = 0; i < clips.length; i++) want.push(await model.predict({ audio: clips[i], text: texts[i] }));
  await model.release();
  const b0 = { runs: server.pool.batches, n: server.pool.batchedPredictions };
  // While the worker is busy, four good requests and a bad one queue up: one batch, then the
  // bad one makes it fall back to one run each.
  for (const withBad of [false, true]) {
    const held = server.pool.hold(400);
    const answers = clips.map((c, i) => upload(c, texts[i]));
    if (withBad) answers.push(upload(wav.subarray(0, 45)));
    await until(() => server.pool.depth === answers.length + 1, 'all queued');
    await held;
    const rs = await Promise.all(answers);
    for (let i = 0; i < clips.length; i++) {
      assert.equal(rs[i].status, 200);
      const got = (await rs[i].json()) as (typeof want)[number];
      assert.equal(got.label, want[i].label);
      for (const l of Object.keys(want[i].probs))
        assert.ok(
          Math.abs(got.probs[l] - want[i].probs[l]) < 1e-5,
          `${i} ${l}: ${got.probs[l]} vs ${want[i].probs[l]}`,
        );
      assert.deepEqual(
        got.tokens?.map((t) => t.token),
        want[i].tokens?.map((t) => t.token),
      );
      assert.equal(got.frames?.length, want[i].frames?.length);
    }
    if (withBad) await refused(rs[4], 422, 'invalid_audio');
  }
  // First round: one run of 4. Second: the batch of 5 failed, then 5 runs of one.
  assert.equal(server.pool.batches - b0.runs, 1 + 5);
  assert.equal(server.pool.batchedPredictions - b0.n, 4 + 5);
  const m = await (await fetch(`${url}/metrics`)).text();
  assert.match(m, /^lemer_batches_total \d+$/m);
});

test('a request that waits in the queue longer than the body timeout (plus 5 s) is still answered', async () => {
  // The body timeout is 1 s here; a request whose upload is complete is not a slow client,
  // and its silent socket must outlive the wait (up to the prediction timeout).
  const held = server.pool.hold(6500);
  const r = await upload(wav);
  assert.equal(r.status, 200, await r.clone().text());
  await held;
});
