/**
 * Encoder families by config.json's `model_type`: `loadEncoder(dir)` reads a Hugging Face
 * folder (config.json + weights in any layout) into an `Encoder` with its weights;
 * `createEncoder(modelType, config)` builds a randomly initialised one in place (training
 * from scratch). A family joins with one `registerEncoderFamily` line below.
 */
import type { HostTensor } from '../graph/runtime.js';
import { bertFamily } from './bert/index.js';
import { wav2vec2Family } from './wav2vec2/index.js';
import { conformerFamily } from './conformer/index.js';
import type { Encoder, Modality } from './encoder.js';
import { HfLoadError, checkModelType, readHfConfig } from './hf/config.js';
import { loadHfWeights } from './hf/weights.js';

export interface EncoderOptions {
  /** Speech encoders with a CNN feature encoder: no gradient into it (Hugging Face's freeze_feature_encoder). */
  freezeFeatureEncoder?: boolean;
  /** Names config.json in errors. */
  configSource?: string;
  /** Where the encoder came from (named in its `source`). */
  source?: string;
}

export interface EncoderFamily {
  /** config.json `model_type` values this family builds. */
  modelTypes: readonly string[];
  modality: Modality;
  /** A randomly initialised encoder from a config object (HF keys). */
  create(config: Record<string, unknown>, opts: EncoderOptions): Encoder;
  /**
   * An encoder with weights: `tensors` under the checkpoint's names, mapped onto the
   * graph's; every mismatch in one error naming `source`; `unused` lists tensors set aside.
   */
  fromCheckpoint(
    config: Record<string, unknown>,
    tensors: Map<string, HostTensor>,
    source: string,
    opts: EncoderOptions,
  ): Encoder & { unused: string[] };
}

/** An encoder read from a folder, with what was read. */
export interface LoadedEncoder extends Encoder {
  /** Checkpoint tensors set aside on purpose (pooler, heads, buffers). */
  unused: string[];
  /** The files read (config.json, then the weights file or index and shards). */
  files: string[];
  /** Tensors per stored dtype ('F32', 'F16', 'BF16', ...). */
  storedDtypes: Record<string, number>;
}

const families = new Map<string, EncoderFamily>();

export function registerEncoderFamily(f: EncoderFamily): void {
  for (const t of f.modelTypes) {
    if (families.has(t)) throw new Error(`encoder model_type '${t}' is registered twice`);
    families.set(t, f);
  }
}

/** The model_type values lemer builds. */
export function encoderModelTypes(): string[] {
  return [...families.keys()].sort();
}

export function encoderFamily(modelType: string, source = 'config.json'): EncoderFamily {
  checkModelType({ model_type: modelType }, source, encoderModelTypes());
  return families.get(modelType)!;
}

/** Reads a Hugging Face model folder into an encoder with its weights. */
export function loadEncoder(dir: string, opts: EncoderOptions = {}): LoadedEncoder {
  const { config, path } = readHfConfig(dir, { knownTypes: encoderModelTypes() });
  const family = families.get(config.model_type as string)!;
  const w = loadHfWeights(dir);
  const source = opts.source ?? dir;
  const enc = family.fromCheckpoint(config, w.tensors, w.files[0], {
    ...opts,
    configSource: opts.configSource ?? path,
    source,
  });
  return { ...enc, source, files: [path, ...w.files], storedDtypes: w.storedDtypes };
}

/** A randomly initialised encoder of `modelType` from a config object (missing keys take the base model's values). */
export function createEncoder(
  modelType: string,
  config: Record<string, unknown> = {},
  opts: EncoderOptions = {},
): Encoder {
  const family = encoderFamily(modelType, opts.configSource ?? 'encoder config');
  if (config.model_type !== undefined && config.model_type !== modelType)
    throw new HfLoadError(
      `${opts.configSource ?? 'encoder config'}: model_type "${String(config.model_type)}" given for a ${modelType} encoder`,
    );
  return family.create(
    { ...config, model_type: modelType },
    { ...opts, configSource: opts.configSource ?? `the in-place ${modelType} config` },
  );
}

registerEncoderFamily(bertFamily);
registerEncoderFamily(wav2vec2Family);
registerEncoderFamily(conformerFamily);
