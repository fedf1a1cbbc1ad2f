/**
 * Losses and metrics of the LE-MER head: cross-entropy from logits and from
 * probabilities, the masked MSE of the attention constraint, and accuracy.
 * Labels are int64 (or int32) class indices.
 */
import type { DType } from '../dtype.js';
import type { Tensor } from '../graph.js';
import { fmtShape } from '../shape.js';
import {
  argmax,
  cast,
  div,
  equal,
  expand,
  log,
  logSoftmax,
  maximum,
  mul,
  neg,
  not,
  rangeAlong,
  stopGradient,
  reduceMean,
  reduceSum,
  sub,
  unsqueeze,
} from '../ops/index.js';
import { node1, requireFloat } from '../ops/util.js';
import { dimsMatch, floatMask } from './pooling.js';

export type Reduction = 'mean' | 'sum' | 'none';

export interface ClassificationLossOptions {
  /**
   * Per-sample weights, labels' shape. 'mean' is then the weighted mean
   * sum(w * loss) / sum(w) (torch's convention for class weights), so a weight of 0
   * drops a row (a padded batch slot) from both sums.
   */
  weights?: Tensor;
  /** Rows whose label equals this are dropped (weight 0), like torch's ignore_index. */
  ignoreIndex?: number;
  reduction?: Reduction;
}

export interface CrossEntropyOptions extends ClassificationLossOptions {
  /** torch's label_smoothing: the target is (1 - s) one-hot + s / C. */
  labelSmoothing?: number;
}

function checkLabels(op: string, scores: Tensor, labels: Tensor): Tensor {
  const g = scores.graph;
  requireFloat(op, scores);
  if (labels.dtype !== 'int64' && labels.dtype !== 'int32')
    throw g.error(op, `labels must be int64 class indices, got ${labels.dtype}`, [scores, labels]);
  const lead = scores.shape.slice(0, -1);
  if (scores.rank < 2 || labels.rank !== lead.length || !lead.every((d, i) => dimsMatch(d, labels.shape[i])))
    throw g.error(
      op,
      `scores [..., C] need labels of shape ${fmtShape(lead)}, got ${fmtShape(labels.shape)}`,
      [scores, labels],
    );
  return labels.dtype === 'int64' ? labels : cast(labels, 'int64');
}

/** One-hot [..., C] of int64 labels [...] against the last axis of `like` [..., C]. */
export function oneHot(labels: Tensor, like: Tensor, dtype: DType = like.dtype): Tensor {
  return cast(equal(unsqueeze(labels, -1), rangeAlong(like, like.rank - 1)), dtype);
}

/** Weights (sample weights x not-ignored) as floats of `dtype`, or null when every row counts 1. */
function rowWeights(
  op: string,
  labels: Tensor,
  dtype: DType,
  opts: ClassificationLossOptions,
): Tensor | null {
  let w: Tensor | null = null;
  if (opts.weights) {
    const ws = opts.weights;
    if (ws.rank !== labels.rank || !ws.shape.every((d, i) => dimsMatch(d, labels.shape[i])))
      throw labels.graph.error(op, `weights must have the labels' shape ${fmtShape(labels.shape)}`, [
        labels,
        ws,
      ]);
    w = floatMask(ws, dtype);
  }
  if (opts.ignoreIndex !== undefined) {
    const keep = cast(not(equal(labels, labels.graph.scalar(opts.ignoreIndex, 'int64'))), dtype);
    w = w ? mul(w, keep) : keep;
  }
  return w;
}

function reduceRows(perRow: Tensor, w: Tensor | null, reduction: Reduction): Tensor {
  const all = Array.from({ length: perRow.rank }, (_, i) => i);
  const weighted = w ? mul(perRow, w) : perRow;
  if (reduction === 'none') return weighted;
  if (reduction === 'sum') return all.length ? reduceSum(weighted, all) : weighted;
  if (!w) return all.length ? reduceMean(perRow, all) : perRow;
  return div(reduceSum(weighted, all), maximum(reduceSum(w, all), 1e-12));
}

/**
 * A weighted mean as its two sums, sum(w * loss) and sum(w): the form the Trainer's loss
 * terms take (train.ts `LossTerm`), so that micro-batches combine into the full batch's
 * weighted mean instead of a mean of per-chunk means.
 */
export interface SumCount {
  sum: Tensor;
  count: Tensor;
}

function sumCount(perRow: Tensor, w: Tensor | null): SumCount {
  const all = Array.from({ length: perRow.rank }, (_, i) => i);
  const total = (t: Tensor) => (all.length ? reduceSum(t, all) : t);
  if (w) return { sum: total(mul(perRow, w)), count: stopGradient(total(w)) };
  const n = perRow.shape.every((d) => typeof d === 'number')
    ? perRow.graph.scalar(
        perRow.shape.reduce<number>((a, d) => a * (d as number), 1),
        perRow.dtype,
      )
    : cast(node1(perRow.graph, 'Size', [perRow], 'int64', []), perRow.dtype);
  return { sum: total(perRow), count: n };
}

/** `crossEntropy` as { sum, count } (weights and ignored labels included) for a Trainer loss term. */
export function crossEntropyTerm(logits: Tensor, labels: Tensor, opts: CrossEntropyOptions = {}): SumCount {
  const lab = checkLabels('crossEntropy', logits, labels);
  const w = rowWeights('crossEntropy', lab, logits.dtype, opts);
  return sumCount(
    crossEntropy(logits, labels, { ...opts, weights: undefined, ignoreIndex: undefined, reduction: 'none' }),
    w,
  );
}

/** `crossEntropyFromProbs` as { sum, count } for a Trainer loss term. */
export function crossEntropyFromProbsTerm(
  probs: Tensor,
  labels: Tensor,
  opts: ClassificationLossOptions & { eps?: number } = {},
): SumCount {
  const lab = checkLabels('crossEntropyFromProbs', probs, labels);
  const w = rowWeights('crossEntropyFromProbs', lab, probs.dtype, opts);
  return sumCount(
    crossEntropyFromProbs(probs, labels, {
      ...opts,
      weights: undefined,
      ignoreIndex: undefined,
      reduction: 'none',
    }),
    w,
  );
}

/** `accuracy` as { sum, count } (a ratio metric combined over micro-batches). */
export function accuracyTerm(logits: Tensor, labels: Tensor, opts: ClassificationLossOptions = {}): SumCount {
  const lab = checkLabels('accuracy', logits, labels);
  const correct = cast(equal(argmax(logits, -1), lab), logits.dtype);
  return sumCount(correct, rowWeights('accuracy', lab, logits.dtype, opts));
}

/**
 * Cross-entropy of logits [..., C] against int64 labels [...], from LogSoftmax (stable
 * for any logit scale) and a one-hot product (its gradient is softmax - target).
 */
export function crossEntropy(logits: Tensor, labels: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const lab = checkLabels('crossEntropy', logits, labels);
  const s = opts.labelSmoothing ?? 0;
  if (!(s >= 0 && s <= 1))
    throw logits.graph.error('crossEntropy', `labelSmoothing must be in [0, 1], got ${s}`, [logits]);
  const logp = logSoftmax(logits, -1);
  let perRow = neg(reduceSum(mul(oneHot(lab, logits), logp), -1));
  if (s > 0) perRow = sub(mul(perRow, 1 - s), mul(reduceMean(logp, -1), s));
  return reduceRows(perRow, rowWeights('crossEntropy', lab, logits.dtype, opts), opts.reduction ?? 'mean');
}

/**
 * Cross-entropy of probabilities [..., C] (a head that ends in a softmax, like LE-MER's
 * p_g = softmax(mean(G))) against labels: -log(max(p_y, eps)). The clamp keeps a zero
 * probability finite (its gradient is then 0).
 */
export function crossEntropyFromProbs(
  probs: Tensor,
  labels: Tensor,
  opts: ClassificationLossOptions & { eps?: number } = {},
): Tensor {
  const lab = checkLabels('crossEntropyFromProbs', probs, labels);
  const py = reduceSum(mul(oneHot(lab, probs), probs), -1);
  const perRow = neg(log(maximum(py, opts.eps ?? 1e-12)));
  return reduceRows(
    perRow,
    rowWeights('crossEntropyFromProbs', lab, probs.dtype, opts),
    opts.reduction ?? 'mean',
  );
}

/**
 * Mean squared error between a and b over valid cells only: sum(m (a-b)^2) / sum(m),
 * m broadcast to a's shape (LE-MER's L_c between A_l and A_r [B, Tt, Ts] with
 * m = outerMask(textMask, speechMask)). The mask must have a's rank (size-1 dims
 * broadcast). No valid cell gives 0. 'sum' returns the masked sum.
 */
export function maskedMse(
  a: Tensor,
  b: Tensor,
  mask: Tensor,
  opts: { reduction?: 'mean' | 'sum' } = {},
): Tensor {
  const g = a.graph;
  requireFloat('maskedMse', a, b);
  if (a.rank !== b.rank || !a.shape.every((d, i) => dimsMatch(d, b.shape[i])))
    throw g.error('maskedMse', `a and b differ in shape: ${fmtShape(a.shape)} vs ${fmtShape(b.shape)}`, [
      a,
      b,
    ]);
  if (mask.rank !== a.rank || !mask.shape.every((d, i) => d === 1 || dimsMatch(d, a.shape[i])))
    throw g.error(
      'maskedMse',
      `mask ${fmtShape(mask.shape)} must have a's rank and broadcast to ${fmtShape(a.shape)} (build [B, Tq, Tk] masks with outerMask)`,
      [a, b, mask],
    );
  const m = floatMask(mask, a.dtype);
  const d = sub(a, b);
  const all = Array.from({ length: a.rank }, (_, i) => i);
  const total = reduceSum(mul(mul(d, d), m), all);
  if ((opts.reduction ?? 'mean') === 'sum') return total;
  const count = reduceSum(expand(m, a), all);
  return div(total, maximum(count, 1e-12));
}

/** `maskedMse` as { sum, count } (count = valid cells) for a Trainer loss term. */
export function maskedMseTerm(a: Tensor, b: Tensor, mask: Tensor): SumCount {
  const sum = maskedMse(a, b, mask, { reduction: 'sum' });
  const m = floatMask(mask, a.dtype);
  const all = Array.from({ length: a.rank }, (_, i) => i);
  // Cells per mask cell along the dims the mask broadcasts over (known from a's static shape).
  let count = reduceSum(m, all);
  for (let i = 0; i < a.rank; i++)
    if (mask.shape[i] === 1 && a.shape[i] !== 1) {
      const d = a.shape[i];
      count =
        typeof d === 'number'
          ? mul(count, d)
          : mul(
              count,
              cast(
                node1(
                  a.graph,
                  'Gather',
                  [node1(a.graph, 'Shape', [a], 'int64', [a.rank]), a.graph.scalar(i, 'int64')],
                  'int64',
                  [],
                  { axis: 0 },
                ),
                a.dtype,
              ),
            );
    }
  return { sum, count: stopGradient(count) };
}

/**
 * Fraction of rows whose argmax matches the label (a metric: no gradient). With
 * `weights`, the weighted fraction sum(w * correct) / sum(w). Returns a float scalar
 * of the logits' dtype.
 */
export function accuracy(logits: Tensor, labels: Tensor, opts: { weights?: Tensor } = {}): Tensor {
  const lab = checkLabels('accuracy', logits, labels);
  const correct = cast(equal(argmax(logits, -1), lab), logits.dtype);
  return reduceRows(correct, rowWeights('accuracy', lab, logits.dtype, { weights: opts.weights }), 'mean');
}
