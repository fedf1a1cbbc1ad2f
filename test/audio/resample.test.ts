import { test } from 'node:test';
import assert from 'node:assert/strict';
import lsr from '@alexanderolsen/libsamplerate-js';
import { resample, resampledLength } from '../../src/audio/resample.js';
import { lcgNoise, rms, sine } from './helpers.js';

/** |DFT| of x at frequency f (Hz), computed directly. */
function dftMag(x: Float32Array, f: number, sampleRate: number, from = 0, to = x.length): number {
  let re = 0;
  let im = 0;
  for (let i = from; i < to; i++) {
    const a = (2 * Math.PI * f * i) / sampleRate;
    re += x[i]! * Math.cos(a);
    im -= x[i]! * Math.sin(a);
  }
  return Math.hypot(re, im);
}

function zeroCrossings(x: Float32Array, from: number, to: number): number {
  let n = 0;
  for (let i = from + 1; i < to; i++) if (x[i - 1]! < 0 !== x[i]! < 0) n++;
  return n;
}

test('1 kHz sine 22050 -> 16000 Hz keeps frequency, amplitude, length ratio and timing', async () => {
  const x = sine(22050, 1000, 22050, 0.5); // 1 s
  const y = await resample(x, 22050, 16000);
  assert.equal(y.length, 16000);
  // Middle 0.8 s, away from the edges where the filter sees zeros beyond the signal.
  const from = 1600;
  const to = 14400;
  // 1000 Hz for 0.8 s: 1600 zero crossings.
  const zc = zeroCrossings(y, from, to);
  assert.ok(Math.abs(zc - 1600) <= 2, `zero crossings ${zc}`);
  // DFT peak at 1000 Hz among 900..1100 Hz in 10 Hz steps.
  let best = 0;
  let bestF = 0;
  for (let f = 900; f <= 1100; f += 10) {
    const m = dftMag(y, f, 16000, from, to);
    if (m > best) [best, bestF] = [m, f];
  }
  assert.equal(bestF, 1000);
  const r = rms(y, from, to);
  assert.ok(Math.abs(r / (0.5 / Math.SQRT2) - 1) < 0.01, `RMS ${r}`);
  // No delay: the output is the same sine sampled at 16 kHz.
  const ideal = sine(16000, 1000, 16000, 0.5);
  let maxErr = 0;
  for (let i = from; i < to; i++) maxErr = Math.max(maxErr, Math.abs(y[i]! - ideal[i]!));
  assert.ok(maxErr < 1e-4, `max error against the ideal 16 kHz sine ${maxErr}`);
});

test('upsampling 8000 -> 16000 Hz keeps a 440 Hz sine', async () => {
  const y = await resample(sine(8000, 440, 8000, 0.3), 8000, 16000);
  assert.equal(y.length, 16000);
  const ideal = sine(16000, 440, 16000, 0.3);
  let maxErr = 0;
  for (let i = 800; i < 15200; i++) maxErr = Math.max(maxErr, Math.abs(y[i]! - ideal[i]!));
  assert.ok(maxErr < 1e-3, `max error ${maxErr}`);
});

test('streaming + flush gives exactly what libsamplerate src_simple gives', async () => {
  const x = lcgNoise(30011, 0.5, 7);
  const y = await resample(x, 22050, 16000);
  const src = await lsr.create(1, 22050, 16000, { converterType: lsr.ConverterType.SRC_SINC_MEDIUM_QUALITY });
  const ref = src.simple(x);
  src.destroy();
  assert.equal(y.length, ref.length);
  assert.deepEqual(y, ref);
});

test('output length is floor(n * to / from), for tiny inputs too; equal rates copy', async () => {
  for (const n of [0, 1, 2, 3, 100, 441, 12345]) {
    const y = await resample(lcgNoise(n, 0.1, n + 1), 44100, 16000);
    assert.equal(y.length, Math.floor((n * 16000) / 44100), `n=${n}`);
    assert.equal(resampledLength(n, 44100, 16000), y.length);
  }
  const x = lcgNoise(50, 0.1);
  const same = await resample(x, 16000, 16000);
  assert.deepEqual(same, x);
  assert.notEqual(same, x, 'a copy, not the input array');
});

test('inputs over the WASM buffer (1.1M samples) come out whole and correct', async () => {
  // libsamplerate-js's own simple() returns a fraction of the output beyond ~1M samples.
  const n = 1_100_000;
  const x = sine(n, 1000, 48000, 0.5);
  const y = await resample(x, 48000, 16000);
  assert.equal(y.length, Math.floor(n / 3));
  const ideal = sine(y.length, 1000, 16000, 0.5);
  let maxErr = 0;
  for (let i = 1000; i < y.length - 1000; i++) maxErr = Math.max(maxErr, Math.abs(y[i]! - ideal[i]!));
  assert.ok(maxErr < 1e-4, `max error ${maxErr}`);
});

test('concurrent calls over more rate pairs than the converter cache holds', async () => {
  const pairs: [number, number][] = [
    [22050, 16000],
    [44100, 16000],
    [48000, 16000],
    [8000, 16000],
    [32000, 16000],
    [24000, 16000],
  ];
  const x = lcgNoise(5000, 0.3, 9);
  const first = await Promise.all(pairs.map(([a, b]) => resample(x, a, b)));
  const again = await Promise.all(pairs.map(([a, b]) => resample(x, a, b)));
  for (let i = 0; i < pairs.length; i++) assert.deepEqual(again[i], first[i], `pair ${pairs[i]}`);
});

test('bad rates are refused with a clear message', async () => {
  const x = new Float32Array(10);
  await assert.rejects(resample(x, 0, 16000), /fromRate must be an integer in \[1, 192000\] Hz, got 0/);
  await assert.rejects(resample(x, 22050.5, 16000), /fromRate must be an integer/);
  await assert.rejects(resample(x, 16000, 300000), /toRate must be an integer/);
  await assert.rejects(resample(x, 100, 192000), /outside libsamplerate's range \[1\/256, 256\]/);
});
