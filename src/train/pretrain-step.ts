/**
 * 2nd-stage pretraining as a step of `lemer cv` (config `pretrain.enabled`): per fold, the
 * speech encoder goes through wav2vec 2.0-style self-supervised training (src/pretrain, the
 * code of `lemer pretrain`) on that fold's TRAINING part's audio only: never the test fold,
 * nor the validation part (which stands for unseen data in early stopping). The result is
 * a Hugging Face-layout folder in the fold's run folder (`<fold>/pretrain/`), from which
 * fine-tuning starts (as `encoders.speech.path`). A finished step leaves `done.json` with
 * what it was made from; `--resume` keeps a folder whose record matches and redoes none, and
 * a copy under the cache (`train.cacheDir`/pretrain) serves other runs with the same step.
 *
 * Encoders: an encoder folder (wav2vec2, wav2vec2-conformer, or lemer's log-mel conformer)
 * continues from its weights; the in-place conformer (`train.inPlace.speech.kind:
 * conformer`) starts from a config.json written from the config (random weights, the seed's).
 * The audio is the run's own front end's (the audio cache): log-mel as fine-tuning reads it.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { LemerConfig } from '../config/schema.js';
import type { Corpus } from '../data/types.js';
import type { Fold } from '../data/folds.js';
import type { HostTensor, RuntimeOptions } from '../graph/runtime.js';
import { CONFORMER_MODEL_TYPE } from '../models/conformer/index.js';
import { readWav2Vec2FeatureConfig } from '../models/wav2vec2/index.js';
import {
  PRETRAINABLE_WAV2VEC2,
  pretrainConformerOnFeatures,
  pretrainWav2Vec2OnWaves,
  type PretrainOptions,
  type PretrainResult,
} from '../pretrain/index.js';
import { writeFileAtomic } from '../util/fs.js';
import type { Progress } from '../util/progress.js';
import type { SpeechInput } from './audio-cache.js';
import { inPlaceConformerConfig } from './model.js';
import { inputNormStats } from './input-norm.js';

export const PRETRAIN_DIR = 'pretrain';
const DONE_FILE = 'done.json';

/** What the fold's speech encoder is pretrained from: a folder, or the in-place conformer's config. */
export type PretrainSource =
  { kind: 'folder'; dir: string; modelType: string } | { kind: 'in-place'; config: Record<string, unknown> };

/**
 * Where the config's speech encoder can be pretrained from, or why it cannot (checked before
 * any work). Pretrainable: wav2vec2, wav2vec2-conformer and lemer-conformer folders, and the
 * in-place conformer.
 */
export function pretrainSource(cfg: LemerConfig): PretrainSource | { error: string } {
  const path = cfg.encoders.speech.path;
  if (path === null) {
    if (cfg.train.inPlace.speech.kind !== 'conformer')
      return {
        error:
          'the in-place compact speech encoder has no quantiser objective to pretrain with: set train.inPlace.speech.kind to conformer (or encoders.speech.path to a wav2vec2 / lemer-conformer folder)',
      };
    return { kind: 'in-place', config: inPlaceConformerConfig(cfg) };
  }
  const file = join(path, 'config.json');
  let modelType: unknown;
  try {
    modelType = (JSON.parse(readFileSync(file, 'utf8')) as { model_type?: unknown }).model_type;
  } catch (err) {
    return { error: `encoders.speech.path: ${file}: ${(err as Error).message}` };
  }
  if (
    modelType === CONFORMER_MODEL_TYPE ||
    (typeof modelType === 'string' && modelType in PRETRAINABLE_WAV2VEC2)
  )
    return { kind: 'folder', dir: path, modelType: modelType as string };
  return {
    error: `encoders.speech.path ${path}: model_type ${JSON.stringify(modelType)} has no wav2vec 2.0 pretraining objective (pretrainable: ${[CONFORMER_MODEL_TYPE, ...Object.keys(PRETRAINABLE_WAV2VEC2)].join(', ')}); HuBERT / WavLM: set pretrain.enabled false`,
  };
}

/** pretrainSource, throwing its reason. */
export function checkPretrainable(cfg: LemerConfig): PretrainSource {
  const s = pretrainSource(cfg);
  if ('error' in s) throw new Error(`pretrain.enabled: ${s.error}`);
  return s;
}

export interface PretrainStepOptions {
  cfg: LemerConfig;
  corpus: Corpus;
  fold: Fold;
  /** Decoded speech inputs by utterance index (the run's audio cache). */
  speech: Map<number, SpeechInput>;
  /** The fold's run folder. */
  foldDir: string;
  resume: boolean;
  /** The training cache root (train.cacheDir): finished steps are kept under `pretrain/`; null = none. */
  cacheDir?: string | null;
  /** Part of the cache key (not of --resume's check): other code, another cache entry. */
  codeVersion?: string;
  runtime?: RuntimeOptions;
  progress?: (total: number, label: string) => Progress;
  log?: (msg: string) => void;
  warn?: (msg: string) => void;
}

export interface PretrainStepResult {
  /** The pretrained encoder folder (encoders.speech.path for fine-tuning). */
  dir: string;
  /** True when a finished folder of an earlier run was kept (--resume). */
  kept: boolean;
  /** True when it was copied from the cache (the same step done by another run). */
  cached: boolean;
  utterances: number;
  steps: number;
  firstLoss: number | null;
  lastLoss: number | null;
}

interface DoneRecord {
  format: 'lemer-pretrain-step';
  fingerprint: Record<string, unknown>;
  result: Omit<PretrainStepResult, 'dir' | 'kept' | 'cached'>;
}

/** The step's identity: settings, encoder, seed, front end and the training utterances' audio. */
function fingerprintOf(
  o: PretrainStepOptions,
  source: PretrainSource,
  ids: number[],
): Record<string, unknown> {
  const h = createHash('sha256');
  for (const i of ids) {
    const x = o.speech.get(i)!;
    h.update(o.corpus.utterances[i].id);
    h.update(new Uint8Array(x.data.buffer, x.data.byteOffset, x.data.byteLength));
  }
  const folderWeights = (dir: string) => {
    for (const f of ['model.safetensors', 'pytorch_model.bin', 'model.safetensors.index.json']) {
      const p = join(dir, f);
      if (existsSync(p)) return createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16);
    }
    return null;
  };
  return {
    pretrain: o.cfg.pretrain,
    source:
      source.kind === 'folder' ? { dir: source.dir, weights: folderWeights(source.dir) } : source.config,
    seed: o.cfg.seed,
    speech: { sampleRate: o.cfg.speech.sampleRate, logMel: o.cfg.speech.logMel },
    fold: o.fold.name,
    audio: h.digest('hex').slice(0, 24),
  };
}

function readDone(dir: string): DoneRecord | null {
  try {
    const r = JSON.parse(readFileSync(join(dir, DONE_FILE), 'utf8')) as DoneRecord;
    return r.format === 'lemer-pretrain-step' ? r : null;
  } catch {
    return null;
  }
}

/** Runs (or, on resume, keeps) the fold's pretraining; returns the pretrained folder. */
export async function pretrainFold(o: PretrainStepOptions): Promise<PretrainStepResult> {
  const source = checkPretrainable(o.cfg);
  const p = o.cfg.pretrain;
  const dir = join(o.foldDir, PRETRAIN_DIR);
  const ids = o.fold.train.filter((i) => o.speech.has(i));
  if (ids.length === 0)
    throw new Error(`fold ${o.fold.name}: no training utterance has audio to pretrain on`);
  const fingerprint = fingerprintOf(o, source, ids);
  const done = o.resume ? readDone(dir) : null;
  if (done && JSON.stringify(done.fingerprint) === JSON.stringify(fingerprint)) {
    o.log?.(`fold ${o.fold.name}: 2nd-stage pretraining finished in an earlier run, kept (${dir})`);
    return { dir, kept: true, cached: false, ...done.result };
  }
  if (done)
    o.log?.(
      `fold ${o.fold.name}: the pretrained encoder in ${dir} is from other settings: pretraining again`,
    );
  rmSync(dir, { recursive: true, force: true });
  // The same settings on the same training audio make the same encoder (seeded): another run's
  // (another ablation row's, a grid cell's) is copied from the cache instead of trained again.
  const cached = o.cacheDir
    ? join(
        o.cacheDir,
        'pretrain',
        createHash('sha256')
          .update(JSON.stringify([fingerprint, o.codeVersion ?? '']))
          .digest('hex')
          .slice(0, 24),
      )
    : null;
  const hit = cached ? readDone(cached) : null;
  if (cached && hit && JSON.stringify(hit.fingerprint) === JSON.stringify(fingerprint)) {
    copyDirAtomic(cached, dir);
    o.log?.(
      `fold ${o.fold.name}: 2nd-stage pretraining with these settings on this audio is in the cache: copied (${cached})`,
    );
    return { dir, kept: false, cached: true, ...hit.result };
  }
  mkdirSync(dir, { recursive: true });
  let encoderDir: string;
  if (source.kind === 'in-place') {
    // A config.json alone: the pretraining starts from the seed's random weights.
    encoderDir = join(dir, 'init');
    mkdirSync(encoderDir, { recursive: true });
    writeFileAtomic(join(encoderDir, 'config.json'), JSON.stringify(source.config, null, 2) + '\n');
  } else encoderDir = source.dir;
  const label = `fold ${o.fold.name} pretrain`;
  o.log?.(
    `${label}: ${p.steps} steps of wav2vec 2.0 pretraining on the ${ids.length} training utterances' audio (test and validation parts unseen)`,
  );
  const bar = o.progress?.(p.steps, label);
  const every = Math.max(1, Math.round(p.steps / 10));
  const opts: PretrainOptions = {
    encoderDir,
    outDir: dir,
    steps: p.steps,
    batchSize: p.batchSize,
    lr: p.lr,
    warmupSteps: p.warmupSteps ?? undefined,
    seed: o.cfg.seed,
    maxSeconds: p.maxSeconds,
    maskProb: p.maskProb,
    maskLength: p.maskLength ?? undefined,
    numNegatives: p.numNegatives ?? undefined,
    sampleRate: o.cfg.speech.sampleRate,
    runtime: o.runtime,
    onStep: (step, s) => {
      bar?.update(step);
      if (step % every === 0 || step === p.steps)
        o.log?.(
          `${label} step ${step}: loss ${s.loss.toFixed(4)} (contrastive ${s.contrastive.toFixed(4)}, diversity ${s.diversity.toFixed(4)}, perplexity ${s.perplexity.toFixed(1)})`,
        );
    },
    onWarning: (m) => {
      // The in-place conformer starts from random weights by design.
      if (source.kind === 'in-place' && /no model\.safetensors/.test(m)) return;
      o.warn?.(`${label}: ${m}`);
    },
  };
  let r: PretrainResult;
  try {
    const first = o.speech.get(ids[0])!;
    if (first.bins > 1 || source.kind === 'in-place' || source.modelType === CONFORMER_MODEL_TYPE) {
      // Log-mel frames, as the audio cache made them for fine-tuning; cut to maxSeconds.
      const maxFrames = Math.max(1, Math.floor((p.maxSeconds * 1000) / o.cfg.speech.logMel.frameShiftMs));
      // Global normalisation (speech.logMel.normalize global) lives inside the fine-tuned model:
      // pretraining sees the same normalised features, with the same training-part statistics.
      const norm =
        o.cfg.speech.logMel.normalize === 'global' ? inputNormStats(ids.map((i) => o.speech.get(i)!)) : null;
      const feats = ids.map((i) => {
        const x = o.speech.get(i)!;
        const frames = Math.min(x.frames, maxFrames);
        const data = x.data.subarray(0, frames * x.bins);
        return { data: norm ? normalised(data, x.bins, norm) : data, frames, bins: x.bins };
      });
      r = await pretrainConformerOnFeatures(feats, opts);
    } else {
      const fc = readWav2Vec2FeatureConfig(encoderDir);
      if (fc.samplingRate !== o.cfg.speech.sampleRate)
        throw new Error(
          `${encoderDir}: the encoder reads ${fc.samplingRate} Hz audio, speech.sampleRate is ${o.cfg.speech.sampleRate}`,
        );
      const maxSamples = Math.round(p.maxSeconds * o.cfg.speech.sampleRate);
      const waves = ids.map((i) => o.speech.get(i)!.data.subarray(0, maxSamples));
      r = await pretrainWav2Vec2OnWaves(waves, opts);
    }
  } finally {
    bar?.stop();
  }
  const result: DoneRecord['result'] = {
    utterances: r.utterances,
    steps: r.steps,
    firstLoss: r.log[0]?.loss ?? null,
    lastLoss: r.log[r.log.length - 1]?.loss ?? null,
  };
  // Written last: its presence means the folder is complete.
  const record: DoneRecord = { format: 'lemer-pretrain-step', fingerprint, result };
  writeFileAtomic(join(dir, DONE_FILE), JSON.stringify(record, null, 1) + '\n');
  if (cached)
    try {
      copyDirAtomic(dir, cached);
    } catch (err) {
      o.warn?.(`${label}: could not keep a copy in the cache (${cached}): ${(err as Error).message}`);
    }
  return { dir, kept: false, cached: false, ...result };
}

/** (x - mean) / std per bin, rows of `bins` values. */
export function normalised(
  data: Float32Array,
  bins: number,
  norm: { mean: HostTensor; std: HostTensor },
): Float32Array {
  const m = norm.mean.data as Float32Array;
  const s = norm.std.data as Float32Array;
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = (data[i] - m[i % bins]) / s[i % bins];
  return out;
}

/** Copies a folder to `to` through a temporary sibling and a rename: `to` is whole or absent. */
function copyDirAtomic(from: string, to: string): void {
  const tmp = `${to}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(dirname(to), { recursive: true });
  cpSync(from, tmp, { recursive: true });
  rmSync(to, { recursive: true, force: true });
  renameSync(tmp, to);
}
