/**
 * The loss terms of LE-MER (Eq 12): L = mu1 L_m + mu2 L_c + mu3 L_g^t + mu4 L_g^s.
 *
 * - L_m = CE(y, softmax(logits)) of the classifier;
 * - L_g^t, L_g^s = CE(y, p_g) with p_g = softmax(s * masked-mean(G)): taken from the logits
 *   (LogSoftmax), the same value as crossEntropyFromProbs(p_g) without its log(0) clamp;
 * - L_c = MSE between A_l and A_r over valid (token, frame) cells only.
 *
 * Class weights (class-balanced training) weight the CE terms per row by the weight of the
 * row's class, reduced as torch does: sum(w * loss) / sum(w). L_c is not weighted.
 * The `…Term` forms give each as { sum, count } for the Trainer, which combines
 * micro-batches into the full batch's value (a weighted mean is not a mean of chunk means).
 */
import type { Tensor } from '../../graph/graph.js';
import * as ops from '../../graph/ops/index.js';
import {
  crossEntropy,
  crossEntropyTerm,
  maskedMse,
  maskedMseTerm,
  type SumCount,
} from '../../graph/layers/losses.js';
import type { LossWeights } from './config.js';

/** Per-row weights [B] from per-class weights [C] (a constant or an input) and labels [B]. */
export function rowWeights(classWeights: Tensor | undefined, labels: Tensor): Tensor | undefined {
  return classWeights ? ops.gather(classWeights, labels, 0) : undefined;
}

/** CE(y, softmax(logits)), optionally class-weighted. */
export function classificationLoss(logits: Tensor, labels: Tensor, weights?: Tensor): Tensor {
  return crossEntropy(logits, labels, { weights });
}

/** `classificationLoss` as a Trainer term { sum: sum(w l), count: sum(w) }: exact over micro-batches. */
export function classificationTerm(logits: Tensor, labels: Tensor, weights?: Tensor): SumCount {
  return crossEntropyTerm(logits, labels, { weights });
}

/** `constraintLoss` as a Trainer term { sum over valid cells, count of valid cells }. */
export function constraintTerm(al: Tensor, ar: Tensor, pairMask: Tensor): SumCount {
  return maskedMseTerm(al, ar, pairMask);
}

/** L_c = masked MSE of A_l against A_r over `pairMask` cells. */
export function constraintLoss(al: Tensor, ar: Tensor, pairMask: Tensor): Tensor {
  return maskedMse(al, ar, pairMask);
}

/** The terms a model has (absent ones are not part of its loss). */
export interface LossTerms {
  main: Tensor;
  constraint?: Tensor;
  textLabel?: Tensor;
  speechLabel?: Tensor;
}

/** Metric names of the terms (as the training loop logs them). */
export const LOSS_METRICS = {
  main: 'loss_main',
  constraint: 'loss_constraint',
  textLabel: 'loss_text_label',
  speechLabel: 'loss_speech_label',
} as const;

/** Eq 12 over the terms present; mu of absent terms is ignored. */
export function totalLoss(terms: LossTerms, mu: LossWeights): Tensor {
  let total = mu.fusion === 1 ? terms.main : ops.mul(terms.main, mu.fusion);
  const more: [Tensor | undefined, number][] = [
    [terms.constraint, mu.constraint],
    [terms.textLabel, mu.textLabel],
    [terms.speechLabel, mu.speechLabel],
  ];
  for (const [t, w] of more) if (t && w !== 0) total = ops.add(total, ops.mul(t, w));
  return total;
}
