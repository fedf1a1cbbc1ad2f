/**
 * Label-embedding initialisation for one fold (Table 1's variants), from the fold's
 * TRAINING utterances only: text keywords by class TF-IDF through the text encoder
 * (src/models/lemer/label-embeddings.ts), and speech codes from the speech encoder folder's
 * quantiser where it has one (a pretraining checkpoint, or the fold's 2nd-stage pretrained
 * encoder), else from k-means over its last hidden states; L_s = mean hidden state at the
 * frames carrying a class's top-K codes, or (codebookMode projection) the mean codebook
 * vector of those codes, which the head projects. `bert` in a speech-only model builds the
 * config's text encoder for the init alone (Table 1, B4). The encoders run
 * with the weights the trainer starts from (same names, same seed), so the embeddings
 * live in the space the head sees at step one.
 */
import type { LemerConfig } from '../config/schema.js';
import type { Corpus } from '../data/types.js';
import type { HostTensor, RuntimeOptions } from '../graph/runtime.js';
import { fitKMeans, assignCodes, concatFrames } from '../models/codes/index.js';
import {
  codeFrameMeans,
  encodeUtterances,
  selectSpeechCodes,
  selectTextKeywords,
  speechLabelInit,
  textLabelInit,
} from '../models/lemer/label-embeddings.js';
import { PARAM_PREFIXES } from '../models/lemer/index.js';
import { hasQuantizer, quantizerCodebook, quantizerCodes } from '../pretrain/codes.js';
import { makeBatch, type Example } from './data.js';
import { buildModel, type BuiltModel } from './model.js';
import { INPUT_NORM_PARAMS } from './input-norm.js';
import { normalised } from './pretrain-step.js';

export interface LabelInitInfo {
  /** Each class's keywords (text) and top codes (speech), where used. */
  keywords?: string[][];
  codes?: number[][];
  /** Where the speech codes came from: the encoder's quantiser or k-means over its hidden states. */
  codeSource?: 'quantizer' | 'kmeans';
}

/** Stop-word list of the corpus' language (EmoDB is German). */
function languageOf(corpus: Corpus): 'de' | 'en' {
  return corpus.name.toLowerCase().startsWith('emodb') ? 'de' : 'en';
}

function stack(rows: Float32Array[], dim: number): HostTensor {
  const data = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => data.set(r, i * dim));
  return { dtype: 'float32', shape: [rows.length, dim], data };
}

/** Puts the label-embedding initial values into `built.initialParams`; returns what they came from. */
export async function initLabelEmbeddings(
  cfg: LemerConfig,
  built: BuiltModel,
  corpus: Corpus,
  train: Example[],
  opts: { runtime?: RuntimeOptions; warn?: (m: string) => void },
): Promise<LabelInitInfo> {
  const info: LabelInitInfo = {};
  const classes = cfg.classes;
  const withLabels = built.kind === 'lemer' || cfg.train.labelEmbeddings;
  if (!withLabels) return info;
  const run = { weights: built.initialParams, seed: cfg.seed, runtime: opts.runtime };
  let textLabels: HostTensor | undefined;
  if (built.textEncoder && built.tokenizer) {
    const docs = train.map((e) => ({ label: classes[e.label], text: corpus.utterances[e.index].text }));
    const keywords =
      cfg.text.labelInit === 'tfidf'
        ? selectTextKeywords(docs, classes, cfg.text.labelK, languageOf(corpus), { warn: opts.warn })
        : undefined;
    const r = await textLabelInit({
      ...run,
      mode: cfg.text.labelInit,
      encoder: built.textEncoder,
      tokenizer: built.tokenizer,
      classes,
      keywords,
      source: cfg.text.labelSource,
    });
    for (const [k, v] of r.params) built.initialParams.set(k, v);
    textLabels = r.params.get(`${PARAM_PREFIXES.head}label_embeddings.text`);
    if (r.sources.length) info.keywords = r.sources.map((s) => s.map(String));
  }
  const enc = built.speechEncoder;
  if (enc && built.kind !== 'text') {
    const mode = cfg.speech.labelInit;
    if (mode === 'bert') {
      // A speech-only model has no text branch: a text encoder is built (or loaded) for this
      // init alone, as the fused model's would be, and its L_t projected to d_s (Table 1, B4).
      if (!textLabels) {
        if (cfg.text.labelInit === 'random')
          throw new Error(
            'speech.labelInit bert: needs text label embeddings from words (text.labelInit tfidf or label-words), not random',
          );
        const texts = train.map((e) => corpus.utterances[e.index].text);
        if (!texts.some((t) => t.trim() !== ''))
          throw new Error(
            'speech.labelInit bert: the training utterances have no transcripts to take text label embeddings from',
          );
        const tm = await buildModel(cfg, 'text', { trainTexts: texts, classWeights: null });
        const docs = train.map((e) => ({ label: classes[e.label], text: corpus.utterances[e.index].text }));
        const keywords =
          cfg.text.labelInit === 'tfidf'
            ? selectTextKeywords(docs, classes, cfg.text.labelK, languageOf(corpus), { warn: opts.warn })
            : undefined;
        const r = await textLabelInit({
          weights: tm.initialParams,
          seed: cfg.seed,
          runtime: opts.runtime,
          mode: cfg.text.labelInit,
          encoder: tm.textEncoder!,
          tokenizer: tm.tokenizer!,
          classes,
          keywords,
          source: cfg.text.labelSource,
        });
        textLabels = r.params.get(`${PARAM_PREFIXES.head}label_embeddings.text`);
        if (r.sources.length) info.keywords = r.sources.map((x) => x.map(String));
      }
      const r = await speechLabelInit({ ...run, mode, encoder: enc, classes, textLabels });
      for (const [k, v] of r.params) built.initialParams.set(k, v);
    } else if (mode === 'codebook') {
      const dir = cfg.encoders.speech.path;
      const withQuantizer = dir !== null && hasQuantizer(dir);
      const source =
        cfg.speech.codes === 'auto' ? (withQuantizer ? 'quantizer' : 'kmeans') : cfg.speech.codes;
      if (source === 'quantizer' && !withQuantizer)
        throw new Error(
          `speech.codes quantizer: ${enc.source} has no quantizer (use auto or kmeans${dir === null ? ', or pretrain.enabled with an in-place conformer' : ''})`,
        );
      const projection = cfg.speech.codebookMode === 'projection';
      if (projection && !withQuantizer)
        throw new Error(
          `speech.codebookMode projection needs an encoder with a quantizer (codebook vectors); ${enc.source} has none: use hidden-mean`,
        );
      // The encoder's own inputs, a batch at a time, in training order.
      const decls = Object.fromEntries(Object.entries(enc.inputs).map(([k, d]) => [`speech.${k}`, d]));
      const feeds: Record<string, HostTensor>[] = [];
      for (let i = 0; i < train.length; i += 16) {
        const b = makeBatch(train.slice(i, i + 16), { decls, labelScope: 'context', padId: 0 });
        feeds.push(Object.fromEntries(Object.entries(b).map(([k, v]) => [k.slice('speech.'.length), v])));
      }
      const { hidden } = await encodeUtterances(enc, feeds, run);
      let codes: ArrayLike<number>[];
      if (source === 'quantizer') {
        // The quantiser labels the frames the encoder's hidden states stand on (same mask).
        // The quantiser reads the encoder folder alone: global normalisation (in the model) applied here.
        const mean = built.initialParams.get(INPUT_NORM_PARAMS.mean);
        const std = built.initialParams.get(INPUT_NORM_PARAMS.std);
        const qFeeds =
          cfg.speech.logMel.normalize === 'global' && mean && std
            ? feeds.map((f) => {
                const x = f.input_features;
                if (!x) return f;
                const bins = x.shape[2];
                return {
                  ...f,
                  input_features: { ...x, data: normalised(x.data as Float32Array, bins, { mean, std }) },
                };
              })
            : feeds;
        codes = (await quantizerCodes(dir!, qFeeds, { runtime: opts.runtime })).codes;
        codes.forEach((c, i) => {
          if (c.length !== hidden[i].frames)
            throw new Error(
              `speech label codes: utterance ${train[i].id}: the quantizer of ${dir} gives ${c.length} codes for ${hidden[i].frames} encoder frames`,
            );
        });
      } else {
        const frames = concatFrames(hidden.map((h) => ({ data: h.data, n: h.frames, dim: h.dim })));
        const km = fitKMeans(frames, {
          k: Math.min(cfg.train.speechCodes, frames.n),
          seed: cfg.seed,
          maxIter: 30,
        });
        codes = hidden.map((h) => assignCodes(km, { data: h.data, n: h.frames, dim: h.dim }));
      }
      const docs = hidden.map((h, i) => ({ label: classes[train[i].label], codes: codes[i], hidden: h }));
      const top = selectSpeechCodes(docs, classes, cfg.speech.labelK, { warn: opts.warn });
      if (projection) {
        const book = quantizerCodebook(dir!);
        const r = await speechLabelInit({
          ...run,
          mode,
          encoder: enc,
          classes,
          codebookMode: 'projection',
          topCodes: top,
          codeVector: (c) => book.vectorOf(c),
        });
        for (const [k, v] of r.params) built.initialParams.set(k, v);
      } else {
        const rows = codeFrameMeans(docs, classes, top, {
          align: source === 'quantizer' ? 'exact' : 'proportional',
        });
        built.initialParams.set(`${PARAM_PREFIXES.head}label_embeddings.speech`, stack(rows, enc.hiddenSize));
      }
      info.codes = top;
      info.codeSource = source;
    }
  }
  return info;
}
