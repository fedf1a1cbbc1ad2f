/**
 * wav2vec 2.0's objective on lemer's log-mel conformer: the quantiser reads the
 * subsampled features (the conformer's "CNN features"), the masked spans of the same
 * features are replaced by `masked_spec_embed` before the blocks, and the blocks' output
 * is the context. Names at the root: the encoder's own, `masked_spec_embed`,
 * `quantizer.*`, `project_q.*`, `project_hid.*`.
 */
import type { Tensor } from '../graph/graph.js';
import * as ops from '../graph/ops/index.js';
import type { InputDecl, TrainBuild } from '../graph/train.js';
import { applySpanMask } from '../graph/layers/ssl.js';
import type { ConformerEncoder } from '../models/conformer/index.js';
import { subsampledLength } from '../models/conformer/index.js';
import type { PretrainingConfig } from '../models/wav2vec2/quantizer.js';
import {
  type GumbelSchedule,
  gumbelTemperature,
  wav2vec2PretrainingLoss,
} from '../models/wav2vec2/pretraining.js';

export function conformerPretrainingInputs(
  enc: ConformerEncoder,
  numNegatives: number,
): Record<string, InputDecl> {
  return {
    ...enc.inputs,
    mask_time_indices: { dtype: 'int64', shape: ['batch', 'enc_frames'] },
    sampled_negative_indices: { dtype: 'int64', shape: ['batch', 'enc_frames', numNegatives] },
  };
}

/**
 * The quantiser's input: the subsampled features normalised over channels without
 * parameters. wav2vec2 quantises layer-normed CNN features (its feature projection's
 * layer_norm), whose unit scale makes the weight_proj logits large against the Gumbel
 * noise; the conformer's subsampled features start tiny (std ~0.05) and would leave the
 * codes pure noise for thousands of steps.
 *
 * The targets carry no gradient into the subsampling (measured on the demo corpus: with
 * it, the subsampling learned to make every frame's code the same within 10 updates, so
 * that all negatives equal the positive and HF's loss, which drops such negatives, is 0).
 * The quantiser itself still trains; the subsampling trains through the context path.
 */
export function normalised(x: Tensor): Tensor {
  const g = x.graph;
  const d = x.shape[2] as number;
  const c = (v: number) => g.constant(new Float32Array(d).fill(v), [d]);
  return ops.layerNorm(x, c(1), c(0), 1e-5);
}

/** The training build: loss terms contrastive and diversity per masked frame (HF's loss / mask_time_indices.sum()). */
export function conformerPretrainingBuild(
  enc: ConformerEncoder,
  config: PretrainingConfig,
  schedule: GumbelSchedule = {},
): TrainBuild {
  const numNegatives = config.num_negatives;
  return (g, inputs, ctx) => {
    // The host-drawn masks are over the encoder's frames: give them its (derived) frame dim.
    let mask = inputs.mask_time_indices;
    const out = enc.buildWith(
      g,
      { input_features: inputs.input_features, attention_mask: inputs.attention_mask },
      {
        training: true,
        transformSubsampled: (h) => {
          mask = mask.withShape([h.shape[0], h.shape[1]]);
          return applySpanMask(
            h,
            mask,
            g.param('masked_spec_embed', [enc.hiddenSize], { init: { kind: 'uniform', low: 0, high: 1 } }),
          );
        },
      },
    );
    const temperature = ctx.step ? gumbelTemperature(ctx.step, schedule) : (schedule.max ?? 2);
    const l = wav2vec2PretrainingLoss(
      {
        hidden: out.hidden,
        features: normalised(ops.stopGradient(out.subsampled)),
        maskTimeIndices: mask,
        negatives: inputs.sampled_negative_indices.withShape([
          out.hidden.shape[0],
          out.hidden.shape[1],
          numNegatives,
        ]),
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

/** Encoder frames of each utterance and of the padded batch. */
export function conformerFrames(frameCounts: readonly number[]): { lengths: number[]; T: number } {
  return { lengths: frameCounts.map(subsampledLength), T: subsampledLength(Math.max(...frameCounts)) };
}
