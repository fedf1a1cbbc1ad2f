/**
 * Pooling, masking and similarity building blocks of the LE-MER head. Masks are [B, T]
 * tensors with 1 (or true) at real positions and 0 at padding; float (any float type),
 * bool or integer masks are accepted. Every function here is padding-exact: padded
 * positions never change a result, whatever values they hold.
 */
import type { DType } from '../dtype.js';
import { isFloat } from '../dtype.js';
import type { Tensor } from '../graph.js';
import { type Dim, fmtShape, isNamedDim } from '../shape.js';
import {
  cast,
  div,
  greater,
  matmul,
  maximum,
  mul,
  reduceMax,
  reduceSum,
  softmax,
  sqrt,
  transpose,
  transposeLast2,
  unsqueeze,
  where,
} from '../ops/index.js';

/** The most negative finite value of a float type (numpy's finfo(dtype).min). */
export function lowestFinite(dtype: DType): number {
  if (dtype === 'float32') return -3.4028234663852886e38;
  if (dtype === 'float64') return -Number.MAX_VALUE;
  throw new Error(`lowestFinite: ${dtype} is not a float type`);
}

/** Whether two dims can be the same size at run time (equal, or not both known and different). */
export function dimsMatch(a: Dim, b: Dim): boolean {
  if (a === b) return true;
  if (typeof a === 'number' && typeof b === 'number') return false;
  if (isNamedDim(a) && isNamedDim(b)) return false;
  return true;
}

/** A mask as bool: true where the position is real. Float masks count as real above 0.5. */
export function keepMask(mask: Tensor): Tensor {
  if (mask.dtype === 'bool') return mask;
  if (isFloat(mask.dtype)) return greater(mask, 0.5);
  // Integer masks: anything non-zero keeps.
  return greater(mask, 0);
}

/** A mask as 0/1 floats of `dtype` (float masks of that dtype pass unchanged: soft weights stay). */
export function floatMask(mask: Tensor, dtype: DType): Tensor {
  if (mask.dtype === dtype) return mask;
  if (mask.dtype === 'bool') return cast(mask, dtype);
  if (isFloat(mask.dtype)) return cast(mask, dtype);
  return cast(keepMask(mask), dtype);
}

/** Checks that mask is [B, T] against x's first two dims. */
function checkSeqMask(op: string, x: Tensor, mask: Tensor): void {
  if (x.rank < 2) throw x.graph.error(op, `x must be [B, T, ...], got ${fmtShape(x.shape)}`, [x, mask]);
  if (mask.rank !== 2 || !dimsMatch(mask.shape[0], x.shape[0]) || !dimsMatch(mask.shape[1], x.shape[1]))
    throw x.graph.error(
      op,
      `mask must be [B, T] = [${x.shape[0]}, ${x.shape[1]}] for x ${fmtShape(x.shape)}, got ${fmtShape(mask.shape)}`,
      [x, mask],
    );
}

/** mask [B, T] reshaped to [B, T, 1, ...] to broadcast against x [B, T, ...]. */
function alignSeqMask(mask: Tensor, x: Tensor): Tensor {
  const extra = x.rank - 2;
  return extra === 0
    ? mask
    : unsqueeze(
        mask,
        Array.from({ length: extra }, (_, i) => 2 + i),
      );
}

/**
 * Mean over the time axis (1) of x [B, T, ...] counting only real positions: [B, ...].
 * sum(x * m) / max(sum(m), 1e-9); a fully padded row gives 0. Fractional float masks
 * act as weights (a weighted mean).
 */
export function maskedMean(x: Tensor, mask: Tensor): Tensor {
  checkSeqMask('maskedMean', x, mask);
  const m = alignSeqMask(floatMask(mask, x.dtype), x);
  const total = reduceSum(mul(x, m), 1);
  const count = reduceSum(m, 1);
  return div(total, maximum(count, 1e-9));
}

/**
 * Max over the time axis (1) of x [B, T, ...] over real positions only: [B, ...].
 * Padded positions are replaced by -inf before the max, so they never win, however
 * negative the real values are. A fully padded row has no max: it gives 0 (and a zero
 * gradient), a neutral value for the linear layer that usually follows.
 */
export function maskedMax(x: Tensor, mask: Tensor): Tensor {
  checkSeqMask('maskedMax', x, mask);
  const g = x.graph;
  const keep = alignSeqMask(keepMask(mask), x);
  const filled = where(keep, x, g.scalar(-Infinity, x.dtype));
  const m = reduceMax(filled, 1);
  const anyReal = greater(reduceMax(cast(keep, x.dtype), 1), 0.5);
  return where(anyReal, m, 0);
}

/**
 * Softmax of `scores` along `axis` over real positions only. `mask` either has the
 * scores' rank (and broadcasts against them, e.g. [B, 1, Tk] for [B, Tq, Tk]) or is
 * [B, L] with L the length of `axis` (it is then placed on axes 0 and `axis`).
 * Padded positions get exactly 0; a row with no real position gives all zeros, not NaN.
 */
export function maskedSoftmax(scores: Tensor, mask: Tensor, axis = -1): Tensor {
  const g = scores.graph;
  const a = axis < 0 ? axis + scores.rank : axis;
  if (a < 0 || a >= scores.rank)
    throw g.error('maskedSoftmax', `axis ${axis} out of range for rank ${scores.rank}`, [scores]);
  let m = keepMask(mask);
  if (mask.rank !== scores.rank) {
    if (mask.rank !== 2 || a === 0)
      throw g.error(
        'maskedSoftmax',
        `mask must have the scores' rank or be [B, L] for axis ${a} > 0, got ${fmtShape(mask.shape)} for scores ${fmtShape(scores.shape)}`,
        [scores, mask],
      );
    const axes = [];
    for (let i = 1; i < scores.rank; i++) if (i !== a) axes.push(i);
    m = unsqueeze(m, axes);
  }
  m.shape.forEach((d, i) => {
    if (d !== 1 && !dimsMatch(d, scores.shape[i]))
      throw g.error(
        'maskedSoftmax',
        `mask ${fmtShape(mask.shape)} does not fit scores ${fmtShape(scores.shape)} (dim ${i})`,
        [scores, mask],
      );
  });
  // Where, not addition: masked scores become exactly the lowest finite value, so no
  // overflow to -inf can happen and a fully masked row stays finite (uniform), then is zeroed.
  const filled = where(m, scores, lowestFinite(scores.dtype));
  return where(m, softmax(filled, a), 0);
}

/** [B, Tq] and [B, Tk] masks -> [B, Tq, Tk] float mask of the valid (row, column) cells. */
export function outerMask(rowMask: Tensor, colMask: Tensor, dtype: DType = rowMask.graph.floatType): Tensor {
  const g = rowMask.graph;
  if (rowMask.rank !== 2 || colMask.rank !== 2 || !dimsMatch(rowMask.shape[0], colMask.shape[0]))
    throw g.error('outerMask', `needs [B, Tq] and [B, Tk] masks`, [rowMask, colMask]);
  return mul(unsqueeze(floatMask(rowMask, dtype), 2), unsqueeze(floatMask(colMask, dtype), 1));
}

/** x / max(||x||_2, eps) along the last axis (the norm is clamped as sqrt(max(sum x^2, eps^2)): finite gradient at x = 0). */
export function l2Normalize(x: Tensor, eps = 1e-8): Tensor {
  const sq = reduceSum(mul(x, x), -1, true);
  return div(x, sqrt(maximum(sq, eps * eps)));
}

/**
 * Cosine similarity between every row of a [B, Tx, D] (any rank >= 2) and every row of
 * b: b [C, D] gives [B, Tx, C] (LE-MER's G = cos(H, L)); b [B, Ty, D] (a's rank) gives
 * [B, Tx, Ty].
 *
 * eps semantics: each norm is clamped separately, a/max(||a||, eps) . b/max(||b||, eps),
 * as PyTorch's implementation of torch.nn.functional.cosine_similarity does since 1.12
 * (its documentation's max(||a||·||b||, eps) differs only when a norm is below eps).
 * A zero row (padding) gives similarity 0 and a finite (zero) gradient.
 */
export function cosineSimilarity(a: Tensor, b: Tensor, eps = 1e-8): Tensor {
  const g = a.graph;
  const d = a.shape[a.rank - 1];
  if (a.rank < 2 || b.rank < 2 || !dimsMatch(d, b.shape[b.rank - 1]))
    throw g.error('cosineSimilarity', `needs a [..., T, D] and b [C, D] or [..., T2, D] with the same D`, [
      a,
      b,
    ]);
  if (b.rank !== 2 && b.rank !== a.rank)
    throw g.error(
      'cosineSimilarity',
      `b must be [C, D] or have a's rank ${a.rank}, got ${fmtShape(b.shape)}`,
      [a, b],
    );
  const an = l2Normalize(a, eps);
  const bn = l2Normalize(b, eps);
  return matmul(an, b.rank === 2 ? transpose(bn, [1, 0]) : transposeLast2(bn));
}
