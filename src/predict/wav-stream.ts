/**
 * Long recordings without loading them whole: a WAV header probe (duration before any
 * decoding), a chunked WAV reader, and a chunked resampler that gives exactly the samples
 * src/audio's whole-signal resample() gives (torchaudio's sinc: the same kernel, the same
 * sums, only cut into windows with enough context on each side).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { decodeAudioBytes } from '../audio/decode.js';
import { mixToMono } from '../audio/load.js';
import { resample, resampledLength } from '../audio/resample.js';

export interface AudioHeader {
  format: 'wav' | 'flac';
  sampleRate: number;
  channels: number;
  /** Frames (samples per channel); null when the file does not say (FLAC with 0, streamed WAV). */
  frames: number | null;
  /** WAV: where the sample bytes start and how many there are; fmt chunk bytes to rebuild headers. */
  wav?: { dataOffset: number; dataBytes: number; blockAlign: number; fmt: Uint8Array };
}

const PROBE_BYTES = 1 << 16;

/** Reads the header of a WAV or FLAC file (the first 64 KiB); other files get decode()'s errors. */
export async function probeAudioFile(path: string): Promise<AudioHeader | null> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new Error(`${path}: file not found`);
    if (e.code === 'EISDIR') throw new Error(`${path}: cannot read audio: it is a directory`);
    throw new Error(`${path}: cannot read audio file: ${e.message}`);
  }
  try {
    const size = (await fh.stat()).size;
    if (size === 0) throw new Error(`${path}: empty file (0 bytes)`);
    const head = new Uint8Array(Math.min(size, PROBE_BYTES));
    await fh.read(head, 0, head.length, 0);
    return probeBytes(head, size);
  } finally {
    await fh.close();
  }
}

/** Header of audio whose first bytes are `head` and whole size `size`; null when not WAV/FLAC or unclear. */
export function probeBytes(head: Uint8Array, size: number): AudioHeader | null {
  const magic = String.fromCharCode(...head.subarray(0, 4));
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (magic === 'fLaC' && head.length >= 42) {
    const s = 8;
    const rate = (head[s + 10] << 12) | (head[s + 11] << 4) | (head[s + 12] >> 4);
    const channels = ((head[s + 12] >> 1) & 0x07) + 1;
    const total =
      (head[s + 13] & 0x0f) * 2 ** 32 +
      ((head[s + 14] << 24) >>> 0) +
      (head[s + 15] << 16) +
      (head[s + 16] << 8) +
      head[s + 17];
    return { format: 'flac', sampleRate: rate, channels, frames: total > 0 ? total : null };
  }
  if (magic !== 'RIFF' || head.length < 12 || String.fromCharCode(...head.subarray(8, 12)) !== 'WAVE')
    return null;
  let off = 12;
  let fmt: Uint8Array | null = null;
  while (off + 8 <= head.length) {
    const id = String.fromCharCode(...head.subarray(off, off + 4));
    const n = view.getUint32(off + 4, true);
    if (id === 'fmt ') {
      if (off + 8 + n > head.length || n < 16) return null;
      fmt = head.slice(off + 8, off + 8 + n);
    } else if (id === 'data') {
      if (!fmt) return null;
      const fv = new DataView(fmt.buffer);
      const channels = fv.getUint16(2, true);
      const sampleRate = fv.getUint32(4, true);
      const blockAlign = fv.getUint16(12, true);
      if (!blockAlign || !channels || !sampleRate) return null;
      const dataOffset = off + 8;
      const available = size - dataOffset;
      const dataBytes = n === 0xffffffff || n > available ? available : n;
      return {
        format: 'wav',
        sampleRate,
        channels,
        frames: Math.floor(dataBytes / blockAlign),
        wav: { dataOffset, dataBytes, blockAlign, fmt },
      };
    }
    off += 8 + n + (n & 1);
  }
  return null;
}

/** A WAV file holding `fmt` and `data`: how each chunk goes through src/audio's own decoder. */
function wavBytes(fmt: Uint8Array, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + 8 + fmt.length + 8 + data.length);
  const v = new DataView(out.buffer);
  const ascii = (o: number, s: string) => {
    for (let i = 0; i < 4; i++) out[o + i] = s.charCodeAt(i);
  };
  ascii(0, 'RIFF');
  v.setUint32(4, out.length - 8, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  v.setUint32(16, fmt.length, true);
  out.set(fmt, 20);
  const d = 20 + fmt.length;
  ascii(d, 'data');
  v.setUint32(d + 4, data.length, true);
  out.set(data, d + 8);
  return out;
}

/**
 * Mono chunks of a WAV file at its own rate, about `chunkSeconds` each, read with bounded
 * memory (one chunk at a time). Sample conversion and checks are src/audio's decoder's.
 */
export async function* readWavChunks(
  path: string,
  header: AudioHeader,
  chunkSeconds = 10,
): AsyncGenerator<Float32Array> {
  const w = header.wav;
  if (!w) throw new Error(`${path}: not a WAV file: cannot stream it`);
  const framesPer = Math.max(1, Math.round(chunkSeconds * header.sampleRate));
  const fh = await open(path, 'r');
  try {
    const totalFrames = Math.floor(w.dataBytes / w.blockAlign);
    for (let f = 0; f < totalFrames; f += framesPer) {
      const n = Math.min(framesPer, totalFrames - f);
      const buf = new Uint8Array(n * w.blockAlign);
      const { bytesRead } = await fh.read(buf, 0, buf.length, w.dataOffset + f * w.blockAlign);
      if (bytesRead < buf.length)
        throw new Error(
          `${path}: truncated WAV: file ended at byte ${w.dataOffset + f * w.blockAlign + bytesRead}, header promised ${w.dataOffset + w.dataBytes}`,
        );
      const decoded = await decodeAudioBytes(wavBytes(w.fmt, buf), path);
      yield mixToMono(decoded.channels);
    }
  } finally {
    await fh.close();
  }
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * Resamples a stream of chunks (any sizes) from `fromRate` to `toRate` with bounded memory.
 * The output equals resample() of the whole signal (same method, default options) sample
 * for sample: each window of whole input periods is resampled with `margin` periods of
 * real context on both sides, and only its middle is kept. `totalInput` (the number of
 * input samples) fixes the output length, as resample() does.
 */
export async function* resampleStream(
  chunks: AsyncIterable<Float32Array>,
  fromRate: number,
  toRate: number,
  totalInput: number,
): AsyncGenerator<Float32Array> {
  if (fromRate === toRate) {
    for await (const c of chunks) yield c;
    return;
  }
  const g = gcd(fromRate, toRate);
  const orig = fromRate / g;
  const next = toRate / g;
  // The sinc kernel reaches ceil(6 * orig / (min(orig, next) * 0.99)) input samples each way.
  const reach = Math.ceil((6 * orig) / (Math.min(orig, next) * 0.99)) + orig;
  const margin = Math.ceil(reach / orig) + 1; // in periods of `orig` input samples
  const outTotal = resampledLength(totalInput, fromRate, toRate);
  const block = Math.max(1, Math.ceil((1 << 17) / orig)); // periods per emitted window
  let buf = new Float32Array(0); // input from period `base` on
  let base = 0; // first period held in buf
  let emitted = 0; // output samples out so far (always a multiple of next until the end)
  let seen = 0;
  const emit = async (final: boolean): Promise<Float32Array | null> => {
    const heldPeriods = Math.floor(buf.length / orig);
    const k0 = emitted / next; // first period to emit
    const k1 = final ? Infinity : base + heldPeriods - margin; // periods fully covered with right context
    if (!final && k1 - k0 < block) return null;
    const a0 = Math.max(base, k0 - margin);
    const slice = buf.subarray((a0 - base) * orig);
    const y = await resample(slice, fromRate, toRate);
    const from = (k0 - a0) * next;
    const to = final ? outTotal - a0 * next : (k1 - a0) * next;
    const out = y.slice(from, Math.min(to, y.length, outTotal - a0 * next));
    emitted += out.length;
    // Keep `margin` periods of left context for the next window.
    const keep = Math.max(base, (final ? k0 : k1) - margin);
    buf = buf.slice((keep - base) * orig);
    base = keep;
    return out;
  };
  for await (const c of chunks) {
    seen += c.length;
    const b = new Float32Array(buf.length + c.length);
    b.set(buf);
    b.set(c, buf.length);
    buf = b;
    const out = await emit(false);
    if (out && out.length) yield out;
  }
  if (seen !== totalInput)
    throw new Error(`resampleStream: expected ${totalInput} input samples, got ${seen}`);
  const out = await emit(true);
  if (out && out.length) yield out;
}
