/**
 * `lemer pretrain`: continues (or starts) wav2vec 2.0-style self-supervised training of a
 * speech encoder on a corpus' audio, labels unused, and writes a Hugging Face-layout
 * folder (config.json + model.safetensors) that the encoder loaders read back. The
 * loss is HF's Wav2Vec2ForPreTraining loss divided by the number of masked frames (as
 * HF's run_wav2vec2_pretraining_no_trainer.py trains), the Gumbel temperature follows
 * that script's schedule.
 *
 * Encoders: lemer's log-mel conformer (`model_type: lemer-conformer`) on log-mel + CMVN
 * features, and wav2vec2 / wav2vec2-conformer folders (Wav2Vec2ForPreTraining or a base
 * model: the objective's tensors start fresh where the folder lacks them) on waveforms
 * normalised as the folder's preprocessor_config.json says. A folder with only
 * config.json starts from random weights.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { HostTensor, RuntimeOptions } from '../graph/runtime.js';
import { ParameterStore } from '../graph/params.js';
import { readSafetensors, writeSafetensors } from '../graph/safetensors.js';
import { Trainer } from '../graph/train.js';
import type { OptimizerConfig } from '../graph/optim.js';
import { Rng } from '../util/random.js';
import { writeFileAtomic } from '../util/fs.js';
import { type Features, type LogMelOptions, cmvn, logMel } from '../audio/logmel.js';
import { loadAudio } from '../audio/load.js';
import type { Corpus } from '../data/types.js';
import {
  CONFORMER_MODEL_TYPE,
  type ConformerEncoder,
  conformerArch,
  conformerEncoder,
  conformerWeightsFromCheckpoint,
  parseConformerConfig,
  subsampledLength,
} from '../models/conformer/index.js';
import { type PretrainingConfig, parsePretrainingConfig } from '../models/wav2vec2/quantizer.js';
import { type MaskingOptions, padFeatures, sslTargets } from './batches.js';
import { conformerFrames, conformerPretrainingBuild, conformerPretrainingInputs } from './conformer.js';
import {
  PRETRAINABLE_WAV2VEC2,
  wav2vec2Frames,
  wav2vec2PretrainingBuild,
  wav2vec2PretrainingInputs,
  wav2vec2PretrainingNames,
  wav2vec2PretrainingParams,
} from './wav2vec2.js';
import {
  PREPROCESSOR_FILE,
  featExtractOutputLength,
  minInputSamples,
  parseWav2Vec2Config,
  readWav2Vec2FeatureConfig,
  wav2vec2Arch,
  wav2vec2Batch,
} from '../models/wav2vec2/index.js';
import { findHfWeightsFile, loadHfWeights } from '../models/hf/weights.js';

/** Tensors of a pretraining folder that belong to the objective, not the encoder. */
const HEAD_TENSOR = /^(quantizer\.|project_q\.|project_hid\.|masked_spec_embed$)/;

export interface PretrainOptions {
  /** A folder with config.json (and model.safetensors to continue from). */
  encoderDir: string;
  outDir: string;
  steps: number;
  batchSize: number;
  lr?: number;
  warmupSteps?: number;
  seed?: number;
  /** Longer utterances are cut to this (from the start); default 15 s. */
  maxSeconds?: number;
  /** Span masking over encoder frames: share of frames masked before overlaps (default 0.65, as wav2vec 2.0). */
  maskProb?: number;
  /** Span length in encoder frames (default 5 for the conformer: 40 ms frames, 200 ms as wav2vec2's 10 x 20 ms). */
  maskLength?: number;
  numNegatives?: number;
  /** Sample rate and log-mel settings of the front end (lemer's config: speech.*). */
  sampleRate?: number;
  logMel?: FrontEnd;
  runtime?: RuntimeOptions;
  /** Progress: features loaded, then steps done. */
  onFeatures?: (done: number, total: number) => void;
  onStep?: (step: number, r: StepLog) => void;
  onWarning?: (m: string) => void;
}

export interface StepLog {
  step: number;
  loss: number;
  contrastive: number;
  diversity: number;
  perplexity: number;
  lr: number;
}

export interface PretrainResult {
  outDir: string;
  modelType: string;
  utterances: number;
  skipped: number;
  steps: number;
  log: StepLog[];
  /** Parameters written (encoder and objective). */
  tensors: number;
}

function readConfig(dir: string): Record<string, unknown> {
  const p = join(dir, 'config.json');
  if (!existsSync(p))
    throw new Error(`${dir}: no config.json (an encoder folder holds config.json and model.safetensors)`);
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${p}: not valid JSON (${(e as Error).message})`);
  }
}

/** Log-mel settings plus the normalisation (lemer's speech.logMel config section fits). */
export type FrontEnd = Omit<LogMelOptions, 'sampleRate'> & {
  normalize?: 'utterance' | 'none';
  stdFloor?: number;
};

/** Log-mel + CMVN features of the corpus' audio, cut to maxSeconds. */
export async function corpusFeatures(
  corpus: Corpus,
  opts: {
    sampleRate: number;
    logMel: FrontEnd;
    maxSeconds: number;
  },
  onProgress?: (done: number, total: number) => void,
  onWarning?: (m: string) => void,
): Promise<Features[]> {
  const utts = corpus.utterances.filter((u) => u.audioPath !== null);
  if (utts.length === 0) throw new Error(`corpus ${corpus.name}: no utterance has audio`);
  const { normalize, stdFloor, ...lm } = opts.logMel;
  const out: Features[] = [];
  for (const [i, u] of utts.entries()) {
    const wave = await loadAudio(u.audioPath!, { sampleRate: opts.sampleRate, onWarning });
    const cut = wave.subarray(0, Math.min(wave.length, Math.round(opts.maxSeconds * opts.sampleRate)));
    const f = logMel(cut, { ...lm, sampleRate: opts.sampleRate });
    out.push(
      normalize === 'none' || f.frames === 0 ? f : cmvn(f, stdFloor === undefined ? {} : { stdFloor }),
    );
    onProgress?.(i + 1, utts.length);
  }
  return out;
}

/** Pretrains the conformer of `encoderDir` on already computed features. */
export async function pretrainConformerOnFeatures(
  features: readonly Features[],
  opts: PretrainOptions,
): Promise<PretrainResult> {
  const raw = readConfig(opts.encoderDir);
  const cfgPath = join(opts.encoderDir, 'config.json');
  if (typeof raw.model_type === 'string' && raw.model_type in PRETRAINABLE_WAV2VEC2)
    throw new Error(
      `${opts.encoderDir}: a ${raw.model_type} folder pretrains on waveforms (pretrainWav2Vec2OnWaves), not log-mel features`,
    );
  if (raw.model_type !== CONFORMER_MODEL_TYPE) throw unsupported(opts.encoderDir, raw.model_type);
  const arch = conformerArch(parseConformerConfig(raw, cfgPath));
  const pcfg: PretrainingConfig = parsePretrainingConfig(raw, cfgPath);
  const numNegatives = opts.numNegatives ?? pcfg.num_negatives;
  const config = { ...pcfg, num_negatives: numNegatives };
  const masking: MaskingOptions = {
    maskProb: opts.maskProb ?? 0.65,
    spanLength: opts.maskLength ?? 5,
    minMasks: pcfg.mask_time_min_masks,
    numNegatives,
  };
  // Usable utterances: at least two encoder frames (one to mask, one to be a negative).
  const usable = features.filter((f) => f.bins === arch.melBins && subsampledLength(f.frames) >= 2);
  const skipped = features.length - usable.length;
  if (skipped)
    opts.onWarning?.(
      `${skipped} utterance(s) skipped: shorter than 11 frames (~0.1 s) or not ${arch.melBins} mel bins`,
    );
  if (usable.length === 0)
    throw new Error(`no utterance is long enough to pretrain on (need >= 11 frames of ${arch.melBins} bins)`);

  const params = new ParameterStore();
  const wPath = join(opts.encoderDir, 'model.safetensors');
  if (existsSync(wPath)) {
    const tensors = readSafetensors(wPath).tensors;
    const { weights } = conformerWeightsFromCheckpoint(arch, tensors, wPath);
    for (const [k, v] of weights) params.set(k, v);
    for (const [k, v] of tensors) if (HEAD_TENSOR.test(k)) params.set(k, v);
  } else opts.onWarning?.(`${opts.encoderDir}: no model.safetensors, starting from random weights`);
  const enc: ConformerEncoder = conformerEncoder(raw, { configSource: cfgPath });
  const seed = opts.seed ?? 0;
  const trainer = await Trainer.create({
    inputs: conformerPretrainingInputs(enc, numNegatives),
    build: conformerPretrainingBuild(enc, config),
    optimizer: optimizerFor(opts),
    params,
    seed,
    runtime: opts.runtime,
  });
  try {
    const log = await runSteps(
      trainer,
      usable.length,
      opts,
      (idx) => {
        const picked = idx.map((i) => usable[i]);
        const feeds: Record<string, HostTensor> = padFeatures(picked);
        const { lengths, T } = conformerFrames(picked.map((f) => f.frames));
        return { feeds, lengths, T };
      },
      masking,
    );
    const tensors = writePretrainedFolder(opts.outDir, { ...enc.config, ...config }, trainer.params, {
      architectures: ['LemerConformerForPreTraining'],
      log,
    });
    return {
      outDir: opts.outDir,
      modelType: enc.modelType,
      utterances: usable.length,
      skipped,
      steps: opts.steps,
      log,
      tensors,
    };
  } finally {
    await trainer.release();
  }
}

/** The update loop shared by both families: shuffled batches, host-drawn masks, a log entry per step. */
async function runSteps(
  trainer: Trainer,
  n: number,
  opts: PretrainOptions,
  batch: (idx: number[]) => { feeds: Record<string, HostTensor>; lengths: number[]; T: number },
  masking: MaskingOptions,
): Promise<StepLog[]> {
  const seed = opts.seed ?? 0;
  const rng = new Rng(seed);
  const log: StepLog[] = [];
  let order: number[] = [];
  for (let step = 0; step < opts.steps; step++) {
    if (order.length < opts.batchSize) {
      const fresh = Array.from({ length: n }, (_, i) => i);
      for (let i = fresh.length - 1; i > 0; i--) {
        const j = rng.int(0, i + 1);
        [fresh[i], fresh[j]] = [fresh[j], fresh[i]];
      }
      order = order.concat(fresh);
    }
    const { feeds, lengths, T } = batch(order.splice(0, Math.min(opts.batchSize, n)));
    Object.assign(feeds, sslTargets(lengths, T, masking, (seed * 1_000_003 + step * 2) >>> 0));
    const r = await trainer.step(feeds);
    if (!Number.isFinite(r.loss)) throw new Error(`pretrain: the loss is ${r.loss} at step ${step + 1}`);
    const entry: StepLog = {
      step: step + 1,
      loss: r.loss,
      contrastive: r.metrics.contrastive,
      diversity: r.metrics.diversity,
      perplexity: r.metrics.perplexity,
      lr: r.lr,
    };
    log.push(entry);
    opts.onStep?.(step + 1, entry);
  }
  return log;
}

function optimizerFor(opts: PretrainOptions): OptimizerConfig {
  return {
    kind: 'adamw',
    lr: opts.lr ?? 5e-4,
    weightDecay: 0.01,
    maxGradNorm: 1.0,
    // Linear warm-up, then linear decay to 0 at the last step (one step: the plain rate).
    schedule:
      opts.steps > 1
        ? {
            warmupSteps: Math.min(opts.warmupSteps ?? Math.ceil(opts.steps / 10), opts.steps - 1),
            decay: 'linear',
            totalSteps: opts.steps,
          }
        : {},
  };
}

function unsupported(dir: string, modelType: unknown): Error {
  const known = [CONFORMER_MODEL_TYPE, ...Object.keys(PRETRAINABLE_WAV2VEC2)].join(', ');
  if (modelType === 'hubert' || modelType === 'wavlm')
    return new Error(
      `${dir}: ${modelType} has no quantiser objective in Hugging Face (no *ForPreTraining with one): use k-means codes (src/models/codes) instead; pretrainable: ${known}`,
    );
  return new Error(
    `${dir}/config.json: model_type ${JSON.stringify(modelType)} cannot be pretrained (known: ${known})`,
  );
}

/** config.json + model.safetensors (+ pretrain_log.json), each written atomically. */
export function writePretrainedFolder(
  dir: string,
  config: Record<string, unknown>,
  params: ParameterStore | [string, HostTensor][],
  extra: { architectures: string[]; log: StepLog[] },
): number {
  mkdirSync(dir, { recursive: true });
  const entries = (Array.isArray(params) ? params : params.entries()).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  writeSafetensors(join(dir, 'model.safetensors'), entries, { format: 'pt' });
  writeFileAtomic(
    join(dir, 'config.json'),
    JSON.stringify({ ...config, architectures: extra.architectures }, null, 2) + '\n',
  );
  writeFileAtomic(join(dir, 'pretrain_log.json'), JSON.stringify(extra.log, null, 1) + '\n');
  return entries.length;
}

/** Waveforms of the corpus' audio at `sampleRate`, cut to maxSeconds. */
export async function corpusWaves(
  corpus: Corpus,
  opts: { sampleRate: number; maxSeconds: number },
  onProgress?: (done: number, total: number) => void,
  onWarning?: (m: string) => void,
): Promise<Float32Array[]> {
  const utts = corpus.utterances.filter((u) => u.audioPath !== null);
  if (utts.length === 0) throw new Error(`corpus ${corpus.name}: no utterance has audio`);
  const out: Float32Array[] = [];
  for (const [i, u] of utts.entries()) {
    const wave = await loadAudio(u.audioPath!, { sampleRate: opts.sampleRate, onWarning });
    out.push(wave.slice(0, Math.min(wave.length, Math.round(opts.maxSeconds * opts.sampleRate))));
    onProgress?.(i + 1, utts.length);
  }
  return out;
}

/** Pretrains a wav2vec2 / wav2vec2-conformer folder on waveforms at its sampling rate. */
export async function pretrainWav2Vec2OnWaves(
  waves: readonly Float32Array[],
  opts: PretrainOptions & { freezeFeatureEncoder?: boolean },
): Promise<PretrainResult> {
  const raw = readConfig(opts.encoderDir);
  const cfgPath = join(opts.encoderDir, 'config.json');
  const modelType = raw.model_type as string;
  if (!(modelType in PRETRAINABLE_WAV2VEC2)) throw unsupported(opts.encoderDir, raw.model_type);
  const arch = wav2vec2Arch(parseWav2Vec2Config(raw, cfgPath));
  const fc = readWav2Vec2FeatureConfig(opts.encoderDir);
  const pcfg = parsePretrainingConfig(raw, cfgPath);
  const numNegatives = opts.numNegatives ?? pcfg.num_negatives;
  const config = { ...pcfg, num_negatives: numNegatives };
  const masking: MaskingOptions = {
    maskProb: opts.maskProb ?? 0.65,
    spanLength: opts.maskLength ?? 10,
    minMasks: pcfg.mask_time_min_masks,
    numNegatives,
  };
  const usable = waves.filter((w) => featExtractOutputLength(arch, w.length) >= 2);
  const skipped = waves.length - usable.length;
  const min = minInputSamples(arch);
  if (skipped) opts.onWarning?.(`${skipped} utterance(s) skipped: too short for two ${modelType} frames`);
  if (usable.length === 0)
    throw new Error(`no utterance is long enough to pretrain on (need two frames: > ${min} samples)`);
  const params = new ParameterStore();
  if (findHfWeightsFile(opts.encoderDir)) {
    const w = loadHfWeights(opts.encoderDir);
    for (const [k, v] of wav2vec2PretrainingParams(arch, w.tensors, w.files[0])) params.set(k, v);
  } else opts.onWarning?.(`${opts.encoderDir}: no weights file, starting from random weights`);
  const trainer = await Trainer.create({
    inputs: wav2vec2PretrainingInputs(numNegatives),
    build: wav2vec2PretrainingBuild(arch, config, { freezeFeatureEncoder: opts.freezeFeatureEncoder }),
    optimizer: optimizerFor(opts),
    params,
    seed: opts.seed ?? 0,
    runtime: opts.runtime,
  });
  try {
    const log = await runSteps(
      trainer,
      usable.length,
      opts,
      (idx) => {
        const picked = idx.map((i) => usable[i]);
        const b = wav2vec2Batch(picked, fc, { minSamples: min });
        const { lengths, T } = wav2vec2Frames(arch, b.lengths);
        return { feeds: { input_values: b.input_values, attention_mask: b.attention_mask }, lengths, T };
      },
      masking,
    );
    const tensors = writePretrainedFolder(
      opts.outDir,
      { ...raw, ...config },
      wav2vec2PretrainingNames(arch, trainer.params.entries()),
      { architectures: [PRETRAINABLE_WAV2VEC2[modelType as keyof typeof PRETRAINABLE_WAV2VEC2]], log },
    );
    const pre = join(opts.encoderDir, PREPROCESSOR_FILE);
    if (existsSync(pre) && resolve(opts.encoderDir) !== resolve(opts.outDir))
      writeFileAtomic(join(opts.outDir, PREPROCESSOR_FILE), readFileSync(pre));
    return {
      outDir: opts.outDir,
      modelType,
      utterances: usable.length,
      skipped,
      steps: opts.steps,
      log,
      tensors,
    };
  } finally {
    await trainer.release();
  }
}

/** The whole command: corpus audio -> features (conformer) or waveforms (wav2vec2) -> pretraining -> folder. */
export async function pretrainOnCorpus(corpus: Corpus, opts: PretrainOptions): Promise<PretrainResult> {
  const raw = readConfig(opts.encoderDir);
  if (typeof raw.model_type === 'string' && raw.model_type in PRETRAINABLE_WAV2VEC2) {
    const fc = readWav2Vec2FeatureConfig(opts.encoderDir);
    const waves = await corpusWaves(
      corpus,
      { sampleRate: fc.samplingRate, maxSeconds: opts.maxSeconds ?? 15 },
      opts.onFeatures,
      opts.onWarning,
    );
    return pretrainWav2Vec2OnWaves(waves, opts);
  }
  if (raw.model_type !== CONFORMER_MODEL_TYPE) throw unsupported(opts.encoderDir, raw.model_type);
  const arch = conformerArch(parseConformerConfig(raw, join(opts.encoderDir, 'config.json')));
  const feats = await corpusFeatures(
    corpus,
    {
      sampleRate: opts.sampleRate ?? 16000,
      logMel: { ...(opts.logMel ?? {}), numBins: arch.melBins },
      maxSeconds: opts.maxSeconds ?? 15,
    },
    opts.onFeatures,
    opts.onWarning,
  );
  return pretrainConformerOnFeatures(feats, opts);
}
