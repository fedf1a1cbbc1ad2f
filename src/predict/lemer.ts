/**
 * `Lemer`: a model folder loaded for prediction. It runs the exported ONNX graph with
 * onnxruntime-node and needs nothing else from lemer's training side (no engine graph
 * building, no corpus, no Python).
 *
 * ```ts
 * import { Lemer } from 'lemer';
 * const model = await Lemer.load('models/iemocap-lemer');
 * const r = await model.predict({ audio: 'clip.wav', text: 'I told you so' });
 * r.label; r.probs.ang; r.tokens; r.frames;
 * ```
 *
 * One instance serves concurrent predict() calls: session runs are queued one at a time
 * (ONNX Runtime's Node binding runs each on the main thread anyway) and each call keeps its
 * own inputs and outputs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { cmvn, logMel } from '../audio/logmel.js';
import { tokenizerFromJson, type Encoded, type TextTokenizer } from '../text/tokenizer.js';
import type { Corpus } from '../data/types.js';
// Training's own text layout (history selection and encoding), so predictions see what training saw.
import { encodeText } from '../train/data.js';
import { readManifest, ModelFolderError, type InputSpec, type ModelManifest } from './folder.js';
import { prepareAudio, prepareText, type AudioInput, type AudioLimits, type PreparedAudio } from './input.js';
import type { Transcriber } from './asr.js';
import { segmentAudio, type SegmentOptions } from './segment.js';

export interface LoadOptions {
  /** Run the int8 weight-quantised graph (the folder must hold one: `lemer export --quantize int8`). */
  int8?: boolean;
  /** ONNX Runtime intra-op threads (default: one per core). */
  threads?: number;
  /** Transcribes audio that comes without text (e.g. whisperTranscriber()). */
  transcriber?: Transcriber;
  /** Where the folder's files come from (default: folderSource(dir), the file system). */
  source?: ModelSource;
}

/**
 * Where a model folder's files come from and how its graphs become sessions: the file
 * system and onnxruntime-node (folderSource), or in a web page, the folder's URLs and
 * onnxruntime-web (src/web/model-source.ts). Everything else in Lemer is the same code.
 */
export interface ModelSource {
  /** The folder as Lemer.dir reports it (an absolute path, or a URL). */
  readonly dir: string;
  /** Where a file of the folder is, for messages. */
  path(file: string): string;
  /** The folder's manifest, read and checked. */
  manifest(): Promise<ModelManifest>;
  /** A file of the folder as text; null when it is absent. */
  readText(file: string): Promise<string | null>;
  /** An ONNX Runtime session for a graph file of the folder. */
  session(file: string, options: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession>;
}

/** A model folder on the file system, run by onnxruntime-node. */
export function folderSource(dir: string): ModelSource {
  return {
    dir: resolve(dir),
    path: (file) => join(dir, file),
    manifest: async () => readManifest(dir),
    readText: async (file) => (existsSync(join(dir, file)) ? readFileSync(join(dir, file), 'utf8') : null),
    session: (file, options) => ort.InferenceSession.create(join(dir, file), options),
  };
}

export interface PredictInput {
  /** A WAV/FLAC path, WAV/FLAC bytes, or { samples, sampleRate }. */
  audio?: AudioInput;
  /** The transcript (a string or UTF-8 bytes). */
  text?: string | Uint8Array;
  /** Previous utterances of the dialogue, oldest first (text context, as in training). */
  context?: string[];
  /** A name for messages and results (default: the path). */
  name?: string;
}

export interface TokenWeight {
  token: string;
  /** G_t of this token averaged over the classes (cosine in [-1, 1]). */
  weight: number;
}

export interface FrameWeight {
  /** Start time of the frame in seconds. */
  time: number;
  /** G_s of this frame averaged over the classes. */
  weight: number;
}

export interface Prediction {
  name?: string;
  label: string;
  /** Probability per class, by label. */
  probs: Record<string, number>;
  /** What the prediction used: both modalities, or one. */
  modality: 'speech+text' | 'speech' | 'text';
  /** How it was computed when not the fused model's output. */
  method: 'model' | 'speech-label-attention' | 'speech-model';
  note?: string;
  transcript?: { text: string; source: string };
  /** Label attention per token of the current utterance (models with label embeddings). */
  tokens?: TokenWeight[];
  /** Label attention per encoder frame (models with label embeddings). */
  frames?: FrameWeight[];
  audio?: { seconds: number; sampleRate: number; originalSampleRate: number; channels: number };
  warnings: string[];
}

/** One speech segment of a long recording, with its prediction. */
export interface SegmentPrediction extends Prediction {
  /** Seconds from the start of the recording. */
  start: number;
  end: number;
}

export interface BatchOptions {
  /** Utterances per ONNX Runtime run (default 8); batches group similar lengths. */
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
  /** Audio limits applied to every input, as predict's (the service's --max-seconds). */
  limits?: AudioLimits;
}

/** One utterance, checked and featurised, waiting for a batch. */
interface Prepared {
  index: number;
  name?: string;
  audio?: PreparedAudio;
  speech?: { data: Float32Array; frames: number; bins: number };
  text?: Encoded;
  transcript?: { text: string; source: string };
  useText: boolean;
  useSpeech: boolean;
  warnings: string[];
  note?: string;
}

const PREDICTION_OUTPUTS = [
  'probs',
  'text_label_attention',
  'speech_label_attention',
  'speech_label_probs',
  'speech_probs',
  'text_mask',
  'speech_mask',
];

/**
 * The text input of one utterance exactly as training encodes it (src/train/data encodeText):
 * the dialogue's previous turns (oldest first) cut to the model's history settings, then
 * [CLS] history [SEP] current [SEP]. The context becomes a one-dialogue corpus for it.
 */
export function encodeWithContext(
  tok: TextTokenizer,
  text: string,
  context: readonly string[],
  opts: { maxTokens: number; history: number; labelScope: 'context' | 'current' },
): Encoded {
  const turns = [...context, text];
  const corpus: Corpus = {
    name: 'predict',
    labels: [],
    warnings: [],
    utterances: turns.map((t, turn) => ({
      id: `turn${turn}`,
      audioPath: null,
      text: t,
      label: '',
      speaker: '',
      session: '',
      dialogue: 'predict',
      turn,
    })),
  };
  return encodeText(corpus, context.length, tok, opts);
}

function softmax(xs: number[]): number[] {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

function toBigInt(values: ArrayLike<number>): BigInt64Array {
  const out = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = BigInt(values[i]);
  return out;
}

function ortTensor(spec: InputSpec, data: Float32Array | number[], shape: number[]): ort.Tensor {
  if (spec.dtype === 'int64') return new ort.Tensor('int64', toBigInt(data), shape);
  if (spec.dtype === 'float32')
    return new ort.Tensor('float32', data instanceof Float32Array ? data : Float32Array.from(data), shape);
  if (spec.dtype === 'bool')
    return new ort.Tensor(
      'bool',
      Uint8Array.from(data, (v) => (v ? 1 : 0)),
      shape,
    );
  if (spec.dtype === 'int32') return new ort.Tensor('int32', Int32Array.from(data), shape);
  throw new Error(`model input of dtype ${spec.dtype} is not supported by the predictor`);
}

export class Lemer {
  private queue: Promise<unknown> = Promise.resolve();
  private runSeconds = 0;

  private constructor(
    readonly dir: string,
    readonly manifest: ModelManifest,
    private readonly session: ort.InferenceSession,
    private readonly speechSession: ort.InferenceSession | null,
    private readonly tokenizer: TextTokenizer | null,
    readonly transcriber: Transcriber | null,
    /** Which graph runs: 'model.onnx' or 'model.int8.onnx'. */
    readonly graphFile: string,
  ) {}

  /** Loads a model folder written by `lemer export`; errors name the file and the problem. */
  static async load(dir: string, opts: LoadOptions = {}): Promise<Lemer> {
    const source = opts.source ?? folderSource(dir);
    const m = await source.manifest();
    const so: ort.InferenceSession.SessionOptions = {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      enableMemPattern: false,
      logSeverityLevel: 3,
      ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
    };
    let graphFile = m.files.graph;
    if (opts.int8) {
      if (!m.files.int8Graph)
        throw new ModelFolderError(
          `${dir}: no int8 graph in this folder (export it with 'lemer export <run> --out ${dir} --quantize int8')`,
        );
      graphFile = m.files.int8Graph;
    }
    const open = async (file: string) => {
      try {
        return await source.session(file, so);
      } catch (err) {
        throw new ModelFolderError(
          `${source.path(file)}: ONNX Runtime cannot load it: ${(err as Error).message}`,
        );
      }
    };
    const session = await open(graphFile);
    const speechSession = m.files.speechGraph ? await open(m.files.speechGraph) : null;
    let tokenizer: TextTokenizer | null = null;
    if (m.files.tokenizer) {
      const file = source.path(m.files.tokenizer);
      const text = await source.readText(m.files.tokenizer);
      if (text === null) throw new ModelFolderError(`${file}: missing (${dir}/lemer-model.json lists it)`);
      let json: Record<string, unknown>;
      try {
        json = JSON.parse(text) as Record<string, unknown>;
      } catch (err) {
        throw new ModelFolderError(`${file}: not valid JSON (${(err as Error).message})`);
      }
      let config: Record<string, unknown> = {};
      try {
        config = JSON.parse((await source.readText('tokenizer_config.json')) ?? '{}') as Record<
          string,
          unknown
        >;
      } catch {
        // optional
      }
      tokenizer = tokenizerFromJson(json, config, file);
    }
    for (const name of Object.keys(m.inputs))
      if (!session.inputNames.includes(name))
        throw new ModelFolderError(
          `${source.path(graphFile)}: has no input '${name}' that ${dir}/lemer-model.json lists`,
        );
    return new Lemer(source.dir, m, session, speechSession, tokenizer, opts.transcriber ?? null, graphFile);
  }

  /** Seconds spent in ONNX Runtime's session runs so far (graph time, without decoding and features). */
  get sessionSeconds(): number {
    return this.runSeconds;
  }

  get labels(): string[] {
    return [...this.manifest.labels];
  }

  get kind(): ModelManifest['kind'] {
    return this.manifest.kind;
  }

  /** Whether audio alone (no text, no transcriber) can be classified. */
  get speechOnly(): boolean {
    return this.kind === 'speech' || this.speechSession !== null;
  }

  /** Runs one session call after the previous one has finished. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private speechFeatures(a: PreparedAudio): { data: Float32Array; frames: number; bins: number } {
    const fe = this.manifest.speech!;
    if (fe.kind === 'waveform') return { data: a.samples, frames: a.samples.length, bins: 1 };
    const { normalize, ...opts } = fe.logMel ?? {};
    const f = logMel(a.samples, { ...opts, sampleRate: fe.sampleRate });
    if (f.frames === 0)
      throw new Error(
        `${a.name}: too short for one log-mel frame (${a.samples.length} samples at ${fe.sampleRate} Hz)`,
      );
    // 'global': the model's graph normalises with the training statistics it carries.
    return normalize === 'none' || normalize === 'global' ? f : cmvn(f);
  }

  /** Checks and featurises one input (decoding, resampling, tokenising, transcribing). */
  private async prepare(input: PredictInput, index: number, limits?: AudioLimits): Promise<Prepared> {
    if (typeof input !== 'object' || input === null)
      throw new Error('predict: give an object { audio?, text?, context? }');
    const name = input.name ?? (typeof input.audio === 'string' ? input.audio : undefined);
    const warnings: string[] = [];
    const kind = this.kind;
    const textIn = input.text !== undefined ? prepareText(input.text, name ? `${name}: text` : 'text') : null;
    if (textIn) warnings.push(...textIn.warnings);
    let text = textIn && textIn.text !== '' ? textIn.text : null;
    let audio: PreparedAudio | undefined;
    if (input.audio !== undefined && kind !== 'text') {
      audio = await prepareAudio(input.audio, {
        sampleRate: this.manifest.speech!.sampleRate,
        name,
        ...limits,
      });
      warnings.push(...audio.warnings);
    } else if (input.audio !== undefined) {
      warnings.push(`${name ?? 'audio'}: this is a text model: the audio is not used`);
    }
    let transcript: Prepared['transcript'];
    if (text !== null) transcript = { text, source: 'given' };
    if (kind !== 'speech' && text === null && audio && this.transcriber) {
      text = await this.transcriber.transcribe(audio.samples, audio.sampleRate);
      transcript = { text, source: this.transcriber.source };
      if (text.trim() === '') {
        warnings.push(`${name ?? 'audio'}: the transcriber heard no words`);
        text = null;
      }
    }
    if (kind === 'speech' && text !== null) {
      warnings.push(`${name ?? 'input'}: this is a speech model: the text is not used`);
      text = null;
    }
    let useText = kind !== 'speech' && text !== null;
    let useSpeech = kind !== 'text' && audio !== undefined;
    let note: string | undefined;
    if (kind === 'text' && !useText)
      throw new Error(`${name ?? 'input'}: this is a text model: give the transcript (text)`);
    if (kind === 'speech' && !useSpeech)
      throw new Error(`${name ?? 'input'}: this is a speech model: give audio`);
    if (kind === 'lemer' || kind === 'score-fusion') {
      if (!audio)
        throw new Error(
          `${name ?? 'input'}: this ${kind === 'lemer' ? 'LE-MER' : 'score-fusion'} model needs audio (and its transcript)`,
        );
      if (!useText) {
        if (!this.speechSession)
          throw new Error(
            `${name ?? 'input'}: no transcript, and this model has no speech-only path (it was trained without label embeddings): ` +
              `give the text, or a transcriber (--asr <whisper folder>)`,
          );
        useText = false;
        useSpeech = true;
        note =
          this.manifest.speechOnly?.method === 'speech-model'
            ? "speech alone: no transcript, so the class comes from the score-fusion model's speech model alone"
            : 'speech alone: no transcript, so the class comes from the speech branch (softmax of the mean label-frame attention, p_g^s)';
      }
    }
    const enc =
      useText && this.tokenizer && text !== null
        ? encodeWithContext(this.tokenizer, text, input.context ?? [], this.manifest.text!)
        : undefined;
    if (enc && text !== null) {
      const n = this.tokenizer!.countTokens(text);
      const room = this.manifest.text!.maxTokens - 2;
      if (n > room)
        warnings.push(
          `${name ?? 'text'}: the text is ${n} tokens; the model reads at most ${room}: the rest is cut`,
        );
    }
    return {
      index,
      name,
      audio,
      speech: useSpeech && audio ? this.speechFeatures(audio) : undefined,
      text: enc,
      transcript,
      useText,
      useSpeech,
      warnings,
      note,
    };
  }

  /** The feeds of one batch, for the inputs `specs` declares. */
  private feeds(batch: Prepared[], specs: Record<string, InputSpec>): Record<string, ort.Tensor> {
    const B = batch.length;
    const out: Record<string, ort.Tensor> = {};
    if ('text.input_ids' in specs) {
      const T = Math.max(...batch.map((p) => p.text!.ids.length));
      const pad = this.tokenizer!.padId;
      const ids = new Array<number>(B * T).fill(pad);
      const types = new Array<number>(B * T).fill(0);
      const mask = new Array<number>(B * T).fill(0);
      const label = new Array<number>(B * T).fill(0);
      const scope = this.manifest.text!.labelScope;
      batch.forEach((p, r) => {
        const t = p.text!;
        for (let i = 0; i < t.ids.length; i++) {
          ids[r * T + i] = t.ids[i];
          types[r * T + i] = t.typeIds[i];
          mask[r * T + i] = 1;
          label[r * T + i] = scope === 'context' || (i >= t.currentStart && i < t.currentEnd) ? 1 : 0;
        }
      });
      const put = (k: string, v: number[]) => {
        if (`text.${k}` in specs) out[`text.${k}`] = ortTensor(specs[`text.${k}`], v, [B, T]);
      };
      put('input_ids', ids);
      put('token_type_ids', types);
      put('attention_mask', mask);
      put('label_mask', label);
    }
    const speechName =
      'speech.input_features' in specs
        ? 'speech.input_features'
        : 'speech.input_values' in specs
          ? 'speech.input_values'
          : null;
    if (speechName) {
      const F = Math.max(...batch.map((p) => p.speech!.frames));
      const bins = batch[0].speech!.bins;
      const logmel = speechName === 'speech.input_features';
      const data = new Float32Array(B * F * (logmel ? bins : 1));
      const mask = new Array<number>(B * F).fill(0);
      batch.forEach((p, r) => {
        data.set(p.speech!.data, r * F * bins);
        for (let t = 0; t < p.speech!.frames; t++) mask[r * F + t] = 1;
      });
      out[speechName] = ortTensor(specs[speechName], data, logmel ? [B, F, bins] : [B, F]);
      if ('speech.attention_mask' in specs)
        out['speech.attention_mask'] = ortTensor(specs['speech.attention_mask'], mask, [B, F]);
    }
    for (const n of Object.keys(specs))
      if (!(n in out)) throw new Error(`the model wants input '${n}', which the predictor does not make`);
    return out;
  }

  /** Rows of a [B, L, C] tensor, averaged over C, for row r's first `valid` positions. */
  private static meanOverClasses(t: ort.Tensor, r: number, valid: number): number[] {
    const [, L, C] = t.dims.map(Number);
    const d = t.data as Float32Array;
    const out: number[] = [];
    for (let i = 0; i < Math.min(valid, L); i++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += d[(r * L + i) * C + c];
      out.push(s / C);
    }
    return out;
  }

  /** Valid positions of row r along an output's length axis. */
  private static validLength(mask: ort.Tensor | undefined, r: number, L: number, ratio: number): number {
    if (mask) {
      const d = mask.data as ArrayLike<number | bigint | boolean>;
      let n = 0;
      for (let i = 0; i < L; i++) if (Number(d[r * L + i])) n++;
      return n;
    }
    // No mask output: the encoder's frames cover the input in proportion.
    return Math.max(1, Math.min(L, Math.round(L * ratio)));
  }

  private async runBatch(batch: Prepared[]): Promise<Prediction[]> {
    const labels = this.manifest.labels;
    const speechAlone =
      batch[0].useSpeech && !batch[0].useText && (this.kind === 'lemer' || this.kind === 'score-fusion');
    const session = speechAlone ? this.speechSession! : this.session;
    const specs = speechAlone ? this.manifest.speechOnly!.inputs : this.manifest.inputs;
    const feeds = this.feeds(batch, specs);
    // Only what a prediction reports (the graph's attention maps A_r, A_l stay inside).
    const fetch = PREDICTION_OUTPUTS.filter((n) => session.outputNames.includes(n));
    const out = await this.exclusive(async () => {
      const t0 = performance.now();
      try {
        return await session.run(feeds, fetch);
      } finally {
        this.runSeconds += (performance.now() - t0) / 1000;
      }
    });
    const maxFrames = batch[0].speech ? Math.max(...batch.map((p) => p.speech!.frames)) : 0;
    return batch.map((p, r) => {
      let probs: number[];
      const Gs = out.speech_label_attention;
      const sMask = out.speech_mask;
      const nFrames = Gs
        ? Lemer.validLength(sMask, r, Number(Gs.dims[1]), maxFrames ? p.speech!.frames / maxFrames : 1)
        : 0;
      if (speechAlone && out.speech_probs) {
        // Score fusion: the speech model's own softmax.
        const C = labels.length;
        probs = Array.from((out.speech_probs.data as Float32Array).subarray(r * C, (r + 1) * C), Number);
      } else if (speechAlone && out.speech_label_probs) {
        const C = labels.length;
        probs = Array.from(
          (out.speech_label_probs.data as Float32Array).subarray(r * C, (r + 1) * C),
          Number,
        );
      } else if (speechAlone) {
        // p_g^s: softmax of the masked mean over frames of G_s (scaled by the label temperature).
        const [, L, C] = Gs.dims.map(Number);
        const d = Gs.data as Float32Array;
        const mean = new Array<number>(C).fill(0);
        for (let i = 0; i < nFrames; i++)
          for (let c = 0; c < C; c++) mean[c] += d[(r * L + i) * C + c] / nFrames;
        probs = softmax(mean.map((x) => x * this.manifest.speechOnly!.temperature));
      } else {
        const C = labels.length;
        probs = Array.from((out.probs.data as Float32Array).subarray(r * C, (r + 1) * C), Number);
      }
      let k = 0;
      for (let j = 1; j < probs.length; j++) if (probs[j] > probs[k]) k = j;
      const pred: Prediction = {
        ...(p.name !== undefined ? { name: p.name } : {}),
        label: labels[k],
        probs: Object.fromEntries(labels.map((l, j) => [l, probs[j]])),
        modality: p.useSpeech && p.useText ? 'speech+text' : p.useSpeech ? 'speech' : 'text',
        method: speechAlone ? (this.manifest.speechOnly?.method ?? 'speech-label-attention') : 'model',
        ...(p.note ? { note: p.note } : {}),
        ...(p.transcript ? { transcript: p.transcript } : {}),
        warnings: p.warnings,
      };
      const Gt = out.text_label_attention;
      if (Gt && p.text) {
        const w = Lemer.meanOverClasses(Gt, r, p.text.ids.length);
        pred.tokens = [];
        for (let i = p.text.currentStart; i < p.text.currentEnd && i < w.length; i++)
          pred.tokens.push({ token: this.tokenizer!.idToToken(p.text.ids[i]) ?? '?', weight: w[i] });
      }
      if (Gs && p.audio) {
        const w = Lemer.meanOverClasses(Gs, r, nFrames);
        const hop = p.audio.seconds / Math.max(1, nFrames);
        pred.frames = w.map((weight, i) => ({ time: Math.round(i * hop * 1e4) / 1e4, weight }));
      }
      if (p.audio)
        pred.audio = {
          seconds: p.audio.seconds,
          sampleRate: p.audio.sampleRate,
          originalSampleRate: p.audio.original.sampleRate,
          channels: p.audio.original.channels,
        };
      return pred;
    });
  }

  /** Classifies one utterance: probabilities, label and label attention (see Prediction). */
  async predict(input: PredictInput, limits?: AudioLimits): Promise<Prediction> {
    const p = await this.prepare(input, 0, limits);
    return (await this.runBatch([p]))[0];
  }

  /**
   * Classifies many utterances, batched by length (similar lengths share a run, so that
   * padding stays small); results come back in the inputs' order. An input that fails its
   * checks stops the batch with its error (the name says which).
   */
  async predictBatch(inputs: PredictInput[], opts: BatchOptions = {}): Promise<Prediction[]> {
    const B = Math.max(1, opts.batchSize ?? 8);
    // Decoded audio is held for one window of inputs at a time, not for the whole list.
    const window = 32 * B;
    const key = (p: Prepared) => `${p.useText ? 't' : ''}${p.useSpeech ? 's' : ''}`;
    const len = (p: Prepared) => (p.speech ? p.speech.frames : (p.text?.ids.length ?? 0));
    const results = new Array<Prediction>(inputs.length);
    let done = 0;
    for (let w = 0; w < inputs.length; w += window) {
      const prepared: Prepared[] = [];
      for (let i = w; i < Math.min(inputs.length, w + window); i++)
        prepared.push(await this.prepare(inputs[i], i, opts.limits));
      // Group by which graph and inputs they need, then sort by length.
      const groups = new Map<string, Prepared[]>();
      for (const p of prepared) groups.set(key(p), [...(groups.get(key(p)) ?? []), p]);
      for (const g of groups.values()) {
        // Then by text length: clips of one length (a batch of 5 s clips) share text padding too.
        const tlen = (p: Prepared) => p.text?.ids.length ?? 0;
        g.sort((a, b) => len(a) - len(b) || tlen(a) - tlen(b) || a.index - b.index);
        for (let i = 0; i < g.length; i += B) {
          const batch = g.slice(i, i + B);
          const preds = await this.runBatch(batch);
          batch.forEach((p, j) => (results[p.index] = preds[j]));
          done += batch.length;
          opts.onProgress?.(done, inputs.length);
        }
      }
    }
    return results;
  }

  /**
   * Splits a long recording at pauses (Silero VAD, streamed: bounded memory for any length)
   * and classifies each speech segment, as it is found. Each segment needs its own
   * transcript, so text comes from the transcriber when there is one; else the model's
   * speech-only path is used.
   */
  async *predictSegments(
    audio: AudioInput,
    opts: SegmentOptions & { name?: string } = {},
  ): AsyncGenerator<SegmentPrediction> {
    if (this.kind === 'text' && !this.transcriber)
      throw new Error(
        `${opts.name ?? 'audio'}: a text model needs a transcript per segment: give a transcriber (--asr)`,
      );
    if ((this.kind === 'lemer' || this.kind === 'score-fusion') && !this.transcriber && !this.speechSession)
      throw new Error(
        `${opts.name ?? 'audio'}: segments have no transcript, and this model has no speech-only path: give a transcriber (--asr)`,
      );
    let k = 0;
    for await (const seg of segmentAudio(audio, opts)) {
      const name = `${opts.name ?? (typeof audio === 'string' ? audio : 'audio')}#${k++}`;
      const p = await this.predict({ audio: { samples: seg.samples, sampleRate: 16000 }, name });
      yield { ...p, start: Math.round(seg.start * 1000) / 1000, end: Math.round(seg.end * 1000) / 1000 };
    }
  }

  async release(): Promise<void> {
    await this.session.release();
    await this.speechSession?.release();
    await this.transcriber?.release?.();
  }
}
