import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import lsr from '@alexanderolsen/libsamplerate-js';
import { LogMelExtractor } from '../../src/audio/logmel.js';
import { resample, resampledLength } from '../../src/audio/resample.js';
import { lcgNoise, rms, sine } from './helpers.js';

// Written by tools/resample_reference.py with torchaudio 0.13.1.
interface Reference {
  samples: { from: number; to: number; n: number; amp: number; seed: number; y: number[] }[];
  response: { from: number; to: number; freqs: number[]; db: number[] }[];
  logmel: { from: number; to: number; n: number; amp: number; seed: number; binMean: number[] }[];
}
const REF = JSON.parse(
  readFileSync(new URL('./fixtures/torchaudio-resample.json', import.meta.url), 'utf8'),
) as Reference;

/** Gain in dB of a 1 s tone through the resampler, measured as tools/resample_reference.py does. */
async function gainDb(rate: number, freq: number, method?: 'libsamplerate'): Promise<number> {
  const amp = 0.5;
  const x = new Float32Array(rate);
  for (let i = 0; i < rate; i++) x[i] = amp * Math.sin((2 * Math.PI * freq * i) / rate);
  const y = await resample(x, rate, 16000, method ? { method } : {});
  let s = 0;
  let c = 0;
  const a = 4000;
  const b = y.length - 4000;
  for (let i = a; i < b; i++) {
    s += y[i]! * Math.sin((2 * Math.PI * freq * i) / 16000);
    c += y[i]! * Math.cos((2 * Math.PI * freq * i) / 16000);
  }
  return 20 * Math.log10(Math.hypot((2 * s) / (b - a), (2 * c) / (b - a)) / amp);
}

test('samples match torchaudio.functional.resample (48k, 22.05k, 44.1k, 8k -> 16k; 16k -> 22.05k)', async () => {
  for (const r of REF.samples) {
    const y = await resample(lcgNoise(r.n, r.amp, r.seed), r.from, r.to);
    assert.equal(y.length, r.y.length, `${r.from} -> ${r.to}: length (torchaudio: ceil(n * to / from))`);
    let maxErr = 0;
    for (let i = 0; i < y.length; i++) maxErr = Math.max(maxErr, Math.abs(y[i]! - r.y[i]!));
    // torchaudio builds the kernel and convolves in float32 (459 taps at 22.05 kHz); we use float64.
    assert.ok(maxErr < 3e-5, `${r.from} -> ${r.to}: max |lemer - torchaudio| ${maxErr}`);
  }
});

test("magnitude response within 1 dB of torchaudio's up to 7.9 kHz (48k, 22.05k, 44.1k -> 16k)", async () => {
  for (const r of REF.response) {
    for (let k = 0; k < r.freqs.length; k++) {
      const db = await gainDb(r.from, r.freqs[k]!);
      // The issue's bar is 1 dB up to 7.5 kHz; the same kernel gives far less.
      assert.ok(Math.abs(db - r.db[k]!) < 0.01, `${r.from} Hz, ${r.freqs[k]} Hz: ${db} dB vs ${r.db[k]} dB`);
    }
  }
  // libsamplerate's flat response misses torchaudio's by more than 1 dB at 7.5 kHz: the reason
  // it is not the default.
  const flat = await gainDb(48000, 7500, 'libsamplerate');
  assert.ok(Math.abs(flat - REF.response[0]!.db[10]!) > 1, `libsamplerate at 7.5 kHz: ${flat} dB`);
});

test("log-mel of resampled noise: every bin's mean within 0.01 nats of torchaudio + kaldi.fbank, top bins included", async () => {
  const ex = new LogMelExtractor();
  for (const r of REF.logmel) {
    const y = await resample(lcgNoise(r.n, r.amp, r.seed), r.from, r.to);
    const f = ex.compute(y);
    for (let b = 0; b < f.bins; b++) {
      let s = 0;
      for (let t = 0; t < f.frames; t++) s += f.data[t * f.bins + b]!;
      const mean = s / f.frames;
      assert.ok(Math.abs(mean - r.binMean[b]!) < 0.01, `${r.from} Hz, bin ${b}: ${mean} vs ${r.binMean[b]}`);
    }
  }
});

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
  // torchaudio's filter has -0.0035 dB of ripple at 1 kHz: 2e-4 at amplitude 0.5.
  assert.ok(maxErr < 5e-4, `max error against the ideal 16 kHz sine ${maxErr}`);
});

test('upsampling 8000 -> 16000 Hz keeps a 440 Hz sine', async () => {
  const y = await resample(sine(8000, 440, 8000, 0.3), 8000, 16000);
  assert.equal(y.length, 16000);
  const ideal = sine(16000, 440, 16000, 0.3);
  let maxErr = 0;
  for (let i = 800; i < 15200; i++) maxErr = Math.max(maxErr, Math.abs(y[i]! - ideal[i]!));
  assert.ok(maxErr < 1e-3, `max error ${maxErr}`);
});

test("method 'libsamplerate': streaming + flush gives exactly what src_simple gives", async () => {
  const x = lcgNoise(30011, 0.5, 7);
  const y = await resample(x, 22050, 16000, { method: 'libsamplerate' });
  const src = await lsr.create(1, 22050, 16000, { converterType: lsr.ConverterType.SRC_SINC_MEDIUM_QUALITY });
  const ref = src.simple(x);
  src.destroy();
  assert.equal(y.length, ref.length);
  assert.deepEqual(y, ref);
});

test('output length is ceil(n * to / from) (libsamplerate: floor), for tiny inputs too; equal rates copy', async () => {
  for (const n of [0, 1, 2, 3, 100, 441, 12345]) {
    const y = await resample(lcgNoise(n, 0.1, n + 1), 44100, 16000);
    assert.equal(y.length, Math.ceil((n * 16000) / 44100), `n=${n}`);
    assert.equal(resampledLength(n, 44100, 16000), y.length);
    const z = await resample(lcgNoise(n, 0.1, n + 1), 44100, 16000, { method: 'libsamplerate' });
    assert.equal(z.length, Math.floor((n * 16000) / 44100), `libsamplerate n=${n}`);
    assert.equal(resampledLength(n, 44100, 16000, 'libsamplerate'), z.length);
  }
  const x = lcgNoise(50, 0.1);
  const same = await resample(x, 16000, 16000);
  assert.deepEqual(same, x);
  assert.notEqual(same, x, 'a copy, not the input array');
});

test('inputs over the WASM buffer (1.1M samples) come out whole and correct, both methods', async () => {
  // libsamplerate-js's own simple() returns a fraction of the output beyond ~1M samples.
  const n = 1_100_000;
  const x = sine(n, 1000, 48000, 0.5);
  for (const method of ['torchaudio', 'libsamplerate'] as const) {
    const y = await resample(x, 48000, 16000, { method });
    assert.equal(y.length, Math.ceil(n / 3) - (method === 'libsamplerate' ? 1 : 0));
    const ideal = sine(y.length, 1000, 16000, 0.5);
    let maxErr = 0;
    for (let i = 1000; i < y.length - 1000; i++) maxErr = Math.max(maxErr, Math.abs(y[i]! - ideal[i]!));
    assert.ok(maxErr < (method === 'torchaudio' ? 5e-4 : 1e-4), `${method}: max error ${maxErr}`);
  }
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
  const opts = { method: 'libsamplerate' } as const;
  const first = await Promise.all(pairs.map(([a, b]) => resample(x, a, b, opts)));
  const again = await Promise.all(pairs.map(([a, b]) => resample(x, a, b, opts)));
  for (let i = 0; i < pairs.length; i++) assert.deepEqual(again[i], first[i], `pair ${pairs[i]}`);
});

test('bad rates are refused with a clear message', async () => {
  const x = new Float32Array(10);
  await assert.rejects(resample(x, 0, 16000), /fromRate must be an integer in \[1, 192000\] Hz, got 0/);
  await assert.rejects(resample(x, 22050.5, 16000), /fromRate must be an integer/);
  await assert.rejects(resample(x, 16000, 300000), /toRate must be an integer/);
  await assert.rejects(
    resample(x, 100, 192000, { method: 'libsamplerate' }),
    /outside libsamplerate's range \[1\/256, 256\]/,
  );
  await assert.rejects(resample(x, 22050, 16000, { rolloff: 1.5 }), /rolloff must be in \(0, 1\]/);
});
