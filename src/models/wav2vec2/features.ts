/**
 * preprocessor_config.json of the wav2vec2 family (Hugging Face's Wav2Vec2FeatureExtractor)
 * and the batch it describes: each waveform normalised over its own samples when
 * `do_normalize` (src/audio's normalizeWaveform: zero mean, unit population variance,
 * eps 1e-7), right-padded with `padding_value`, and the sample-level attention mask.
 *
 * lemer always feeds the mask. Hugging Face's configs for group-norm checkpoints
 * (wav2vec2-base) say `return_attention_mask: false`, and its pipelines then run padded
 * batches unmasked; lemer masks padded frames out of attention and pooling instead (what
 * a user wants from a padded batch). The group norm still sees the padding, as in HF.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError, formatIssues } from '../../config/load.js';
import { normalizeWaveform } from '../../audio/load.js';
import type { HostTensor } from '../../graph/runtime.js';

export const PREPROCESSOR_FILE = 'preprocessor_config.json';

const schema = z.looseObject({
  feature_extractor_type: z.string().optional(),
  feature_size: z.literal(1).default(1),
  sampling_rate: z.number().int().positive().default(16000),
  padding_value: z.number().default(0),
  padding_side: z.literal('right').default('right'),
  do_normalize: z.boolean().default(true),
  return_attention_mask: z.boolean().default(false),
});

export interface Wav2Vec2FeatureConfig {
  samplingRate: number;
  doNormalize: boolean;
  paddingValue: number;
  /** What the folder says (lemer masks padding regardless; see the file comment). */
  returnAttentionMask: boolean;
}

/** Wav2Vec2FeatureExtractor's defaults (16 kHz, normalised), for folders without the file. */
export const DEFAULT_WAV2VEC2_FEATURES: Wav2Vec2FeatureConfig = {
  samplingRate: 16000,
  doNormalize: true,
  paddingValue: 0,
  returnAttentionMask: false,
};

export function parseWav2Vec2FeatureConfig(raw: unknown, source = PREPROCESSOR_FILE): Wav2Vec2FeatureConfig {
  const r = schema.safeParse(raw);
  if (!r.success) throw new ConfigError(source, formatIssues(r.error.issues));
  const t = r.data.feature_extractor_type;
  if (t !== undefined && t !== 'Wav2Vec2FeatureExtractor')
    throw new ConfigError(source, [
      `feature_extractor_type: lemer reads raw-waveform Wav2Vec2FeatureExtractor configs, got "${t}"`,
    ]);
  return {
    samplingRate: r.data.sampling_rate,
    doNormalize: r.data.do_normalize,
    paddingValue: r.data.padding_value,
    returnAttentionMask: r.data.return_attention_mask,
  };
}

/** Reads `<dir>/preprocessor_config.json`; a folder without one gets the defaults. */
export function readWav2Vec2FeatureConfig(dir: string): Wav2Vec2FeatureConfig {
  const path = join(dir, PREPROCESSOR_FILE);
  if (!existsSync(path)) return { ...DEFAULT_WAV2VEC2_FEATURES };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ConfigError(path, [`not valid JSON: ${(e as Error).message}`]);
  }
  return parseWav2Vec2FeatureConfig(raw, path);
}

export interface Wav2Vec2BatchOptions {
  /** Sample rate of the given waveforms; must equal the config's (resample first: src/audio loadAudio). */
  sampleRate?: number;
  /** Shortest allowed waveform (the encoder's receptive field, `minInputSamples`); shorter ones are an error. */
  minSamples?: number;
  /** Names of the waveforms for error messages (file paths, utterance ids). */
  names?: readonly string[];
  /** Pad to at least this many samples (a fixed batch shape). */
  padTo?: number;
}

/** `input_values` [B, S] float32 and `attention_mask` [B, S] int64 for the encoder. */
export function wav2vec2Batch(
  waves: readonly Float32Array[],
  fc: Wav2Vec2FeatureConfig = DEFAULT_WAV2VEC2_FEATURES,
  opts: Wav2Vec2BatchOptions = {},
): { input_values: HostTensor; attention_mask: HostTensor; lengths: number[] } {
  if (waves.length === 0) throw new Error('wav2vec2Batch: no waveforms');
  if (opts.sampleRate !== undefined && opts.sampleRate !== fc.samplingRate)
    throw new Error(
      `wav2vec2Batch: audio at ${opts.sampleRate} Hz, the encoder expects ${fc.samplingRate} Hz (resample first)`,
    );
  const min = opts.minSamples ?? 1;
  waves.forEach((w, i) => {
    if (w.length < min)
      throw new Error(
        `${opts.names?.[i] ?? `waveform ${i}`}: ${w.length} samples (${((1000 * w.length) / fc.samplingRate).toFixed(1)} ms) is shorter than the encoder's receptive field of ${min} samples (${((1000 * min) / fc.samplingRate).toFixed(1)} ms): it would give no frame`,
      );
  });
  const lengths = waves.map((w) => w.length);
  const S = Math.max(opts.padTo ?? 0, ...lengths);
  const B = waves.length;
  const values = new Float32Array(B * S).fill(fc.paddingValue);
  const mask = new BigInt64Array(B * S);
  waves.forEach((w, b) => {
    values.set(fc.doNormalize ? normalizeWaveform(w) : w, b * S);
    mask.fill(1n, b * S, b * S + w.length);
  });
  return {
    input_values: { dtype: 'float32', shape: [B, S], data: values },
    attention_mask: { dtype: 'int64', shape: [B, S], data: mask },
    lengths,
  };
}
