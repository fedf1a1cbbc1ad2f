/**
 * Test helpers: a WAV writer for every PCM / float layout, a minimal FLAC encoder
 * (verbatim subframes, 16-bit), temp directories and signals. Written from the format
 * specs, independently of the decoder under test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type WavFormat = 'pcm8' | 'pcm16' | 'pcm24' | 'pcm32' | 'float32' | 'float64';

export interface WavOptions {
  /** Write WAVE_FORMAT_EXTENSIBLE instead of the plain tag. */
  extensible?: boolean;
  /** validBitsPerSample for extensible files (default: the container's bits). */
  validBits?: number;
  /** Override the format tag (e.g. 0x0055) to make an unsupported file. */
  formatTag?: number;
  /** Chunks to put between fmt and data (id must be 4 chars). */
  extraChunks?: { id: string; body: Uint8Array }[];
  /** Override the size written in the data chunk header. */
  dataSizeField?: number;
}

const BITS: Record<WavFormat, number> = {
  pcm8: 8,
  pcm16: 16,
  pcm24: 24,
  pcm32: 32,
  float32: 32,
  float64: 64,
};

/** The value the decoder must return for x after quantisation to `format`. */
export function quantize(x: number, format: WavFormat): number {
  if (format === 'float32') return Math.fround(x);
  if (format === 'float64') return Math.fround(x); // decoder returns Float32Array
  const bits = BITS[format];
  const full = 2 ** (bits - 1);
  const q = Math.max(-full, Math.min(full - 1, Math.round(x * full)));
  return Math.fround(q / full);
}

/** Builds a WAV file in memory; channels are de-interleaved float samples in [-1, 1]. */
export function encodeWav(
  channels: ArrayLike<number>[],
  sampleRate: number,
  format: WavFormat,
  opts: WavOptions = {},
): Uint8Array {
  const nc = channels.length;
  const n = channels[0]!.length;
  const bits = BITS[format];
  const bps = bits / 8;
  const isFloat = format.startsWith('float');
  const dataSize = n * nc * bps;
  const fmtSize = opts.extensible ? 40 : 16;
  const extra = opts.extraChunks ?? [];
  const extraSize = extra.reduce((s, c) => s + 8 + c.body.length + (c.body.length & 1), 0);
  const total = 12 + 8 + fmtSize + extraSize + 8 + dataSize;
  const buf = new Uint8Array(total);
  const v = new DataView(buf.buffer);
  const ascii = (off: number, s: string) => {
    for (let i = 0; i < 4; i++) buf[off + i] = s.charCodeAt(i);
  };
  ascii(0, 'RIFF');
  v.setUint32(4, total - 8, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  v.setUint32(16, fmtSize, true);
  const baseTag = isFloat ? 3 : 1;
  v.setUint16(20, opts.formatTag ?? (opts.extensible ? 0xfffe : baseTag), true);
  v.setUint16(22, nc, true);
  v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * nc * bps, true);
  v.setUint16(32, nc * bps, true);
  v.setUint16(34, bits, true);
  let off = 36;
  if (opts.extensible) {
    v.setUint16(36, 22, true); // cbSize
    v.setUint16(38, opts.validBits ?? bits, true);
    v.setUint32(40, nc === 1 ? 0x4 : 0x3, true); // channel mask
    // KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT: {0000000X-0000-0010-8000-00AA00389B71}
    const guid = [
      baseTag,
      0x00,
      0x00,
      0x00,
      0x00,
      0x00,
      0x10,
      0x00,
      0x80,
      0x00,
      0x00,
      0xaa,
      0x00,
      0x38,
      0x9b,
      0x71,
    ];
    buf.set(guid, 44);
    off = 60;
  }
  for (const c of extra) {
    ascii(off, c.id);
    v.setUint32(off + 4, c.body.length, true);
    buf.set(c.body, off + 8);
    off += 8 + c.body.length + (c.body.length & 1);
  }
  ascii(off, 'data');
  v.setUint32(off + 4, opts.dataSizeField ?? dataSize, true);
  off += 8;
  const full = 2 ** (bits - 1);
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < nc; ch++) {
      const x = channels[ch]![i]!;
      if (format === 'float32') v.setFloat32(off, x, true);
      else if (format === 'float64') v.setFloat64(off, x, true);
      else {
        const q = Math.max(-full, Math.min(full - 1, Math.round(x * full)));
        if (bits === 8) v.setUint8(off, q + 128);
        else if (bits === 16) v.setInt16(off, q, true);
        else if (bits === 24) {
          v.setUint8(off, q & 0xff);
          v.setUint8(off + 1, (q >> 8) & 0xff);
          v.setUint8(off + 2, (q >> 16) & 0xff);
        } else v.setInt32(off, q, true);
      }
      off += bps;
    }
  }
  return buf;
}

// --- FLAC (spec: https://xiph.org/flac/format.html), verbatim subframes only ---

function crc8(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
  }
  return crc;
}

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x8005) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

const SR_CODES: Record<number, number> = {
  8000: 4,
  16000: 5,
  22050: 6,
  24000: 7,
  32000: 8,
  44100: 9,
  48000: 10,
  96000: 11,
};

/** Encodes 16- or 24-bit FLAC with verbatim subframes (valid, just not compressed). */
export function encodeFlac(
  channels: ArrayLike<number>[],
  sampleRate: number,
  bits: 16 | 24 = 16,
  blockSize = 1024,
): Uint8Array {
  const nc = channels.length;
  const n = channels[0]!.length;
  if (!SR_CODES[sampleRate] && sampleRate > 65535)
    throw new Error(`encodeFlac: unsupported rate ${sampleRate}`);
  const bytes = bits / 8;
  const full = 2 ** (bits - 1);
  const parts: Uint8Array[] = [];
  const streaminfo = new Uint8Array(4 + 34);
  streaminfo[0] = 0x80; // last metadata block, type 0 (STREAMINFO)
  streaminfo[3] = 34;
  const si = new DataView(streaminfo.buffer, 4);
  si.setUint16(0, blockSize);
  si.setUint16(2, blockSize);
  const packed =
    (BigInt(sampleRate) << 44n) | (BigInt(nc - 1) << 41n) | (BigInt(bits - 1) << 36n) | BigInt(n);
  si.setBigUint64(10, packed);
  parts.push(new Uint8Array([0x66, 0x4c, 0x61, 0x43]), streaminfo); // "fLaC"
  for (let frame = 0, start = 0; start < n; frame++, start += blockSize) {
    const len = Math.min(blockSize, n - start);
    if (frame >= 128) throw new Error('encodeFlac: test helper supports < 128 frames');
    // Sample rate in the frame header, as real encoders write it (decoders fed bare
    // frames, like the one under test, cannot fall back on STREAMINFO).
    const srCode = SR_CODES[sampleRate] ?? 13;
    const srBytes = srCode === 13 ? [sampleRate >> 8, sampleRate & 0xff] : [];
    const header = new Uint8Array([
      0xff,
      0xf8,
      (7 << 4) | srCode,
      ((nc - 1) << 4) | ((bits === 16 ? 4 : 6) << 1),
      frame,
      (len - 1) >> 8,
      (len - 1) & 0xff,
      ...srBytes,
      0,
    ]);
    header[header.length - 1] = crc8(header.subarray(0, header.length - 1));
    const body = new Uint8Array(nc * (1 + bytes * len));
    const bv = new DataView(body.buffer);
    let off = 0;
    for (let c = 0; c < nc; c++) {
      body[off++] = 0x02; // subframe: zero pad, type VERBATIM (000001), no wasted bits
      for (let i = 0; i < len; i++, off += bytes) {
        const q = Math.max(-full, Math.min(full - 1, Math.round(channels[c]![start + i]! * full)));
        if (bits === 16) bv.setInt16(off, q);
        else {
          bv.setInt8(off, q >> 16);
          bv.setUint16(off + 1, q & 0xffff);
        }
      }
    }
    const frameBytes = new Uint8Array(header.length + body.length + 2);
    frameBytes.set(header, 0);
    frameBytes.set(body, header.length);
    const crc = crc16(frameBytes.subarray(0, frameBytes.length - 2));
    frameBytes[frameBytes.length - 2] = crc >> 8;
    frameBytes[frameBytes.length - 1] = crc & 0xff;
    parts.push(frameBytes);
  }
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'lemer-audio-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function sine(n: number, freq: number, sampleRate: number, amp = 0.5, phase = 0): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = amp * Math.sin((2 * Math.PI * freq * i) / sampleRate + phase);
  return x;
}

/** Deterministic uniform noise in [-amp, amp) from a 32-bit LCG (reproducible in Python too). */
export function lcgNoise(n: number, amp = 1, seed = 12345): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(1664525, s) + 1013904223) >>> 0;
    x[i] = amp * ((s / 2 ** 32) * 2 - 1);
  }
  return x;
}

export function rms(x: ArrayLike<number>, from = 0, to = x.length): number {
  let s = 0;
  for (let i = from; i < to; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s / (to - from));
}
