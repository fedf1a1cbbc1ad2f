/**
 * Hugging Face tensor names of BERT / RoBERTa checkpoints -> the graph's parameter names.
 * The graph's names are the base model's (`embeddings.*`, `encoder.layer.*`); heads keep
 * it under `bert.` / `roberta.` (BertForMaskedLM, BertForSequenceClassification,
 * RobertaForMaskedLM, ...). Old TF-converted checkpoints spell LayerNorm's parameters
 * `gamma` / `beta`. Pooler, heads and buffers are set aside, listed as unused.
 */
import type { MapWeightsOptions } from '../hf/map.js';
import type { BertModelType } from './config.js';

export const BERT_PREFIXES: Record<BertModelType, string[]> = {
  bert: ['bert.'],
  roberta: ['roberta.'],
};

export const BERT_ALIASES: [RegExp, string][] = [
  [/LayerNorm\.gamma$/, 'LayerNorm.weight'],
  [/LayerNorm\.beta$/, 'LayerNorm.bias'],
];

/** Present in checkpoints, not part of the encoder: the pooler, heads and saved buffers. */
export const BERT_UNUSED: RegExp[] = [
  /^pooler\./,
  /^cls\./, // BertForMaskedLM / BertForPreTraining heads
  /^lm_head\./, // RobertaForMaskedLM
  /^classifier\./, // *ForSequenceClassification, *ForTokenClassification
  /^qa_outputs\./, // *ForQuestionAnswering
  /^embeddings\.position_ids$/, // buffer persisted by older transformers versions
  /^embeddings\.token_type_ids$/,
];

export function bertNameOptions(modelType: BertModelType, file: string): MapWeightsOptions {
  return { prefixes: BERT_PREFIXES[modelType], aliases: BERT_ALIASES, ignorable: BERT_UNUSED, file };
}
