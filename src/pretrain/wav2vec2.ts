/**
 * Wav2Vec2ForPreTraining on the wav2vec2 family (wav2vec2, wav2vec2-conformer): the
 * quantiser reads HF's `extract_features` (the layer-normed CNN features), the context is
 * the transformer run with `masked_spec_embed` over the masked frames. Folders read and
 * written in Hugging Face's layout: the base model under `wav2vec2.` (or
 * `wav2vec2_conformer.`), `quantizer.*`, `project_q.*`, `project_hid.*` at the root.
 */
import type { HostTensor } from '../graph/runtime.js';
import type { InputDecl, TrainBuild } from '../graph/train.js';
import {
  type Wav2Vec2Arch,
  WAV2VEC2_PREFIXES,
  buildWav2Vec2,
  featExtractOutputLength,
  wav2vec2WeightsFromCheckpoint,
} from '../models/wav2vec2/index.js';
import type { PretrainingConfig } from '../models/wav2vec2/quantizer.js';
import {
  type GumbelSchedule,
  gumbelTemperature,
  wav2vec2PretrainingLoss,
} from '../models/wav2vec2/pretraining.js';

/** Model types with a Hugging Face *ForPreTraining class that has this objective. */
export const PRETRAINABLE_WAV2VEC2 = {
  wav2vec2: 'Wav2Vec2ForPreTraining',
  'wav2vec2-conformer': 'Wav2Vec2ConformerForPreTraining',
} as const;

const HEAD = /^(quantizer\.|project_q\.|project_hid\.)/;

export function wav2vec2PretrainingInputs(numNegatives: number): Record<string, InputDecl> {
  return {
    input_values: { dtype: 'float32', shape: ['batch', 'samples'] },
    attention_mask: { dtype: 'int64', shape: ['batch', 'samples'] },
    mask_time_indices: { dtype: 'int64', shape: ['batch', 'enc_frames'] },
    sampled_negative_indices: { dtype: 'int64', shape: ['batch', 'enc_frames', numNegatives] },
  };
}

export function wav2vec2PretrainingBuild(
  arch: Wav2Vec2Arch,
  config: PretrainingConfig,
  opts: { freezeFeatureEncoder?: boolean; schedule?: GumbelSchedule } = {},
): TrainBuild {
  return (g, inputs, ctx) => {
    const out = buildWav2Vec2(
      arch,
      { input_values: inputs.input_values, attention_mask: inputs.attention_mask },
      { maskTimeIndices: inputs.mask_time_indices, freezeFeatureEncoder: opts.freezeFeatureEncoder },
    );
    const [b, t] = [out.hidden.shape[0], out.hidden.shape[1]];
    const mask = inputs.mask_time_indices.withShape([b, t]);
    const temperature = ctx.step ? gumbelTemperature(ctx.step, opts.schedule) : (opts.schedule?.max ?? 2);
    const l = wav2vec2PretrainingLoss(
      {
        hidden: out.hidden,
        features: out.extractFeatures!,
        maskTimeIndices: mask,
        negatives: inputs.sampled_negative_indices.withShape([b, t, config.num_negatives]),
      },
      { config, temperature, training: true },
    );
    return {
      terms: {
        contrastive: { sum: l.contrastive, count: l.numMasked },
        diversity: { sum: l.diversity, count: l.numMasked, weight: config.diversity_loss_weight },
      },
      metrics: { perplexity: l.perplexity },
    };
  };
}

/**
 * The checkpoint's tensors as the pretraining graph's parameters: the base model through
 * the family's name map (any prefix, either weight-norm spelling; mismatches in one
 * error), `masked_spec_embed` and the objective's tensors where the folder has them (a
 * Wav2Vec2ForPreTraining checkpoint); the rest start from their initialisation.
 */
export function wav2vec2PretrainingParams(
  arch: Wav2Vec2Arch,
  tensors: Map<string, HostTensor>,
  file: string,
): Map<string, HostTensor> {
  const { weights } = wav2vec2WeightsFromCheckpoint(arch, tensors, file);
  const out = new Map(weights);
  const prefix = WAV2VEC2_PREFIXES[arch.modelType];
  for (const [k, v] of tensors) {
    if (HEAD.test(k)) out.set(k, v);
    else if (k === 'masked_spec_embed' || k === `${prefix}masked_spec_embed`) out.set('masked_spec_embed', v);
  }
  return out;
}

/** Graph names -> the *ForPreTraining checkpoint's names (the base model under its prefix). */
export function wav2vec2PretrainingNames(
  arch: Wav2Vec2Arch,
  params: Iterable<[string, HostTensor]>,
): [string, HostTensor][] {
  const prefix = WAV2VEC2_PREFIXES[arch.modelType];
  return [...params].map(([k, v]) => [HEAD.test(k) ? k : `${prefix}${k}`, v]);
}

/** Encoder frames of each utterance and of the padded batch. */
export function wav2vec2Frames(
  arch: Wav2Vec2Arch,
  samples: readonly number[],
): { lengths: number[]; T: number } {
  return {
    lengths: samples.map((n) => featExtractOutputLength(arch, n)),
    T: featExtractOutputLength(arch, Math.max(...samples)),
  };
}
