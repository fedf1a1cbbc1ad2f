/**
 * Cross-validation: the same experiment on every fold of the protocol, one folder per fold
 * (`<out>/folds/<fold>/result.json` + checkpoints), then a summary (per-fold and mean WA/UA,
 * pooled confusion, curves) built only from the per-fold result files, so that one fold can
 * be rerun alone and the summary rebuilt. Everything that can fail fast (folds, classes,
 * audio, resume state) is checked before the first training step. Result files are written
 * atomically and only when a fold has finished: a failed run leaves earlier results as
 * they were.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { configSchema, type LemerConfig } from '../config/schema.js';
import type { SpecAugmentOptions } from '../audio/logmel.js';
import { runtimeOptions } from '../config/engine.js';
import { carveValidation, checkFolds, defaultFolds, leaveOneGroupOut, type Fold } from '../data/folds.js';
import type { Corpus } from '../data/types.js';
import { summarizeFolds, type Summary } from '../eval/metrics.js';
import { svgToPng, writeReport } from '../eval/report.js';
import { lemerVersion } from '../graph/checkpoint.js';
import { writeFileAtomic } from '../util/fs.js';
import type { Progress } from '../util/progress.js';
import { AudioCache, defaultCacheDir, type SpeechInput } from './audio-cache.js';
import { curvesSvg } from './curves.js';
import { encodeText, type Example } from './data.js';
import { fit, predict, type EpochRecord, type FitState } from './fit.js';
import type { ModelKind } from './head.js';
import { buildModel, configFrontEnd, headModel, optimizerFor } from './model.js';
import { cachedEncoder, encoderFeatures } from './features.js';
import type { Encoder } from '../models/encoder.js';
import { saveTokenizerJson } from '../text/vocab.js';
import { initLabelEmbeddings, type LabelInitInfo } from './labels.js';
import { inputNormStats, INPUT_NORM_PARAMS } from './input-norm.js';
import { checkPretrainable, pretrainFold, type PretrainStepResult } from './pretrain-step.js';
import {
  fuseScores,
  type FusionInput,
  type FusionResult,
  type ScoreFusionWeighting,
} from './score-fusion.js';

export type RunModel = ModelKind | 'score-fusion';

export interface RunOptions {
  config: LemerConfig;
  corpus: Corpus;
  /** The corpus spec as given (for the record). */
  corpusSpec: string;
  model: RunModel;
  out: string;
  resume: boolean;
  /** Only these folds (by name), or the protocol's first one; default all. */
  folds?: string[] | 'first';
  progress?: (total: number, label: string) => Progress;
  log?: (msg: string) => void;
  warn?: (msg: string) => void;
  /**
   * Train nothing: only rebuild the summary from the folds' result files (the folds ran
   * elsewhere, e.g. on queue workers: src/queue); folds without one are listed as missing.
   */
  summaryOnly?: boolean;
}

/** One fold's result file. */
export interface FoldResult {
  format: 'lemer-fold-result';
  fold: string;
  model: RunModel;
  labels: string[];
  ids: string[];
  yTrue: number[];
  yPred: number[];
  logits: number[][];
  /** Percent. */
  wa: number;
  ua: number;
  trainSize: number;
  validSize: number;
  /** Per trained model (two for score fusion). */
  fits: {
    kind: ModelKind;
    history: EpochRecord[];
    best: FitState['best'];
    epochs: number;
    seconds: number;
    resumed: boolean;
    description: string;
    labelInit: LabelInitInfo;
    /** The validation part's logits (best checkpoint): what score fusion's weighting reads. */
    valid?: { ids: string[]; yTrue: number[]; logits: number[][] };
  }[];
  /** 2nd-stage pretraining of the fold's speech encoder (pretrain.enabled); dir relative to the fold's folder. */
  pretrain?: PretrainStepResult;
  /** Score fusion: how the models' logits were weighted (scoreFusion.weighting). */
  fusion?: Omit<FusionResult, 'logits'> & { weighting: ScoreFusionWeighting };
  seconds: number;
  configHash: string;
  corpusHash: string;
  codeVersion: string;
}

/** What `lemer cv --json` writes: at least folds[].wa/ua and mean.wa/ua, in percent. */
export interface CvResult {
  title: string;
  model: RunModel;
  corpus: string;
  labels: string[];
  folds: {
    name: string;
    wa: number;
    ua: number;
    n: number;
    trainSize: number;
    validSize: number;
    seconds: number;
  }[];
  mean: { wa: number; ua: number };
  std: { wa: number; ua: number };
  pooled: { wa: number; ua: number; n: number; confusion: number[][] };
  missingFolds: string[];
  seconds: number;
  out: string;
  files: Record<string, string>;
  configHash: string;
  corpusHash: string;
  codeVersion: string;
}

/** A finished fold's result file, inside its folder. */
export const RESULT_FILE = 'result.json';

/**
 * fit's SpecAugment options from the config (null when off). `maskFill`: per-bin fill values
 * for features the model normalises itself (global normalisation: the training means).
 */
export function specAugmentOptions(
  sa: LemerConfig['speech']['specAugment'],
  maskFill?: Float32Array,
): SpecAugmentOptions | null {
  if (!sa.enabled) return null;
  // The schema's keys are src/audio's option names: new ones pass through.
  const { enabled: _enabled, ...options } = sa;
  return { ...options, fillPerBin: maskFill };
}

/** lemer's version, plus the git commit where the code is a checkout. */
export function codeVersion(): string {
  const v = lemerVersion();
  try {
    const here = dirname(fileURLToPath(import.meta.url));
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: here,
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    })
      .toString()
      .trim();
    return commit ? `${v}+${commit}` : v;
  } catch {
    return v;
  }
}

/** Hash of the resolved config without the runtime section (threads do not change results). */
export function configHash(cfg: LemerConfig): string {
  const { runtime: _runtime, ...rest } = cfg;
  // Settings added after runs were made count only where they differ from their defaults,
  // so that those runs keep their hash (and --resume keeps their finished folds).
  const r = rest as Record<string, unknown> & { train: Record<string, unknown> };
  const defaults = configSchema.parse({});
  const out: Record<string, unknown> = { ...r, train: { ...r.train } };
  for (const k of ['pretrain', 'scoreFusion'] as const)
    if (JSON.stringify(cfg[k]) === JSON.stringify(defaults[k])) delete out[k];
  const train = out.train as Record<string, unknown>;
  if (cfg.train.validBy === 'utterance') delete train.validBy;
  if (cfg.train.averageBest === 1) delete train.averageBest;
  const speech = (out.speech = { ...cfg.speech, specAugment: { ...cfg.speech.specAugment } }) as {
    specAugment: Record<string, unknown>;
  };
  if (cfg.speech.specAugment.freqWarp === 0) delete speech.specAugment.freqWarp;
  const optim = (out.optim = { ...cfg.optim }) as Record<string, unknown>;
  if (cfg.optim.placement === defaults.optim.placement) delete optim.placement;
  return createHash('sha256').update(JSON.stringify(out)).digest('hex').slice(0, 16);
}

/** Folder-safe fold name. */
export function foldDirName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, '_');
}

/**
 * The protocol's folds, with a seeded validation part carved from each training part: single
 * utterances, or (train.validBy speaker / session) whole groups, a share validFraction of the
 * training part's groups and at least one, so that validation speakers are as unseen as test
 * ones. A split that brings its own validation part (MELD's dev) keeps it.
 */
export function protocolFolds(cfg: LemerConfig, corpus: Corpus): Fold[] {
  const utts = corpus.utterances;
  const plain = cfg.protocol === 'speaker' ? leaveOneGroupOut(utts, 'speaker') : defaultFolds(corpus);
  const by = cfg.train.validBy;
  const folds = plain.map((f) => {
    if (f.valid) return f;
    if (by === 'utterance')
      return carveValidation(utts, f, { fraction: cfg.train.validFraction, seed: cfg.seed });
    const groups = new Set(f.train.map((i) => utts[i][by])).size;
    if (groups < 2)
      throw new Error(
        `train.validBy ${by}: fold ${f.name}'s training part has ${groups} ${by}${groups === 1 ? '' : 's'}; a validation ${by} held out of it needs at least 2 (use train.validBy utterance, or a corpus with more ${by}s)`,
      );
    const count = Math.min(groups - 1, Math.max(1, Math.round(cfg.train.validFraction * groups)));
    return carveValidation(utts, f, { by, count, seed: cfg.seed });
  });
  checkFolds(utts, folds, { complete: folds.length > 1 });
  return folds;
}

/** Bad folds before any work: empty parts, a class the training part lacks. */
export function checkFoldClasses(corpus: Corpus, folds: Fold[], labels: string[]): void {
  for (const f of folds) {
    if (f.test.length === 0) throw new Error(`fold ${f.name}: the test part is empty`);
    if (f.train.length === 0) throw new Error(`fold ${f.name}: the training part is empty`);
    const have = new Set(f.train.map((i) => corpus.utterances[i].label));
    const missing = labels.filter((l) => !have.has(l));
    if (missing.length)
      throw new Error(
        `fold ${f.name}: class${missing.length > 1 ? 'es' : ''} ${missing.join(', ')} ${missing.length > 1 ? 'have' : 'has'} no utterance in the training part (${f.train.length} utterances); the model cannot learn ${missing.length > 1 ? 'them' : 'it'}: merge or drop the class (--labels), or use another protocol`,
      );
  }
}

/**
 * Decodes every utterance's audio once (into the cache) before training starts; failures
 * are counted and either stop the run or leave those utterances out.
 */
export async function loadSpeech(
  corpus: Corpus,
  cache: AudioCache,
  opts: { badAudio: 'fail' | 'skip'; progress?: RunOptions['progress']; warn?: (m: string) => void },
): Promise<{ speech: Map<number, SpeechInput>; skipped: Set<number> }> {
  // This decode is the audio check of training (issue 10 item 6): every file is decoded (and
  // cached) before the first step, so a broken file stops the run, or is left out, up front.
  const utts = corpus.utterances;
  const speech = new Map<number, SpeechInput>();
  const failed: { i: number; msg: string }[] = [];
  const bar = opts.progress?.(utts.length, 'decoding audio');
  let next = 0;
  const worker = async () => {
    while (next < utts.length) {
      const i = next++;
      const u = utts[i];
      try {
        if (u.audioPath === null) throw new Error(`utterance ${u.id} has no audio file`);
        speech.set(i, await cache.get(u.audioPath));
      } catch (err) {
        failed.push({ i, msg: (err as Error).message });
      }
      bar?.tick();
    }
  };
  await Promise.all([worker(), worker()]);
  bar?.stop();
  const skipped = new Set(failed.map((f) => f.i));
  if (failed.length) {
    failed.sort((a, b) => a.i - b.i);
    const first = failed
      .slice(0, 3)
      .map((f) => `  ${f.msg}`)
      .join('\n');
    const what = `${failed.length} of ${utts.length} utterances have audio that cannot be used:\n${first}${failed.length > 3 ? `\n  ... and ${failed.length - 3} more` : ''}`;
    if (opts.badAudio === 'fail')
      throw new Error(`${what}\n(--set train.badAudio=skip leaves them out and goes on)`);
    opts.warn?.(`${what}\nleft out (train.badAudio = skip)`);
  }
  return { speech, skipped };
}

/** A content hash of the corpus: every utterance's fields and its audio's bytes. */
export async function corpusHash(corpus: Corpus, cache: AudioCache | null): Promise<string> {
  const h = createHash('sha256');
  for (const u of corpus.utterances) {
    const audio = u.audioPath && cache ? await cache.contentHash(u.audioPath).catch(() => 'unreadable') : '';
    h.update(JSON.stringify([u.id, u.label, u.text, u.speaker, u.session, u.dialogue, u.turn, audio]));
    h.update('\n');
  }
  return h.digest('hex').slice(0, 16);
}

function classWeights(corpus: Corpus, idx: number[], labels: string[]): number[] {
  const counts = labels.map((l) => idx.filter((i) => corpus.utterances[i].label === l).length);
  const n = idx.length;
  // Inverse frequency, normalised so that a balanced set gets weight 1 everywhere.
  return counts.map((c) => (c > 0 ? n / (labels.length * c) : 0));
}

interface Shared {
  cfg: LemerConfig;
  corpus: Corpus;
  labels: string[];
  speech: Map<number, SpeechInput> | null;
  cfgHash: string;
  corpusHash: string;
  version: string;
}

/** Trains one model kind on one fold and predicts its test part (the speech encoder from `speechDir` where given: the fold's pretrained one). */
async function fitOne(
  s: Shared,
  fold: Fold,
  kind: ModelKind,
  dir: string,
  o: RunOptions,
  speechDir?: string,
): Promise<{ logits: number[][]; fit: FoldResult['fits'][number] }> {
  const { corpus, labels } = s;
  const cfg =
    speechDir !== undefined && kind !== 'text'
      ? { ...s.cfg, encoders: { ...s.cfg.encoders, speech: { ...s.cfg.encoders.speech, path: speechDir } } }
      : s.cfg;
  const trainIdx = fold.train;
  const validIdx = fold.valid ?? [];
  // Only training-fold texts shape the vocabulary (validation is carved from the training folds).
  const trainTexts = [...trainIdx, ...validIdx].map((i) => corpus.utterances[i].text);
  const built = await buildModel(cfg, kind, {
    trainTexts,
    classWeights: cfg.train.classBalanced ? classWeights(corpus, trainIdx, labels) : null,
  });
  o.log?.(`fold ${fold.name}: ${built.description}`);
  if (built.tokenizerJson) saveTokenizerJson(built.tokenizerJson, join(dir, 'tokenizer.json'));
  const label = (i: number) => labels.indexOf(corpus.utterances[i].label);
  const examples = (idx: number[]): Example[] =>
    idx.map((i) => ({
      index: i,
      id: corpus.utterances[i].id,
      label: label(i),
      text: built.tokenizer
        ? encodeText(corpus, i, built.tokenizer, {
            maxTokens: cfg.text.maxTokens,
            history: cfg.text.history,
            labelScope: cfg.text.labelScope,
          })
        : undefined,
      speech: built.frontEnd ? s.speech!.get(i) : undefined,
    }));
  const train = examples(trainIdx);
  const valid = examples(validIdx);
  const test = examples(fold.test);
  let maskFill: Float32Array | undefined;
  if (built.frontEnd?.kind === 'logmel' && cfg.speech.logMel.normalize === 'global') {
    // Statistics of the training part only (never validation or test), before anything runs the encoder.
    const stats = inputNormStats(train.map((e) => e.speech!));
    built.initialParams.set(INPUT_NORM_PARAMS.mean, stats.mean);
    built.initialParams.set(INPUT_NORM_PARAMS.std, stats.std);
    // SpecAugment works on the raw features: masks take each bin's mean, 0 after the model's normalisation.
    maskFill = stats.mean.data as Float32Array;
  }
  const labelInfo = await initLabelEmbeddings(cfg, built, corpus, train, {
    runtime: runtimeOptions(cfg),
    warn: o.warn,
  });
  // Frozen encoders: their hidden states once per utterance (cached), and the head trains on them.
  const swap: { text?: Encoder; speech?: Encoder } = {};
  for (const m of ['text', 'speech'] as const) {
    const enc = m === 'text' ? built.textEncoder : built.speechEncoder;
    if (!enc || !cfg.encoders[m].freeze) continue;
    const all = [...train, ...valid, ...test];
    const feats = await encoderFeatures(m, enc, all, {
      weights: built.initialParams,
      seed: cfg.seed,
      allLayers: cfg.train.layerWeights,
      cacheDir: cfg.train.cacheDir ?? defaultCacheDir(),
      runtime: runtimeOptions(cfg),
      padId: built.tokenizer?.padId ?? 0,
      progress: o.progress,
    });
    all.forEach((e, i) => (e.features = { ...e.features, [m]: feats[i] }));
    swap[m] = cachedEncoder(enc, feats[0].layers);
  }
  if (swap.text || swap.speech)
    built.model = headModel(
      cfg,
      kind,
      swap.text ?? built.textEncoder,
      swap.speech ?? built.speechEncoder,
      cfg.train.classBalanced ? classWeights(corpus, trainIdx, labels) : null,
      built.speechCodebookDim,
    );
  if (labelInfo.keywords)
    o.log?.(
      `fold ${fold.name}: text label keywords: ${labelInfo.keywords.map((k, c) => `${labels[c]}: ${k.join(' ')}`).join('; ')}`,
    );
  const B = cfg.optim.batchSize;
  const stepsPerEpoch = Math.max(
    1,
    Math.floor(train.length / B) + (train.length % B >= cfg.optim.gradAccum ? 1 : 0),
  );
  const padId = built.tokenizer?.padId ?? 0;
  const r = await fit({
    model: built.model,
    optimizer: optimizerFor(cfg, stepsPerEpoch * cfg.train.epochs),
    labels,
    train,
    valid,
    epochs: cfg.train.epochs,
    patience: cfg.train.patience,
    averageBest: cfg.train.averageBest,
    evalEvery: cfg.train.evalEvery,
    checkpointEvery: cfg.train.checkpointEvery,
    batchSize: B,
    evalBatchSize: cfg.train.evalBatchSize,
    microBatches: cfg.optim.gradAccum,
    stepsPerRun: cfg.runtime.stepsPerRun,
    optimizerPlacement: cfg.optim.placement,
    seed: cfg.seed,
    labelScope: cfg.text.labelScope,
    padId,
    specAugment: specAugmentOptions(cfg.speech.specAugment, maskFill),
    trainable: built.trainable,
    runtime: runtimeOptions(cfg),
    initialParams: built.initialParams,
    dir,
    resume: o.resume,
    fingerprint: { model: kind, labels, configHash: s.cfgHash, corpusHash: s.corpusHash, fold: fold.name },
    progress: o.progress,
    log: o.log,
    label: `fold ${fold.name}${kind !== o.model ? ` (${kind})` : ''}`,
  });
  const evalOpts = { batchSize: cfg.train.evalBatchSize, labelScope: cfg.text.labelScope, padId };
  const { logits } = await predict(r.predictor, built.model, test, evalOpts);
  const validLogits = valid.length ? (await predict(r.predictor, built.model, valid, evalOpts)).logits : null;
  await r.trainer.release();
  await r.predictor.release();
  return {
    logits,
    fit: {
      kind,
      history: r.state.history,
      best: r.state.best,
      epochs: r.state.epoch,
      seconds: r.seconds,
      resumed: r.resumed,
      description: built.description,
      labelInit: labelInfo,
      ...(validLogits
        ? { valid: { ids: valid.map((e) => e.id), yTrue: valid.map((e) => e.label), logits: validLogits } }
        : {}),
    },
  };
}

function withoutLogits(f: FusionResult): Omit<FusionResult, 'logits'> {
  const { logits: _logits, ...rest } = f;
  return rest;
}

async function runFold(s: Shared, fold: Fold, dir: string, o: RunOptions): Promise<FoldResult> {
  const t0 = performance.now();
  const kinds: ModelKind[] = o.model === 'score-fusion' ? ['text', 'speech'] : [o.model];
  const fits: FoldResult['fits'] = [];
  const inputs: FusionInput[] = [];
  // 2nd-stage pretraining on the fold's training audio, once for every model of the fold that has speech.
  const pre =
    s.cfg.pretrain.enabled && o.model !== 'text'
      ? await pretrainFold({
          cfg: s.cfg,
          corpus: s.corpus,
          fold,
          speech: s.speech!,
          foldDir: dir,
          resume: o.resume,
          cacheDir: s.cfg.train.cacheDir ?? defaultCacheDir(),
          codeVersion: s.version,
          runtime: runtimeOptions(s.cfg),
          progress: o.progress,
          log: o.log,
          warn: o.warn,
        })
      : null;
  for (const k of kinds) {
    const r = await fitOne(s, fold, k, kinds.length > 1 ? join(dir, k) : dir, o, pre?.dir);
    fits.push(r.fit);
    inputs.push({ test: r.logits, valid: r.fit.valid });
  }
  // Score fusion: the sum of the two unimodal models' logits (Table 2), weighted as configured.
  const weighting = s.cfg.scoreFusion.weighting;
  const fused = kinds.length > 1 ? fuseScores(inputs, weighting, s.labels.length) : null;
  if (fused && weighting !== 'none')
    o.log?.(
      `fold ${fold.name}: score fusion (${weighting}): ${kinds.map((k, i) => `${k} x ${fused.factors[i].toFixed(3)}`).join(', ')}`,
    );
  const logits = fused ? fused.logits : inputs[0].test;
  const yPred = logits.map((row) => row.indexOf(Math.max(...row)));
  const yTrue = fold.test.map((i) => s.labels.indexOf(s.corpus.utterances[i].label));
  const sum = summarizeFolds([{ name: fold.name, yTrue, yPred }], s.labels);
  return {
    format: 'lemer-fold-result',
    fold: fold.name,
    model: o.model,
    labels: s.labels,
    ids: fold.test.map((i) => s.corpus.utterances[i].id),
    yTrue,
    yPred,
    logits,
    ...(fused ? { fusion: { weighting, ...withoutLogits(fused) } } : {}),
    ...(pre ? { pretrain: { ...pre, dir: relative(dir, pre.dir) } } : {}),
    wa: 100 * sum.folds[0].wa,
    ua: 100 * sum.folds[0].ua,
    trainSize: fold.train.length,
    validSize: fold.valid?.length ?? 0,
    fits,
    seconds: (performance.now() - t0) / 1000,
    configHash: s.cfgHash,
    corpusHash: s.corpusHash,
    codeVersion: s.version,
  };
}

/** A fold's result file, or null where it is absent or not a finished fold's result. */
export function readFoldResult(path: string): FoldResult | null {
  if (!existsSync(path)) return null;
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as FoldResult;
    return r.format === 'lemer-fold-result' ? r : null;
  } catch {
    return null;
  }
}

const pct = (x: number) => (Number.isFinite(x) ? Math.round(x * 1e4) / 100 : NaN);

/** Runs the folds (all, or `o.folds`), then rebuilds the summary from every fold's result file. */
export async function crossValidate(o: RunOptions): Promise<CvResult> {
  const t0 = performance.now();
  const labels = [...o.corpus.labels];
  // The corpus' label set is the model's (in the corpus' order).
  const cfg = o.config.classes.join() === labels.join() ? o.config : { ...o.config, classes: labels };
  let corpus = o.corpus;
  const needSpeech = o.model !== 'text';
  const needText = o.model !== 'speech';
  if (needText && corpus.utterances.every((u) => u.text.trim() === ''))
    throw new Error(
      `corpus ${corpus.name} has no transcripts: a ${o.model} model needs text (use --model speech)`,
    );
  let folds = protocolFolds(cfg, corpus);
  const only = o.folds === 'first' ? [folds[0].name] : (o.folds ?? []);
  const unknown = only.filter((n) => !folds.some((f) => f.name === n));
  if (unknown.length)
    throw new Error(`no fold named ${unknown.join(', ')} (folds: ${folds.map((f) => f.name).join(', ')})`);
  checkFoldClasses(corpus, folds, labels);
  let cache: AudioCache | null = null;
  let speech: Map<number, SpeechInput> | null = null;
  if (needSpeech) {
    if (
      corpus.utterances.some((u) => u.audioPath === null) &&
      corpus.utterances.every((u) => u.audioPath === null)
    )
      throw new Error(
        `corpus ${corpus.name} has no audio: a ${o.model} model needs speech (use --model text)`,
      );
    // 2nd-stage pretraining: an encoder without the objective stops the run here, not at fold 1.
    if (cfg.pretrain.enabled) checkPretrainable(cfg);
    const frontEnd = configFrontEnd(cfg);
    cache = new AudioCache(cfg.train.cacheDir ?? defaultCacheDir(), frontEnd);
    // Summary only: the cache just hashes the audio files (corpusHash), nothing is decoded.
    const r = o.summaryOnly
      ? { speech: new Map(), skipped: new Set<number>() }
      : await loadSpeech(corpus, cache, {
          badAudio: cfg.train.badAudio,
          progress: o.progress,
          warn: o.warn,
        });
    speech = r.speech;
    if (r.skipped.size) {
      const drop = (xs: number[]) => xs.filter((i) => !r.skipped.has(i));
      folds = folds.map((f) => ({
        ...f,
        train: drop(f.train),
        test: drop(f.test),
        valid: f.valid && drop(f.valid),
      }));
      checkFoldClasses(corpus, folds, labels);
    }
  }
  const shared: Shared = {
    cfg,
    corpus,
    labels,
    speech,
    cfgHash: configHash(cfg),
    corpusHash: await corpusHash(corpus, cache),
    version: codeVersion(),
  };
  corpus = shared.corpus;
  const foldsRoot = join(o.out, 'folds');
  const chosen = folds.filter((f) => only.length === 0 || only.includes(f.name));
  for (const [k, f] of (o.summaryOnly ? [] : chosen).entries()) {
    const dir = join(foldsRoot, foldDirName(f.name));
    const file = join(dir, RESULT_FILE);
    const done = o.resume ? readFoldResult(file) : null;
    if (
      done &&
      done.configHash === shared.cfgHash &&
      done.corpusHash === shared.corpusHash &&
      done.model === o.model
    ) {
      o.log?.(
        `fold ${f.name}: finished in an earlier run (WA ${done.wa.toFixed(2)}, UA ${done.ua.toFixed(2)}), kept`,
      );
      continue;
    }
    o.log?.(
      `fold ${f.name} (${k + 1}/${chosen.length}): ${f.train.length} train, ${f.valid?.length ?? 0} valid, ${f.test.length} test`,
    );
    const r = await runFold(shared, f, dir, o);
    writeFileAtomic(file, JSON.stringify(r, null, 1) + '\n');
    const svg = await curvesSvg(
      r.fits.map((x) => ({ name: r.fits.length > 1 ? x.kind : f.name, history: x.history })),
      `fold ${f.name}: training curves`,
    );
    writeFileAtomic(join(dir, 'curves.svg'), svg);
    writeFileAtomic(join(dir, 'curves.png'), svgToPng(svg));
    o.log?.(`fold ${f.name}: test WA ${r.wa.toFixed(2)}, UA ${r.ua.toFixed(2)} (${r.seconds.toFixed(0)} s)`);
  }
  // `lemer train` (one fold) summarises that fold; `lemer cv` every fold of the protocol.
  return summarize(o, o.folds === 'first' ? chosen : folds, shared, (performance.now() - t0) / 1000);
}

/** The summary over every fold whose result file exists and belongs to this run's config and corpus. */
async function summarize(o: RunOptions, folds: Fold[], s: Shared, seconds: number): Promise<CvResult> {
  const results: FoldResult[] = [];
  const missing: string[] = [];
  for (const f of folds) {
    const r = readFoldResult(join(o.out, 'folds', foldDirName(f.name), RESULT_FILE));
    if (r && r.configHash === s.cfgHash && r.corpusHash === s.corpusHash && r.model === o.model)
      results.push(r);
    else missing.push(f.name);
  }
  if (results.length === 0) throw new Error(`no finished fold in ${o.out}`);
  if (missing.length)
    o.warn?.(`the summary lacks fold(s) ${missing.join(', ')} (not run yet with this config)`);
  const summary: Summary = summarizeFolds(
    results.map((r) => ({ name: r.fold, yTrue: r.yTrue, yPred: r.yPred })),
    s.labels,
  );
  const title = `${o.model}${o.model === 'lemer' ? ` (${s.cfg.head.fusion})` : ''} on ${s.corpus.name}, ${results.length} fold${results.length > 1 ? 's' : ''}`;
  const files = await writeReport(o.out, summary, { title, config: s.cfg });
  const svg = await curvesSvg(
    results.flatMap((r) =>
      r.fits.map((x) => ({ name: r.fits.length > 1 ? `${r.fold} ${x.kind}` : r.fold, history: x.history })),
    ),
    `${title}: training curves`,
  );
  const curves = { svg: join(o.out, 'curves.svg'), png: join(o.out, 'curves.png') };
  writeFileAtomic(curves.svg, svg);
  writeFileAtomic(curves.png, svgToPng(svg));
  const out: CvResult = {
    title,
    model: o.model,
    corpus: o.corpusSpec,
    labels: s.labels,
    folds: results.map((r, i) => ({
      name: r.fold,
      wa: pct(summary.folds[i].wa),
      ua: pct(summary.folds[i].ua),
      n: r.yTrue.length,
      trainSize: r.trainSize,
      validSize: r.validSize,
      seconds: Math.round(r.seconds * 10) / 10,
    })),
    mean: { wa: pct(summary.mean.wa), ua: pct(summary.mean.ua) },
    std: { wa: pct(summary.std.wa), ua: pct(summary.std.ua) },
    pooled: {
      wa: pct(summary.pooled.wa),
      ua: pct(summary.pooled.ua),
      n: summary.pooled.n,
      confusion: summary.pooled.confusion,
    },
    missingFolds: missing,
    seconds: Math.round(seconds * 10) / 10,
    out: o.out,
    files: {
      ...files,
      curvesSvg: curves.svg,
      curvesPng: curves.png,
      config: join(o.out, 'config.yaml'),
      results: join(o.out, 'results.json'),
    },
    configHash: s.cfgHash,
    corpusHash: s.corpusHash,
    codeVersion: s.version,
  };
  writeFileAtomic(
    join(o.out, 'config.yaml'),
    `# lemer ${s.version}; corpus ${o.corpusSpec} (content ${s.corpusHash}); config ${s.cfgHash}\n${toYaml(s.cfg, { lineWidth: 0 })}`,
  );
  writeFileAtomic(join(o.out, 'results.json'), JSON.stringify(out, null, 2) + '\n');
  return out;
}
