/**
 * lemer's log-mel conformer as an `Encoder` (`model_type: lemer-conformer`):
 * `conformerEncoder(config)` builds one from a config.json object (random init, or with
 * `weights` under the graph's names); `conformerWeightsFromCheckpoint` maps a checkpoint's
 * tensors onto those names and reports every missing, unexpected and wrong-shaped tensor
 * in one error; `loadConformerFolder` reads a folder lemer wrote (config.json +
 * model.safetensors).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Graph, type ParamSpec, type Tensor } from '../../graph/graph.js';
import type { HostTensor } from '../../graph/runtime.js';
import type { InputDecl } from '../../graph/train.js';
import { fmtShape } from '../../graph/shape.js';
import { readSafetensors } from '../../graph/safetensors.js';
import type { Encoder } from '../encoder.js';
import {
  CONFORMER_MODEL_TYPE,
  type ConformerArch,
  MIN_CONFORMER_FRAMES,
  conformerArch,
  parseConformerConfig,
} from './config.js';
import { type ConformerBuildOptions, type ConformerOutput, buildConformer } from './modeling.js';
import { mapConformerName } from './names.js';

export * from './config.js';
export * from './names.js';
export {
  buildConformer,
  conformerFrameLengths,
  conv2dStride2,
  relPositionEmbeddings,
  type ConformerBuildOptions,
  type ConformerOutput,
} from './modeling.js';

export interface ConformerEncoderOptions {
  /** Weights under the graph's parameter names; null = random init. */
  weights?: Map<string, HostTensor> | null;
  source?: string;
  /** File name for config errors. */
  configSource?: string;
}

export interface ConformerEncoder extends Encoder {
  arch: ConformerArch;
  /** Fewest input frames that give one encoder frame (7). */
  minFrames: number;
  /** `build` with the conformer's extras: the subsampled features and a hook to mask them (pretraining). */
  buildWith(
    g: Graph,
    inputs: Record<string, Tensor>,
    opts: { training: boolean } & ConformerBuildOptions,
  ): ConformerOutput;
}

/** Graph inputs of a log-mel encoder. */
export function conformerInputs(melBins = 80): Record<string, InputDecl> {
  return {
    input_features: { dtype: 'float32', shape: ['batch', 'frames', melBins] },
    attention_mask: { dtype: 'int64', shape: ['batch', 'frames'] },
  };
}

/** The log-mel conformer Encoder from a config.json object (lemer's keys; defaults are small). */
export function conformerEncoder(
  config: Record<string, unknown> = {},
  opts: ConformerEncoderOptions = {},
): ConformerEncoder {
  const parsed = parseConformerConfig(config, opts.configSource ?? 'config.json');
  const arch = conformerArch(parsed);
  const buildWith: ConformerEncoder['buildWith'] = (g, inputs, o) => {
    const { input_features, attention_mask } = inputs;
    if (!input_features || !attention_mask)
      throw new Error(`lemer-conformer encoder: needs inputs 'input_features' and 'attention_mask'`);
    // Dropout and BatchNorm follow the caller's flag (a frozen encoder in a training graph runs in eval form).
    const was = g.training;
    g.training = o.training;
    try {
      return buildConformer(arch, { input_features, attention_mask }, o);
    } finally {
      g.training = was;
    }
  };
  return {
    modality: 'speech',
    modelType: arch.modelType,
    hiddenSize: arch.hiddenSize,
    numLayers: arch.numLayers,
    inputs: conformerInputs(arch.melBins),
    arch,
    minFrames: MIN_CONFORMER_FRAMES,
    build: (g, inputs, o) => {
      const { hidden, hiddenStates, mask } = buildWith(g, inputs, o);
      return { hidden, hiddenStates, mask };
    },
    buildWith,
    weights: opts.weights ?? null,
    config: { ...parsed },
    source:
      opts.source ??
      `lemer-conformer (random init, hidden ${arch.hiddenSize}, ${arch.numLayers} layers, ${arch.numHeads} heads)`,
  };
}

/** The encoder's parameters (names, shapes, trainable flags), from a scratch build. */
export function conformerParamSpecs(arch: ConformerArch): ParamSpec[] {
  const g = new Graph({ name: 'specs' });
  const i = conformerInputs(arch.melBins);
  buildConformer(arch, {
    input_features: g.input('input_features', i.input_features.dtype, i.input_features.shape),
    attention_mask: g.input('attention_mask', i.attention_mask.dtype, i.attention_mask.shape),
  });
  return [...g.params.values()].map((p) => p.spec);
}

/**
 * Maps checkpoint tensors onto the encoder's parameters; missing, unexpected and
 * wrong-shaped tensors are listed in one error naming `source`.
 */
export function conformerWeightsFromCheckpoint(
  arch: ConformerArch,
  tensors: Map<string, HostTensor>,
  source: string,
): { weights: Map<string, HostTensor>; unused: string[] } {
  const specs = new Map(conformerParamSpecs(arch).map((s) => [s.name, s]));
  const weights = new Map<string, HostTensor>();
  const unused: string[] = [];
  const unexpected: string[] = [];
  const wrong: string[] = [];
  for (const [key, t] of tensors) {
    const m = mapConformerName(key);
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
    weights.set(
      m.name,
      t.dtype === 'float32'
        ? t
        : { dtype: 'float32', shape: t.shape, data: Float32Array.from(t.data as Float64Array) },
    );
  }
  const missing = [...specs.keys()].filter((n) => !weights.has(n));
  if (missing.length || unexpected.length || wrong.length) {
    const parts: string[] = [];
    if (wrong.length) parts.push(`${wrong.length} wrong-shaped:\n  ${wrong.join('\n  ')}`);
    if (missing.length) parts.push(`${missing.length} missing:\n  ${missing.join('\n  ')}`);
    if (unexpected.length) parts.push(`${unexpected.length} unexpected:\n  ${unexpected.join('\n  ')}`);
    throw new Error(
      `${source}: the lemer-conformer checkpoint does not fit its config.json\n${parts.join('\n')}`,
    );
  }
  return { weights, unused };
}

/** A folder lemer wrote: config.json (model_type lemer-conformer) + model.safetensors. */
export function loadConformerFolder(dir: string): ConformerEncoder {
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath)) throw new Error(`${dir}: no config.json`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${cfgPath}: not valid JSON (${(e as Error).message})`);
  }
  const arch = conformerArch(parseConformerConfig(raw, cfgPath));
  const wPath = join(dir, 'model.safetensors');
  if (!existsSync(wPath)) throw new Error(`${dir}: no model.safetensors`);
  const { weights } = conformerWeightsFromCheckpoint(arch, readSafetensors(wPath).tensors, wPath);
  return conformerEncoder(raw, { weights, source: dir, configSource: cfgPath });
}

/** The log-mel conformer as an encoder family of the registry (src/models/encoders.ts). */
export const conformerFamily = {
  modelTypes: [CONFORMER_MODEL_TYPE] as const,
  modality: 'speech' as const,
  create: (config: Record<string, unknown>, opts: ConformerEncoderOptions) => conformerEncoder(config, opts),
  fromCheckpoint: (
    config: Record<string, unknown>,
    tensors: Map<string, HostTensor>,
    source: string,
    opts: { configSource?: string; source?: string },
  ): ConformerEncoder & { unused: string[] } => {
    const cfgSource = opts.configSource ?? 'config.json';
    const arch = conformerArch(parseConformerConfig(config, cfgSource));
    const { weights, unused } = conformerWeightsFromCheckpoint(arch, tensors, source);
    return { ...conformerEncoder(config, { weights, source: opts.source, configSource: cfgSource }), unused };
  },
};
