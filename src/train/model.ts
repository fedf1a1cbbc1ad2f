/**
 * From a config and a fold's training texts to the model that trains: the encoders (built
 * in place when the config names no folder), the tokenizer, the head, the optimiser's
 * parameter groups and which parameters train (frozen encoders, top-N layers).
 */
import type { LemerConfig } from '../config/schema.js';
import type { OptimizerConfig } from '../graph/optim.js';
import type { HostTensor } from '../graph/runtime.js';
import type { Encoder } from '../models/encoder.js';
import { loadTokenizer, tokenizerFromJson, type TextTokenizer } from '../text/tokenizer.js';
import { buildWordPieceVocab } from '../text/vocab.js';
import { headConfigFrom, lemerModel, PARAM_PREFIXES } from '../models/lemer/index.js';
import type { ModelKind, TrainableModel } from './head.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createEncoder, loadEncoder } from '../models/encoders.js';
import { CONFORMER_MODEL_TYPE, conformerEncoder, loadConformerFolder } from '../models/conformer/index.js';
import type { FrontEnd } from './audio-cache.js';
import { compactSpeechEncoder } from './inplace.js';
import { withInputNorm } from './input-norm.js';

export interface BuiltModel {
  kind: ModelKind;
  model: TrainableModel;
  tokenizer: TextTokenizer | null;
  /** The in-place WordPiece vocabulary (tokenizer.json), saved beside the fold's checkpoints. */
  tokenizerJson: Record<string, unknown> | null;
  textEncoder?: Encoder;
  speechEncoder?: Encoder;
  /** Weights from encoder folders, under the model's parameter names. */
  initialParams: Map<string, HostTensor>;
  /** speech.codebookMode projection: the quantiser's code-vector size D (L_s = codebook W^T); else null. */
  speechCodebookDim: number | null;
  trainable: (name: string) => boolean;
  /** What the speech encoder reads. */
  frontEnd: FrontEnd | null;
  /** One line for the log: what was built. */
  description: string;
}

/** The speech front end an encoder needs, from its declared inputs. */
export function frontEndOf(cfg: LemerConfig, enc: Encoder): FrontEnd {
  if ('input_features' in enc.inputs)
    return { kind: 'logmel', sampleRate: cfg.speech.sampleRate, logMel: { ...cfg.speech.logMel } };
  if ('input_values' in enc.inputs) return { kind: 'waveform', sampleRate: cfg.speech.sampleRate };
  throw new Error(
    `speech encoder ${enc.source}: declares neither input_features (log-mel) nor input_values (waveform)`,
  );
}

/** An encoder folder (Hugging Face layout, or a lemer conformer folder), checked against the modality the config puts it in. */
export function encoderFolder(dir: string, modality: 'text' | 'speech'): Encoder {
  const cfgPath = join(dir, 'config.json');
  let modelType: unknown;
  try {
    modelType = (JSON.parse(readFileSync(cfgPath, 'utf8')) as { model_type?: unknown }).model_type;
  } catch (err) {
    throw new Error(`encoders.${modality}.path: ${cfgPath}: ${(err as Error).message}`);
  }
  const enc = modelType === CONFORMER_MODEL_TYPE ? loadConformerFolder(dir) : loadEncoder(dir);
  if (enc.modality !== modality)
    throw new Error(
      `encoders.${modality}.path: ${dir} holds a ${enc.modality} encoder (model_type ${enc.modelType}), not a ${modality} one`,
    );
  return enc;
}

/** The speech front end the config's speech encoder needs, before any fold is built. */
export function configFrontEnd(cfg: LemerConfig): FrontEnd {
  const path = cfg.encoders.speech.path;
  if (path === null)
    return { kind: 'logmel', sampleRate: cfg.speech.sampleRate, logMel: { ...cfg.speech.logMel } };
  return frontEndOf(cfg, encoderFolder(path, 'speech'));
}

/**
 * Which parameters of an encoder train: none when frozen; with `top` = N only those of its
 * top N layers (and the final norm above them); else all.
 */
export function encoderTrainable(
  prefix: string,
  numLayers: number,
  opts: { freeze: boolean; top: number | null },
): (name: string) => boolean {
  return (name) => {
    if (!name.startsWith(prefix)) return true;
    if (opts.freeze) return false;
    if (opts.top === null || opts.top >= numLayers) return true;
    const rest = name.slice(prefix.length);
    const m = /(?:^|\.)layers?\.(\d+)\./.exec(rest);
    if (m) return Number(m[1]) >= numLayers - opts.top;
    // Not in a layer: the final norm sits above the layers (trains with them); embeddings,
    // feature encoders and subsampling sit below (frozen).
    return opts.top > 0 && /^encoder\.(layer_norm|LayerNorm)\./.test(rest);
  };
}

export async function buildModel(
  cfg: LemerConfig,
  kind: ModelKind,
  opts: {
    trainTexts: string[];
    classWeights: number[] | null;
    /** The in-place vocabulary a fold saved (tokenizer.json): used as it is instead of being rebuilt (export). */
    tokenizerJson?: Record<string, unknown>;
  },
): Promise<BuiltModel> {
  const needText = kind !== 'speech';
  const needSpeech = kind !== 'text';
  let tokenizer: TextTokenizer | null = null;
  let tokenizerJson: Record<string, unknown> | null = null;
  let textEncoder: Encoder | undefined;
  let speechEncoder: Encoder | undefined;
  const initialParams = new Map<string, HostTensor>();
  const prefixed = (m: 'text' | 'speech', enc: Encoder) => {
    for (const [k, t] of enc.weights ?? []) initialParams.set(`${PARAM_PREFIXES[m]}${k}`, t);
  };
  if (needText) {
    const path = cfg.encoders.text.path;
    if (path !== null) {
      textEncoder = encoderFolder(path, 'text');
      tokenizer = await loadTokenizer(path);
      const vocab = (textEncoder.config.vocab_size as number | undefined) ?? Infinity;
      if (tokenizer.vocabSize > vocab)
        throw new Error(
          `${path}: the tokenizer has ${tokenizer.vocabSize} tokens, the encoder's vocab_size is ${vocab}: they do not belong together`,
        );
      prefixed('text', textEncoder);
    } else {
      // From scratch: a WordPiece vocabulary from the training fold's texts only.
      const t = cfg.train.inPlace.text;
      tokenizerJson = opts.tokenizerJson ?? buildWordPieceVocab(opts.trainTexts, { vocabSize: t.vocabSize });
      tokenizer = tokenizerFromJson(tokenizerJson, {}, 'in-place vocabulary (training fold)');
      textEncoder = createEncoder(
        'bert',
        {
          vocab_size: tokenizer.vocabSize,
          hidden_size: t.hiddenSize,
          num_hidden_layers: t.numLayers,
          num_attention_heads: t.numHeads,
          intermediate_size: t.intermediateSize,
          hidden_dropout_prob: t.dropout,
          attention_probs_dropout_prob: t.dropout,
          // As BERT: room for label descriptions (K keywords) longer than one input.
          max_position_embeddings: Math.max(cfg.text.maxTokens, 512),
          pad_token_id: tokenizer.padId,
        },
        {
          source: `in-place BERT (hidden ${t.hiddenSize}, ${t.numLayers} layers, vocabulary ${tokenizer.vocabSize})`,
        },
      );
    }
  }
  if (needSpeech) {
    const path = cfg.encoders.speech.path;
    if (path !== null) {
      speechEncoder = encoderFolder(path, 'speech');
      prefixed('speech', speechEncoder);
    } else {
      const s = cfg.train.inPlace.speech;
      speechEncoder =
        s.kind === 'compact'
          ? compactSpeechEncoder({ ...s, numBins: cfg.speech.logMel.numBins })
          : conformerEncoder(inPlaceConformerConfig(cfg), {
              source: `in-place log-mel conformer (hidden ${s.hiddenSize}, ${s.numLayers} layers)`,
              configSource: 'train.inPlace.speech',
            });
    }
    if (speechEncoder.inputs.input_features && cfg.speech.logMel.normalize === 'global') {
      if (cfg.encoders.speech.freeze)
        throw new Error(
          "speech.logMel.normalize 'global' trains its statistics per fold; frozen speech encoders read cached features: use 'utterance' or 'none' with encoders.speech.freeze",
        );
      speechEncoder = withInputNorm(speechEncoder);
    }
    if (speechEncoder.inputs.input_features) {
      const bins = speechEncoder.inputs.input_features.shape[2];
      if (bins !== cfg.speech.logMel.numBins)
        throw new Error(
          `${speechEncoder.source}: the encoder reads ${String(bins)} mel bins, the config's speech.logMel.numBins is ${cfg.speech.logMel.numBins}`,
        );
    }
  }
  const speechCodebookDim = codebookDimFor(cfg, kind, speechEncoder);
  const model = headModel(cfg, kind, textEncoder, speechEncoder, opts.classWeights, speechCodebookDim);
  const rules: ((n: string) => boolean)[] = [];
  if (textEncoder)
    rules.push(
      encoderTrainable(PARAM_PREFIXES.text, textEncoder.numLayers, {
        freeze: cfg.encoders.text.freeze,
        top: cfg.train.trainableLayers,
      }),
    );
  if (speechEncoder)
    rules.push(
      encoderTrainable(PARAM_PREFIXES.speech, speechEncoder.numLayers, {
        freeze: cfg.encoders.speech.freeze,
        top: cfg.train.trainableLayers,
      }),
    );
  const parts = [textEncoder?.source, speechEncoder?.source].filter(Boolean).join(' + ');
  return {
    kind,
    model,
    tokenizer,
    tokenizerJson,
    textEncoder,
    speechEncoder,
    initialParams,
    speechCodebookDim,
    trainable: (n) => rules.every((r) => r(n)),
    frontEnd: speechEncoder ? frontEndOf(cfg, speechEncoder) : null,
    description: `${kind} model${kind === 'lemer' ? ` (${model.head.fusion})` : ''}: ${parts}, LE-MER head`,
  };
}

/**
 * The in-place log-mel conformer's config.json (train.inPlace.speech, kind conformer); with
 * 2nd-stage pretraining on, also its quantiser (pretrain.quantizer), so that the pretraining
 * objective and codebook label embeddings find it.
 */
export function inPlaceConformerConfig(cfg: LemerConfig): Record<string, unknown> {
  const s = cfg.train.inPlace.speech;
  const q = cfg.pretrain.quantizer;
  return {
    model_type: CONFORMER_MODEL_TYPE,
    num_mel_bins: cfg.speech.logMel.numBins,
    hidden_size: s.hiddenSize,
    num_hidden_layers: s.numLayers,
    num_attention_heads: s.numHeads,
    intermediate_size: s.ffnDim,
    conv_depthwise_kernel_size: s.convKernel,
    hidden_dropout: s.dropout,
    activation_dropout: s.dropout,
    attention_dropout: s.dropout,
    conformer_conv_dropout: s.dropout,
    ...(cfg.pretrain.enabled
      ? {
          num_codevector_groups: q.groups,
          num_codevectors_per_group: q.perGroup,
          codevector_dim: q.dim,
          proj_codevector_dim: q.projDim,
          ...(cfg.pretrain.numNegatives !== null ? { num_negatives: cfg.pretrain.numNegatives } : {}),
        }
      : {}),
  };
}

/** Whether the model's speech label embeddings are codebook vectors through a projection, and their size D. */
export function codebookDimFor(
  cfg: LemerConfig,
  kind: ModelKind,
  speechEncoder: Encoder | undefined,
): number | null {
  const withLabels = kind === 'lemer' || cfg.train.labelEmbeddings;
  if (!speechEncoder || kind === 'text' || !withLabels) return null;
  if (cfg.speech.labelInit !== 'codebook' || cfg.speech.codebookMode !== 'projection') return null;
  const d = speechEncoder.config.codevector_dim;
  if (typeof d !== 'number' || !(d > 0))
    throw new Error(
      `speech.codebookMode projection needs an encoder with a quantizer (codebook vectors); ${speechEncoder.source} has none: use hidden-mean${cfg.encoders.speech.path === null ? ', or pretrain an in-place conformer (pretrain.enabled)' : ''}`,
    );
  return d;
}

/** The LE-MER model (src/models/lemer) over the given encoders, as the config says. */
export function headModel(
  cfg: LemerConfig,
  kind: ModelKind,
  textEncoder: Encoder | undefined,
  speechEncoder: Encoder | undefined,
  classWeights: number[] | null,
  speechCodebookDim: number | null = null,
): ReturnType<typeof lemerModel> {
  return lemerModel({
    kind,
    textEncoder,
    speechEncoder,
    numClasses: cfg.classes.length,
    head: headConfigFrom(cfg, { dropout: cfg.train.headDropout, speechCodebookDim }),
    // The fused model always has label embeddings; unimodal ones as the config says (Tables 1-2).
    useLabelEmbeddings: kind === 'lemer' || cfg.train.labelEmbeddings,
    labelScope: cfg.text.labelScope,
    layerWeights: cfg.train.layerWeights,
    classWeights,
  });
}

/** The engine's optimiser from the config: one learning rate per module, warm-up, clipping. */
export function optimizerFor(cfg: LemerConfig, totalSteps: number): OptimizerConfig {
  const o = cfg.optim;
  const warmupSteps =
    cfg.train.warmupFraction !== null ? Math.round(cfg.train.warmupFraction * totalSteps) : o.warmupSteps;
  return {
    kind: o.name,
    lr: o.lr.head,
    betas: [o.beta1, o.beta2],
    eps: o.eps,
    weightDecay: o.weightDecay,
    groups: [
      { name: 'text', match: PARAM_PREFIXES.text, lr: o.lr.text },
      { name: 'speech', match: PARAM_PREFIXES.speech, lr: o.lr.speech },
      { name: 'head', match: PARAM_PREFIXES.head, lr: o.lr.head },
    ],
    schedule: {
      warmupSteps,
      decay: o.decay,
      ...(o.decay !== 'constant' ? { totalSteps: Math.max(totalSteps, warmupSteps + 1) } : {}),
    },
    ...(o.clipNorm !== null ? { maxGradNorm: o.clipNorm } : {}),
  };
}
