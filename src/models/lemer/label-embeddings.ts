/**
 * Label embeddings (paper sections 2.1, 2.2, 3.4; SPEC "Label embeddings"): which words and
 * speech codes stand for each class (class-based TF-IDF over TRAINING-fold data only), and
 * the initial values of L_t and L_s computed from them by running the encoders forward.
 *
 * Knows no corpus: callers pass per-utterance arrays of the training fold (`pickTraining`
 * takes them from a fold's indices). Nothing here reads a test utterance unless it is given one.
 *
 * Init variants (Table 1), returned as head parameters to put into the parameter store:
 * - text: `random` (nothing: the model's normal(0, 0.02) init), `label-words` (the class
 *   names through the encoder), `tfidf` (the class's top-K words through the encoder);
 * - speech: `random`, `bert` (the text label embeddings, projected to d_s), `codebook`
 *   (mean hidden state at the frames whose code is one of the class's top-K codes; or, with
 *   codebookMode `projection`, the mean codebook vector of those codes, which the model maps
 *   through a learned projection).
 */
import type { Graph, Tensor } from '../../graph/graph.js';
import { ParameterStore } from '../../graph/params.js';
import type { HostTensor, RuntimeOptions } from '../../graph/runtime.js';
import { Predictor } from '../../graph/train.js';
import { classTfidf, type ScoredToken, wordsForTfidf } from '../../text/tfidf.js';
import { createProgress } from '../../util/progress.js';
import { mulberry32 } from '../../util/random.js';
import type { Encoder } from '../encoder.js';
import { PARAM_PREFIXES } from './model.js';

export type TextLabelInit = 'tfidf' | 'label-words' | 'random';
export type SpeechLabelInit = 'codebook' | 'bert' | 'random';

/** Where a warning goes (K larger than the distinct words or codes of a class). Default: stderr. */
export type WarnFn = (message: string) => void;
const stderrWarn: WarnFn = (m) => process.stderr.write(`lemer: warning: ${m}\n`);

/** The items of a fold's training part (`train` = indices into `items`, as src/data/folds.ts gives them). */
export function pickTraining<T>(items: readonly T[], train: readonly number[]): T[] {
  if (train.length === 0) throw new Error('label embeddings: the fold has no training utterances');
  return train.map((i) => {
    if (!Number.isInteger(i) || i < 0 || i >= items.length)
      throw new Error(`label embeddings: training index ${i} is outside the ${items.length} utterances`);
    return items[i];
  });
}

function checkClasses(
  what: string,
  docs: readonly { label: string }[],
  classes: readonly string[],
  K: number,
): void {
  if (classes.length === 0) throw new Error(`${what}: no classes given`);
  if (new Set(classes).size !== classes.length)
    throw new Error(`${what}: repeated class in [${classes.join(', ')}]`);
  if (!Number.isInteger(K) || K < 1) throw new Error(`${what}: K must be a whole number >= 1, got ${K}`);
  const counts = new Map<string, number>();
  for (const d of docs) counts.set(d.label, (counts.get(d.label) ?? 0) + 1);
  const missing = classes.filter((c) => !counts.get(c));
  if (missing.length)
    throw new Error(
      `${what}: class${missing.length > 1 ? 'es' : ''} ${missing.map((c) => `'${c}'`).join(', ')} ha${missing.length > 1 ? 've' : 's'} no training utterances ` +
        `(${docs.length} training utterances; per class: ${classes.map((c) => `${c} ${counts.get(c) ?? 0}`).join(', ')})`,
    );
}

/** Class TF-IDF with the checks: every class present; a warning where K exceeds a class's distinct tokens. */
function scoredTokens<T>(
  what: string,
  unit: string,
  docs: { label: string; tokens: T[] }[],
  classes: readonly string[],
  K: number,
  warn: WarnFn,
): ScoredToken<T>[][] {
  checkClasses(what, docs, classes, K);
  const scored = classTfidf(docs, { topK: K, labels: [...classes] });
  return classes.map((c) => {
    const s = scored.get(c)!;
    if (s.length === 0)
      throw new Error(
        `${what}: class '${c}' has no ${unit} in its training utterances (after stop-word removal)`,
      );
    if (s[0].score === 0)
      warn(
        `${what}: class '${c}': every one of its ${unit} occurs in every training utterance (idf 0), so its top K are picked by spelling alone` +
          (unit === 'codes'
            ? '; more distinct codes (more k-means clusters) would separate the classes'
            : ''),
      );
    if (s.length < K)
      warn(
        `${what}: class '${c}' has only ${s.length} distinct ${unit} in its training utterances, fewer than K = ${K}: all ${s.length} are used`,
      );
    return s;
  });
}

/** Each class's top-K words by class TF-IDF (stop words and punctuation removed), with scores. */
export function textKeywords(
  docs: readonly { label: string; text: string }[],
  classes: readonly string[],
  K: number,
  opts: { lang?: 'en' | 'de'; warn?: WarnFn } = {},
): ScoredToken<string>[][] {
  const lang = opts.lang ?? 'en';
  return scoredTokens(
    'text label keywords',
    'words',
    docs.map((d) => ({ label: d.label, tokens: wordsForTfidf(d.text, lang) })),
    classes,
    K,
    opts.warn ?? stderrWarn,
  );
}

/** The agreed form: each class's keywords (no scores). */
export function selectTextKeywords(
  docs: readonly { label: string; text: string }[],
  classes: readonly string[],
  K: number,
  lang: 'en' | 'de' = 'en',
  opts: { warn?: WarnFn } = {},
): string[][] {
  return textKeywords(docs, classes, K, { lang, warn: opts.warn }).map((s) => s.map((t) => t.token));
}

/** Each class's top-K speech codes (one code per frame, per utterance) by class TF-IDF, with scores. */
export function speechCodeScores(
  docs: readonly { label: string; codes: ArrayLike<number> }[],
  classes: readonly string[],
  K: number,
  opts: { warn?: WarnFn } = {},
): ScoredToken<number>[][] {
  docs.forEach((d, i) => {
    for (let f = 0; f < d.codes.length; f++)
      if (!Number.isInteger(d.codes[f]) || d.codes[f] < 0)
        throw new Error(
          `speech label codes: utterance ${i}, frame ${f}: code ${d.codes[f]} is not a whole number >= 0`,
        );
  });
  return scoredTokens(
    'speech label codes',
    'codes',
    docs.map((d) => ({ label: d.label, tokens: Array.from(d.codes) })),
    classes,
    K,
    opts.warn ?? stderrWarn,
  );
}

export function selectSpeechCodes(
  docs: readonly { label: string; codes: ArrayLike<number> }[],
  classes: readonly string[],
  K: number,
  opts: { warn?: WarnFn } = {},
): number[][] {
  return speechCodeScores(docs, classes, K, opts).map((s) => s.map((t) => t.token));
}

/** Mean of the given rows (each of length dim): a float32 vector; no rows is an error. */
export function meanRows(rows: readonly ArrayLike<number>[], dim: number, what = 'meanRows'): Float32Array {
  if (rows.length === 0) throw new Error(`${what}: nothing to average`);
  const acc = new Float64Array(dim);
  for (const r of rows) {
    if (r.length !== dim) throw new Error(`${what}: a row of ${r.length} values, expected ${dim}`);
    for (let d = 0; d < dim; d++) acc[d] += r[d];
  }
  return Float32Array.from(acc, (v) => v / rows.length);
}

/** Stacks per-class vectors into a [c, dim] float32 tensor. */
function stack(rows: readonly Float32Array[], dim: number): HostTensor {
  const data = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => data.set(r, i * dim));
  return { dtype: 'float32', shape: [rows.length, dim], data };
}

// ---------------------------------------------------------------------------------------
// Running an encoder forward on given weights

/** Weights under the model's names (`text_encoder.…`), as a store or a map. */
export type Weights = ParameterStore | Map<string, HostTensor>;

/** A store of its own over the same tensors (no copy): initialising missing parameters never touches the caller's. */
function toStore(w: Weights): ParameterStore {
  const s = new ParameterStore();
  for (const [k, t] of w instanceof ParameterStore ? w.entries() : w) s.put(k, t);
  return s;
}

export interface EncoderRunOptions {
  /** Weights under the model's parameter names; parameters absent here are initialised from `seed` (reported in `missing`). */
  weights: Weights;
  runtime?: RuntimeOptions;
  seed?: number;
}

/**
 * A Predictor of `enc` alone, under the model's prefix scope (so the model's weights feed
 * it by name), with outputs `hidden` and `mask`. Release it after use.
 */
async function encoderPredictor(
  m: 'text' | 'speech',
  enc: Encoder,
  o: EncoderRunOptions,
): Promise<{ pred: Predictor; missing: string[] }> {
  const params = toStore(o.weights);
  const scope = PARAM_PREFIXES[m].slice(0, -1);
  const pred = await Predictor.create({
    inputs: enc.inputs,
    build: (g: Graph, i: Record<string, Tensor>) => {
      const out = g.scope(scope, () => enc.build(g, i, { training: false }));
      return { hidden: out.hidden, mask: out.mask };
    },
    params,
    seed: o.seed ?? 0,
    runtime: o.runtime,
  });
  return { pred, missing: pred.initialised };
}

const int64 = (v: number[], shape: number[]): HostTensor => ({
  dtype: 'int64',
  shape,
  data: BigInt64Array.from(v, (x) => BigInt(x)),
});

/** The part of a tokenizer label embeddings need. */
export interface LabelTokenizer {
  encodeText(text: string): number[];
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;
}

/**
 * Common class-name abbreviations spelled out for `label-words` (IEMOCAP's ang/hap/...):
 * the class name itself is used where no entry exists.
 */
export const LABEL_WORDS: Readonly<Record<string, string>> = {
  ang: 'angry',
  hap: 'happy',
  exc: 'excited',
  sad: 'sad',
  neu: 'neutral',
  fru: 'frustrated',
  sur: 'surprised',
  fea: 'fearful',
  dis: 'disgusted',
  oth: 'other',
  xxx: 'unknown',
};

export interface TextLabelInitOptions extends EncoderRunOptions {
  mode: TextLabelInit;
  encoder: Encoder;
  tokenizer: LabelTokenizer;
  classes: readonly string[];
  /** tfidf: each class's keywords (selectTextKeywords on the training fold). */
  keywords?: readonly (readonly string[])[];
  /** label-words: words per class; default LABEL_WORDS[name] ?? name. */
  labelWords?: Readonly<Record<string, string>>;
  /** text.labelSource: output hidden states (default) or the input word-piece embedding table. */
  source?: 'hidden' | 'wordpiece';
}

export interface LabelInitResult {
  /** Head parameters to set (`head.label_embeddings.text`, ...); empty for `random`. */
  params: Map<string, HostTensor>;
  /** The words (text) or codes (speech) each class's embedding came from. */
  sources: (string | number)[][];
  /** Encoder parameters the given weights lacked (initialised from the seed). */
  missing: string[];
}

/**
 * L_t init. Each class's words form one "label description" ([CLS] w1 ... wK [SEP]); L_t[c]
 * = mean of the encoder's output hidden states over the word pieces of those words (not
 * [CLS]/[SEP]), or, with source `wordpiece`, the mean of their rows of the encoder's word
 * embedding table (`…word_embeddings.weight`).
 */
export async function textLabelInit(o: TextLabelInitOptions): Promise<LabelInitResult> {
  const out: LabelInitResult = { params: new Map(), sources: [], missing: [] };
  if (o.mode === 'random') return out;
  const words =
    o.mode === 'label-words'
      ? o.classes.map((c) =>
          (o.labelWords?.[c] ?? LABEL_WORDS[c.toLowerCase()] ?? c).split(/\s+/).filter(Boolean),
        )
      : o.keywords?.map((k) => [...k]);
  if (o.mode !== 'label-words' && o.mode !== 'tfidf')
    throw new Error(`text.labelInit: '${String(o.mode)}' is not tfidf, label-words or random`);
  if (!words || words.length !== o.classes.length)
    throw new Error(
      `text label init (tfidf): keywords for each of the ${o.classes.length} classes are needed`,
    );
  const pieces = words.map((ws, c) => {
    const ids = ws.flatMap((w) => o.tokenizer.encodeText(w));
    if (ids.length === 0)
      throw new Error(
        `text label init: class '${o.classes[c]}': its words [${ws.join(', ')}] give no word pieces`,
      );
    return ids;
  });
  out.sources = words;
  const d = o.encoder.hiddenSize;
  const name = `${PARAM_PREFIXES.head}label_embeddings.text`;

  if ((o.source ?? 'hidden') === 'wordpiece') {
    const store = toStore(o.weights);
    const key = store
      .names()
      .find((n) => n.startsWith(PARAM_PREFIXES.text) && n.endsWith('word_embeddings.weight'));
    if (!key)
      throw new Error(
        `text.labelSource wordpiece: the weights hold no '${PARAM_PREFIXES.text}…word_embeddings.weight' table (encoder ${o.encoder.source})`,
      );
    const table = store.get(key);
    const rows = pieces.map((ids) =>
      meanRows(
        ids.map((id) => table.data.subarray(id * d, (id + 1) * d) as Float32Array),
        d,
        'wordpiece label embedding',
      ),
    );
    out.params.set(name, stack(rows, d));
    return out;
  }

  const T = Math.max(...pieces.map((p) => p.length)) + 2;
  const C = pieces.length;
  const ids: number[] = [];
  const mask: number[] = [];
  for (const p of pieces) {
    const seq = [o.tokenizer.clsId, ...p, o.tokenizer.sepId];
    for (let t = 0; t < T; t++) {
      ids.push(t < seq.length ? seq[t] : o.tokenizer.padId);
      mask.push(t < seq.length ? 1 : 0);
    }
  }
  const feeds: Record<string, HostTensor> = {};
  for (const [k, decl] of Object.entries(o.encoder.inputs)) {
    if (k === 'input_ids') feeds[k] = int64(ids, [C, T]);
    else if (k === 'attention_mask') feeds[k] = int64(mask, [C, T]);
    else if (decl.dtype === 'int64') feeds[k] = int64(new Array<number>(C * T).fill(0), [C, T]);
    else
      throw new Error(
        `text label init: the text encoder's input '${k}' (${decl.dtype}) has no value to give`,
      );
  }
  const { pred, missing } = await encoderPredictor('text', o.encoder, o);
  out.missing = missing;
  try {
    const r = await pred.run(feeds, ['hidden']);
    const h = r.hidden.data as Float32Array;
    const Th = r.hidden.shape[1];
    if (Th !== T) throw new Error(`text label init: the encoder returned ${Th} positions for ${T} tokens`);
    const rows = pieces.map((p, c) =>
      meanRows(
        p.map((_, j) => h.subarray((c * T + 1 + j) * d, (c * T + 2 + j) * d)),
        d,
        'text label embedding',
      ),
    );
    out.params.set(name, stack(rows, d));
  } finally {
    await pred.release();
  }
  return out;
}

/** One utterance's valid hidden states: [frames, dim] row-major. */
export interface HiddenFrames {
  data: Float32Array;
  frames: number;
  dim: number;
}

/**
 * Runs the speech encoder over utterances (each a feed of the encoder's own inputs, batch
 * of any size) and returns each utterance's valid hidden states, in order.
 */
export async function encodeUtterances(
  enc: Encoder,
  batches: readonly Record<string, HostTensor>[],
  o: EncoderRunOptions & { progress?: boolean },
): Promise<{ hidden: HiddenFrames[]; missing: string[] }> {
  const { pred, missing } = await encoderPredictor(enc.modality, enc, o);
  const bar = o.progress
    ? createProgress({ total: batches.length, label: 'label embeddings: encoding' })
    : null;
  const hidden: HiddenFrames[] = [];
  try {
    for (const b of batches) {
      const r = await pred.run(b, ['hidden', 'mask']);
      const [B, T, D] = r.hidden.shape;
      const h = r.hidden.data as Float32Array;
      const m = r.mask.data;
      for (let i = 0; i < B; i++) {
        const rows: number[] = [];
        for (let t = 0; t < T; t++) if (Number(m[i * T + t]) > 0) rows.push(t);
        const data = new Float32Array(rows.length * D);
        rows.forEach((t, j) => data.set(h.subarray((i * T + t) * D, (i * T + t + 1) * D), j * D));
        hidden.push({ data, frames: rows.length, dim: D });
      }
      bar?.tick();
    }
  } finally {
    bar?.stop();
    await pred.release();
  }
  return { hidden, missing };
}

/**
 * Code of hidden frame t when an utterance has `n` codes for `frames` hidden frames: the same
 * index when they agree; otherwise the code at the proportional position (codes from log-mel
 * frames, hidden states after the encoder's subsampling).
 */
export function codeAt(codes: ArrayLike<number>, t: number, frames: number): number {
  if (codes.length === frames) return codes[t];
  return codes[Math.min(codes.length - 1, Math.floor(((t + 0.5) * codes.length) / frames))];
}

/**
 * L_s (codebook, hidden-mean): for each class, the mean hidden state over the frames of its
 * training utterances whose code is among its top-K codes (`frames: 'all'`: frames of every
 * training utterance).
 */
export function codeFrameMeans(
  docs: readonly { label: string; codes: ArrayLike<number>; hidden: HiddenFrames }[],
  classes: readonly string[],
  topCodes: readonly (readonly number[])[],
  opts: { frames?: 'class' | 'all'; align?: 'proportional' | 'exact' } = {},
): Float32Array[] {
  const dim = docs[0]?.hidden.dim;
  if (dim === undefined) throw new Error('speech label init: no training utterances');
  return classes.map((c, k) => {
    const top = new Set(topCodes[k]);
    const acc = new Float64Array(dim);
    let n = 0;
    for (const d of docs) {
      if ((opts.frames ?? 'class') === 'class' && d.label !== c) continue;
      const h = d.hidden;
      if (h.frames === 0) continue;
      if ((opts.align ?? 'proportional') === 'exact' && d.codes.length !== h.frames)
        throw new Error(
          `speech label init: an utterance has ${d.codes.length} codes for ${h.frames} encoder frames`,
        );
      for (let t = 0; t < h.frames; t++) {
        if (!top.has(codeAt(d.codes, t, h.frames))) continue;
        for (let j = 0; j < dim; j++) acc[j] += h.data[t * dim + j];
        n++;
      }
    }
    if (n === 0)
      throw new Error(`speech label init: class '${c}': no training frame carries one of its top codes`);
    return Float32Array.from(acc, (v) => v / n);
  });
}

/**
 * The `bert` variant: L_s = L_t R. With d_t = d_s, R = I (L_t as is); otherwise R is a fixed
 * seeded Gaussian [d_t, d_s] with entries N(0, 1/d_s), which keeps the classes' cosine
 * geometry on average (Johnson-Lindenstrauss). The projection is used once, at init.
 */
export function projectTextLabels(textLabels: HostTensor, ds: number, seed = 0): HostTensor {
  const [c, dt] = textLabels.shape;
  const x = textLabels.data as Float32Array;
  if (dt === ds) return { dtype: 'float32', shape: [c, ds], data: Float32Array.from(x) };
  const rand = mulberry32(seed ^ 0x5eed);
  const r = new Float64Array(dt * ds);
  for (let i = 0; i < r.length; i += 2) {
    const u = Math.max(rand(), 1e-12);
    const v = rand();
    const rad = Math.sqrt(-2 * Math.log(u)) / Math.sqrt(ds);
    r[i] = rad * Math.cos(2 * Math.PI * v);
    if (i + 1 < r.length) r[i + 1] = rad * Math.sin(2 * Math.PI * v);
  }
  const out = new Float32Array(c * ds);
  for (let i = 0; i < c; i++)
    for (let j = 0; j < ds; j++) {
      let s = 0;
      for (let k = 0; k < dt; k++) s += x[i * dt + k] * r[k * ds + j];
      out[i * ds + j] = s;
    }
  return { dtype: 'float32', shape: [c, ds], data: out };
}

export interface SpeechLabelInitOptions extends EncoderRunOptions {
  mode: SpeechLabelInit;
  encoder: Encoder;
  classes: readonly string[];
  /** codebook: speech.codebookMode. */
  codebookMode?: 'hidden-mean' | 'projection';
  /** codebook: each class's top-K codes (selectSpeechCodes on the training fold). */
  topCodes?: readonly (readonly number[])[];
  /**
   * codebook / hidden-mean: the training utterances (label, per-frame codes, the encoder's
   * inputs as a batch-of-one feed). Their hidden states come from running the encoder.
   */
  utterances?: readonly { label: string; codes: ArrayLike<number>; feeds: Record<string, HostTensor> }[];
  /** codebook / projection: the codebook vector of a code. */
  codeVector?: (code: number) => ArrayLike<number>;
  /** bert: the text label embeddings [c, d_t] (textLabelInit's `head.label_embeddings.text`). */
  textLabels?: HostTensor;
  frames?: 'class' | 'all';
  progress?: boolean;
}

/** L_s init (see the file comment for the variants). */
export async function speechLabelInit(o: SpeechLabelInitOptions): Promise<LabelInitResult> {
  const out: LabelInitResult = { params: new Map(), sources: [], missing: [] };
  const ds = o.encoder.hiddenSize;
  const head = PARAM_PREFIXES.head;
  if (o.mode === 'random') return out;
  if (o.mode === 'bert') {
    if (!o.textLabels)
      throw new Error(
        'speech.labelInit bert: needs the text label embeddings (text.labelInit tfidf or label-words)',
      );
    if (o.textLabels.shape[0] !== o.classes.length)
      throw new Error(
        `speech.labelInit bert: text label embeddings have ${o.textLabels.shape[0]} rows for ${o.classes.length} classes`,
      );
    out.params.set(`${head}label_embeddings.speech`, projectTextLabels(o.textLabels, ds, o.seed ?? 0));
    return out;
  }
  if (o.mode !== 'codebook')
    throw new Error(`speech.labelInit: '${String(o.mode)}' is not codebook, bert or random`);
  const top = o.topCodes;
  if (!top || top.length !== o.classes.length)
    throw new Error(
      `speech label init (codebook): top codes for each of the ${o.classes.length} classes are needed`,
    );
  out.sources = top.map((t) => [...t]);
  if ((o.codebookMode ?? 'hidden-mean') === 'projection') {
    if (!o.codeVector)
      throw new Error('speech.codebookMode projection: needs codebook vectors (an encoder with a quantizer)');
    const first = o.codeVector(top[0][0]);
    const rows = top.map((codes) =>
      meanRows(
        codes.map((c) => o.codeVector!(c)),
        first.length,
        'codebook vectors',
      ),
    );
    out.params.set(`${head}label_embeddings.speech_codebook`, stack(rows, first.length));
    return out;
  }
  const utts = o.utterances;
  if (!utts || utts.length === 0)
    throw new Error('speech label init (codebook): no training utterances given');
  checkClasses('speech label init', utts, o.classes, 1);
  const { hidden, missing } = await encodeUtterances(
    o.encoder,
    utts.map((u) => u.feeds),
    o,
  );
  out.missing = missing;
  if (hidden.length !== utts.length)
    throw new Error(
      `speech label init: ${hidden.length} encoded utterances for ${utts.length} given (feed one utterance per batch)`,
    );
  const rows = codeFrameMeans(
    utts.map((u, i) => ({ label: u.label, codes: u.codes, hidden: hidden[i] })),
    o.classes,
    top,
    { frames: o.frames },
  );
  out.params.set(`${head}label_embeddings.speech`, stack(rows, ds));
  return out;
}
