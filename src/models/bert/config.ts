/**
 * config.json of BERT and RoBERTa (`model_type` bert, roberta) with Hugging Face's
 * snake_case keys and the defaults of BertConfig / RobertaConfig (bert-base sizes). Keys
 * that do not change the encoder graph (architectures, classifier settings, id2label,
 * use_cache, ...) pass through; graph-changing values lemer does not build (relative
 * position embeddings, decoder use, cross-attention) are rejected naming file and key.
 */
import { z } from 'zod';
import { ConfigError, formatIssues } from '../../config/load.js';

export const BERT_MODEL_TYPES = ['bert', 'roberta'] as const;
export type BertModelType = (typeof BERT_MODEL_TYPES)[number];

/** Activations lemer builds, under Hugging Face's ACT2FN names. */
export const BERT_ACTIVATIONS = ['gelu', 'gelu_python', 'gelu_new', 'gelu_pytorch_tanh', 'relu'] as const;
export type BertActivation = (typeof BERT_ACTIVATIONS)[number];

const posInt = z.number().int().positive();
const prob = z.number().min(0).max(1);

const common = {
  hidden_size: posInt.default(768),
  num_hidden_layers: posInt.default(12),
  num_attention_heads: posInt.default(12),
  intermediate_size: posInt.default(3072),
  hidden_act: z.enum(BERT_ACTIVATIONS).default('gelu'),
  hidden_dropout_prob: prob.default(0.1),
  attention_probs_dropout_prob: prob.default(0.1),
  initializer_range: z.number().positive().default(0.02),
  // Not built: relative_key / relative_key_query add learned distance embeddings to the scores.
  position_embedding_type: z.literal('absolute').default('absolute'),
  is_decoder: z.literal(false).default(false),
  add_cross_attention: z.literal(false).default(false),
  chunk_size_feed_forward: z.literal(0).default(0),
};

const bertSchema = z.looseObject({
  model_type: z.literal('bert'),
  vocab_size: posInt.default(30522),
  max_position_embeddings: posInt.default(512),
  type_vocab_size: posInt.default(2),
  layer_norm_eps: z.number().positive().default(1e-12),
  pad_token_id: z.number().int().nonnegative().default(0),
  ...common,
});

const robertaSchema = z.looseObject({
  model_type: z.literal('roberta'),
  vocab_size: posInt.default(50265),
  max_position_embeddings: posInt.default(512),
  type_vocab_size: posInt.default(2),
  layer_norm_eps: z.number().positive().default(1e-12),
  pad_token_id: z.number().int().nonnegative().default(1),
  bos_token_id: z.number().int().nonnegative().default(0),
  eos_token_id: z.number().int().nonnegative().default(2),
  ...common,
});

export type BertConfig = z.infer<typeof bertSchema> | z.infer<typeof robertaSchema>;

/** The normalised view the graph builder reads. */
export interface BertArch {
  modelType: BertModelType;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  hiddenAct: BertActivation;
  hiddenDropout: number;
  attentionDropout: number;
  maxPositions: number;
  typeVocabSize: number;
  layerNormEps: number;
  padTokenId: number;
  initializerRange: number;
  /**
   * RoBERTa: position ids count real tokens from pad_token_id + 1 (Hugging Face's
   * create_position_ids_from_input_ids); BERT: 0, 1, 2, ...
   */
  paddingOffsetPositions: boolean;
  /** Longest input the position table allows (RoBERTa: max_position_embeddings - pad_token_id - 1). */
  maxLength: number;
}

/** Validates a config.json object of model_type bert or roberta. */
export function parseBertConfig(raw: unknown, source = 'config.json'): BertConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new ConfigError(source, ['expected a JSON object']);
  const type = (raw as { model_type?: unknown }).model_type ?? 'bert';
  const schema = type === 'roberta' ? robertaSchema : bertSchema;
  const r = schema.safeParse({ ...raw, model_type: type }, { reportInput: true });
  if (!r.success) throw new ConfigError(source, formatIssues(r.error.issues));
  const c = r.data;
  const issues: string[] = [];
  if (c.hidden_size % c.num_attention_heads !== 0)
    issues.push(
      `hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`,
    );
  if (c.pad_token_id >= c.vocab_size)
    issues.push(`pad_token_id ${c.pad_token_id} is outside the vocabulary (vocab_size ${c.vocab_size})`);
  if (c.model_type === 'roberta' && c.max_position_embeddings <= c.pad_token_id + 1)
    issues.push(
      `max_position_embeddings ${c.max_position_embeddings} leaves no positions past pad_token_id ${c.pad_token_id}`,
    );
  if (issues.length) throw new ConfigError(source, issues);
  return c;
}

export function bertArch(c: BertConfig): BertArch {
  const roberta = c.model_type === 'roberta';
  return {
    modelType: c.model_type,
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    intermediateSize: c.intermediate_size,
    hiddenAct: c.hidden_act,
    hiddenDropout: c.hidden_dropout_prob,
    attentionDropout: c.attention_probs_dropout_prob,
    maxPositions: c.max_position_embeddings,
    typeVocabSize: c.type_vocab_size,
    layerNormEps: c.layer_norm_eps,
    padTokenId: c.pad_token_id,
    initializerRange: c.initializer_range,
    paddingOffsetPositions: roberta,
    maxLength: roberta ? c.max_position_embeddings - c.pad_token_id - 1 : c.max_position_embeddings,
  };
}
