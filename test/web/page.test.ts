/**
 * The web page end to end in headless Chromium (Debian's, driven by playwright-core): a WAV
 * file uploaded and classified on the server, then the same model folder run in the page by
 * onnxruntime-web (WASM), and a microphone recording (Chromium's fake device) both ways. The
 * page's results must be the API's, and the in-browser probabilities the server's to 1e-4.
 * Skips where Chromium is absent. Screenshots go to $LEMER_TEST_ARTIFACTS (default
 * test-artifacts/).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { Prediction } from '../../src/predict/lemer.js';
import type { Server } from '../../src/serve/index.js';
import { LABELS, tone, wavBytes } from '../predict/helpers.js';
import { form, startServer } from '../serve/helpers.js';

const CHROMIUM = process.env.LEMER_CHROMIUM ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM} (Debian: apt-get install chromium): the browser tests are skipped`;
const ARTIFACTS = resolve(process.env.LEMER_TEST_ARTIFACTS ?? 'test-artifacts');
const TEXT = 'the low hum';

let server: Server;
let url: string;
let browser: Browser;
let page: Page;
/** Every URL the page asked for, and what went wrong in it. */
const requests: string[] = [];
const pageErrors: string[] = [];

/** A stereo 22.05 kHz clip: the page and the server both mix it down and resample it. */
function stereoClip(): Uint8Array {
  const l = tone(220, 0.9, 22050, 3);
  const r = tone(260, 0.9, 22050, 5);
  const x = new Float32Array(2 * l.length);
  for (let i = 0; i < l.length; i++) [x[2 * i], x[2 * i + 1]] = [l[i], 0.5 * r[i]];
  return wavBytes(x, 22050, 2);
}

async function apiPredict(bytes: Uint8Array, name: string, text: string): Promise<Prediction> {
  const r = await fetch(`${url}/v1/predict`, {
    method: 'POST',
    body: form({ audio: { bytes, filename: name }, text }),
  });
  assert.equal(r.status, 200, await r.clone().text());
  return (await r.json()) as Prediction;
}

/** Waits for the page's result after `after` earlier ones, from `source`, and reads it (the JSON it shows, and its bars). */
async function nextResult(source: 'server' | 'browser', after: number): Promise<Prediction> {
  await page
    .locator(`#result[data-source="${source}"][data-run="${after + 1}"]`)
    .waitFor({ timeout: 60_000 });
  const shown = JSON.parse((await page.locator('#result-json').textContent()) ?? '') as Prediction;
  // The bars carry the exact probabilities they draw.
  const rows = page.locator('#probs .prob');
  assert.equal(await rows.count(), LABELS.length);
  for (let i = 0; i < LABELS.length; i++) {
    const label = (await rows.nth(i).getAttribute('data-label')) ?? '';
    assert.equal(Number(await rows.nth(i).getAttribute('data-prob')), shown.probs[label]);
  }
  assert.equal(await page.locator('#tokens .token').count(), shown.tokens?.length ?? 0);
  return shown;
}

const runCount = async () => Number((await page.locator('#result').getAttribute('data-run')) ?? 0);

function assertClose(got: Prediction, want: Prediction, tol: number, what: string): void {
  assert.equal(got.label, want.label, what);
  assert.equal(got.modality, want.modality, what);
  for (const l of LABELS)
    assert.ok(
      Math.abs(got.probs[l] - want.probs[l]) <= tol,
      `${what}: p(${l}) ${got.probs[l]} vs ${want.probs[l]}`,
    );
  assert.deepEqual(
    got.tokens?.map((t) => t.token),
    want.tokens?.map((t) => t.token),
    what,
  );
  got.tokens?.forEach((t, i) => assert.ok(Math.abs(t.weight - want.tokens![i].weight) <= tol, what));
  assert.equal(got.frames?.length, want.frames?.length, what);
  got.frames?.forEach((f, i) => {
    assert.equal(f.time, want.frames![i].time, what);
    assert.ok(Math.abs(f.weight - want.frames![i].weight) <= tol, `${what}: frame ${i}`);
  });
}

before(async () => {
  if (skip) return;
  ({ server, url } = await startServer());
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      // A fake microphone (a beep) that needs no permission prompt, for the recording test.
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
    ],
  });
  page = await browser.newPage({ viewport: { width: 1000, height: 1200 } });
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test(
  'upload a WAV: the server result, then the same model in the browser (WASM) to 1e-4',
  { skip },
  async () => {
    await page.goto(`${url}/`);
    await page.waitForSelector('body[data-ready="1"]');
    const wav = stereoClip();
    const file = join(mkdtempSync(join(tmpdir(), 'lemer-web-')), 'clip.wav');
    writeFileSync(file, wav);
    await page.setInputFiles('#audio-file', file);
    await page.waitForSelector('#predict-server:enabled');
    assert.match((await page.locator('#audio-info').textContent()) ?? '', /0\.90 s, 22050 Hz, 2 channels/);
    await page.fill('#transcript', TEXT);

    await page.click('#predict-server');
    const onServer = await nextResult('server', 0);
    const api = await apiPredict(wav, 'clip.wav', TEXT);
    assertClose(onServer, api, 1e-9, 'page (server) vs API');
    assert.equal(onServer.name, 'clip.wav');
    assert.ok((onServer.frames?.length ?? 0) > 10 && (onServer.tokens?.length ?? 0) > 0);

    const predictsBefore = requests.filter((r) => r.endsWith('/v1/predict')).length;
    await page.selectOption('#backend', 'wasm');
    const runs = await runCount();
    await page.click('#predict-browser');
    const inBrowser = await nextResult('browser', runs);
    assertClose(inBrowser, api, 1e-4, 'browser (WASM) vs server');
    assert.deepEqual(inBrowser.audio, api.audio);
    assert.match((await page.locator('#result-source').textContent()) ?? '', /this browser, WASM/);
    // The audio stayed in the page: no prediction request, and every request went to this server.
    assert.equal(requests.filter((r) => r.endsWith('/v1/predict')).length, predictsBefore);
    assert.ok(requests.some((r) => r.endsWith('/model/model.onnx')));
    // The WASM-only runtime, not the twice-as-large WebGPU one.
    assert.ok(requests.some((r) => r.endsWith('/web/model-wasm.js')));
    assert.ok(requests.some((r) => r.endsWith('/ort/ort-wasm-simd-threaded.wasm')));
    assert.ok(!requests.some((r) => /model-webgpu|jsep/.test(r)));
    const foreign = requests.filter((r) => !r.startsWith(url) && !/^(blob|data):/.test(r));
    assert.deepEqual(foreign, []);
    assert.deepEqual(pageErrors, []);
    await page.screenshot({ path: join(ARTIFACTS, 'web-page.png') });
  },
);

test('record (fake microphone): the server and the browser agree on the recording', { skip }, async () => {
  await page.click('#record');
  await page.waitForSelector('#record.recording');
  await page.waitForTimeout(1200);
  await page.click('#record');
  await page.locator('#audio-info', { hasText: /recording-\d+\.wav/ }).waitFor();
  await page.waitForSelector('#predict-server:enabled');
  assert.match((await page.locator('#audio-info').textContent()) ?? '', /48000 Hz/);
  const runs = await runCount();
  await page.click('#predict-server');
  const onServer = await nextResult('server', runs);
  await page.click('#predict-browser');
  const inBrowser = await nextResult('browser', runs + 1);
  assertClose(inBrowser, onServer, 1e-4, 'recording: browser vs server');
  assert.ok((onServer.audio?.seconds ?? 0) > 0.5);
  assert.deepEqual(pageErrors, []);
  await page.screenshot({ path: join(ARTIFACTS, 'web-page-recording.png') });
});
