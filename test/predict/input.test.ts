import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeAudioFile } from '../../src/audio/decode.js';
import { mixToMono } from '../../src/audio/load.js';
import { resample } from '../../src/audio/resample.js';
import { prepareAudio, prepareText } from '../../src/predict/input.js';
import { probeAudioFile, readWavChunks, resampleStream } from '../../src/predict/wav-stream.js';
import { tone, wavBytes } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'lemer-input-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const file = (name: string, data: string | Uint8Array) => {
  const p = join(tmp, name);
  writeFileSync(p, data);
  return p;
};

test('bad audio files: empty, not audio, truncated, unsupported codec, zero samples; each error names the file', async () => {
  await assert.rejects(prepareAudio(file('empty.wav', '')), /empty\.wav: empty file \(0 bytes\)/);
  await assert.rejects(
    prepareAudio(file('notes.wav', 'hello, this is text')),
    /notes\.wav: unsupported format/,
  );
  const mp3 = new Uint8Array(64);
  mp3.set([0x49, 0x44, 0x33, 3, 0]);
  await assert.rejects(prepareAudio(file('song.wav', mp3)), /song\.wav: unsupported format.*looks like MP3/);
  const full = wavBytes(tone(200, 0.5), 16000);
  await assert.rejects(
    prepareAudio(file('cut.wav', full.subarray(0, 1000))),
    /cut\.wav: truncated WAV: data chunk says 16000 bytes, file has 956/,
  );
  const mp3wav = Uint8Array.from(full);
  new DataView(mp3wav.buffer).setUint16(20, 0x55, true);
  await assert.rejects(
    prepareAudio(file('codec.wav', mp3wav)),
    /codec\.wav: unsupported WAV codec: format tag 0x0055 \(MPEG Layer 3/,
  );
  await assert.rejects(
    prepareAudio(file('zero.wav', wavBytes(new Float32Array(0), 16000))),
    /zero\.wav: WAV has zero samples/,
  );
  await assert.rejects(prepareAudio(join(tmp, 'absent.wav')), /absent\.wav: file not found/);
  await assert.rejects(prepareAudio(new Uint8Array(0)), /<audio bytes>: empty/);
  await assert.rejects(prepareAudio({ samples: new Float32Array(0), sampleRate: 16000 }), /0 samples/);
  await assert.rejects(
    prepareAudio({ samples: Float32Array.of(0, NaN), sampleRate: 16000 }),
    /sample 1 is NaN/,
  );
  await assert.rejects(
    prepareAudio({ samples: new Float32Array(10), sampleRate: 0 }),
    /sampleRate must be an integer/,
  );
  await assert.rejects(
    prepareAudio({ samples: new Float32Array(3), sampleRate: 8000, channels: 2 }),
    /do not split into 2/,
  );
  await assert.rejects(prepareAudio(42 as never), /audio must be a file path/);
});

test('an hour-long file is refused before it is decoded (header probe); long audio in one piece warns', async () => {
  // A sparse file: a WAV header saying one hour of 16 kHz 16-bit mono, then zeros.
  const p = join(tmp, 'hour.wav');
  const head = wavBytes(new Float32Array(0), 16000);
  const bytes = 3600 * 16000 * 2;
  new DataView(head.buffer).setUint32(40, bytes, true);
  new DataView(head.buffer).setUint32(4, 36 + bytes, true);
  const fd = openSync(p, 'w');
  writeSync(fd, head);
  ftruncateSync(fd, 44 + bytes);
  closeSync(fd);
  assert.equal((await probeAudioFile(p))!.frames, 3600 * 16000);
  const t0 = performance.now();
  await assert.rejects(prepareAudio(p), /hour\.wav: 3600\.0 s of audio in one piece .*--segment/);
  assert.ok(performance.now() - t0 < 2000, 'refused without decoding');
  const a = await prepareAudio({ samples: tone(200, 2), sampleRate: 16000 }, { warnSeconds: 1 });
  assert.ok(a.warnings.some((w) => /2\.0 s in one piece/.test(w)));
});

test('stereo is mixed to mono; odd rates are resampled to 16 kHz; very low rates warn', async () => {
  const l = tone(300, 0.3, 22050);
  const r = tone(500, 0.3, 22050, 9);
  const inter = new Float32Array(2 * l.length);
  for (let i = 0; i < l.length; i++) [inter[2 * i], inter[2 * i + 1]] = [l[i], r[i]];
  const a = await prepareAudio({ samples: inter, sampleRate: 22050, channels: 2 });
  assert.equal(a.sampleRate, 16000);
  assert.deepEqual(a.original, { sampleRate: 22050, channels: 2 });
  const want = await resample(mixToMono([l, r]), 22050, 16000);
  assert.deepEqual(a.samples, want);
  const st = await prepareAudio(file('stereo.wav', wavBytes(inter, 22050, 2)));
  assert.equal(st.original.channels, 2);
  assert.equal(st.samples.length, want.length);
  const odd = await prepareAudio({ samples: tone(200, 0.5, 7350), sampleRate: 7350 });
  assert.equal(odd.samples.length, 8000);
  assert.ok(odd.warnings.some((w) => /7350 Hz is below 8000 Hz/.test(w)));
});

test('text: invalid UTF-8 bytes, huge text, control characters', () => {
  assert.throws(
    () => prepareText(Uint8Array.of(0x68, 0x69, 0xc3, 0x28), 'a.txt'),
    /a\.txt: not valid UTF-8 \(first bad byte at offset 2\)/,
  );
  assert.equal(prepareText(Buffer.from('h\u00e9llo', 'utf8')).text, 'h\u00e9llo');
  assert.throws(() => prepareText('x'.repeat(100_001)), /100001 characters is too long/);
  const c = prepareText('one\u0000two\u0007');
  assert.equal(c.text, 'one two');
  assert.ok(c.warnings.some((w) => /control characters/.test(w)));
  assert.equal(prepareText('   ').text, '');
  assert.throws(() => prepareText(5 as never), /text must be a string/);
});

test('streamed WAV chunks and chunked resampling equal decoding and resampling the whole file', async () => {
  for (const rate of [44100, 48000, 22050, 8000, 16000]) {
    const x = tone(440, 3.3, rate, rate);
    const p = file(`s${rate}.wav`, wavBytes(x, rate));
    const h = await probeAudioFile(p);
    assert.ok(h);
    const whole = mixToMono((await decodeAudioFile(p)).channels);
    const parts: Float32Array[] = [];
    for await (const c of readWavChunks(p, h, 0.37)) parts.push(c);
    const joined = Float32Array.from(parts.flatMap((c) => Array.from(c)));
    assert.deepEqual(joined, whole);
    const res: Float32Array[] = [];
    for await (const c of resampleStream(readWavChunks(p, h, 0.37), rate, 16000, h.frames!)) res.push(c);
    const streamed = Float32Array.from(res.flatMap((c) => Array.from(c)));
    const ref = await resample(whole, rate, 16000);
    assert.equal(streamed.length, ref.length, `${rate} Hz length`);
    assert.deepEqual(streamed, ref, `${rate} Hz samples`);
  }
});
