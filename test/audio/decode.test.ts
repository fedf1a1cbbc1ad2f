import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { decodeAudioFile } from '../../src/audio/decode.js';
import { encodeFlac, encodeWav, lcgNoise, quantize, sine, tempDir, type WavFormat } from './helpers.js';

const FORMATS: WavFormat[] = ['pcm8', 'pcm16', 'pcm24', 'pcm32', 'float32', 'float64'];

/** A test signal that hits the extremes, zero, tiny values and noise. */
function testSignal(n: number, seed: number): Float32Array {
  const x = lcgNoise(n, 0.9, seed);
  x[0] = -1;
  x[1] = 0;
  x[2] = 0.999;
  x[3] = -0.5;
  x[4] = 1e-6;
  return x;
}

for (const format of FORMATS) {
  for (const extensible of [false, true]) {
    test(`WAV ${format}${extensible ? ' (extensible)' : ''} stereo round-trips exactly`, (t) => {
      const dir = tempDir(t);
      const left = testSignal(1001, 1);
      const right = testSignal(1001, 2);
      const path = join(dir, `${format}.wav`);
      writeFileSync(path, encodeWav([left, right], 44100, format, { extensible }));
      return decodeAudioFile(path).then((d) => {
        assert.equal(d.sampleRate, 44100);
        assert.equal(d.channels.length, 2);
        for (const [c, src] of [left, right].entries()) {
          assert.equal(d.channels[c]!.length, 1001);
          for (let i = 0; i < src.length; i++) {
            const want = quantize(src[i]!, format);
            if (d.channels[c]![i] !== want)
              assert.fail(`${format} ch${c}[${i}]: got ${d.channels[c]![i]}, want ${want}`);
          }
        }
        // Extremes land where the format puts them (not off by one LSB, not sign-flipped).
        assert.equal(d.channels[0]![0], -1);
        assert.equal(d.channels[0]![1], 0);
      });
    });
  }
}

test('WAV hand-checked bytes: 8-bit unsigned and 24-bit sign extension', async (t) => {
  const dir = tempDir(t);
  const pcm8 = encodeWav([[0]], 8000, 'pcm8');
  // Overwrite the one data byte: 0x00 -> -1, 0x80 -> 0, 0xff -> 127/128.
  const path8 = join(dir, 'u8.wav');
  const bytes8 = new Uint8Array(pcm8.length + 2);
  bytes8.set(pcm8);
  const v8 = new DataView(bytes8.buffer);
  v8.setUint32(4, bytes8.length - 8, true);
  v8.setUint32(40, 3, true);
  bytes8.set([0x00, 0x80, 0xff], 44);
  writeFileSync(path8, bytes8);
  assert.deepEqual(Array.from((await decodeAudioFile(path8)).channels[0]!), [-1, 0, 127 / 128]);

  const pcm24 = encodeWav([[0, 0]], 8000, 'pcm24');
  pcm24.set([0xff, 0xff, 0xff, 0x00, 0x00, 0x80], 44); // -1 LSB, then -2^23
  const path24 = join(dir, 's24.wav');
  writeFileSync(path24, pcm24);
  assert.deepEqual(Array.from((await decodeAudioFile(path24)).channels[0]!), [-1 / 8388608, -1]);
});

test('WAV extensible with 24 valid bits in 32-bit containers, and extra chunks (odd size) before data', async (t) => {
  const dir = tempDir(t);
  const x = testSignal(300, 3);
  const odd = new Uint8Array([1, 2, 3]); // odd size: the writer pads one byte
  const path = join(dir, 'ext.wav');
  writeFileSync(
    path,
    encodeWav([x], 48000, 'pcm32', {
      extensible: true,
      validBits: 24,
      extraChunks: [{ id: 'LIST', body: odd }],
    }),
  );
  const d = await decodeAudioFile(path);
  assert.equal(d.sampleRate, 48000);
  for (let i = 0; i < x.length; i++) assert.equal(d.channels[0]![i], quantize(x[i]!, 'pcm32'));
});

test('WAV whose data size field is 0xFFFFFFFF (streamed) reads to the end of the file', async (t) => {
  const dir = tempDir(t);
  const x = sine(500, 440, 16000);
  const path = join(dir, 'stream.wav');
  writeFileSync(path, encodeWav([x], 16000, 'pcm16', { dataSizeField: 0xffffffff }));
  const d = await decodeAudioFile(path);
  assert.equal(d.channels[0]!.length, 500);
});

test('FLAC 16 and 24 bit decode to the same samples as WAV of the same integers', async (t) => {
  const dir = tempDir(t);
  const left = testSignal(2500, 4);
  const right = sine(2500, 1000, 22050, 0.7);
  for (const bits of [16, 24] as const) {
    const path = join(dir, `x${bits}.flac`);
    writeFileSync(path, encodeFlac([left, right], 22050, bits, 1024));
    const d = await decodeAudioFile(path);
    assert.equal(d.sampleRate, 22050);
    assert.equal(d.channels.length, 2);
    const fmt: WavFormat = bits === 16 ? 'pcm16' : 'pcm24';
    for (const [c, src] of [left, right].entries()) {
      assert.equal(d.channels[c]!.length, 2500);
      for (let i = 0; i < src.length; i++) {
        if (d.channels[c]![i] !== quantize(src[i]!, fmt))
          assert.fail(`${bits}-bit ch${c}[${i}]: ${d.channels[c]![i]} vs ${quantize(src[i]!, fmt)}`);
      }
    }
  }
});

test('FLAC behind an ID3v2 tag is found and decoded', async (t) => {
  const flac = encodeFlac([sine(3000, 440, 16000)], 16000);
  // ID3v2.3 header with a synchsafe size of 20 bytes of (zero) padding.
  const id3 = new Uint8Array(30);
  id3.set([0x49, 0x44, 0x33, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 20]);
  const path = join(tempDir(t), 'tagged.flac');
  writeFileSync(path, Buffer.concat([id3, flac]));
  const d = await decodeAudioFile(path);
  assert.equal(d.channels[0]!.length, 3000);
  assert.equal(d.channels[0]![100], quantize(sine(3000, 440, 16000)[100]!, 'pcm16'));
});

// --- bad input: each error names the file and the problem ---

async function rejects(path: string, pattern: RegExp): Promise<void> {
  await assert.rejects(decodeAudioFile(path), (err: Error) => {
    assert.ok(err.message.startsWith(`${path}: `), `message should start with the path: ${err.message}`);
    assert.match(err.message, pattern);
    return true;
  });
}

test('missing file', async (t) => {
  await rejects(join(tempDir(t), 'nope.wav'), /file not found/);
});

test('unreadable: a directory, and a file without read permission', async (t) => {
  const dir = tempDir(t);
  const sub = join(dir, 'folder.wav');
  mkdirSync(sub);
  await rejects(sub, /cannot read audio: it is a directory/);
  if (process.getuid?.() === 0) {
    t.diagnostic('running as root: permission bits do not stop reads, skipping the chmod 000 case');
    return;
  }
  const locked = join(dir, 'locked.wav');
  writeFileSync(locked, encodeWav([[0.1]], 8000, 'pcm16'), { mode: 0o000 });
  await rejects(locked, /cannot read audio file: EACCES/);
});

test('empty file', async (t) => {
  const path = join(tempDir(t), 'empty.wav');
  writeFileSync(path, new Uint8Array(0));
  await rejects(path, /empty file \(0 bytes\)/);
});

test('not RIFF or FLAC: says what the header looks like', async (t) => {
  const dir = tempDir(t);
  const mp3 = join(dir, 'song.wav');
  writeFileSync(
    mp3,
    new Uint8Array([0x49, 0x44, 0x33, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x21, 0x54, 0x49]),
  );
  await rejects(
    mp3,
    /unsupported format: header "ID3\.{6}!TI" \(49 44 33 03 00 00 00 00 00 21 54 49\), looks like MP3; expected WAV/,
  );
  const txt = join(dir, 'notes.wav');
  writeFileSync(txt, 'hello world, not audio');
  await rejects(txt, /unsupported format: header "hello world," \(68 65 6c 6c/);
  const tiny = join(dir, 'tiny.wav');
  writeFileSync(tiny, 'ab');
  await rejects(tiny, /unsupported format: file is only 2 bytes/);
  const avi = join(dir, 'video.wav');
  writeFileSync(avi, 'RIFF\x10\x00\x00\x00AVI LIST');
  await rejects(avi, /unsupported format: RIFF file of type "AVI ", not WAVE/);
});

test('truncated WAV: exact message with both sizes', async (t) => {
  const dir = tempDir(t);
  const full = encodeWav([new Float32Array(16000)], 16000, 'pcm16'); // 32000 data bytes
  const path = join(dir, 'broken.wav');
  writeFileSync(path, full.subarray(0, 44 + 1200));
  await assert.rejects(decodeAudioFile(path), {
    message: `${path}: truncated WAV: data chunk says 32000 bytes, file has 1200`,
  });
  const headerOnly = join(dir, 'head.wav');
  writeFileSync(headerOnly, full.subarray(0, 10));
  await rejects(headerOnly, /truncated WAV: file has 10 bytes, the RIFF header needs 12/);
  const noData = join(dir, 'nodata.wav');
  writeFileSync(noData, full.subarray(0, 36));
  await rejects(noData, /truncated WAV: no data chunk \(file has 36 bytes\)/);
  const cutFmt = join(dir, 'cutfmt.wav');
  writeFileSync(cutFmt, full.subarray(0, 30));
  await rejects(cutFmt, /truncated WAV: fmt chunk says 16 bytes, file has 10/);
});

test('zero samples', async (t) => {
  const path = join(tempDir(t), 'silent.wav');
  writeFileSync(path, encodeWav([new Float32Array(0)], 16000, 'pcm16'));
  await rejects(path, /WAV has zero samples \(data chunk is 0 bytes/);
});

test('unsupported codec: MP3-in-WAV (format tag 0x0055), and others', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'mp3.wav');
  writeFileSync(path, encodeWav([[0.1, 0.2]], 16000, 'pcm16', { formatTag: 0x0055 }));
  await rejects(path, /unsupported WAV codec: format tag 0x0055 \(MPEG Layer 3 \(MP3\)\); supported: PCM/);
  const alaw = join(dir, 'alaw.wav');
  writeFileSync(alaw, encodeWav([[0.1, 0.2]], 8000, 'pcm16', { formatTag: 0x0006 }));
  await rejects(alaw, /format tag 0x0006 \(A-law\)/);
  const odd = join(dir, 'pcm12.wav');
  const b = encodeWav([[0.1, 0.2]], 8000, 'pcm16');
  new DataView(b.buffer).setUint16(34, 12, true);
  writeFileSync(odd, b);
  await rejects(odd, /unsupported WAV: PCM with 12 bits per sample/);
});

test('broken fmt fields are named', async (t) => {
  const dir = tempDir(t);
  const b = encodeWav([[0.1, 0.2]], 16000, 'pcm16');
  new DataView(b.buffer).setUint16(32, 3, true); // block align 3 for 1 x 16-bit
  const path = join(dir, 'align.wav');
  writeFileSync(path, b);
  await rejects(path, /block align 3 does not match 1 channel\(s\) x 16 bits \(2 bytes\)/);
  const c = encodeWav([[0.1, 0.2]], 16000, 'pcm16');
  new DataView(c.buffer).setUint32(24, 0, true);
  const p2 = join(dir, 'rate0.wav');
  writeFileSync(p2, c);
  await rejects(p2, /sample rate 0/);
});

test('truncated and corrupt FLAC', async (t) => {
  const dir = tempDir(t);
  const flac = encodeFlac([sine(5000, 440, 16000)], 16000, 16, 1024);
  const cut = join(dir, 'cut.flac');
  writeFileSync(cut, flac.subarray(0, flac.length - 700));
  await rejects(cut, /truncated or corrupt FLAC: STREAMINFO says 5000 samples, decoded 4096/);
  const head = join(dir, 'head.flac');
  writeFileSync(head, flac.subarray(0, 30));
  await rejects(head, /truncated FLAC: file has 30 bytes, headers need 42/);
});

test('NaN and infinite float samples are refused, naming the file and the position in the file', async (t) => {
  const dir = tempDir(t);
  for (const [format, bad, shown] of [
    ['float32', NaN, 'NaN'],
    ['float32', -Infinity, '-Infinity'],
    ['float64', 1e300, "1e+300, beyond float32's range"],
  ] as const) {
    const left = sine(48000, 440, 48000, 0.5);
    const right = sine(48000, 440, 48000, 0.5);
    right[30123] = bad;
    const path = join(dir, `bad-${format}-${String(bad)}.wav`);
    // encodeWav writes float64 from the float32 array: put the float64 value in by hand.
    const bytes = encodeWav([left, right], 48000, format);
    if (format === 'float64') new DataView(bytes.buffer).setFloat64(44 + (30123 * 2 + 1) * 8, bad, true);
    writeFileSync(path, bytes);
    const bps = format === 'float32' ? 4 : 8;
    await assert.rejects(
      decodeAudioFile(path),
      (err: Error) => {
        assert.equal(
          err.message,
          `${path}: sample 30123 of 48000 (channel 1 of 2), at 0.628 s, byte ${44 + (30123 * 2 + 1) * bps} ` +
            `is ${shown}; NaN and infinite samples are refused`,
        );
        return true;
      },
      `${format} ${bad}`,
    );
  }
});

test('float samples far outside [-1, 1] decode with a warning naming the file, count and largest', async (t) => {
  const dir = tempDir(t);
  const x = sine(16000, 440, 16000, 0.5);
  x[100] = 1e30;
  x[200] = -7;
  x[300] = 3.9; // within the +12 dBFS headroom: no warning for it
  const path = join(dir, 'loud.wav');
  writeFileSync(path, encodeWav([x], 16000, 'float32'));
  const d = await decodeAudioFile(path);
  assert.equal(d.channels[0]![100], Math.fround(1e30));
  assert.equal(d.warnings?.length, 1);
  assert.match(
    d.warnings![0]!,
    new RegExp(
      `^${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: 2 float sample\\(s\\) outside \\[-4, 4\\] \\(largest \\|x\\| 1\\.000e\\+30 at sample 100 of 16000, at 0\\.006 s, byte 444\\)`,
    ),
  );
  // Integer formats and quiet float files carry no warnings.
  writeFileSync(path, encodeWav([sine(1600, 440, 16000, 0.5)], 16000, 'float32'));
  assert.equal((await decodeAudioFile(path)).warnings, undefined);
});
