/**
 * Multi-head scaled dot-product attention (self- and cross-), with Hugging Face
 * parameter names chosen by an option: one implementation serves BERT
 * (`attention.self.{query,key,value}`, `attention.output.dense`), wav2vec2 / HuBERT /
 * WavLM (`attention.{q,k,v,out}_proj`) and the wav2vec2-conformer
 * (`self_attn.linear_{q,k,v,out}`).
 *
 * The layer ends at the output projection: BERT's residual + LayerNorm
 * (`attention.output.LayerNorm`) and the hidden dropout belong to the encoder layer.
 */
import type { Tensor } from '../graph.js';
import { derivedDim, fmtShape } from '../shape.js';
import * as ops from '../ops/index.js';
import { node1, shapeOf } from '../ops/util.js';
import { add, dropout, matmul, mul, reshape, softmax, transpose, unsqueeze, where } from '../ops/index.js';
import { linear } from './linear.js';
import { dimsMatch, keepMask, lowestFinite } from './pooling.js';

/** Where the four projections live, relative to the attention layer's scope. */
export interface AttentionNames {
  query: string;
  key: string;
  value: string;
  output: string;
}

export const BERT_ATTENTION_NAMES: AttentionNames = {
  query: 'self.query',
  key: 'self.key',
  value: 'self.value',
  output: 'output.dense',
};
export const WAV2VEC2_ATTENTION_NAMES: AttentionNames = {
  query: 'q_proj',
  key: 'k_proj',
  value: 'v_proj',
  output: 'out_proj',
};
export const CONFORMER_ATTENTION_NAMES: AttentionNames = {
  query: 'linear_q',
  key: 'linear_k',
  value: 'linear_v',
  output: 'linear_out',
};

export interface AttentionMaskOptions {
  /**
   * Key padding mask [B, Tk]: 1 / true = a real key. Masked scores are replaced (Where,
   * not added) by the dtype's lowest finite value (finfo.min, as current Hugging Face
   * code uses): exp underflows to exactly 0 for every realistic score, and since nothing
   * is added to it no sum of masks can overflow to -inf, so a row whose keys are all
   * padding stays finite (uniform weights) instead of turning into NaN. HF BERT's old
   * -1e4 would leak weight when scores span more than ~100 (float32 exp underflow).
   */
  mask?: Tensor;
  /** An already additive mask (0 = keep, large negative = drop), broadcastable to [B, H, Tq, Tk]. */
  additiveMask?: Tensor;
  /** Added to the scaled scores: [1|B, H|1, Tq|1, Tk] (WavLM's gated relative position bias, ALiBi, ...). */
  positionBias?: Tensor;
  /** Dropout probability on the attention weights (training only). */
  dropout?: number;
  /**
   * Multiplies q k^T; default 1 / sqrt(head dim). ORT fuses the scale into a FusedMatMul
   * whose alpha attribute is float32 even in a float64 graph: float64 checks against
   * exact references see ~1e-8 relative error unless the scale is a float32 value (dh = 4).
   */
  scale?: number;
  /**
   * Replaces the raw score q k^T (before scaling) for schemes that mix positions into the
   * product, e.g. the conformer's relative scores (q + u) k^T + shift((q + v) p^T).
   * q is [B, H, Tq, dh], k is [B, H, Tk, dh]; return [B, H, Tq, Tk].
   */
  scores?: (q: Tensor, k: Tensor) => Tensor;
}

export interface AttentionOptions extends AttentionMaskOptions {
  numHeads: number;
  /** Projection names; default wav2vec2's q_proj / k_proj / v_proj / out_proj. */
  names?: AttentionNames;
  /** Keys (and values) come from here: cross-attention. Default: x (self-attention). */
  kv?: Tensor;
  /** Values come from here when they differ from the keys' source (the conformer's rotary variant). */
  value?: Tensor;
  /** Model width of q, k, v and the output; default x's last dim. */
  hiddenSize?: number;
  /** Biases on the four projections (default true, as in BERT and wav2vec2). */
  bias?: boolean;
  /** Also return the attention weights [B, H, Tq, Tk] (after masking, before dropout). */
  returnProbs?: boolean;
}

export interface AttentionResult {
  /** [B, Tq, hidden] after the output projection. */
  context: Tensor;
  /** [B, H, Tq, Tk] attention weights, when asked for. */
  probs?: Tensor;
}

/** [B, T, H * dh] -> [B, H, T, dh]. */
export function splitHeads(x: Tensor, numHeads: number): Tensor {
  const d = x.shape[x.rank - 1];
  if (x.rank !== 3 || typeof d !== 'number' || d % numHeads !== 0)
    throw x.graph.error(
      'splitHeads',
      `needs [B, T, D] with D divisible by ${numHeads} heads, got ${fmtShape(x.shape)}`,
      [x],
    );
  return transpose(reshape(x, [0, 0, numHeads, d / numHeads]), [0, 2, 1, 3]);
}

/** [B, H, T, dh] -> [B, T, H * dh]. */
export function mergeHeads(x: Tensor): Tensor {
  const [h, dh] = [x.shape[1], x.shape[3]];
  if (x.rank !== 4 || typeof h !== 'number' || typeof dh !== 'number')
    throw x.graph.error('mergeHeads', `needs [B, H, T, dh] with static H and dh, got ${fmtShape(x.shape)}`, [
      x,
    ]);
  return reshape(transpose(x, [0, 2, 1, 3]), [0, 0, h * dh]);
}

/**
 * Attention over heads already split: q [B, H, Tq, dh], k and v [B, H, Tk, dh]
 * (v's last dim may differ). softmax(scale * q k^T + bias, masked) v -> [B, H, Tq, dv].
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionMaskOptions = {},
): { context: Tensor; probs: Tensor } {
  const g = q.graph;
  const op = 'attention';
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4)
    throw g.error(op, 'q, k and v must be [B, H, T, dh]', [q, k, v]);
  if (
    !dimsMatch(q.shape[3], k.shape[3]) ||
    !dimsMatch(k.shape[2], v.shape[2]) ||
    !dimsMatch(q.shape[1], k.shape[1])
  )
    throw g.error(op, `q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} do not fit`, [
      q,
      k,
      v,
    ]);
  const dh = q.shape[3];
  const scale = opts.scale ?? (typeof dh === 'number' ? 1 / Math.sqrt(dh) : NaN);
  if (!Number.isFinite(scale)) throw g.error(op, 'head dim is not static: pass opts.scale', [q]);
  const target = [q.shape[0], q.shape[1], q.shape[2], k.shape[2]];
  const raw = opts.scores ? opts.scores(q, k) : matmul(q, transpose(k, [0, 1, 3, 2]));
  if (raw.rank !== 4 || !raw.shape.every((d, i) => dimsMatch(d, target[i])))
    throw g.error(op, `scores must be ${fmtShape(target)}, got ${fmtShape(raw.shape)}`, [q, k, raw]);
  let scores = mul(raw, scale);
  const fits = (t: Tensor) => t.rank === 4 && t.shape.every((d, i) => d === 1 || dimsMatch(d, target[i]));
  if (opts.positionBias) {
    if (!fits(opts.positionBias))
      throw g.error(
        op,
        `positionBias must broadcast to ${fmtShape(target)}, got ${fmtShape(opts.positionBias.shape)}`,
        [q, opts.positionBias],
      );
    scores = add(scores, opts.positionBias);
  }
  if (opts.additiveMask) {
    const m = opts.additiveMask;
    if (!fits(m))
      throw g.error(op, `additiveMask must broadcast to ${fmtShape(target)}, got ${fmtShape(m.shape)}`, [
        q,
        m,
      ]);
    scores = add(scores, m.dtype === scores.dtype ? m : m.cast(scores.dtype));
  }
  if (opts.mask) {
    const m = opts.mask;
    if (m.rank !== 2 || !dimsMatch(m.shape[0], q.shape[0]) || !dimsMatch(m.shape[1], k.shape[2]))
      throw g.error(op, `mask must be [B, Tk] = [${q.shape[0]}, ${k.shape[2]}], got ${fmtShape(m.shape)}`, [
        q,
        k,
        m,
      ]);
    scores = where(unsqueeze(keepMask(m), [1, 2]), scores, lowestFinite(scores.dtype));
  }
  const probs = softmax(scores, -1);
  const context = matmul(dropout(probs, opts.dropout ?? 0), v);
  return { context, probs };
}

/**
 * Multi-head attention layer under scope `name` (BERT: 'attention' with
 * BERT_ATTENTION_NAMES; wav2vec2: 'attention'; conformer: 'self_attn' with
 * CONFORMER_ATTENTION_NAMES). x is [B, Tq, D]; keys and values come from opts.kv
 * [B, Tk, Dkv] (cross-attention) or x.
 */
export function multiHeadAttention(x: Tensor, name: string, opts: AttentionOptions): AttentionResult {
  const g = x.graph;
  const names = opts.names ?? WAV2VEC2_ATTENTION_NAMES;
  const kvIn = opts.kv ?? x;
  const vIn = opts.value ?? kvIn;
  const d = opts.hiddenSize ?? x.shape[x.rank - 1];
  const h = opts.numHeads;
  if (x.rank !== 3 || kvIn.rank !== 3 || vIn.rank !== 3)
    throw g.error('multiHeadAttention', 'x, kv and value must be [B, T, D]', [x, kvIn, vIn]);
  if (typeof d !== 'number' || !Number.isInteger(h) || h <= 0 || d % h !== 0)
    throw g.error('multiHeadAttention', `hidden size ${d} must be static and divisible by numHeads ${h}`, [
      x,
    ]);
  if (
    !dimsMatch(x.shape[0], kvIn.shape[0]) ||
    !dimsMatch(kvIn.shape[0], vIn.shape[0]) ||
    !dimsMatch(kvIn.shape[1], vIn.shape[1])
  )
    throw g.error('multiHeadAttention', 'x, kv and value must share the batch; kv and value the length', [
      x,
      kvIn,
      vIn,
    ]);
  const bias = opts.bias ?? true;
  return g.scope(name, () => {
    const q = splitHeads(linear(x, names.query, d, { bias }), h);
    const k = splitHeads(linear(kvIn, names.key, d, { bias }), h);
    const v = splitHeads(linear(vIn, names.value, d, { bias }), h);
    const { context, probs } = scaledDotProductAttention(q, k, v, opts);
    const out = linear(mergeHeads(context), names.output, d, { bias });
    return opts.returnProbs ? { context: out, probs } : { context: out };
  });
}

/**
 * Bucketed relative positions (key - query) as WavLM and T5 use them for a learned
 * relative position bias: [qLen * kLen] int64, row-major [q][k]. Bidirectional: the
 * first half of the buckets holds offsets <= 0, the second half offsets > 0; within a
 * half, offsets below half of it are exact and the rest are log-spaced up to
 * maxDistance (WavLM base: 320 buckets, max distance 800).
 */
export function relativePositionBucket(
  qLen: number,
  kLen: number,
  opts: { numBuckets?: number; maxDistance?: number; bidirectional?: boolean } = {},
): BigInt64Array {
  const bidirectional = opts.bidirectional ?? true;
  let n = opts.numBuckets ?? 320;
  const maxDistance = opts.maxDistance ?? 800;
  if (bidirectional) n = Math.floor(n / 2);
  const maxExact = Math.floor(n / 2);
  if (maxExact < 1 || maxDistance <= maxExact)
    throw new Error(
      `relativePositionBucket: need numBuckets >= 4 and maxDistance > ${maxExact}, got ${opts.numBuckets}, ${maxDistance}`,
    );
  const out = new BigInt64Array(qLen * kLen);
  for (let i = 0; i < qLen; i++)
    for (let j = 0; j < kLen; j++) {
      const rel = j - i;
      let bucket = 0;
      let dist: number;
      if (bidirectional) {
        if (rel > 0) bucket += n;
        dist = Math.abs(rel);
      } else {
        dist = Math.max(-rel, 0);
      }
      if (dist < maxExact) bucket += dist;
      else {
        const large =
          maxExact +
          Math.trunc((Math.log(dist / maxExact) / Math.log(maxDistance / maxExact)) * (n - maxExact));
        bucket += Math.min(large, n - 1);
      }
      out[i * kLen + j] = BigInt(bucket);
    }
  return out;
}

/**
 * Transformer-XL's relative shift, shared by the conformer variants (wav2vec2-conformer's
 * relative attention, lemer's log-mel conformer): x [B, H, T, 2T-1] (column c = relative
 * position T-1-c) -> [B, H, T, T] with out[i, j] = x[i, j + T-1-i] (position i - j). Pad a
 * zero column on the left, view as [2T, T], drop the first row, view back, keep T columns.
 */
export function relativeShift(x: Tensor): Tensor {
  const g = x.graph;
  const s = shapeOf(x);
  const [b, h, t, w] = [0, 1, 2, 3].map((a) =>
    node1(g, 'Gather', [s, g.int64s([a])], 'int64', [1], { axis: 0 }),
  );
  const padded = ops.pad(x, [0, 0, 0, 1, 0, 0, 0, 0]); // [B, H, T, 2T]
  const tall = node1(g, 'Reshape', [padded, ops.concat([b, h, ops.add(w, 1), t], 0)], x.dtype, [
    x.shape[0],
    x.shape[1],
    derivedDim('shift'),
    x.shape[2],
  ]);
  const dropped = ops.slice(tall, [1], [2 ** 62], [2]);
  const back = node1(g, 'Reshape', [dropped, s], x.dtype, x.shape);
  return node1(g, 'Slice', [back, g.int64s([0]), t, g.int64s([3]), g.int64s([1])], x.dtype, [
    x.shape[0],
    x.shape[1],
    x.shape[2],
    x.shape[2],
  ]);
}
