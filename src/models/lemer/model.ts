/**
 * `lemerModel(spec)`: encoders + the LE-MER head as one trainable model (the interface
 * agreed with src/train: inputs, trainInputs, infer, train, paramPrefixes). A model file
 * knows no corpus: inputs are the encoders' own (prefixed `text.` / `speech.`).
 *
 * Kinds:
 * - `lemer`: both encoders, the fused head (fusion variant from `head.fusion`), Eq 12's loss;
 * - `text` / `speech`: one encoder, masked max-pool + classifier; with label embeddings
 *   (`useLabelEmbeddings`) also that modality's label attention and its loss (mu3 / mu4).
 */
import type { Graph, Tensor } from '../../graph/graph.js';
import * as ops from '../../graph/ops/index.js';
import { accuracy } from '../../graph/layers/losses.js';
import type { BuildContext, InputDecl, LossTerm, TrainBuild } from '../../graph/train.js';
import type { Encoder, EncoderOutput } from '../encoder.js';
import { type LemerHeadConfig, resolveHeadConfig } from './config.js';
import {
  type Branch,
  fusedHead,
  hasConstraint,
  headParams,
  scopeMask,
  unimodalHead,
  type HeadParams,
} from './head.js';
import {
  classificationLoss,
  classificationTerm,
  constraintLoss,
  constraintTerm,
  LOSS_METRICS,
  type LossTerms,
  rowWeights,
  totalLoss,
} from './losses.js';

export type LemerModelKind = 'lemer' | 'text' | 'speech';

export interface LemerModelSpec {
  kind: LemerModelKind;
  textEncoder?: Encoder;
  speechEncoder?: Encoder;
  numClasses: number;
  /** The config's `head` section plus dropout (see config.ts; missing keys take the defaults). */
  head?: Partial<LemerHeadConfig>;
  /** Unimodal models with or without label embeddings (Tables 1-2). The fused model always has them. */
  useLabelEmbeddings: boolean;
  /** text.labelScope: `current` adds the input `text.label_mask` (1 = token of the current utterance). */
  labelScope?: 'context' | 'current';
  /** A learned softmax-weighted sum of every hidden state of each encoder (SUPERB) instead of the last. */
  layerWeights?: boolean;
  /** Class weights of the CE terms (class-balanced loss); null/absent = plain mean. */
  classWeights?: readonly number[] | null;
}

export const PARAM_PREFIXES = { text: 'text_encoder.', speech: 'speech_encoder.', head: 'head.' } as const;

/** Output names of `infer`. */
export const OUTPUTS = {
  logits: 'logits',
  probs: 'probs',
  textLabelAttention: 'text_label_attention',
  speechLabelAttention: 'speech_label_attention',
  textLabelProbs: 'text_label_probs',
  speechLabelProbs: 'speech_label_probs',
  crossAttention: 'cross_attention',
  labelAttention: 'label_attention',
  fusedAttention: 'fused_attention',
  textMask: 'text_mask',
  speechMask: 'speech_mask',
} as const;

export interface LemerModel {
  spec: LemerModelSpec;
  head: LemerHeadConfig;
  inputs: Record<string, InputDecl>;
  trainInputs: Record<string, InputDecl>;
  infer(g: Graph, inputs: Record<string, Tensor>, ctx: BuildContext): Record<string, Tensor>;
  train: TrainBuild;
  paramPrefixes: { text: string; speech: string; head: string };
  /** Metric names `train` reports. */
  metricNames: string[];
}

interface Built {
  logits: Tensor;
  outputs: Record<string, Tensor>;
  /** What each loss term is computed from: the logits of each CE term, A_l / A_r / mask of L_c. */
  parts: LossParts;
}

function checkSpec(spec: LemerModelSpec): void {
  if (!['lemer', 'text', 'speech'].includes(spec.kind))
    throw new Error(`lemerModel: kind '${String(spec.kind)}' is not lemer, text or speech`);
  if (!(Number.isInteger(spec.numClasses) && spec.numClasses >= 2))
    throw new Error(`lemerModel: numClasses must be an integer >= 2, got ${spec.numClasses}`);
  const needText = spec.kind !== 'speech';
  const needSpeech = spec.kind !== 'text';
  if (needText && !spec.textEncoder) throw new Error(`lemerModel: a ${spec.kind} model needs a text encoder`);
  if (needSpeech && !spec.speechEncoder)
    throw new Error(`lemerModel: a ${spec.kind} model needs a speech encoder`);
  for (const [m, enc] of [
    ['text', needText ? spec.textEncoder : undefined],
    ['speech', needSpeech ? spec.speechEncoder : undefined],
  ] as const)
    if (enc && enc.modality !== m)
      throw new Error(`lemerModel: the ${m} encoder (${enc.source}) is a ${enc.modality} encoder`);
  if (spec.kind === 'lemer' && !spec.useLabelEmbeddings)
    throw new Error('lemerModel: the fused model always has label embeddings (useLabelEmbeddings: true)');
  const w = spec.classWeights;
  if (w && (w.length !== spec.numClasses || w.some((x) => !(x >= 0))))
    throw new Error(
      `lemerModel: classWeights needs ${spec.numClasses} non-negative numbers, got [${w.join(', ')}]`,
    );
}

/** Encoder inputs under the model's names (`text.input_ids`, `speech.input_features`, ...). */
function modelInputs(spec: LemerModelSpec): Record<string, InputDecl> {
  const out: Record<string, InputDecl> = {};
  const encs: ['text' | 'speech', Encoder | undefined][] = [
    ['text', spec.kind !== 'speech' ? spec.textEncoder : undefined],
    ['speech', spec.kind !== 'text' ? spec.speechEncoder : undefined],
  ];
  for (const [m, enc] of encs) if (enc) for (const [k, d] of Object.entries(enc.inputs)) out[`${m}.${k}`] = d;
  if (spec.kind !== 'speech' && spec.labelScope === 'current') {
    const am = out['text.attention_mask'];
    if (!am)
      throw new Error(`lemerModel: labelScope 'current' needs a text encoder with an attention_mask input`);
    out['text.label_mask'] = { dtype: 'int64', shape: am.shape };
  }
  return out;
}

/** The encoder's output under its prefix scope; with layerWeights, hidden = softmax(w)-weighted sum of hidden states. */
function encode(
  g: Graph,
  m: 'text' | 'speech',
  enc: Encoder,
  inputs: Record<string, Tensor>,
  training: boolean,
  layerWeights: boolean,
): EncoderOutput {
  const own: Record<string, Tensor> = {};
  for (const k of Object.keys(enc.inputs)) own[k] = inputs[`${m}.${k}`];
  const out = g.scope(PARAM_PREFIXES[m].slice(0, -1), () => enc.build(g, own, { training }));
  if (!layerWeights) return out;
  const hs = out.hiddenStates;
  const hidden = g.scope('head', () => {
    // Zeros: every layer starts with the same weight 1/n (SUPERB's init).
    const w = ops.softmax(g.param(`layer_weights.${m}`, [hs.length], { init: { kind: 'zeros' } }), 0);
    let sum: Tensor | null = null;
    hs.forEach((h, i) => {
      const term = ops.mul(h.withShape(out.hidden.shape), ops.slice(w, [i], [i + 1], [0]));
      sum = sum ? ops.add(sum, term) : term;
    });
    return sum!;
  });
  return { ...out, hidden };
}

/** Builds the model with its outputs for the LemerModel shape. */
export function lemerModel(spec: LemerModelSpec): LemerModel {
  checkSpec(spec);
  const head = resolveHeadConfig(spec.head);
  const inputs = modelInputs(spec);
  const kind = spec.kind;
  const fused = kind === 'lemer';
  const withLabels = spec.useLabelEmbeddings || fused;

  const build = (g: Graph, i: Record<string, Tensor>, training: boolean): Built => {
    const lw = spec.layerWeights ?? false;
    const outputs: Record<string, Tensor> = {};
    let text: Branch | undefined;
    let speech: Branch | undefined;
    if (kind !== 'speech') {
      const o = encode(g, 'text', spec.textEncoder!, i, training, lw);
      text = { hidden: o.hidden, mask: o.mask, labelMask: scopeMask(o.mask, i['text.label_mask']) };
      outputs[OUTPUTS.textMask] = o.mask;
    }
    if (kind !== 'text') {
      const o = encode(g, 'speech', spec.speechEncoder!, i, training, lw);
      speech = { hidden: o.hidden, mask: o.mask };
      outputs[OUTPUTS.speechMask] = o.mask;
    }
    return g.scope(PARAM_PREFIXES.head.slice(0, -1), () => {
      const p: HeadParams = headParams(g, {
        numClasses: spec.numClasses,
        textDim: text ? spec.textEncoder!.hiddenSize : undefined,
        speechDim: speech ? spec.speechEncoder!.hiddenSize : undefined,
        labelEmbeddings: withLabels,
        fusion: head.fusion,
        speechCodebookDim: head.speechCodebookDim,
      });
      if (fused) {
        const h = fusedHead(text!, speech!, p, head);
        outputs[OUTPUTS.textLabelAttention] = h.text.attention;
        outputs[OUTPUTS.speechLabelAttention] = h.speech.attention;
        outputs[OUTPUTS.textLabelProbs] = ops.softmax(h.text.logits, -1);
        outputs[OUTPUTS.speechLabelProbs] = ops.softmax(h.speech.logits, -1);
        if (h.crossAttention) outputs[OUTPUTS.crossAttention] = h.crossAttention;
        outputs[OUTPUTS.labelAttention] = h.labelAttention;
        outputs[OUTPUTS.fusedAttention] = h.fusedAttention;
        return {
          logits: h.logits,
          outputs,
          parts: {
            main: h.logits,
            textLabel: h.text.logits,
            speechLabel: h.speech.logits,
            constraint: hasConstraint(head.fusion)
              ? { al: h.labelAttention, ar: h.crossAttention!, mask: h.pairMask }
              : undefined,
          },
        };
      }
      const b = (text ?? speech)!;
      const labels = withLabels ? (text ? p.textLabels : p.speechLabels) : undefined;
      const h = unimodalHead(b, p, head, labels);
      if (h.label) {
        outputs[text ? OUTPUTS.textLabelAttention : OUTPUTS.speechLabelAttention] = h.label.attention;
        outputs[text ? OUTPUTS.textLabelProbs : OUTPUTS.speechLabelProbs] = ops.softmax(h.label.logits, -1);
      }
      const parts: LossParts = { main: h.logits };
      if (h.label) parts[text ? 'textLabel' : 'speechLabel'] = h.label.logits;
      return { logits: h.logits, outputs, parts };
    });
  };

  const metricNames: string[] = [LOSS_METRICS.main];
  if (fused && hasConstraint(head.fusion)) metricNames.push(LOSS_METRICS.constraint);
  if (withLabels && kind !== 'speech') metricNames.push(LOSS_METRICS.textLabel);
  if (withLabels && kind !== 'text') metricNames.push(LOSS_METRICS.speechLabel);
  metricNames.push('accuracy');

  return {
    spec,
    head,
    inputs,
    trainInputs: { ...inputs, labels: { dtype: 'int64', shape: ['batch'] } },
    infer: (g, i, ctx) => {
      const b = build(g, i, ctx.training);
      return { [OUTPUTS.logits]: b.logits, [OUTPUTS.probs]: ops.softmax(b.logits, -1), ...b.outputs };
    },
    train: (g, i, ctx) => {
      const b = build(g, i, ctx.training);
      const y = i.labels;
      const cw = spec.classWeights;
      const weights = rowWeights(cw ? g.constant(floats(g, cw), [cw.length], 'class_weights') : undefined, y);
      // The logged terms are plain means (comparable across class-weight settings).
      const plain = lossTerms(b.parts, y, undefined);
      const metrics: Record<string, Tensor> = {};
      for (const k of Object.keys(LOSS_METRICS) as (keyof LossTerms)[]) {
        const t = plain[k];
        if (t) metrics[LOSS_METRICS[k]] = t;
      }
      metrics.accuracy = accuracy(b.logits, y);
      // A class-weighted mean (sum(w l) / sum(w)) or L_c's mean over valid cells is not the
      // mean of its micro-batches' means: as Trainer terms { sum, count } they are exact.
      // With one plain micro-batch the loss stays one tensor (the same graph as before).
      if (weights || ctx.chunks > 1) return { terms: exactTerms(b.parts, y, weights, head.mu), metrics };
      return { loss: totalLoss(plain, head.mu), metrics };
    },
    paramPrefixes: { ...PARAM_PREFIXES },
    metricNames,
  };
}

/** The inputs of each loss term (absent terms are not part of the model's loss). */
interface LossParts {
  main: Tensor;
  textLabel?: Tensor;
  speechLabel?: Tensor;
  constraint?: { al: Tensor; ar: Tensor; mask: Tensor };
}

function lossTerms(p: LossParts, y: Tensor, w: Tensor | undefined): LossTerms {
  const t: LossTerms = { main: classificationLoss(p.main, y, w) };
  if (p.constraint) t.constraint = constraintLoss(p.constraint.al, p.constraint.ar, p.constraint.mask);
  if (p.textLabel) t.textLabel = classificationLoss(p.textLabel, y, w);
  if (p.speechLabel) t.speechLabel = classificationLoss(p.speechLabel, y, w);
  return t;
}

/** Trainer term names of Eq 12's parts (their values come back as metrics of these names). */
export const TERM_NAMES = {
  main: 'term_main',
  constraint: 'term_constraint',
  textLabel: 'term_text_label',
  speechLabel: 'term_speech_label',
} as const;

function exactTerms(
  p: LossParts,
  y: Tensor,
  w: Tensor | undefined,
  mu: LemerHeadConfig['mu'],
): Record<string, LossTerm> {
  const out: Record<string, LossTerm> = {};
  const add = (k: keyof typeof TERM_NAMES, t: { sum: Tensor; count: Tensor }, weight: number) => {
    if (weight !== 0 || k === 'main') out[TERM_NAMES[k]] = { ...t, weight };
  };
  add('main', classificationTerm(p.main, y, w), mu.fusion);
  if (p.constraint)
    add('constraint', constraintTerm(p.constraint.al, p.constraint.ar, p.constraint.mask), mu.constraint);
  if (p.textLabel) add('textLabel', classificationTerm(p.textLabel, y, w), mu.textLabel);
  if (p.speechLabel) add('speechLabel', classificationTerm(p.speechLabel, y, w), mu.speechLabel);
  return out;
}

function floats(g: Graph, xs: readonly number[]): Float32Array | Float64Array {
  return g.floatType === 'float64' ? Float64Array.from(xs) : Float32Array.from(xs);
}
