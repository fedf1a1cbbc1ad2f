/**
 * Hugging Face tensor names of the wav2vec2 family -> lemer's graph parameter names. The
 * graph's names are the base model's (`feature_extractor.*`, `feature_projection.*`,
 * `encoder.*`), so the map only strips the head's `base_model_prefix`, folds the newer
 * weight-norm spelling onto the older one and sets aside what lemer does not use on
 * purpose (heads, quantizer, pretraining projections, the conformer's never-applied
 * positional conv). Everything else is for the loader's missing / unexpected /
 * wrong-shape report.
 */
import { graphName } from '../hf/map.js';
import type { Wav2Vec2ModelType } from './config.js';

/** `base_model_prefix` of each model type's heads (Wav2Vec2ForCTC keeps the base under `wav2vec2.`). */
export const WAV2VEC2_PREFIXES: Record<Wav2Vec2ModelType, string> = {
  wav2vec2: 'wav2vec2.',
  hubert: 'hubert.',
  wavlm: 'wavlm.',
  'wav2vec2-conformer': 'wav2vec2_conformer.',
};

/** torch.nn.utils.parametrizations.weight_norm's names -> torch.nn.utils.weight_norm's (the graph's). */
const WEIGHT_NORM_ALIASES: (readonly [RegExp, string])[] = [
  [/\.parametrizations\.weight\.original0$/, '.weight_g'],
  [/\.parametrizations\.weight\.original1$/, '.weight_v'],
];

/**
 * Tensors a checkpoint may hold that the encoder does not use: heads (CTC, classification,
 * x-vector), Wav2Vec2ForPreTraining's quantizer and projections (read by the quantizer,
 * not the encoder), HuBERT pretraining's label embeddings, the time-mask embedding of
 * fine-tuning, the weighted layer sum, BatchNorm's step counter.
 */
const UNUSED: RegExp[] = [
  /^lm_head\./,
  /^projector\./,
  /^classifier\./,
  /^tdnn\./,
  /^feature_extractor\.(weight|bias)$/, // the x-vector head's top-level linear, not the conv stack
  /^objective\./,
  /^layer_weights$/,
  /^quantizer\./,
  /^project_hid\./,
  /^project_q\./,
  /^final_proj\./,
  /^label_embs_concat$/,
  /^masked_spec_embed$/,
  /^dropout_features\./,
  /\.num_batches_tracked$/,
];

/**
 * The conformer has `encoder.pos_conv_embed.*` in every checkpoint but never applies it
 * (HF and fairseq alike); rotary checkpoints also hold the `inv_freq` buffer, which lemer
 * recomputes from `rotary_embedding_base`.
 */
const CONFORMER_UNUSED = [/^encoder\.pos_conv_embed\./, /^encoder\.embed_positions\.inv_freq$/];

/** How src/models/hf's mapWeights reads a checkpoint of this model type. */
export function wav2vec2NameOptions(modelType: Wav2Vec2ModelType): {
  prefixes: string[];
  aliases: (readonly [RegExp, string])[];
  ignorable: RegExp[];
} {
  return {
    prefixes: [WAV2VEC2_PREFIXES[modelType]],
    aliases: WEIGHT_NORM_ALIASES,
    ignorable: modelType === 'wav2vec2-conformer' ? [...UNUSED, ...CONFORMER_UNUSED] : UNUSED,
  };
}

export type NameMapping = { kind: 'param'; name: string } | { kind: 'unused' };

/** Where a checkpoint tensor goes: a graph parameter name, or set aside. */
export function mapWav2Vec2Name(modelType: Wav2Vec2ModelType, key: string): NameMapping {
  const opts = wav2vec2NameOptions(modelType);
  const name = graphName(key, opts);
  return opts.ignorable.some((r) => r.test(name)) ? { kind: 'unused' } : { kind: 'param', name };
}
