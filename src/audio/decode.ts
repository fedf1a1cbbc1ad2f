/**
 * Audio file decoding: WAV through our own small RIFF parser (so that every broken file
 * gets an exact message), FLAC through `audio-decode`.
 */
import { readFile } from 'node:fs/promises';
import decodeAny from 'audio-decode';

export interface DecodedAudio {
  /** One Float32Array per channel, samples in [-1, 1) for integer formats. */
  channels: Float32Array[];
  sampleRate: number;
  /** Things worth a warning that do not stop decoding (float samples far outside [-1, 1]). */
  warnings?: string[];
}

/**
 * Float samples beyond this magnitude (+12 dBFS) get a warning: a little over 1 is common in
 * float files (headroom), far over it means a wrong scale (int16 values stored as floats) or junk.
 */
export const FLOAT_SAMPLE_WARN_LIMIT = 4;

const FORMAT_PCM = 0x0001;
const FORMAT_IEEE_FLOAT = 0x0003;
const FORMAT_EXTENSIBLE = 0xfffe;

/** Names of WAV format tags people meet in the wild, for error messages. */
const FORMAT_NAMES: Record<number, string> = {
  0x0002: 'Microsoft ADPCM',
  0x0006: 'A-law',
  0x0007: 'mu-law',
  0x0011: 'IMA ADPCM',
  0x0031: 'GSM 6.10',
  0x0050: 'MPEG',
  0x0055: 'MPEG Layer 3 (MP3)',
  0x00ff: 'AAC',
  0x1610: 'HE-AAC',
  0xf1ac: 'FLAC',
};

// The 14 bytes that follow the 2-byte format code in a KSDATAFORMAT_SUBTYPE_* GUID.
const KSDATAFORMAT_TAIL = [
  0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71,
];

function hex16(tag: number): string {
  return `0x${tag.toString(16).padStart(4, '0')}`;
}

/** Shows the first bytes of a file both as text and hex, for "unsupported format" errors. */
function describeHeader(bytes: Uint8Array): string {
  const head = bytes.subarray(0, Math.min(12, bytes.length));
  const text = Array.from(head, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
  const hex = Array.from(head, (b) => b.toString(16).padStart(2, '0')).join(' ');
  return `header "${text}" (${hex})`;
}

/** Guesses what a non-WAV/FLAC file is, so the message can say "looks like MP3". */
function guessFormat(b: Uint8Array): string | null {
  const ascii = (o: number, s: string) => s.split('').every((c, i) => b[o + i] === c.charCodeAt(0));
  if (ascii(0, 'ID3') || (b.length > 1 && b[0] === 0xff && (b[1]! & 0xe0) === 0xe0)) return 'MP3';
  if (ascii(0, 'OggS')) return 'Ogg (Vorbis/Opus)';
  if (ascii(4, 'ftyp')) return 'MP4/M4A';
  if (ascii(0, 'FORM')) return 'AIFF';
  if (ascii(0, 'RF64')) return 'RF64 (64-bit WAV)';
  if (b.length > 3 && b[0] === 0x1a && b[1] === 0x45 && b[2] === 0xdf && b[3] === 0xa3)
    return 'WebM/Matroska';
  return null;
}

/**
 * Reads and decodes a WAV (PCM 8/16/24/32-bit, IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE)
 * or FLAC file. Every error names the file and says what is wrong with it.
 */
export async function decodeAudioFile(path: string): Promise<DecodedAudio> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new Error(`${path}: file not found`);
    if (e.code === 'EISDIR') throw new Error(`${path}: cannot read audio: it is a directory`);
    throw new Error(`${path}: cannot read audio file: ${e.code ?? ''} ${e.message}`.replace(/ {2}/g, ' '));
  }
  return decodeAudioBytes(bytes, path);
}

/** Decodes audio already in memory; `name` is used in error messages (a path or an id). */
export async function decodeAudioBytes(bytes: Uint8Array, name: string): Promise<DecodedAudio> {
  if (bytes.length === 0) throw new Error(`${name}: empty file (0 bytes)`);
  const magic = String.fromCharCode(...bytes.subarray(0, 4));
  if (magic === 'RIFF') return decodeWav(bytes, name);
  // FLAC may be preceded by an ID3v2 tag (some taggers write one).
  if (magic === 'fLaC' || (magic.startsWith('ID3') && findFlacAfterId3(bytes) >= 0))
    return decodeFlac(bytes, name);
  if (bytes.length < 4) {
    throw new Error(
      `${name}: unsupported format: file is only ${bytes.length} bytes, ${describeHeader(bytes)}; expected WAV (RIFF/WAVE) or FLAC`,
    );
  }
  const guess = guessFormat(bytes);
  throw new Error(
    `${name}: unsupported format: ${describeHeader(bytes)}${guess ? `, looks like ${guess}` : ''}; expected WAV (RIFF/WAVE) or FLAC`,
  );
}

/** Offset of "fLaC" after an ID3v2 tag, or -1. */
function findFlacAfterId3(b: Uint8Array): number {
  if (b.length < 10) return -1;
  // ID3v2 size: 4 bytes of 7 bits each (synchsafe), plus the 10-byte header.
  const size = ((b[6]! & 0x7f) << 21) | ((b[7]! & 0x7f) << 14) | ((b[8]! & 0x7f) << 7) | (b[9]! & 0x7f);
  const off = 10 + size + (b[5]! & 0x10 ? 10 : 0);
  if (off + 4 > b.length) return -1;
  return String.fromCharCode(b[off]!, b[off + 1]!, b[off + 2]!, b[off + 3]!) === 'fLaC' ? off : -1;
}

interface WavFormat {
  tag: number; // PCM or IEEE float after resolving EXTENSIBLE
  channels: number;
  sampleRate: number;
  blockAlign: number;
  bitsPerSample: number; // container bits: the sample's stride in the frame
}

function parseFmt(view: DataView, off: number, size: number, name: string): WavFormat {
  if (size < 16) throw new Error(`${name}: broken WAV: fmt chunk is ${size} bytes, needs at least 16`);
  let tag = view.getUint16(off, true);
  const channels = view.getUint16(off + 2, true);
  const sampleRate = view.getUint32(off + 4, true);
  const blockAlign = view.getUint16(off + 12, true);
  const bitsPerSample = view.getUint16(off + 14, true);
  if (tag === FORMAT_EXTENSIBLE) {
    if (size < 40)
      throw new Error(`${name}: broken WAV: WAVE_FORMAT_EXTENSIBLE fmt chunk is ${size} bytes, needs 40`);
    const sub = view.getUint16(off + 24, true);
    const tailOk = KSDATAFORMAT_TAIL.every((v, i) => view.getUint8(off + 26 + i) === v);
    if (!tailOk)
      throw new Error(
        `${name}: unsupported WAV codec: WAVE_FORMAT_EXTENSIBLE with a non-standard sub-format GUID`,
      );
    tag = sub;
  }
  if (tag !== FORMAT_PCM && tag !== FORMAT_IEEE_FLOAT) {
    const what = FORMAT_NAMES[tag] ? ` (${FORMAT_NAMES[tag]})` : '';
    throw new Error(
      `${name}: unsupported WAV codec: format tag ${hex16(tag)}${what}; supported: PCM (0x0001), IEEE float (0x0003), WAVE_FORMAT_EXTENSIBLE of those`,
    );
  }
  if (channels === 0) throw new Error(`${name}: broken WAV: fmt chunk says 0 channels`);
  if (sampleRate === 0) throw new Error(`${name}: broken WAV: fmt chunk says sample rate 0`);
  if (tag === FORMAT_PCM && (bitsPerSample < 8 || bitsPerSample > 32 || bitsPerSample % 8 !== 0)) {
    throw new Error(
      `${name}: unsupported WAV: PCM with ${bitsPerSample} bits per sample (supported: 8, 16, 24, 32)`,
    );
  }
  if (tag === FORMAT_IEEE_FLOAT && bitsPerSample !== 32 && bitsPerSample !== 64) {
    throw new Error(
      `${name}: unsupported WAV: IEEE float with ${bitsPerSample} bits per sample (supported: 32, 64)`,
    );
  }
  const frameBytes = (channels * bitsPerSample) / 8;
  if (blockAlign !== frameBytes) {
    throw new Error(
      `${name}: broken WAV: block align ${blockAlign} does not match ${channels} channel(s) x ${bitsPerSample} bits (${frameBytes} bytes)`,
    );
  }
  return { tag, channels, sampleRate, blockAlign, bitsPerSample };
}

function decodeWav(bytes: Uint8Array, name: string): DecodedAudio {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 12)
    throw new Error(`${name}: truncated WAV: file has ${bytes.length} bytes, the RIFF header needs 12`);
  const wave = String.fromCharCode(...bytes.subarray(8, 12));
  if (wave !== 'WAVE') throw new Error(`${name}: unsupported format: RIFF file of type "${wave}", not WAVE`);

  let fmt: WavFormat | null = null;
  let data: { off: number; size: number } | null = null;
  let off = 12;
  // Walk the chunks; fmt must come before data (it does in every writer we know of),
  // and anything after data is ignored.
  while (off + 8 <= bytes.length) {
    const id = String.fromCharCode(...bytes.subarray(off, off + 4));
    const size = view.getUint32(off + 4, true);
    const body = off + 8;
    const available = bytes.length - body;
    if (id === 'fmt ') {
      if (size > available)
        throw new Error(`${name}: truncated WAV: fmt chunk says ${size} bytes, file has ${available}`);
      fmt = parseFmt(view, body, size, name);
    } else if (id === 'data') {
      if (!fmt) throw new Error(`${name}: broken WAV: data chunk comes before any fmt chunk`);
      // 0xFFFFFFFF is what streaming writers leave when they cannot seek back: read to the end.
      if (size === 0xffffffff) {
        data = { off: body, size: available };
      } else if (size > available) {
        throw new Error(`${name}: truncated WAV: data chunk says ${size} bytes, file has ${available}`);
      } else {
        data = { off: body, size };
      }
      break;
    }
    off = body + size + (size & 1); // chunks are padded to an even size
  }
  if (!fmt) throw new Error(`${name}: broken WAV: no fmt chunk (file has ${bytes.length} bytes)`);
  if (!data) throw new Error(`${name}: truncated WAV: no data chunk (file has ${bytes.length} bytes)`);

  const frames = Math.floor(data.size / fmt.blockAlign);
  if (frames === 0) {
    throw new Error(
      `${name}: WAV has zero samples (data chunk is ${data.size} bytes, one frame is ${fmt.blockAlign})`,
    );
  }
  const channels = readSamples(view, data.off, frames, fmt);
  const warnings =
    fmt.tag === FORMAT_IEEE_FLOAT ? checkFloatSamples(channels, view, fmt, data.off, name) : [];
  return { channels, sampleRate: fmt.sampleRate, ...(warnings.length ? { warnings } : {}) };
}

/**
 * Refuses NaN and infinite samples (a float64 value beyond float32's range counts as
 * infinite), naming the sample's position in the file; returns a warning for samples far
 * outside [-1, 1]. Positions are frames (one sample per channel) from the start of the data.
 */
function checkFloatSamples(
  channels: Float32Array[],
  view: DataView,
  fmt: WavFormat,
  dataOff: number,
  name: string,
): string[] {
  let far = 0;
  let peak = 0;
  let peakAt = 0;
  let peakCh = 0;
  const nc = channels.length;
  const bytePos = (i: number, c: number) => dataOff + i * fmt.blockAlign + (c * fmt.bitsPerSample) / 8;
  const where = (i: number, c: number) =>
    `sample ${i} of ${channels[0]!.length}${nc > 1 ? ` (channel ${c} of ${nc})` : ''}, ` +
    `at ${(i / fmt.sampleRate).toFixed(3)} s, byte ${bytePos(i, c)}`;
  for (let c = 0; c < nc; c++) {
    const ch = channels[c]!;
    for (let i = 0; i < ch.length; i++) {
      const a = Math.abs(ch[i]!);
      if (a <= FLOAT_SAMPLE_WARN_LIMIT) continue; // the common case; NaN fails this test
      if (!Number.isFinite(a)) {
        const raw = fmt.bitsPerSample === 64 ? view.getFloat64(bytePos(i, c), true) : ch[i]!;
        const what = Number.isFinite(raw) ? `${raw}, beyond float32's range` : String(raw);
        throw new Error(`${name}: ${where(i, c)} is ${what}; NaN and infinite samples are refused`);
      }
      far++;
      if (a > peak) [peak, peakAt, peakCh] = [a, i, c];
    }
  }
  if (far === 0) return [];
  return [
    `${name}: ${far} float sample(s) outside [-${FLOAT_SAMPLE_WARN_LIMIT}, ${FLOAT_SAMPLE_WARN_LIMIT}] ` +
      `(largest |x| ${peak.toPrecision(4)} at ${where(peakAt, peakCh)}); float audio should lie in [-1, 1]: check the file's scale`,
  ];
}

/** De-interleaves and scales samples to floats: integers by 2^(bits-1), 8-bit unsigned around 128. */
function readSamples(view: DataView, start: number, frames: number, fmt: WavFormat): Float32Array[] {
  const nc = fmt.channels;
  const bps = fmt.bitsPerSample / 8;
  const out = Array.from({ length: nc }, () => new Float32Array(frames));
  for (let c = 0; c < nc; c++) {
    const ch = out[c]!;
    let p = start + c * bps;
    const step = fmt.blockAlign;
    if (fmt.tag === FORMAT_IEEE_FLOAT) {
      if (bps === 4) for (let i = 0; i < frames; i++, p += step) ch[i] = view.getFloat32(p, true);
      else for (let i = 0; i < frames; i++, p += step) ch[i] = view.getFloat64(p, true);
    } else if (bps === 1) {
      for (let i = 0; i < frames; i++, p += step) ch[i] = (view.getUint8(p) - 128) / 128;
    } else if (bps === 2) {
      for (let i = 0; i < frames; i++, p += step) ch[i] = view.getInt16(p, true) / 32768;
    } else if (bps === 3) {
      for (let i = 0; i < frames; i++, p += step) {
        // Little-endian 24-bit: shift into the top of an int32 to sign-extend.
        const v = (view.getUint8(p) << 8) | (view.getUint8(p + 1) << 16) | (view.getUint8(p + 2) << 24);
        ch[i] = v / 2147483648;
      }
    } else {
      for (let i = 0; i < frames; i++, p += step) ch[i] = view.getInt32(p, true) / 2147483648;
    }
  }
  return out;
}

/** The STREAMINFO fields we check: total samples (0 = unknown) and bits per sample. */
function flacStreamInfo(b: Uint8Array, at: number): { totalSamples: number; bitsPerSample: number } | null {
  // "fLaC", a 4-byte block header (type 0 = STREAMINFO), then 10 bytes of block/frame
  // sizes and a 64-bit word: rate 20 bits, channels-1 3, bits-1 5, total samples 36.
  const s = at + 8;
  if (b.length < s + 18 || (b[at + 4]! & 0x7f) !== 0) return null;
  const bitsPerSample = (((b[s + 12]! & 0x01) << 4) | (b[s + 13]! >> 4)) + 1;
  const totalSamples =
    (b[s + 13]! & 0x0f) * 2 ** 32 +
    ((b[s + 14]! << 24) >>> 0) +
    (b[s + 15]! << 16) +
    (b[s + 16]! << 8) +
    b[s + 17]!;
  return { totalSamples, bitsPerSample };
}

async function decodeFlac(bytes: Uint8Array, name: string): Promise<DecodedAudio> {
  const at = String.fromCharCode(...bytes.subarray(0, 4)) === 'fLaC' ? 0 : findFlacAfterId3(bytes);
  if (bytes.length < at + 42)
    throw new Error(`${name}: truncated FLAC: file has ${bytes.length} bytes, headers need ${at + 42}`);
  const info = flacStreamInfo(bytes, at);
  if (!info) throw new Error(`${name}: broken FLAC: first metadata block is not STREAMINFO`);
  let decoded: { channelData: Float32Array[]; sampleRate: number };
  try {
    decoded = await decodeAny(at > 0 ? bytes.subarray(at) : bytes); // past any ID3 tag
  } catch (err) {
    throw new Error(`${name}: cannot decode FLAC: ${(err as Error).message}`);
  }
  const n = decoded.channelData[0]?.length ?? 0;
  if (info.totalSamples > 0 && n < info.totalSamples) {
    throw new Error(
      `${name}: truncated or corrupt FLAC: STREAMINFO says ${info.totalSamples} samples, decoded ${n}`,
    );
  }
  if (n === 0) throw new Error(`${name}: FLAC has zero samples`);
  if (!(decoded.sampleRate > 0)) throw new Error(`${name}: broken FLAC: sample rate ${decoded.sampleRate}`);
  // The decoder scales integers by 1/(2^(b-1) - 1); rescale to 1/2^(b-1) like our WAV
  // reader (and libsndfile, torchaudio), so that a file gives the same samples as WAV or FLAC.
  const bits = info.bitsPerSample;
  const max = 2 ** (bits - 1) - 1;
  const full = 2 ** (bits - 1);
  const channels = decoded.channelData.map((c) => {
    const out = new Float32Array(c.length);
    // Up to 24 bits the integer is exactly recoverable from the float32 sample.
    if (bits <= 24) for (let i = 0; i < c.length; i++) out[i] = Math.round(c[i]! * max) / full;
    else for (let i = 0; i < c.length; i++) out[i] = (c[i]! * max) / full;
    return out;
  });
  return { channels, sampleRate: decoded.sampleRate };
}
