import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { decodeAudioFile } from '../../src/audio/decode.js';
import { loadAudio, mixToMono, normalizeWaveform } from '../../src/audio/load.js';
import { resample } from '../../src/audio/resample.js';
import { encodeFlac, encodeWav, lcgNoise, quantize, sine, tempDir } from './helpers.js';

test('stereo WAV is mixed down to the mean of its channels', async (t) => {
  const dir = tempDir(t);
  const left = sine(2205, 440, 22050, 0.6);
  const right = lcgNoise(2205, 0.3, 5);
  const path = join(dir, 'stereo.wav');
  writeFileSync(path, encodeWav([left, right], 22050, 'pcm16'));
  const native = await loadAudio(path, { sampleRate: 22050 });
  assert.equal(native.length, 2205);
  for (let i = 0; i < 2205; i++) {
    const want = Math.fround((quantize(left[i]!, 'pcm16') + quantize(right[i]!, 'pcm16')) / 2);
    if (native[i] !== want) assert.fail(`sample ${i}: ${native[i]} vs ${want}`);
  }
  const at16k = await loadAudio(path);
  assert.equal(at16k.length, 1600);
  assert.deepEqual(at16k, await resample(native, 22050, 16000));
});

test('mono at the target rate comes back as decoded; FLAC loads like WAV', async (t) => {
  const dir = tempDir(t);
  const x = sine(1600, 300, 16000, 0.4);
  writeFileSync(join(dir, 'a.wav'), encodeWav([x], 16000, 'pcm16'));
  writeFileSync(join(dir, 'a.flac'), encodeFlac([x], 16000));
  const a = await loadAudio(join(dir, 'a.wav'));
  const b = await loadAudio(join(dir, 'a.flac'));
  assert.equal(a.length, 1600);
  assert.deepEqual(a, b);
});

test('loadAudio errors name the file', async (t) => {
  const path = join(tempDir(t), 'missing.flac');
  await assert.rejects(loadAudio(path), { message: `${path}: file not found` });
});

test('loadAudio: a NaN in a 48 kHz file is named by its position in the file, not after resampling', async (t) => {
  const dir = tempDir(t);
  const x = sine(48000, 440, 48000, 0.5);
  x[45000] = NaN;
  const path = join(dir, 'nan48k.wav');
  writeFileSync(path, encodeWav([x], 48000, 'float32'));
  await assert.rejects(loadAudio(path), {
    message: `${path}: sample 45000 of 48000, at 0.938 s, byte ${44 + 45000 * 4} is NaN; NaN and infinite samples are refused`,
  });
  x[45000] = 1e30;
  writeFileSync(path, encodeWav([x], 48000, 'float32'));
  const warnings: string[] = [];
  const y = await loadAudio(path, { onWarning: (m) => warnings.push(m) });
  assert.equal(y.length, 16000);
  assert.equal(warnings.length, 1);
  assert.ok(warnings[0]!.startsWith(`${path}: 1 float sample(s) outside [-4, 4]`), warnings[0]);
});

test('mixToMono checks its input', () => {
  assert.throws(() => mixToMono([]), /no channels/);
  assert.throws(() => mixToMono([new Float32Array(3), new Float32Array(4)]), /differ in length \(3 vs 4\)/);
  assert.deepEqual(
    mixToMono([Float32Array.of(1, 0.5), Float32Array.of(0, -0.5), Float32Array.of(0.5, 0)]),
    Float32Array.of(0.5, 0),
  );
});

test('real EmoDB file 03a01Fa.wav (original release: 16 kHz, 16-bit, 1.898 s) loads at 16 kHz unchanged', async (t) => {
  const path = join(resolve('../shared/data'), 'emodb/wav/03a01Fa.wav');
  if (!existsSync(path)) {
    t.skip(`EmoDB not found at ${path} (shared data absent)`);
    return;
  }
  // Independent reading of the header: the original release is mono 16-bit PCM at 16 kHz, data at byte 44.
  const raw = readFileSync(path);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  assert.equal(view.getUint16(22, true), 1, 'mono');
  assert.equal(view.getUint32(24, true), 16000);
  assert.equal(view.getUint16(34, true), 16, '16-bit');
  const dataBytes = view.getUint32(40, true);
  const n = dataBytes / 2;
  assert.equal(n, 30372, '1.898 s at 16 kHz, as the data README says');
  const decoded = await decodeAudioFile(path);
  assert.equal(decoded.sampleRate, 16000);
  assert.equal(decoded.channels[0]!.length, n);
  for (const i of [0, 1, 1000, n - 1])
    assert.equal(decoded.channels[0]![i], view.getInt16(44 + 2 * i, true) / 32768);

  // Already at the model rate: no resampling, every sample as the file holds it.
  const x = await loadAudio(path);
  assert.equal(x.length, n);
  for (const i of [0, 1, 1000, 20000, n - 1]) assert.equal(x[i], view.getInt16(44 + 2 * i, true) / 32768);
  // The release's syllable file says speech ends at 1.84 s: the loaded audio must cover it.
  assert.ok(x.length / 16000 > 1.84);
  // Speech, not silence or garbage: RMS in a plausible range and no clipping beyond [-1, 1].
  let ss = 0;
  let peak = 0;
  for (const v of x) {
    ss += v * v;
    peak = Math.max(peak, Math.abs(v));
  }
  const r = Math.sqrt(ss / x.length);
  assert.ok(r > 0.005 && r < 0.5, `rms ${r}`);
  assert.ok(peak <= 1.01, `peak ${peak}`);
});

test('normalizeWaveform: (x - mean) / sqrt(var + 1e-7), population variance', () => {
  const y = normalizeWaveform(Float32Array.of(1, 2, 3, 4));
  const s = Math.sqrt(1.25 + 1e-7);
  [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s].forEach((want, i) =>
    assert.ok(Math.abs(y[i]! - want) < 1e-7, `y[${i}] = ${y[i]}, want ${want}`),
  );

  const x = lcgNoise(10000, 0.2, 3).map((v) => v + 0.05);
  const z = normalizeWaveform(x);
  let m = 0;
  for (const v of z) m += v;
  m /= z.length;
  let v2 = 0;
  for (const v of z) v2 += (v - m) ** 2;
  v2 /= z.length;
  assert.ok(Math.abs(m) < 1e-6, `mean ${m}`);
  assert.ok(Math.abs(v2 - 1) < 1e-4, `var ${v2}`);

  assert.deepEqual(
    normalizeWaveform(new Float32Array(5).fill(0.3)),
    new Float32Array(5),
    'constant -> zeros, no NaN',
  );
  assert.equal(normalizeWaveform(new Float32Array(0)).length, 0);
});
