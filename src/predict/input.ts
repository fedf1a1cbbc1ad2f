/**
 * What a user hands to predict(), checked and turned into model input: audio as a file
 * path, WAV/FLAC bytes or samples with their rate, always to 16 kHz mono (src/audio's
 * decoder, mean of channels, torchaudio's sinc resampling: what training saw); text as a
 * string or UTF-8 bytes. Every refusal names the input and says what is wrong.
 */
import { decodeAudioBytes, decodeAudioFile, type DecodedAudio } from '../audio/decode.js';
import { mixToMono } from '../audio/load.js';
import { resample } from '../audio/resample.js';
import { probeAudioFile, probeBytes } from './wav-stream.js';

/** Samples already in memory, with their rate in Hz. */
export interface SamplesInput {
  samples: Float32Array;
  sampleRate: number;
  /** Several channels, interleaved? Default 1 (mono). */
  channels?: number;
}

/** Audio as predict() takes it. */
export type AudioInput = string | Uint8Array | SamplesInput;

export interface PreparedAudio {
  /** Mono samples at `sampleRate`. */
  samples: Float32Array;
  sampleRate: number;
  seconds: number;
  /** What the input was, for messages and results: the path, `<bytes>` or `<samples>`. */
  name: string;
  /** The input's own rate and channel count. */
  original: { sampleRate: number; channels: number };
  warnings: string[];
}

export interface AudioLimits {
  /** Longer audio in one piece gets a warning (default 30 s: utterance models see a few seconds). */
  warnSeconds?: number;
  /** Longer audio in one piece is refused (default 600 s): use segment() / --segment. */
  maxSeconds?: number;
}

export const AUDIO_WARN_SECONDS = 30;
export const AUDIO_MAX_SECONDS = 600;
/** Below this rate speech loses most of its consonants: a warning. */
const LOW_RATE = 8000;

export function audioName(a: AudioInput, fallback?: string): string {
  if (fallback) return fallback;
  if (typeof a === 'string') return a;
  if (a instanceof Uint8Array) return '<audio bytes>';
  return '<audio samples>';
}

function isSamples(a: unknown): a is SamplesInput {
  return typeof a === 'object' && a !== null && 'samples' in a && 'sampleRate' in a;
}

function tooLong(name: string, seconds: number, max: number): Error {
  return new Error(
    `${name}: ${seconds.toFixed(1)} s of audio in one piece (more than ${max} s): the model reads an utterance at once ` +
      `and its attention grows with the square of the length; split it with --segment (Lemer.predictSegments in code)`,
  );
}

/** Checks an interleaved sample array and returns its channels. */
function fromSamples(a: SamplesInput, name: string): DecodedAudio {
  if (!(a.samples instanceof Float32Array))
    throw new Error(
      `${name}: samples must be a Float32Array, got ${Object.prototype.toString.call(a.samples)}`,
    );
  const rate = a.sampleRate;
  if (!Number.isInteger(rate) || rate < 1 || rate > 192000)
    throw new Error(`${name}: sampleRate must be an integer in [1, 192000] Hz, got ${String(rate)}`);
  const nc = a.channels ?? 1;
  if (!Number.isInteger(nc) || nc < 1)
    throw new Error(`${name}: channels must be a positive integer, got ${nc}`);
  if (a.samples.length === 0) throw new Error(`${name}: 0 samples: there is no audio to classify`);
  if (a.samples.length % nc !== 0)
    throw new Error(`${name}: ${a.samples.length} samples do not split into ${nc} interleaved channels`);
  const frames = a.samples.length / nc;
  const ch = Array.from({ length: nc }, () => new Float32Array(frames));
  for (let i = 0; i < a.samples.length; i++) {
    const v = a.samples[i];
    if (!Number.isFinite(v))
      throw new Error(`${name}: sample ${i} is ${v}; NaN and infinite samples are refused`);
    ch[i % nc][Math.floor(i / nc)] = v;
  }
  return { channels: ch, sampleRate: rate };
}

/**
 * Decodes and checks audio, mixes it to mono and resamples it to `sampleRate` (16 kHz).
 * Files are probed first, so that an hour-long file is refused before it is decoded.
 */
export async function prepareAudio(
  input: AudioInput,
  opts: AudioLimits & { sampleRate?: number; name?: string } = {},
): Promise<PreparedAudio> {
  const target = opts.sampleRate ?? 16000;
  const warnS = opts.warnSeconds ?? AUDIO_WARN_SECONDS;
  const maxS = opts.maxSeconds ?? AUDIO_MAX_SECONDS;
  const name = audioName(input, opts.name);
  let decoded: DecodedAudio;
  if (typeof input === 'string') {
    const h = await probeAudioFile(input);
    if (h?.frames) {
      const s = h.frames / h.sampleRate;
      if (s > maxS) throw tooLong(name, s, maxS);
    }
    decoded = await decodeAudioFile(input);
  } else if (input instanceof Uint8Array) {
    if (input.length === 0) throw new Error(`${name}: empty (0 bytes)`);
    const h = probeBytes(input.subarray(0, 1 << 16), input.length);
    if (h?.frames) {
      const s = h.frames / h.sampleRate;
      if (s > maxS) throw tooLong(name, s, maxS);
    }
    decoded = await decodeAudioBytes(input, name);
  } else if (isSamples(input)) {
    decoded = fromSamples(input, name);
  } else {
    throw new Error(
      `${name}: audio must be a file path, a Buffer/Uint8Array of WAV or FLAC bytes, or { samples: Float32Array, sampleRate }`,
    );
  }
  const warnings = [...(decoded.warnings ?? [])];
  const frames = decoded.channels[0]?.length ?? 0;
  if (frames === 0) throw new Error(`${name}: 0 samples: there is no audio to classify`);
  const seconds = frames / decoded.sampleRate;
  if (seconds > maxS) throw tooLong(name, seconds, maxS);
  if (seconds > warnS)
    warnings.push(
      `${name}: ${seconds.toFixed(1)} s in one piece; the model was trained on utterances of a few seconds: consider --segment`,
    );
  if (decoded.sampleRate < LOW_RATE)
    warnings.push(
      `${name}: sample rate ${decoded.sampleRate} Hz is below ${LOW_RATE} Hz: speech above ${decoded.sampleRate / 2} Hz is missing; predictions may suffer`,
    );
  const mono = mixToMono(decoded.channels);
  let samples = mono;
  if (decoded.sampleRate !== target) {
    try {
      samples = await resample(mono, decoded.sampleRate, target);
    } catch (err) {
      throw new Error(`${name}: ${(err as Error).message}`);
    }
  }
  return {
    samples,
    sampleRate: target,
    seconds: samples.length / target,
    name,
    original: { sampleRate: decoded.sampleRate, channels: decoded.channels.length },
    warnings,
  };
}

/** Texts longer than this (characters) are refused: a transcript, not a document. */
export const MAX_TEXT_CHARS = 100_000;

export interface PreparedText {
  text: string;
  warnings: string[];
}

/**
 * Checks a transcript: a string, or UTF-8 bytes (invalid UTF-8 is refused with the byte
 * offset). Control characters become spaces; an empty or blank text means "no text".
 */
export function prepareText(input: string | Uint8Array, name = 'text'): PreparedText {
  let text: string;
  if (input instanceof Uint8Array) {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(input);
    } catch {
      throw new Error(`${name}: not valid UTF-8 (first bad byte at offset ${firstBadUtf8(input)})`);
    }
  } else if (typeof input === 'string') {
    text = input;
  } else {
    throw new Error(`${name}: text must be a string or UTF-8 bytes, got ${typeof input}`);
  }
  const warnings: string[] = [];
  if (text.length > MAX_TEXT_CHARS)
    throw new Error(
      `${name}: ${text.length} characters is too long for a transcript (at most ${MAX_TEXT_CHARS}); the model reads at most a few hundred tokens`,
    );
  // Lone surrogates come from broken JS strings; they would reach the tokenizer as U+FFFD anyway.
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text))
    warnings.push(`${name}: lone UTF-16 surrogates replaced by U+FFFD`);
  const wellFormed = text.replace(
    /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
    '\uFFFD',
  );
  const cleaned = wellFormed.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, ' ');
  if (cleaned !== wellFormed) warnings.push(`${name}: control characters replaced by spaces`);
  return { text: cleaned.trim(), warnings };
}

function firstBadUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length;) {
    const c = b[i];
    const n =
      c < 0x80 ? 0 : c >= 0xc2 && c < 0xe0 ? 1 : c >= 0xe0 && c < 0xf0 ? 2 : c >= 0xf0 && c < 0xf5 ? 3 : -1;
    if (n < 0) return i;
    for (let k = 1; k <= n; k++) if (i + k >= b.length || (b[i + k] & 0xc0) !== 0x80) return i;
    i += n + 1;
  }
  return b.length;
}
