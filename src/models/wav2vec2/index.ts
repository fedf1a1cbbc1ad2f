/**
 * The wav2vec2 family as lemer `Encoder`s. `wav2vec2Encoder(config)` builds one from a
 * config.json object (random init, or with `weights` under the graph's names);
 * `wav2vec2WeightsFromCheckpoint` maps a checkpoint's tensors onto those names and reports
 * every missing, unexpected and wrong-shaped tensor in one error.
 */
import { Graph, type ParamSpec } from '../../graph/graph.js';
import type { HostTensor } from '../../graph/runtime.js';
import type { InputDecl } from '../../graph/train.js';
import type { Encoder } from '../encoder.js';
import {
  WAV2VEC2_MODEL_TYPES,
  type Wav2Vec2Arch,
  type Wav2Vec2Config,
  minInputSamples,
  parseWav2Vec2Config,
  wav2vec2Arch,
} from './config.js';
import { type Wav2Vec2BuildOptions, buildWav2Vec2 } from './modeling.js';
import { wav2vec2NameOptions } from './names.js';
import { type MappedWeights, mapWeights } from '../hf/map.js';

export * from './config.js';
export * from './features.js';
export * from './names.js';
export {
  buildWav2Vec2,
  featureEncoder,
  frameLengths,
  isFeatureEncoderParam,
  type Wav2Vec2BuildOptions,
} from './modeling.js';

export interface Wav2Vec2EncoderOptions extends Wav2Vec2BuildOptions {
  /** Weights under the graph's parameter names (from `wav2vec2WeightsFromCheckpoint`); null = random init. */
  weights?: Map<string, HostTensor> | null;
  /** Where the encoder came from (a folder path); default a description of the config. */
  source?: string;
  /** File name for config errors. */
  configSource?: string;
}

export interface Wav2Vec2Encoder extends Encoder {
  arch: Wav2Vec2Arch;
  /** Fewest input samples that give one frame. */
  minSamples: number;
}

/** Graph inputs of a waveform encoder. */
export function wav2vec2Inputs(): Record<string, InputDecl> {
  return {
    input_values: { dtype: 'float32', shape: ['batch', 'samples'] },
    attention_mask: { dtype: 'int64', shape: ['batch', 'samples'] },
  };
}

/** An Encoder of the wav2vec2 family (wav2vec2, hubert, wavlm, wav2vec2-conformer) from a config.json object. */
export function wav2vec2Encoder(
  config: Record<string, unknown>,
  opts: Wav2Vec2EncoderOptions = {},
): Wav2Vec2Encoder {
  const parsed: Wav2Vec2Config = parseWav2Vec2Config(config, opts.configSource ?? 'config.json');
  const arch = wav2vec2Arch(parsed);
  const build: Wav2Vec2BuildOptions = { freezeFeatureEncoder: opts.freezeFeatureEncoder };
  return {
    modality: 'speech',
    modelType: arch.modelType,
    hiddenSize: arch.hiddenSize,
    numLayers: arch.numLayers,
    inputs: wav2vec2Inputs(),
    arch,
    minSamples: minInputSamples(arch),
    build: (g, inputs, { training }) => {
      const { input_values, attention_mask } = inputs;
      if (!input_values || !attention_mask)
        throw new Error(`${arch.modelType} encoder: needs inputs 'input_values' and 'attention_mask'`);
      // Dropout and BatchNorm follow the caller's flag (a frozen encoder in a training graph runs in eval form).
      const was = g.training;
      g.training = training;
      try {
        return buildWav2Vec2(arch, { input_values, attention_mask }, build);
      } finally {
        g.training = was;
      }
    },
    weights: opts.weights ?? null,
    config: { ...config },
    source:
      opts.source ??
      `${arch.modelType} (random init, hidden ${arch.hiddenSize}, ${arch.numLayers} layers, ${arch.conv.length} conv layers)`,
  };
}

/** The encoder's parameters (names, shapes), from a scratch build. */
export function wav2vec2ParamSpecs(arch: Wav2Vec2Arch, opts: Wav2Vec2BuildOptions = {}): ParamSpec[] {
  const g = new Graph({ name: 'specs' });
  const i = wav2vec2Inputs();
  buildWav2Vec2(
    arch,
    {
      input_values: g.input('input_values', i.input_values.dtype, i.input_values.shape),
      attention_mask: g.input('attention_mask', i.attention_mask.dtype, i.attention_mask.shape),
    },
    {
      ...opts,
      // Only whether frames are masked matters here (the param masked_spec_embed), not which.
      maskTimeIndices: opts.maskTimeIndices && g.input('mask_time_indices', 'int64', ['batch', 'frames']),
    },
  );
  return [...g.params.values()].map((p) => p.spec);
}

/**
 * Maps checkpoint tensors (Hugging Face names, the model type's base_model_prefix, either
 * weight-norm spelling) onto the encoder's parameters with src/models/hf's mapWeights: one
 * error naming `file` lists every wrong-shaped, missing and unexpected tensor (a config
 * whose sizes disagree with the weights shows up as wrong shapes).
 */
export function wav2vec2WeightsFromCheckpoint(
  arch: Wav2Vec2Arch,
  tensors: Map<string, HostTensor>,
  file: string,
  opts: Wav2Vec2BuildOptions = {},
): MappedWeights {
  const expected = wav2vec2ParamSpecs(arch, opts).map((s) => ({
    name: s.name,
    shape: s.shape,
    dtype: s.dtype,
  }));
  return mapWeights(tensors, expected, { ...wav2vec2NameOptions(arch.modelType), file });
}

/**
 * An encoder with weights from a Hugging Face checkpoint: `config` is config.json as read,
 * `tensors` the checkpoint's tensors (any base_model_prefix, either weight-norm spelling),
 * `file` the weights file named in mismatch errors (`opts.configSource` names config.json,
 * `opts.source` the folder). What src/models/encoders.ts's loadEncoder calls.
 */
export function wav2vec2EncoderFromCheckpoint(
  config: Record<string, unknown>,
  tensors: Map<string, HostTensor>,
  file: string,
  opts: Wav2Vec2BuildOptions & { configSource?: string; source?: string } = {},
): Wav2Vec2Encoder & { unused: string[] } {
  const configSource = opts.configSource ?? 'config.json';
  const arch = wav2vec2Arch(parseWav2Vec2Config(config, configSource));
  const { weights, unused } = wav2vec2WeightsFromCheckpoint(arch, tensors, file, opts);
  return {
    ...wav2vec2Encoder(config, { ...opts, configSource, weights, source: opts.source ?? file }),
    unused,
  };
}

/** The family's entry in src/models/encoders.ts (structurally an EncoderFamily). */
export const wav2vec2Family = {
  modelTypes: WAV2VEC2_MODEL_TYPES,
  modality: 'speech' as const,
  create: (config: Record<string, unknown>, opts: Wav2Vec2EncoderOptions) => wav2vec2Encoder(config, opts),
  fromCheckpoint: (
    config: Record<string, unknown>,
    tensors: Map<string, HostTensor>,
    source: string,
    opts: Wav2Vec2BuildOptions & { configSource?: string; source?: string },
  ) => wav2vec2EncoderFromCheckpoint(config, tensors, source, opts),
};
