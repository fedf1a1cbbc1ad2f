/**
 * The LE-MER head (paper section 2, SPEC "The model"), as graph builders over tensors.
 *
 * `fusedHead` / `unimodalHead` take their parameters as tensors (so a float64 gradient
 * check can feed them as inputs); `headParams` creates them under the caller's scope with
 * the agreed names (`label_embeddings.text`, `label_embeddings.speech`,
 * `cross_attention.weight`, `classifier.weight`, `classifier.bias`).
 *
 * Shapes: H_t [B, Lt, Dt] with mask [B, Lt]; H_s [B, Ls, Ds] with mask [B, Ls]; L_t [C, Dt];
 * L_s [C, Ds]; W [Dt, Ds]. Every pooling and softmax reads the masks: padded tokens and
 * frames never change a result.
 */
import type { Graph, Tensor } from '../../graph/graph.js';
import * as ops from '../../graph/ops/index.js';
import {
  cosineSimilarity,
  floatMask,
  maskedMax,
  maskedMean,
  maskedSoftmax,
  outerMask,
} from '../../graph/layers/pooling.js';
import type { Fusion, LemerHeadConfig } from './config.js';

/** Parameters of the head, as tensors. Absent ones belong to branches the model does not have. */
export interface HeadParams {
  /** L_t [C, Dt]. */
  textLabels?: Tensor;
  /** L_s [C, Ds]. */
  speechLabels?: Tensor;
  /** W [Dt, Ds] of A_r = softmax(H_t W H_s^T); absent in the label-only variant (C3), which has no A_r. */
  crossWeight?: Tensor;
  /** [C, D] (torch.nn.Linear layout) and [C]. */
  classifierWeight: Tensor;
  classifierBias: Tensor;
}

/** One modality's encoder output as the head reads it. */
export interface Branch {
  hidden: Tensor;
  /** Valid positions [B, L] (1 = real). */
  mask: Tensor;
  /** Positions the label attention averages over (text.labelScope = current); default `mask`. */
  labelMask?: Tensor;
}

/** Label attention of one modality: G = cos(H, L) [B, L, C] and its class logits s * masked-mean(G) [B, C]. */
export interface LabelAttention {
  /** G [B, L, C]: cosine of every token / frame with every label embedding. */
  attention: Tensor;
  /** s * masked-mean over positions of G [B, C]; p_g = softmax of it. */
  logits: Tensor;
}

export function labelAttention(b: Branch, labels: Tensor, scale: number): LabelAttention {
  const attention = cosineSimilarity(b.hidden, labels);
  const mean = maskedMean(attention, b.labelMask ?? b.mask);
  return { attention, logits: scale === 1 ? mean : ops.mul(mean, scale) };
}

/** The head's label mask: the label scope within the valid positions. */
export function scopeMask(mask: Tensor, labelMask: Tensor | undefined): Tensor | undefined {
  if (!labelMask) return undefined;
  const dt = mask.graph.floatType;
  return ops.mul(floatMask(mask, dt), floatMask(labelMask, dt));
}

export interface FusedHeadOutput {
  logits: Tensor;
  text: LabelAttention;
  speech: LabelAttention;
  /** Valid (token, frame) cells [B, Lt, Ls] as floats. */
  pairMask: Tensor;
  /** A_r [B, Lt, Ls] (null in label-only, C3). */
  crossAttention: Tensor | null;
  /** A_l [B, Lt, Ls], normalised as head.alNorm says; padded cells 0. */
  labelAttention: Tensor;
  /** The attention that fuses: A_r (C1, C4), A_r + A_l (C2), A_l (C3). */
  fusedAttention: Tensor;
  /** H_m [B, Lt, Dt + Ds]. */
  fused: Tensor;
  /** v [B, Dt + Ds] (before dropout). */
  pooled: Tensor;
}

/** Whether a fusion variant trains with the attention constraint L_c. */
export const hasConstraint = (f: Fusion): boolean => f === 'constraint';
/** Whether a fusion variant has the learned cross-attention A_r (and its W). */
export const hasCrossAttention = (f: Fusion): boolean => f !== 'label-only';

function classify(v: Tensor, p: HeadParams, dropout: number): Tensor {
  const x = dropout > 0 ? ops.dropout(v, dropout) : v;
  return ops.add(ops.matmul(x, ops.transpose(p.classifierWeight, [1, 0])), p.classifierBias);
}

/**
 * The fused model (Eqs 1-11): label-token and label-frame attention, A_r, A_l, fusion by
 * the variant's attention, H_m = [H_t ; A H_s], masked max-pool over tokens, classifier.
 */
export function fusedHead(
  text: Branch,
  speech: Branch,
  p: HeadParams,
  cfg: Pick<LemerHeadConfig, 'fusion' | 'labelTemperature' | 'alNorm' | 'dropout'>,
): FusedHeadOutput {
  const g = text.hidden.graph;
  if (!p.textLabels || !p.speechLabels)
    throw g.error('lemerHead', 'the fused head needs both label embeddings', [text.hidden, speech.hidden]);
  const t = labelAttention(text, p.textLabels, cfg.labelTemperature);
  const s = labelAttention(speech, p.speechLabels, cfg.labelTemperature);
  const pairMask = outerMask(text.mask, speech.mask, text.hidden.dtype);

  // A_r = softmax over frames of H_t W H_s^T (Eq 7 read with matching shapes); rows of padded
  // tokens and columns of padded frames are 0.
  let crossAttention: Tensor | null = null;
  if (hasCrossAttention(cfg.fusion)) {
    if (!p.crossWeight)
      throw g.error('lemerHead', `fusion '${cfg.fusion}' needs the cross-attention weight`, [text.hidden]);
    const scores = ops.matmul(ops.matmul(text.hidden, p.crossWeight), ops.transposeLast2(speech.hidden));
    crossAttention = maskedSoftmax(scores, pairMask, -1);
  }
  // A_l = G_t G_s^T (Eq 10), normalised like A_r by default; raw: padded cells zeroed.
  const alRaw = ops.matmul(t.attention, ops.transposeLast2(s.attention));
  const al = cfg.alNorm === 'softmax' ? maskedSoftmax(alRaw, pairMask, -1) : ops.mul(alRaw, pairMask);

  const fusedAttention =
    cfg.fusion === 'label-only' ? al : cfg.fusion === 'sum' ? ops.add(crossAttention!, al) : crossAttention!;
  const fused = ops.concat([text.hidden, ops.matmul(fusedAttention, speech.hidden)], -1);
  const pooled = maskedMax(fused, text.mask);
  return {
    logits: classify(pooled, p, g.training ? cfg.dropout : 0),
    text: t,
    speech: s,
    pairMask,
    crossAttention,
    labelAttention: al,
    fusedAttention,
    fused,
    pooled,
  };
}

export interface UnimodalHeadOutput {
  logits: Tensor;
  /** Present with label embeddings. */
  label: LabelAttention | null;
  pooled: Tensor;
}

/**
 * A unimodal model (Tables 1-2): masked max-pool of the encoder's hidden states, classifier;
 * with label embeddings, also the label attention (G, p_g) whose loss trains the encoder
 * and the embeddings (the embeddings do not enter the classifier's input).
 */
export function unimodalHead(
  b: Branch,
  p: HeadParams,
  cfg: Pick<LemerHeadConfig, 'labelTemperature' | 'dropout'>,
  labels: Tensor | undefined,
): UnimodalHeadOutput {
  const g = b.hidden.graph;
  const label = labels ? labelAttention(b, labels, cfg.labelTemperature) : null;
  const pooled = maskedMax(b.hidden, b.mask);
  return { logits: classify(pooled, p, g.training ? cfg.dropout : 0), label, pooled };
}

export interface HeadShape {
  numClasses: number;
  /** Text hidden size (absent: no text branch). */
  textDim?: number;
  speechDim?: number;
  /** Whether label embeddings exist for each present branch. */
  labelEmbeddings: boolean;
  fusion?: Fusion;
  /** See LemerHeadConfig.speechCodebookDim. */
  speechCodebookDim?: number | null;
}

/** Default init of the label embeddings (the `random` variant) and of W: normal(0, 0.02), as BERT's. */
const NORMAL = { kind: 'normal', std: 0.02 } as const;

/**
 * Creates the head's parameters in `g` under the current scope. Fused when both dims are
 * given; the classifier reads [Dt + Ds] there, else the one branch's dim.
 */
export function headParams(g: Graph, s: HeadShape): HeadParams {
  const c = s.numClasses;
  const fusedModel = s.textDim !== undefined && s.speechDim !== undefined;
  const p: Partial<HeadParams> = {};
  g.scope('label_embeddings', () => {
    if (!s.labelEmbeddings && !fusedModel) return;
    if (s.textDim !== undefined) p.textLabels = g.param('text', [c, s.textDim], { init: NORMAL });
    if (s.speechDim !== undefined) {
      if (s.speechCodebookDim) {
        // Codebook vectors (filled by the init, kept fixed) through a learned projection.
        const cb = g.param('speech_codebook', [c, s.speechCodebookDim], { init: NORMAL, trainable: false });
        const w = g.param('speech_projection.weight', [s.speechDim, s.speechCodebookDim], { init: NORMAL });
        p.speechLabels = ops.matmul(cb, ops.transpose(w, [1, 0]));
      } else p.speechLabels = g.param('speech', [c, s.speechDim], { init: NORMAL });
    }
  });
  if (fusedModel && hasCrossAttention(s.fusion ?? 'constraint'))
    p.crossWeight = g.param('cross_attention.weight', [s.textDim!, s.speechDim!], { init: NORMAL });
  const d = (s.textDim ?? 0) + (s.speechDim ?? 0);
  g.scope('classifier', () => {
    p.classifierWeight = g.param('weight', [c, d], { init: NORMAL });
    p.classifierBias = g.param('bias', [c]);
  });
  return p as HeadParams;
}
