/**
 * BERT and RoBERTa as lemer `Encoder`s: `bertEncoder(config)` from a config.json object
 * (random init, or with `weights` under the graph's names), `bertEncoderFromCheckpoint`
 * with a checkpoint's tensors mapped and checked. Text inputs longer than the position
 * table are refused by `checkInputs` (and at build time when the length is static).
 */
import { Graph, type ParamSpec } from '../../graph/graph.js';
import type { HostTensor } from '../../graph/runtime.js';
import type { InputDecl } from '../../graph/train.js';
import type { Encoder } from '../encoder.js';
import { mapWeights } from '../hf/map.js';
import { HfLoadError } from '../hf/config.js';
import { type BertArch, bertArch, parseBertConfig, BERT_MODEL_TYPES } from './config.js';
import { buildBert } from './modeling.js';
import { bertNameOptions } from './names.js';

export * from './config.js';
export * from './names.js';
export { buildBert, positionIds, type BertInputs } from './modeling.js';

export interface BertEncoderOptions {
  weights?: Map<string, HostTensor> | null;
  source?: string;
  /** Names config.json in errors. */
  configSource?: string;
}

export interface BertEncoder extends Encoder {
  arch: BertArch;
  /** Longest input (tokens, special tokens included) the position table allows. */
  maxLength: number;
  /** Throws a clear error when feeds do not fit (too long, token ids or types outside the tables). */
  checkInputs(feeds: Record<string, HostTensor>): void;
}

/** Graph inputs of a text encoder; RoBERTa-style configs with one token type take no token_type_ids. */
export function bertInputs(arch: BertArch): Record<string, InputDecl> {
  const i: Record<string, InputDecl> = {
    input_ids: { dtype: 'int64', shape: ['batch', 'tokens'] },
    attention_mask: { dtype: 'int64', shape: ['batch', 'tokens'] },
  };
  if (arch.typeVocabSize > 1) i.token_type_ids = { dtype: 'int64', shape: ['batch', 'tokens'] };
  return i;
}

export function bertEncoder(config: Record<string, unknown>, opts: BertEncoderOptions = {}): BertEncoder {
  const configSource = opts.configSource ?? 'config.json';
  const arch = bertArch(parseBertConfig(config, configSource));
  const source =
    opts.source ??
    `${arch.modelType} (random init, hidden ${arch.hiddenSize}, ${arch.numLayers} layers, vocabulary ${arch.vocabSize})`;
  const inputs = bertInputs(arch);
  return {
    modality: 'text',
    modelType: arch.modelType,
    hiddenSize: arch.hiddenSize,
    numLayers: arch.numLayers,
    inputs,
    arch,
    maxLength: arch.maxLength,
    build: (g, i, { training }) => {
      if (!i.input_ids || !i.attention_mask)
        throw new Error(`${arch.modelType} encoder: needs inputs 'input_ids' and 'attention_mask'`);
      return buildBert(
        arch,
        {
          input_ids: i.input_ids,
          attention_mask: i.attention_mask,
          token_type_ids: inputs.token_type_ids ? i.token_type_ids : undefined,
        },
        { training },
      );
    },
    checkInputs: (feeds) => checkBertInputs(arch, feeds, configSource),
    weights: opts.weights ?? null,
    config: { ...config },
    source,
  };
}

/** Run-time checks the graph cannot make: ONNX Runtime's Gather would fail on an out-of-range id with no hint. */
export function checkBertInputs(
  arch: BertArch,
  feeds: Record<string, HostTensor>,
  configSource: string,
): void {
  const ids = feeds.input_ids;
  if (!ids) throw new HfLoadError(`${arch.modelType} encoder: no input_ids`);
  const len = ids.shape[1];
  if (len > arch.maxLength)
    throw new HfLoadError(
      `${configSource}: the text is ${len} tokens long, longer than the position table allows ` +
        `(max_position_embeddings ${arch.maxPositions}${arch.paddingOffsetPositions ? `, positions start after pad_token_id ${arch.padTokenId}` : ''}: at most ${arch.maxLength} tokens); truncate it`,
    );
  const check = (name: string, limit: number, key: string) => {
    const t = feeds[name];
    if (!t) return;
    for (const v of t.data as BigInt64Array)
      if (v < 0n || v >= BigInt(limit))
        throw new HfLoadError(`${configSource}: ${name} holds ${v}, outside [0, ${limit}) (${key} ${limit})`);
  };
  check('input_ids', arch.vocabSize, 'vocab_size');
  if (arch.typeVocabSize > 1) check('token_type_ids', arch.typeVocabSize, 'type_vocab_size');
}

/** The encoder's parameters (names, shapes), from a scratch build. */
export function bertParamSpecs(arch: BertArch): ParamSpec[] {
  const g = new Graph({ name: 'specs' });
  const decl = bertInputs(arch);
  const t = (n: string) => g.input(n, decl[n].dtype, decl[n].shape);
  buildBert(
    arch,
    {
      input_ids: t('input_ids'),
      attention_mask: t('attention_mask'),
      token_type_ids: decl.token_type_ids ? t('token_type_ids') : undefined,
    },
    { training: false },
  );
  return [...g.params.values()].map((p) => p.spec);
}

/** An encoder with a checkpoint's tensors mapped onto its parameters (one error lists every mismatch). */
export function bertEncoderFromCheckpoint(
  config: Record<string, unknown>,
  tensors: Map<string, HostTensor>,
  file: string,
  opts: BertEncoderOptions = {},
): BertEncoder & { unused: string[] } {
  const configSource = opts.configSource ?? 'config.json';
  const arch = bertArch(parseBertConfig(config, configSource));
  const { weights, unused } = mapWeights(tensors, bertParamSpecs(arch), {
    ...bertNameOptions(arch.modelType, file),
    against: configSource,
  });
  return { ...bertEncoder(config, { ...opts, weights, source: opts.source ?? file }), unused };
}

/** The registry entry (src/models/encoders.ts). */
export const bertFamily = {
  modelTypes: BERT_MODEL_TYPES,
  modality: 'text' as const,
  create: (config: Record<string, unknown>, opts: BertEncoderOptions) => bertEncoder(config, opts),
  fromCheckpoint: bertEncoderFromCheckpoint,
};
