/**
 * Wav2Vec2GumbelVectorQuantizer with Hugging Face's semantics and names, and the
 * pretraining config keys of Wav2Vec2ForPreTraining. Under the caller's scope (HF: the
 * model's root) the quantiser owns `quantizer.codevectors` [1, G*V, D/G] and
 * `quantizer.weight_proj` (C -> G*V); `project_q` (D -> P) and `project_hid`
 * (hidden -> P) belong to the pretraining head (pretraining.ts).
 *
 * Forward (x [B, T, C]): logits = weight_proj(x) viewed [B, T, G, V]; training: hard
 * Gumbel-softmax at temperature tau (straight-through), perplexity of the soft
 * distribution; eval: the argmax one-hot, perplexity of the one-hots. Each group's
 * one-hot selects one of its V code vectors; the G of them are concatenated: [B, T, D].
 * The code of a frame is the argmax index per group (G integers), also packed into one
 * integer: sum_g idx_g * V^(G-1-g).
 */
import { z } from 'zod';
import type { Tensor } from '../../graph/graph.js';
import * as ops from '../../graph/ops/index.js';
import { node1 } from '../../graph/ops/util.js';
import { linear } from '../../graph/layers/linear.js';
import { codevectorPerplexity } from '../../graph/layers/ssl.js';
import { ConfigError, formatIssues } from '../../config/load.js';

const posInt = z.number().int().positive();

/** Wav2Vec2Config's pretraining keys (defaults: wav2vec2-base). */
export const pretrainingConfigSchema = z.looseObject({
  num_codevector_groups: posInt.default(2),
  num_codevectors_per_group: posInt.default(320),
  codevector_dim: posInt.default(256),
  proj_codevector_dim: posInt.default(256),
  contrastive_logits_temperature: z.number().positive().default(0.1),
  num_negatives: posInt.default(100),
  diversity_loss_weight: z.number().min(0).default(0.1),
  feat_quantizer_dropout: z.number().min(0).lt(1).default(0.0),
  mask_time_prob: z.number().min(0).max(1).default(0.05),
  mask_time_length: posInt.default(10),
  mask_time_min_masks: z.number().int().min(0).default(2),
});
export type PretrainingConfig = z.infer<typeof pretrainingConfigSchema>;

export function parsePretrainingConfig(raw: unknown, source = 'config.json'): PretrainingConfig {
  const r = pretrainingConfigSchema.safeParse(raw ?? {});
  if (!r.success) throw new ConfigError(source, formatIssues(r.error.issues));
  if (r.data.codevector_dim % r.data.num_codevector_groups !== 0)
    throw new ConfigError(source, [
      `codevector_dim: ${r.data.codevector_dim} is not divisible by num_codevector_groups (${r.data.num_codevector_groups})`,
    ]);
  return r.data;
}

export interface QuantizerOptions {
  numGroups: number;
  numVars: number;
  /** D: the concatenated code vector's size (D / G per group). */
  codevectorDim: number;
  /** Gumbel temperature (training form); a number or a scalar tensor (a schedule over steps). HF starts at 2. */
  temperature?: number | Tensor;
  /** Frames that count for the perplexity ([B, T], HF's mask_time_indices); default all. */
  mask?: Tensor;
  /** Training form (Gumbel noise) or eval form (argmax); default the graph's flag. */
  training?: boolean;
  /** Uniform draws in (0, 1) [B, T, G, V] for the Gumbel noise instead of in-graph draws (tests). */
  uniform?: Tensor;
}

export interface QuantizerOutput {
  /** [B, T, D] quantised vectors (HF's quantized_features before project_q). */
  codevectors: Tensor;
  /** Scalar perplexity (HF's codevector_perplexity). */
  perplexity: Tensor;
  /** [B, T, G] int64 argmax index per group (no noise). */
  codes: Tensor;
  /** [B, T] int64: the group indices packed into one integer. */
  code: Tensor;
  /** [B, T, G, V] the weight_proj logits. */
  logits: Tensor;
}

/** Hard Gumbel-softmax over the last axis with a temperature that may be a tensor (straight-through). */
function hardGumbel(logits: Tensor, tau: number | Tensor, uniform?: Tensor): Tensor {
  const g = logits.graph;
  let u = uniform;
  if (!u) {
    u = ops.randomUniformLike(logits);
    ops.markTrainingOnly(u, 'gumbel noise');
  }
  const tiny = logits.dtype === 'float32' ? 1e-7 : 1e-12;
  const uc = node1(g, 'Clip', [u, g.scalar(tiny, u.dtype), g.scalar(1 - tiny, u.dtype)], u.dtype, u.shape);
  const noise = ops.stopGradient(ops.neg(ops.log(ops.neg(ops.log(uc)))));
  const soft = ops.softmax(ops.div(ops.add(logits, noise), tau), -1);
  return ops.add(ops.sub(ops.oneHotArgmax(soft, -1), ops.stopGradient(soft)), soft);
}

/** The quantiser on x [B, T, C], params under `quantizer.` (HF's initialisation: weight_proj N(0, 1), codevectors U(0, 1)). */
export function gumbelVectorQuantizer(x: Tensor, opts: QuantizerOptions): QuantizerOutput {
  const g = x.graph;
  const { numGroups: G, numVars: V, codevectorDim: D } = opts;
  if (D % G !== 0) throw g.error('quantizer', `codevector_dim ${D} is not divisible by ${G} groups`, [x]);
  if (x.rank !== 3) throw g.error('quantizer', 'needs x [B, T, C]', [x]);
  const training = opts.training ?? g.training;
  return g.scope('quantizer', () => {
    const cv = g.param('codevectors', [1, G * V, D / G], { init: { kind: 'uniform', low: 0, high: 1 } });
    const flat = linear(x, 'weight_proj', G * V, { init: { kind: 'normal', std: 1 } });
    const logits = ops.reshape(flat, [0, 0, G, V]); // [B, T, G, V]
    let probs: Tensor;
    let perplexity: Tensor;
    if (training) {
      probs = hardGumbel(logits, opts.temperature ?? 2, opts.uniform);
      perplexity = codevectorPerplexity(ops.softmax(logits, -1), opts.mask);
    } else {
      probs = ops.oneHotArgmax(logits, -1);
      perplexity = codevectorPerplexity(probs, opts.mask);
    }
    // Each group's one-hot [.., G, 1, V] times its table [G, V, D/G] -> [.., G, 1, D/G].
    const table = ops.reshape(cv, [G, V, D / G]);
    const picked = ops.matmul(ops.unsqueeze(probs, 3), table);
    const codevectors = ops.reshape(picked, [0, 0, D]);
    const codes = ops.argmax(logits, -1); // [B, T, G]
    const weights = g.int64s(Array.from({ length: G }, (_, i) => V ** (G - 1 - i)));
    const code = ops.reduceSum(ops.mul(codes, weights), -1);
    return { codevectors, perplexity, codes, code, logits };
  });
}

/** Packs per-group indices (host side) into one integer per frame, as the graph's `code`. */
export function packCodes(
  groupIdx: ArrayLike<number | bigint>,
  numGroups: number,
  numVars: number,
): number[] {
  const out: number[] = [];
  for (let i = 0; i < groupIdx.length; i += numGroups) {
    let c = 0;
    for (let gi = 0; gi < numGroups; gi++) c = c * numVars + Number(groupIdx[i + gi]);
    out.push(c);
  }
  return out;
}
