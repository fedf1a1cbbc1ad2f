/** Audio as the speech encoders want it: mono, at one sample rate, optionally normalised. */
import { decodeAudioFile } from './decode.js';
import { resample, type ResampleOptions } from './resample.js';

export interface LoadAudioOptions {
  /** Target sample rate in Hz (default 16000, what wav2vec2-family models expect). */
  sampleRate?: number;
  /** How to resample (default: torchaudio's sinc, see resample()). */
  resample?: ResampleOptions;
  /**
   * Receives the decoder's warnings (float samples far outside [-1, 1]), each naming the
   * file. Default: process.emitWarning, so that a library user sees them on stderr once.
   */
  onWarning?: (message: string) => void;
}

/** Mean of the channels, sample by sample (all channels must have the same length). */
export function mixToMono(channels: Float32Array[]): Float32Array {
  if (channels.length === 0) throw new Error('mixToMono: no channels');
  const n = channels[0]!.length;
  if (channels.length === 1) return channels[0]!;
  for (const c of channels) {
    if (c.length !== n) throw new Error(`mixToMono: channels differ in length (${n} vs ${c.length})`);
  }
  const out = new Float32Array(n);
  const k = channels.length;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < k; c++) s += channels[c]![i]!;
    out[i] = s / k;
  }
  return out;
}

/**
 * Decodes an audio file, mixes it down to mono (mean of channels) and resamples it
 * (torchaudio's sinc interpolation by default) when its rate differs from `sampleRate`.
 * NaN or infinite samples are an error naming the file and the sample's position in it.
 */
export async function loadAudio(path: string, opts: LoadAudioOptions = {}): Promise<Float32Array> {
  const sampleRate = opts.sampleRate ?? 16000;
  const decoded = await decodeAudioFile(path);
  const warn = opts.onWarning ?? ((m: string) => process.emitWarning(m, 'LemerAudioWarning'));
  for (const w of decoded.warnings ?? []) warn(w);
  const mono = mixToMono(decoded.channels);
  if (decoded.sampleRate === sampleRate) return mono;
  try {
    return await resample(mono, decoded.sampleRate, sampleRate, opts.resample);
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
}

/**
 * Zero-mean, unit-variance waveform: (x - mean) / sqrt(var + 1e-7) with the population
 * variance, as Hugging Face's Wav2Vec2FeatureExtractor does with do_normalize=True.
 * Sums run in float64.
 */
export function normalizeWaveform(x: Float32Array): Float32Array {
  const n = x.length;
  const out = new Float32Array(n);
  if (n === 0) return out;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += x[i]!;
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const d = x[i]! - mean;
    ss += d * d;
  }
  const inv = 1 / Math.sqrt(ss / n + 1e-7);
  for (let i = 0; i < n; i++) out[i] = (x[i]! - mean) * inv;
  return out;
}
