/**
 * The objective of Wav2Vec2ForPreTraining (wav2vec 2.0's self-supervised stage) on any
 * speech encoder that exposes (a) the features to quantise, unmasked, and (b) the
 * context states of the encoder run with the masked frames replaced by the mask
 * embedding. For wav2vec2 those are HF's `extract_features` and `last_hidden_state`;
 * for lemer's log-mel conformer, the subsampled features and the blocks' output.
 *
 * Hugging Face's semantics: quantiser over dropout(features) (perplexity over the masked
 * frames), `project_q` on the code vectors, `project_hid` on the context, the contrastive
 * loss summed over masked frames (cosine / temperature, target 0 against K sampled
 * negatives, collisions at -inf), the diversity loss ((GV - perplexity) / GV) times the
 * number of masked frames, loss = contrastive + diversity_loss_weight * diversity.
 * Parameter names at the caller's scope: `quantizer.*`, `project_q.*`, `project_hid.*`.
 */
import type { Tensor } from '../../graph/graph.js';
import * as ops from '../../graph/ops/index.js';
import { linear } from '../../graph/layers/linear.js';
import { contrastiveLoss, diversityLoss } from '../../graph/layers/ssl.js';
import { floatMask } from '../../graph/layers/pooling.js';
import { type PretrainingConfig, gumbelVectorQuantizer } from './quantizer.js';

export interface PretrainingParts {
  /** Context [B, T, H] from the encoder with masked frames replaced. */
  hidden: Tensor;
  /** Features [B, T, C] to quantise (not masked). */
  features: Tensor;
  /** [B, T] 1 where a frame is masked (HF's mask_time_indices). */
  maskTimeIndices: Tensor;
  /** [B, T, K] int64 into the flattened B * T frames (HF's sampled_negative_indices). */
  negatives: Tensor;
}

export interface PretrainingHeadOptions {
  config: PretrainingConfig;
  /** Gumbel temperature (number or scalar tensor); default 2 (HF's max_gumbel_temperature). */
  temperature?: number | Tensor;
  /** Quantiser form; default the graph's training flag. */
  training?: boolean;
  /** Fixed Gumbel uniforms (tests). */
  uniform?: Tensor;
}

export interface PretrainingLoss {
  /** HF's `loss`: contrastive + weight * diversity, both summed over masked frames. */
  loss: Tensor;
  contrastive: Tensor;
  /** HF's diversity_loss (already times the masked-frame count). */
  diversity: Tensor;
  perplexity: Tensor;
  /** Number of masked frames (float scalar): HF's training script divides the loss by it. */
  numMasked: Tensor;
  /** [B, T] packed codes and [B, T, G] group indices of the (unmasked) features. */
  code: Tensor;
  codes: Tensor;
}

export function wav2vec2PretrainingLoss(
  parts: PretrainingParts,
  opts: PretrainingHeadOptions,
): PretrainingLoss {
  const c = opts.config;
  const g = parts.hidden.graph;
  const training = opts.training ?? g.training;
  const transformer = linear(parts.hidden, 'project_hid', c.proj_codevector_dim);
  const was = g.training;
  g.training = training;
  try {
    const feats = ops.dropout(parts.features, c.feat_quantizer_dropout);
    const q = gumbelVectorQuantizer(feats, {
      numGroups: c.num_codevector_groups,
      numVars: c.num_codevectors_per_group,
      codevectorDim: c.codevector_dim,
      temperature: opts.temperature,
      mask: parts.maskTimeIndices,
      training,
      uniform: opts.uniform,
    });
    const quantized = linear(q.codevectors, 'project_q', c.proj_codevector_dim);
    const contrastive = contrastiveLoss(transformer, quantized, parts.negatives, parts.maskTimeIndices, {
      temperature: c.contrastive_logits_temperature,
    });
    const numMasked = ops.reduceSum(floatMask(parts.maskTimeIndices, g.floatType), [0, 1]);
    const diversity = diversityLoss(
      q.perplexity,
      c.num_codevector_groups,
      c.num_codevectors_per_group,
      numMasked,
    );
    const loss = ops.add(contrastive, ops.mul(diversity, c.diversity_loss_weight));
    return {
      loss,
      contrastive,
      diversity,
      perplexity: q.perplexity,
      numMasked,
      code: q.code,
      codes: q.codes,
    };
  } finally {
    g.training = was;
  }
}

export interface GumbelSchedule {
  max?: number;
  min?: number;
  decay?: number;
}

/**
 * HF's run_wav2vec2_pretraining_no_trainer schedule: tau = max(max * decay^step, min)
 * (defaults 2.0, 0.5, 0.999995), computed in-graph from the `step` input.
 */
export function gumbelTemperature(step: Tensor, s: GumbelSchedule = {}): Tensor {
  const g = step.graph;
  // exp(step * ln decay): ln decay is taken in float64 (0.999995 itself rounds badly in float32).
  const t = ops.mul(ops.exp(ops.mul(ops.cast(step, g.floatType), Math.log(s.decay ?? 0.999995))), s.max ?? 2);
  return ops.maximum(t, s.min ?? 0.5);
}
