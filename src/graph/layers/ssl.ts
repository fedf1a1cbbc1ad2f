/**
 * The self-supervised pieces of wav2vec 2.0 ("2nd stage pretraining"): span masking and
 * negative sampling on the host (they decide which frames and which distractors a batch
 * uses, like Hugging Face's data collator does in numpy), and in-graph: replacing masked
 * frames by the learned mask embedding, the contrastive loss and the diversity loss.
 *
 * Semantics follow Hugging Face transformers' `_compute_mask_indices`,
 * `_sample_negative_indices` and `Wav2Vec2ForPreTraining.forward`; the random streams
 * are our own (seeded mulberry32), so the masks are distributed alike, not bit-equal.
 */
import type { Tensor } from '../graph.js';
import { fmtShape } from '../shape.js';
import {
  cast,
  concat,
  div,
  equal,
  exp,
  gather,
  log,
  logSoftmax,
  matmul,
  maximum,
  mul,
  neg,
  not,
  reduceMax,
  reduceMean,
  reduceSum,
  reshape,
  slice,
  sqrt,
  squeeze,
  unsqueeze,
  where,
  less,
  add,
} from '../ops/index.js';
import { Rng } from '../../util/random.js';
import { dimsMatch, floatMask, keepMask } from './pooling.js';

export interface SpanMaskOptions {
  /** Fraction of frames that start a span, times spanLength: about the share masked before overlaps. */
  maskProb?: number;
  spanLength?: number;
  /** At least this many spans per utterance (when the utterance is long enough). */
  minMasks?: number;
  seed?: number;
}

function checkLengths(fn: string, lengths: readonly number[], T: number): void {
  if (!Number.isInteger(T) || T <= 0) throw new Error(`${fn}: T must be a positive integer, got ${T}`);
  lengths.forEach((l, b) => {
    if (!Number.isInteger(l) || l < 0 || l > T)
      throw new Error(`${fn}: lengths[${b}] = ${l} is not an integer in [0, ${T}]`);
  });
}

/**
 * wav2vec2 span masking (HF `_compute_mask_indices`): for each utterance of valid
 * length L, n = int(maskProb * L / spanLength + eps) spans (eps ~ U[0,1) drawn once per
 * batch: probabilistic rounding), at least minMasks, at most T // spanLength and
 * L - spanLength + 1; span starts are drawn without replacement from
 * [0, L - spanLength], spans may overlap, and never reach padding. Returns [B, T] 0/1.
 *
 * One deliberate difference: an utterance too short for any span gets no mask, where
 * HF marks its last padded frame (T - 1) as a dummy.
 */
export function computeSpanMask(
  lengths: readonly number[],
  T: number,
  opts: SpanMaskOptions = {},
): Uint8Array {
  const maskProb = opts.maskProb ?? 0.65;
  const span = opts.spanLength ?? 10;
  const minMasks = opts.minMasks ?? 2;
  checkLengths('computeSpanMask', lengths, T);
  if (!Number.isInteger(span) || span < 1)
    throw new Error(`computeSpanMask: spanLength must be an integer >= 1, got ${span}`);
  if (span > T)
    throw new Error(`computeSpanMask: spanLength ${span} is longer than the sequence (${T} frames)`);
  if (!(maskProb >= 0 && maskProb <= 1))
    throw new Error(`computeSpanMask: maskProb must be in [0, 1], got ${maskProb}`);
  const rng = new Rng(opts.seed ?? 0);
  const eps = rng.next();
  const numSpans = (len: number): number => {
    let n = Math.max(Math.trunc((maskProb * len) / span + eps), minMasks);
    if (n * span > T) n = Math.floor(T / span);
    if (len - (span - 1) < n) n = Math.max(len - (span - 1), 0);
    return n;
  };
  const out = new Uint8Array(lengths.length * T);
  if (numSpans(T) === 0) return out;
  lengths.forEach((len, b) => {
    const n = numSpans(len);
    const choices = len - span + 1;
    if (n === 0 || choices <= 0) return;
    // n distinct starts from [0, choices): a partial Fisher-Yates shuffle.
    const pool = Array.from({ length: choices }, (_, i) => i);
    for (let i = 0; i < n; i++) {
      const j = rng.int(i, choices);
      [pool[i], pool[j]] = [pool[j], pool[i]];
      const start = pool[i];
      out.fill(1, b * T + start, b * T + start + span);
    }
  });
  return out;
}

/**
 * Distractor indices for the contrastive loss (HF `_sample_negative_indices`): for frame
 * t of utterance b (t < length), K frames drawn uniformly with replacement from the
 * utterance's other valid frames (never t itself). Indices are into the flattened
 * [B * T] frames (b * T + t'), as the loss gathers them. Frames at or beyond the length
 * get b * T (unused: they are never masked). A one-frame utterance has no other frame:
 * its negatives point at itself and the loss masks them (negative = positive).
 * Returns [B, T, K] int64.
 */
export function sampleNegatives(
  lengths: readonly number[],
  T: number,
  numNegatives = 100,
  seed = 0,
): BigInt64Array {
  checkLengths('sampleNegatives', lengths, T);
  if (!Number.isInteger(numNegatives) || numNegatives < 1)
    throw new Error(`sampleNegatives: numNegatives must be an integer >= 1, got ${numNegatives}`);
  const K = numNegatives;
  const rng = new Rng(seed);
  const out = new BigInt64Array(lengths.length * T * K);
  lengths.forEach((len, b) => {
    const base = b * T;
    out.fill(BigInt(base), base * K, (base + T) * K);
    for (let t = 0; t < len; t++)
      for (let k = 0; k < K; k++) {
        let j = t;
        if (len > 1) {
          j = rng.int(0, len - 1);
          if (j >= t) j += 1; // skip the positive, keep the rest uniform
        }
        out[(base + t) * K + k] = BigInt(base + j);
      }
  });
  return out;
}

/** 1 for t < length, else 0: [B, T] (the valid-frame mask of a padded batch). */
export function lengthsToMask(lengths: readonly number[], T: number): Uint8Array {
  checkLengths('lengthsToMask', lengths, T);
  const out = new Uint8Array(lengths.length * T);
  lengths.forEach((len, b) => out.fill(1, b * T, b * T + len));
  return out;
}

/**
 * Replaces the masked frames of features [B, T, D] by the learned mask embedding [D]
 * (HF's `masked_spec_embed`); mask [B, T] is 1 / true where a frame is masked. The
 * embedding's gradient is the sum of the gradients at the masked frames.
 */
export function applySpanMask(features: Tensor, mask: Tensor, maskEmbedding: Tensor): Tensor {
  const g = features.graph;
  const d = features.shape[2];
  if (features.rank !== 3 || maskEmbedding.rank !== 1 || !dimsMatch(maskEmbedding.shape[0], d))
    throw g.error('applySpanMask', `needs features [B, T, D] and an embedding [D]`, [
      features,
      maskEmbedding,
    ]);
  if (
    mask.rank !== 2 ||
    !dimsMatch(mask.shape[0], features.shape[0]) ||
    !dimsMatch(mask.shape[1], features.shape[1])
  )
    throw g.error(
      'applySpanMask',
      `mask must be [B, T] of features ${fmtShape(features.shape)}, got ${fmtShape(mask.shape)}`,
      [features, mask],
    );
  if (maskEmbedding.dtype !== features.dtype)
    throw g.error('applySpanMask', `embedding is ${maskEmbedding.dtype}, features ${features.dtype}`, [
      features,
      maskEmbedding,
    ]);
  return where(unsqueeze(keepMask(mask), 2), maskEmbedding, features);
}

export interface ContrastiveLossOptions {
  /** The kappa of the paper; HF's contrastive_logits_temperature (0.1). */
  temperature?: number;
  /** Cosine eps (per-norm clamp, as torch.cosine_similarity). */
  eps?: number;
}

/**
 * wav2vec2's contrastive loss: for every masked frame (mask [B, T] = 1), cross-entropy
 * with target 0 over [cos(c_t, q_t), cos(c_t, q_n1), ..., cos(c_t, q_nK)] / temperature,
 * summed over masked frames (HF reduction="sum"). context and quantized are [B, T, D]
 * (after HF's project_hid / project_q), negIdx [B, T, K] int64 indexes the flattened
 * [B * T] quantized frames (sampleNegatives). A negative whose vector equals the
 * positive's (a codebook collision) gets logit -inf, as in HF.
 */
export function contrastiveLoss(
  context: Tensor,
  quantized: Tensor,
  negIdx: Tensor,
  mask: Tensor,
  opts: ContrastiveLossOptions = {},
): Tensor {
  const g = context.graph;
  const op = 'contrastiveLoss';
  const temperature = opts.temperature ?? 0.1;
  const eps = opts.eps ?? 1e-8;
  if (
    context.rank !== 3 ||
    quantized.rank !== 3 ||
    !context.shape.every((d, i) => dimsMatch(d, quantized.shape[i]))
  )
    throw g.error(op, `context and quantized must both be [B, T, D]`, [context, quantized]);
  if (context.dtype !== quantized.dtype)
    throw g.error(op, 'context and quantized differ in dtype', [context, quantized]);
  if (
    negIdx.dtype !== 'int64' ||
    negIdx.rank !== 3 ||
    !dimsMatch(negIdx.shape[0], context.shape[0]) ||
    !dimsMatch(negIdx.shape[1], context.shape[1])
  )
    throw g.error(op, `negIdx must be int64 [B, T, K], got ${negIdx.dtype}${fmtShape(negIdx.shape)}`, [
      context,
      negIdx,
    ]);
  if (
    mask.rank !== 2 ||
    !dimsMatch(mask.shape[0], context.shape[0]) ||
    !dimsMatch(mask.shape[1], context.shape[1])
  )
    throw g.error(op, `mask must be [B, T], got ${fmtShape(mask.shape)}`, [context, mask]);
  if (!(temperature > 0)) throw g.error(op, `temperature must be > 0, got ${temperature}`, [context]);
  const d = context.shape[2];
  const invNorm = (x: Tensor) =>
    div(g.scalar(1, x.dtype), sqrt(maximum(reduceSum(mul(x, x), -1), eps * eps)));
  const invC = invNorm(context); // [B, T]
  const invQ = invNorm(quantized); // [B, T]
  const cn = mul(context, unsqueeze(invC, 2)); // unit context vectors
  const pos = mul(reduceSum(mul(cn, quantized), -1), invQ); // [B, T]
  // Negatives: gather raw rows once; scale by their gathered inverse norms.
  const qFlat = reshape(quantized, [-1, d]);
  const negRaw = gather(qFlat, negIdx, 0); // [B, T, K, D]
  const negDot = squeeze(matmul(negRaw, unsqueeze(cn, 3)), 3); // [B, T, K]
  const negCos = mul(negDot, gather(reshape(invQ, [-1]), negIdx, 0));
  // Negatives identical to the positive: logit -inf (they drop out of the softmax).
  const differs = cast(not(equal(negRaw, unsqueeze(quantized, 2))), context.dtype);
  const negIsPos = less(reduceMax(differs, -1), 0.5);
  const negLogits = where(negIsPos, g.scalar(-Infinity, context.dtype), div(negCos, temperature));
  const logits = concat([unsqueeze(div(pos, temperature), 2), negLogits], 2); // [B, T, 1 + K]
  // Target 0: take log p_0 by slicing (a one-hot product would meet 0 * -inf).
  const logp0 = squeeze(slice(logSoftmax(logits, -1), [0], [1], [2]), 2);
  return neg(reduceSum(mul(logp0, floatMask(mask, context.dtype)), [0, 1]));
}

/**
 * Perplexity of the quantizer's codebook use (HF `_compute_perplexity`): probs
 * [..., G, V] are the per-frame softmax over each group's V entries; the marginal over
 * frames (masked frames only when `mask` has the frame dims) p_gv gives
 * sum_g exp(-sum_v p_gv log(p_gv + 1e-7)). Between 1 and G * V.
 */
export function codevectorPerplexity(probs: Tensor, mask?: Tensor): Tensor {
  const g = probs.graph;
  if (probs.rank < 3)
    throw g.error('codevectorPerplexity', `probs must be [..., G, V], got ${fmtShape(probs.shape)}`, [probs]);
  const frameAxes = Array.from({ length: probs.rank - 2 }, (_, i) => i);
  let marginal: Tensor;
  if (mask) {
    if (mask.rank !== frameAxes.length || !mask.shape.every((d, i) => dimsMatch(d, probs.shape[i])))
      throw g.error('codevectorPerplexity', `mask must be ${fmtShape(probs.shape.slice(0, -2))}`, [
        probs,
        mask,
      ]);
    const m = floatMask(mask, probs.dtype);
    const total = reduceSum(mul(probs, unsqueeze(m, [probs.rank - 2, probs.rank - 1])), frameAxes);
    marginal = div(total, maximum(reduceSum(m, frameAxes), 1e-12));
  } else {
    marginal = reduceMean(probs, frameAxes);
  }
  const entropy = neg(reduceSum(mul(marginal, log(add(marginal, 1e-7))), -1)); // [G]
  return reduceSum(exp(entropy), 0);
}

/**
 * wav2vec2's diversity loss (G V - perplexity) / (G V), times `scale` (HF multiplies by
 * the number of masked frames so that it matches the summed contrastive loss).
 */
export function diversityLoss(
  perplexity: Tensor,
  numGroups: number,
  numVars: number,
  scale?: Tensor | number,
): Tensor {
  const gv = numGroups * numVars;
  if (!Number.isInteger(gv) || gv <= 0)
    throw perplexity.graph.error('diversityLoss', `numGroups and numVars must be positive integers`, [
      perplexity,
    ]);
  const base = div(neg(add(perplexity, -gv)), gv);
  if (scale === undefined) return base;
  return mul(
    base,
    typeof scale === 'number' ? scale : scale.dtype === base.dtype ? scale : cast(scale, base.dtype),
  );
}
