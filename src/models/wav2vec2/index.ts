/**
 * The wav2vec2 family as lemer `Encoder`s. `wav2vec2Encoder(config)` builds one from a
 * config.json object (random init, or with `weights` under the graph's names);
 * `wav2vec2WeightsFromCheckpoint` maps a checkpoint's tensors onto those names and reports
 * every missing, unexpected and wrong-shaped tensor in one error.
 */
import { Graph, type ParamSpec } from '../../graph/graph.js';
import type { HostTensor } from '../../graph/runtime.js';
import type { InputDecl } from '../../graph/train.js';
import { fmtShape } from '../../graph/shape.js';
import type { Encoder } from '../encoder.js';
import {
  type Wav2Vec2Arch,
  type Wav2Vec2Config,
  minInputSamples,
  parseWav2Vec2Config,
  wav2vec2Arch,
} from './config.js';
import { type Wav2Vec2BuildOptions, buildWav2Vec2 } from './modeling.js';
import { mapWav2Vec2Name } from './names.js';

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
    opts,
  );
  return [...g.params.values()].map((p) => p.spec);
}

export interface MappedWeights {
  weights: Map<string, HostTensor>;
  /** Checkpoint tensors set aside on purpose (heads, quantizer, ...). */
  unused: string[];
}

/**
 * Maps checkpoint tensors (Hugging Face names, any base_model_prefix, either weight-norm
 * spelling) onto the encoder's parameters. Missing, unexpected and wrong-shaped tensors
 * are all listed in one error naming `source` (a config whose sizes disagree with the
 * weights shows up here as wrong shapes).
 */
export function wav2vec2WeightsFromCheckpoint(
  arch: Wav2Vec2Arch,
  tensors: Map<string, HostTensor>,
  source: string,
  opts: Wav2Vec2BuildOptions = {},
): MappedWeights {
  const specs = new Map(wav2vec2ParamSpecs(arch, opts).map((s) => [s.name, s]));
  const weights = new Map<string, HostTensor>();
  const unused: string[] = [];
  const unexpected: string[] = [];
  const wrong: string[] = [];
  for (const [key, t] of tensors) {
    const m = mapWav2Vec2Name(arch.modelType, key);
    if (m.kind === 'unused') {
      unused.push(key);
      continue;
    }
    const spec = specs.get(m.name);
    if (!spec) {
      unexpected.push(key);
      continue;
    }
    if (spec.shape.join() !== t.shape.join()) {
      wrong.push(`${key}: checkpoint ${fmtShape(t.shape)}, config gives ${fmtShape(spec.shape)}`);
      continue;
    }
    if (weights.has(m.name)) {
      unexpected.push(`${key} (a second tensor for '${m.name}')`);
      continue;
    }
    weights.set(m.name, t.dtype === spec.dtype ? t : convertFloat(t, spec.dtype));
  }
  const missing = [...specs.keys()].filter((n) => !weights.has(n));
  if (missing.length || unexpected.length || wrong.length) {
    const parts: string[] = [];
    if (wrong.length) parts.push(`${wrong.length} wrong-shaped:\n  ${wrong.join('\n  ')}`);
    if (missing.length) parts.push(`${missing.length} missing:\n  ${missing.join('\n  ')}`);
    if (unexpected.length) parts.push(`${unexpected.length} unexpected:\n  ${unexpected.join('\n  ')}`);
    throw new Error(
      `${source}: the ${arch.modelType} checkpoint does not fit its config.json\n${parts.join('\n')}`,
    );
  }
  return { weights, unused };
}

function convertFloat(t: HostTensor, dtype: ParamSpec['dtype']): HostTensor {
  if (dtype === 'float64') return { dtype, shape: t.shape, data: Float64Array.from(t.data as Float32Array) };
  if (dtype === 'float32') return { dtype, shape: t.shape, data: Float32Array.from(t.data as Float64Array) };
  throw new Error(`cannot convert a ${t.dtype} tensor to ${dtype}`);
}

/**
 * An encoder with weights from a Hugging Face checkpoint: `config` is config.json as read,
 * `tensors` the checkpoint's tensors (any base_model_prefix, either weight-norm spelling),
 * `source` the folder (named in errors). What the folder loader calls for these model types.
 */
export function wav2vec2EncoderFromCheckpoint(
  config: Record<string, unknown>,
  tensors: Map<string, HostTensor>,
  source: string,
  opts: Wav2Vec2BuildOptions = {},
): Wav2Vec2Encoder & { unused: string[] } {
  const arch = wav2vec2Arch(parseWav2Vec2Config(config, `${source}/config.json`));
  const { weights, unused } = wav2vec2WeightsFromCheckpoint(arch, tensors, source, opts);
  return { ...wav2vec2Encoder(config, { ...opts, weights, source }), unused };
}
