/**
 * Settings of the LE-MER head: the config's `head` section (src/config/schema.ts) plus the
 * few switches that live elsewhere in the config (label scope, layer weights, dropout).
 */
import type { LemerConfig } from '../../config/schema.js';

/** Table 3: constraint = C1 (LE-MER), sum = C2, label-only = C3, vanilla = C4. */
export type Fusion = 'constraint' | 'sum' | 'label-only' | 'vanilla';
export const FUSIONS: readonly Fusion[] = ['constraint', 'sum', 'label-only', 'vanilla'];

export interface LossWeights {
  /** mu1: the fused classifier's cross-entropy L_m. */
  fusion: number;
  /** mu2: the attention constraint L_c. */
  constraint: number;
  /** mu3: the label-token attention loss L_g^t. */
  textLabel: number;
  /** mu4: the label-frame attention loss L_g^s. */
  speechLabel: number;
}

export interface LemerHeadConfig {
  fusion: Fusion;
  /**
   * Scale s of the label-attention logits: p_g = softmax(s * masked-mean(G)). Cosines lie in
   * [-1, 1], so with s = 1 (paper-literal) p_g stays near uniform; s > 1 sharpens it.
   */
  labelTemperature: number;
  /** A_l = G_t G_s^T softmax-normalised over frames (default) or raw. */
  alNorm: 'softmax' | 'raw';
  mu: LossWeights;
  /** Dropout on the pooled vector before the classifier (training graphs only). Our choice: 0.1. */
  dropout: number;
  /**
   * Speech label embeddings from codebook vectors through a learned projection (config
   * speech.codebookMode = 'projection'): the codebook means [c, dim] are a frozen parameter
   * `label_embeddings.speech_codebook`, L_s = codebook W^T with W `label_embeddings.speech_projection.weight`
   * [d_s, dim]. null (default): L_s is a plain trainable [c, d_s] parameter.
   */
  speechCodebookDim: number | null;
}

export const DEFAULT_HEAD_CONFIG: LemerHeadConfig = {
  fusion: 'constraint',
  labelTemperature: 1,
  alNorm: 'softmax',
  mu: { fusion: 1, constraint: 0.5, textLabel: 0.2, speechLabel: 0.2 },
  dropout: 0.1,
  speechCodebookDim: null,
};

/** The head settings of a resolved config (score-fusion is two unimodal models: its fusion is not the head's). */
export function headConfigFrom(
  cfg: Pick<LemerConfig, 'head'>,
  over: Partial<LemerHeadConfig> = {},
): LemerHeadConfig {
  const h = cfg.head;
  const fusion: Fusion = h.fusion === 'score-fusion' ? 'constraint' : h.fusion;
  return {
    ...DEFAULT_HEAD_CONFIG,
    fusion,
    labelTemperature: h.labelTemperature,
    alNorm: h.alNorm,
    mu: { ...h.mu },
    ...over,
  };
}

/** Fills defaults and checks values; errors name the key. */
export function resolveHeadConfig(c: Partial<LemerHeadConfig> = {}): LemerHeadConfig {
  const r: LemerHeadConfig = { ...DEFAULT_HEAD_CONFIG, ...c, mu: { ...DEFAULT_HEAD_CONFIG.mu, ...c.mu } };
  if (!FUSIONS.includes(r.fusion))
    throw new Error(`head.fusion: '${String(r.fusion)}' is not one of ${FUSIONS.join(', ')}`);
  if (!(r.labelTemperature > 0))
    throw new Error(`head.labelTemperature must be > 0, got ${r.labelTemperature}`);
  if (r.alNorm !== 'softmax' && r.alNorm !== 'raw')
    throw new Error(`head.alNorm: '${String(r.alNorm)}' is not softmax or raw`);
  for (const [k, v] of Object.entries(r.mu))
    if (!(v >= 0)) throw new Error(`head.mu.${k} must be >= 0, got ${v}`);
  if (!(r.dropout >= 0 && r.dropout < 1)) throw new Error(`head.dropout must be in [0, 1), got ${r.dropout}`);
  if (r.speechCodebookDim !== null && !(Number.isInteger(r.speechCodebookDim) && r.speechCodebookDim > 0))
    throw new Error(`head.speechCodebookDim must be a positive integer or null, got ${r.speechCodebookDim}`);
  return r;
}
