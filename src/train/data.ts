/**
 * Corpus utterances -> model batches. Text: the dialogue history and the current utterance
 * laid out as `[CLS] history [SEP] current [SEP]` (src/text), at most `text.maxTokens`
 * tokens, with a label mask over the context or the current utterance only. Speech: the
 * encoder's input from the audio cache (log-mel with per-utterance normalisation, or a
 * waveform), SpecAugment on log-mel in training only, seeded per epoch and utterance.
 * Batches are length-bucketed (similar lengths together, less padding) and padded on the
 * right; feeds are named and typed as the model declares them.
 */
import { historyFor } from '../data/context.js';
import type { Corpus } from '../data/types.js';
import type { HostTensor } from '../graph/runtime.js';
import type { InputDecl } from '../graph/train.js';
import { specAugment, type SpecAugmentOptions } from '../audio/logmel.js';
import type { Encoded, TextTokenizer } from '../text/tokenizer.js';
import { Rng } from '../util/random.js';
import type { SpeechInput } from './audio-cache.js';
import type { CachedFeatures } from './features.js';

/** One utterance, ready to batch. */
export interface Example {
  /** Index into corpus.utterances. */
  index: number;
  id: string;
  label: number;
  text?: Encoded;
  speech?: SpeechInput;
  /** Cached hidden states of frozen encoders ([frames, layers, dim]), fed as `<m>.hidden_states`. */
  features?: { text?: CachedFeatures; speech?: CachedFeatures };
}

export interface TextOptions {
  maxTokens: number;
  history: number;
  labelScope: 'context' | 'current';
}

/** Encodes an utterance's text with its dialogue history. */
export function encodeText(corpus: Corpus, index: number, tok: TextTokenizer, opts: TextOptions): Encoded {
  const u = corpus.utterances[index];
  // History turns are joined as they are; the pair layout adds [CLS] and two [SEP] (3 tokens).
  const history = historyFor(corpus, u, {
    maxTurns: opts.history,
    maxTokens: opts.maxTokens - 3,
    countTokens: (s) => tok.countTokens(s),
  });
  return tok.encode(u.text, { history, maxLength: opts.maxTokens });
}

/** A 32-bit mix of integers, for per-(seed, epoch, utterance) seeds. */
export function mixSeed(...xs: number[]): number {
  let h = 0x9e3779b9;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

export interface BatchOptions {
  /** Inputs the model declares (names and dtypes); the batch holds exactly these. */
  decls: Record<string, InputDecl>;
  labelScope: 'context' | 'current';
  padId: number;
  /** SpecAugment settings when training (null: none). */
  augment?: (SpecAugmentOptions & { seed: number }) | null;
  /** Pad every batch to at least these lengths (the K-steps Loop stacks equal shapes). */
  padTo?: { tokens?: number; frames?: number };
}

function typed(decl: InputDecl, name: string, values: ArrayLike<number>, shape: number[]): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (values.length !== n)
    throw new Error(`batch input '${name}': ${values.length} values for shape [${shape}]`);
  switch (decl.dtype) {
    case 'int64':
      return {
        dtype: 'int64',
        shape,
        data: BigInt64Array.from(Array.from(values), (v) => BigInt(Math.round(v))),
      };
    case 'float32':
      return { dtype: 'float32', shape, data: Float32Array.from(values) };
    case 'float64':
      return { dtype: 'float64', shape, data: Float64Array.from(values) };
    case 'bool':
      return { dtype: 'bool', shape, data: Uint8Array.from(values, (v) => (v ? 1 : 0)) };
    case 'int32':
      return { dtype: 'int32', shape, data: Int32Array.from(values) };
    default:
      throw new Error(`batch input '${name}': unsupported dtype ${decl.dtype}`);
  }
}

/** Longest token and frame counts of a set of examples. */
export function batchLengths(examples: Example[]): { tokens: number; frames: number } {
  let tokens = 0;
  let frames = 0;
  for (const e of examples) {
    if (e.text) tokens = Math.max(tokens, e.text.ids.length);
    if (e.speech) frames = Math.max(frames, e.speech.frames);
    if (e.features?.text) tokens = Math.max(tokens, e.features.text.frames);
    if (e.features?.speech) frames = Math.max(frames, e.features.speech.frames);
  }
  return { tokens, frames };
}

/** Pads a list of examples into the model's feeds. */
export function makeBatch(examples: Example[], opts: BatchOptions): Record<string, HostTensor> {
  if (examples.length === 0) throw new Error('makeBatch: empty batch');
  const B = examples.length;
  const out: Record<string, HostTensor> = {};
  const want = (n: string) => n in opts.decls;
  const lens = batchLengths(examples);
  if (want('text.input_ids')) {
    const T = Math.max(lens.tokens, opts.padTo?.tokens ?? 0);
    const ids = new Array<number>(B * T).fill(opts.padId);
    const types = new Array<number>(B * T).fill(0);
    const mask = new Array<number>(B * T).fill(0);
    const label = new Array<number>(B * T).fill(0);
    examples.forEach((e, r) => {
      if (!e.text) throw new Error(`utterance ${e.id} has no text encoding`);
      const t = e.text;
      for (let i = 0; i < t.ids.length; i++) {
        ids[r * T + i] = t.ids[i];
        types[r * T + i] = t.typeIds[i];
        mask[r * T + i] = 1;
        const inScope = opts.labelScope === 'context' || (i >= t.currentStart && i < t.currentEnd);
        label[r * T + i] = inScope ? 1 : 0;
      }
    });
    const put = (k: string, v: number[]) => {
      const name = `text.${k}`;
      if (want(name)) out[name] = typed(opts.decls[name], name, v, [B, T]);
    };
    put('input_ids', ids);
    put('token_type_ids', types);
    put('attention_mask', mask);
    put('label_mask', label);
  }
  const speechName = want('speech.input_features')
    ? 'speech.input_features'
    : want('speech.input_values')
      ? 'speech.input_values'
      : null;
  if (speechName) {
    const F = Math.max(lens.frames, opts.padTo?.frames ?? 0);
    const bins = examples[0].speech?.bins ?? 1;
    const logmel = speechName === 'speech.input_features';
    const data = new Float32Array(B * F * (logmel ? bins : 1));
    const mask = new Array<number>(B * F).fill(0);
    examples.forEach((e, r) => {
      if (!e.speech) throw new Error(`utterance ${e.id} has no audio`);
      let x = e.speech;
      if (logmel && opts.augment) {
        const a = specAugment(x, { ...opts.augment, seed: mixSeed(opts.augment.seed, e.index) });
        x = { data: a.data, frames: a.frames, bins: a.bins };
      }
      data.set(x.data, r * F * x.bins);
      for (let t = 0; t < x.frames; t++) mask[r * F + t] = 1;
    });
    const shape = logmel ? [B, F, bins] : [B, F];
    const decl = opts.decls[speechName];
    out[speechName] =
      decl.dtype === 'float32' ? { dtype: 'float32', shape, data } : typed(decl, speechName, data, shape);
    if (want('speech.attention_mask'))
      out['speech.attention_mask'] = typed(
        opts.decls['speech.attention_mask'],
        'speech.attention_mask',
        mask,
        [B, F],
      );
  }
  for (const m of ['text', 'speech'] as const) {
    const name = `${m}.hidden_states`;
    if (!want(name)) continue;
    const fs = examples.map((e) => {
      const f = e.features?.[m];
      if (!f) throw new Error(`utterance ${e.id} has no cached ${m} features`);
      return f;
    });
    const { layers, dim } = fs[0];
    const pad = m === 'text' ? (opts.padTo?.tokens ?? 0) : (opts.padTo?.frames ?? 0);
    const T = Math.max(pad, ...fs.map((f) => f.frames));
    const data = new Float32Array(B * T * layers * dim);
    const mask = new Array<number>(B * T).fill(0);
    const label = new Array<number>(B * T).fill(0);
    fs.forEach((f, r) => {
      data.set(f.data, r * T * layers * dim);
      const t = examples[r].text;
      for (let i = 0; i < f.frames; i++) {
        mask[r * T + i] = 1;
        const inScope = opts.labelScope === 'context' || !t || (i >= t.currentStart && i < t.currentEnd);
        label[r * T + i] = inScope ? 1 : 0;
      }
    });
    out[name] = { dtype: 'float32', shape: [B, T, layers, dim], data };
    const am = `${m}.attention_mask`;
    if (want(am)) out[am] = typed(opts.decls[am], am, mask, [B, T]);
    if (m === 'text' && want('text.label_mask'))
      out['text.label_mask'] = typed(opts.decls['text.label_mask'], 'text.label_mask', label, [B, T]);
  }
  if (want('labels'))
    out.labels = typed(
      opts.decls.labels,
      'labels',
      examples.map((e) => e.label),
      [B],
    );
  for (const n of Object.keys(opts.decls))
    if (!(n in out))
      throw new Error(`makeBatch: the model wants input '${n}', which the data pipeline does not make`);
  return out;
}

/** Sort key of an example: speech frames, else tokens. */
function lengthOf(e: Example): number {
  const f = e.features?.speech ?? e.features?.text;
  if (f) return f.frames;
  return e.speech ? e.speech.frames : (e.text?.ids.length ?? 0);
}

/**
 * Training batches of one epoch: a seeded shuffle, then buckets of `bucket` batches sorted
 * by length and cut into batches, then the batch order shuffled. Each batch holds a
 * multiple of `multipleOf` examples (micro-batches split evenly); leftovers that do not
 * fill one are dropped for this epoch (a different few each epoch).
 */
export function epochBatches(
  examples: Example[],
  opts: { batchSize: number; seed: number; epoch: number; multipleOf?: number; bucket?: number },
): Example[][] {
  const rng = new Rng(mixSeed(opts.seed, opts.epoch, 0x5eed));
  const order = examples.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const B = opts.batchSize;
  const M = opts.multipleOf ?? 1;
  const span = B * (opts.bucket ?? 8);
  const batches: Example[][] = [];
  for (let s = 0; s < order.length; s += span) {
    const chunk = order.slice(s, s + span).map((i) => examples[i]);
    chunk.sort((a, b) => lengthOf(a) - lengthOf(b) || a.index - b.index);
    for (let k = 0; k < chunk.length; k += B) {
      const b = chunk.slice(k, k + B);
      const n = b.length - (b.length % M);
      if (n > 0) batches.push(b.slice(0, n));
    }
  }
  for (let i = batches.length - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    [batches[i], batches[j]] = [batches[j], batches[i]];
  }
  return batches;
}

/** Evaluation batches: sorted by length (little padding), every example exactly once. */
export function evalBatches(examples: Example[], batchSize: number): Example[][] {
  const sorted = [...examples].sort((a, b) => lengthOf(a) - lengthOf(b) || a.index - b.index);
  const out: Example[][] = [];
  for (let i = 0; i < sorted.length; i += batchSize) out.push(sorted.slice(i, i + batchSize));
  return out;
}
