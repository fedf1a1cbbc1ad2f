/**
 * The fit loop of one model on one fold: epochs of engine training steps (src/graph's
 * Trainer: parameter groups, Adam with warm-up, clipping, micro-batches, K steps per run),
 * validation by UA every `evalEvery` epochs, early stopping, the best validation checkpoint
 * kept and used for the test predictions, and periodic checkpoints that `resume` continues
 * from. Data order and SpecAugment masks are functions of (seed, epoch, utterance), so a
 * resumed run sees exactly the batches the uninterrupted one would have seen.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { saveCheckpoint, loadCheckpoint, CheckpointError } from '../graph/checkpoint.js';
import type { OptimizerConfig, OptimizerPlacement } from '../graph/optim.js';
import type { RuntimeOptions, HostTensor } from '../graph/runtime.js';
import { Trainer, type Predictor } from '../graph/train.js';
import type { SpecAugmentOptions } from '../audio/logmel.js';
import { scores } from '../eval/metrics.js';
import { confusionMatrix } from '../eval/metrics.js';
import type { Progress } from '../util/progress.js';
import { epochBatches, evalBatches, makeBatch, mixSeed, batchLengths, type Example } from './data.js';
import type { TrainableModel } from './head.js';

export interface FitOptions {
  model: TrainableModel;
  optimizer: OptimizerConfig;
  labels: string[];
  train: Example[];
  valid: Example[];
  epochs: number;
  /** Validations without improvement before stopping; null = never. */
  patience: number | null;
  /**
   * Test weights = the average of the N best validation checkpoints (ESPnet's `--avg-num`):
   * on small corpora one checkpoint's validation UA is noisy, an average of several is
   * steadier. 1 (default) = the single best checkpoint.
   */
  averageBest?: number;
  evalEvery: number;
  checkpointEvery: number;
  batchSize: number;
  evalBatchSize: number;
  microBatches: number;
  stepsPerRun: number;
  /** Where Adam runs (optim.placement; TrainerOptions.optimizerPlacement). Default 'graph'. */
  optimizerPlacement?: OptimizerPlacement;
  seed: number;
  labelScope: 'context' | 'current';
  padId: number;
  /** SpecAugment on log-mel inputs in training; null = off. */
  specAugment: SpecAugmentOptions | null;
  trainable?: (name: string) => boolean;
  runtime?: RuntimeOptions;
  /** Weights to start from (encoder folders); missing ones are initialised from the seed. */
  initialParams?: Map<string, HostTensor>;
  /** Folder for `last/` (resumable) and `best/` checkpoints. */
  dir: string;
  resume: boolean;
  /** What a checkpoint must match to be resumed (model kind, label set, config hash). */
  fingerprint: Record<string, unknown>;
  progress?: (total: number, label: string) => Progress;
  log?: (msg: string) => void;
  label?: string;
}

export interface EpochRecord {
  epoch: number;
  step: number;
  trainLoss: number;
  lr: number;
  valid?: { wa: number; ua: number };
}

/** What `fit` remembers across a resume (stored in the checkpoint). */
export interface FitState {
  epoch: number;
  history: EpochRecord[];
  best: { ua: number; wa: number; epoch: number } | null;
  sinceBest: number;
  stopped: boolean;
  /** The N best validations (averageBest > 1), best first; their weights are in `top/epoch-E`. */
  top?: { ua: number; wa: number; epoch: number }[];
}

export interface FitResult {
  trainer: Trainer;
  predictor: Predictor;
  state: FitState;
  /** True when training continued from a checkpoint. */
  resumed: boolean;
  seconds: number;
}

export const LAST_CHECKPOINT = 'last';
export const BEST_CHECKPOINT = 'best';
export const TOP_CHECKPOINTS = 'top';

/** The element-wise mean of float parameters over checkpoints (others are taken from the first). */
export function averageParams(dirs: string[]): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  dirs.forEach((dir, k) => {
    const ck = loadCheckpoint(dir, { optimizer: false });
    for (const [n, t] of ck.params.entries()) {
      const isFloat = t.data instanceof Float32Array || t.data instanceof Float64Array;
      if (k === 0) {
        out.set(n, { dtype: t.dtype, shape: [...t.shape], data: isFloat ? t.data.slice() : t.data });
        continue;
      }
      const acc = out.get(n);
      if (!acc || acc.data.length !== t.data.length)
        throw new CheckpointError(
          `${dir}: parameter ${n} does not match the other checkpoints being averaged`,
        );
      if (!isFloat) continue;
      const a = acc.data as Float32Array | Float64Array;
      const b = t.data as Float32Array | Float64Array;
      for (let i = 0; i < a.length; i++) a[i] += b[i];
    }
  });
  for (const t of out.values())
    if (t.data instanceof Float32Array || t.data instanceof Float64Array) {
      const a = t.data;
      for (let i = 0; i < a.length; i++) a[i] /= dirs.length;
    }
  return out;
}

/** Predicted class and logits of every example (in the examples' order). */
export async function predict(
  predictor: Predictor,
  model: TrainableModel,
  examples: Example[],
  opts: { batchSize: number; labelScope: 'context' | 'current'; padId: number },
): Promise<{ pred: number[]; logits: number[][] }> {
  const pos = new Map(examples.map((e, i) => [e, i]));
  const pred = new Array<number>(examples.length).fill(-1);
  const logits: number[][] = new Array<number[]>(examples.length);
  for (const b of evalBatches(examples, opts.batchSize)) {
    const feeds = makeBatch(b, { decls: model.inputs, labelScope: opts.labelScope, padId: opts.padId });
    const out = await predictor.run(feeds, ['logits']);
    const l = out.logits;
    const c = l.shape[1];
    b.forEach((e, r) => {
      const row = Array.from(l.data.subarray(r * c, (r + 1) * c) as Float32Array, Number);
      let k = 0;
      for (let j = 1; j < c; j++) if (row[j] > row[k]) k = j;
      const i = pos.get(e)!;
      pred[i] = k;
      logits[i] = row;
    });
  }
  return { pred, logits };
}

function checkFingerprint(dir: string, saved: unknown, want: Record<string, unknown>): void {
  const s = (saved ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(want)) {
    if (JSON.stringify(s[k]) !== JSON.stringify(v))
      throw new CheckpointError(
        `${dir}: this checkpoint is from another run (${k}: checkpoint ${JSON.stringify(s[k])}, this run ${JSON.stringify(v)}); start without --resume or use another --out`,
      );
  }
}

export async function fit(o: FitOptions): Promise<FitResult> {
  const t0 = performance.now();
  if (o.train.length === 0) throw new Error(`${o.label ?? 'fit'}: no training utterances`);
  const trainer = await Trainer.create({
    inputs: o.model.trainInputs,
    build: o.model.train,
    optimizer: o.optimizer,
    microBatches: o.microBatches,
    trainable: o.trainable,
    seed: o.seed,
    runtime: o.runtime,
    stepsPerRun: o.stepsPerRun,
    optimizerPlacement: o.optimizerPlacement,
    params: undefined,
  });
  if (o.initialParams)
    for (const [n, t] of o.initialParams) if (trainer.params.has(n)) trainer.params.set(n, t);
  const predictor = await trainer.predictor(o.model.inputs, (g, i, ctx) => o.model.infer(g, i, ctx));
  const lastDir = join(o.dir, LAST_CHECKPOINT);
  const bestDir = join(o.dir, BEST_CHECKPOINT);
  const topDir = join(o.dir, TOP_CHECKPOINTS);
  const averageBest = Math.max(1, o.averageBest ?? 1);
  const topPath = (epoch: number) => join(topDir, `epoch-${String(epoch).padStart(4, '0')}`);
  let state: FitState = { epoch: 0, history: [], best: null, sinceBest: 0, stopped: false };
  let resumed = false;
  if (o.resume && existsSync(join(lastDir, 'trainer.json'))) {
    const ck = loadCheckpoint(lastDir, { optimizer: false });
    const cfg = ck.trainer.config as { fingerprint?: unknown; fit?: FitState } | null;
    checkFingerprint(lastDir, cfg?.fingerprint, o.fingerprint);
    trainer.restore(lastDir);
    if (!cfg?.fit) throw new CheckpointError(`${lastDir}: the checkpoint holds no training state`);
    state = cfg.fit;
    resumed = true;
    o.log?.(`${o.label ?? 'fit'}: resuming after epoch ${state.epoch} (step ${trainer.state.step})`);
  } else {
    rmSync(lastDir, { recursive: true, force: true });
    rmSync(bestDir, { recursive: true, force: true });
    rmSync(topDir, { recursive: true, force: true });
  }
  const batchOpts = { labelScope: o.labelScope, padId: o.padId };
  const K = o.stepsPerRun;
  const validate = async (): Promise<{ wa: number; ua: number }> => {
    const { pred } = await predict(predictor, o.model, o.valid, { batchSize: o.evalBatchSize, ...batchOpts });
    const s = scores(
      confusionMatrix(
        o.valid.map((e) => e.label),
        pred,
        o.labels.length,
      ),
      o.labels,
    );
    return { wa: s.wa, ua: s.ua };
  };

  while (!state.stopped && state.epoch < o.epochs) {
    const epoch = state.epoch;
    const batches = epochBatches(o.train, {
      batchSize: o.batchSize,
      seed: o.seed,
      epoch,
      multipleOf: o.microBatches,
    });
    const bar = o.progress?.(batches.length, `${o.label ?? 'fit'} epoch ${epoch + 1}/${o.epochs}`);
    let lossSum = 0;
    let lr = 0;
    for (let s = 0; s < batches.length; s += K) {
      const group = batches.slice(s, s + K);
      // K steps in one run stack their batches: pad the group to common lengths.
      const padTo = K > 1 ? batchLengths(group.flat()) : undefined;
      const feeds = group.map((b, j) =>
        makeBatch(b, {
          decls: o.model.trainInputs,
          ...batchOpts,
          padTo,
          augment: o.specAugment ? { ...o.specAugment, seed: mixSeed(o.seed, epoch, s + j) } : null,
        }),
      );
      const rs = K > 1 ? await trainer.steps(feeds) : [await trainer.step(feeds[0])];
      for (const r of rs) {
        if (!Number.isFinite(r.loss))
          throw new Error(
            `${o.label ?? 'fit'}: the loss became ${r.loss} at step ${trainer.state.step} (epoch ${epoch + 1})`,
          );
        lossSum += r.loss;
        lr = r.lrs.head ?? r.lr;
      }
      bar?.tick(group.length);
    }
    bar?.stop();
    state.epoch = epoch + 1;
    trainer.state.epoch = state.epoch;
    const rec: EpochRecord = {
      epoch: state.epoch,
      step: trainer.state.step,
      trainLoss: batches.length ? lossSum / batches.length : NaN,
      lr,
    };
    const last = state.epoch === o.epochs;
    if (o.valid.length > 0 && (state.epoch % o.evalEvery === 0 || last)) {
      rec.valid = await validate();
      if (!state.best || rec.valid.ua > state.best.ua) {
        state.best = { ...rec.valid, epoch: state.epoch };
        state.sinceBest = 0;
        saveCheckpoint(bestDir, { params: trainer.params, trainerState: { epoch: state.epoch } });
      } else {
        state.sinceBest += 1;
        if (o.patience !== null && state.sinceBest >= o.patience) state.stopped = true;
      }
      if (averageBest > 1) {
        // Keep the N best (ties: the earlier epoch stays), each saved before the list names it.
        const top = (state.top ??= []);
        const worst = top.length < averageBest ? -Infinity : top[top.length - 1].ua;
        if (rec.valid.ua > worst) {
          saveCheckpoint(topPath(state.epoch), {
            params: trainer.params,
            trainerState: { epoch: state.epoch },
          });
          top.push({ ...rec.valid, epoch: state.epoch });
          top.sort((a, b) => b.ua - a.ua || a.epoch - b.epoch);
          for (const gone of top.splice(averageBest))
            rmSync(topPath(gone.epoch), { recursive: true, force: true });
        }
      }
    }
    state.history.push(rec);
    o.log?.(
      `${o.label ?? 'fit'} epoch ${state.epoch}: train loss ${rec.trainLoss.toFixed(4)}` +
        (rec.valid
          ? `, valid WA ${(100 * rec.valid.wa).toFixed(1)} UA ${(100 * rec.valid.ua).toFixed(1)} (best ${(100 * state.best!.ua).toFixed(1)} at epoch ${state.best!.epoch})`
          : '') +
        (state.stopped ? `; no better validation UA for ${state.sinceBest} validations: stopping` : ''),
    );
    if (state.epoch % o.checkpointEvery === 0 || state.stopped || state.epoch === o.epochs)
      trainer.saveCheckpoint(lastDir, { fingerprint: o.fingerprint, fit: state });
  }
  // Test predictions come from the best validation checkpoint, or the average of the N best
  // (written to best/ so that export uses the same weights); the last weights without a validation split.
  if (averageBest > 1 && state.top && state.top.length > 1) {
    const avg = averageParams(state.top.map((t) => topPath(t.epoch)));
    for (const [n, t] of avg) trainer.params.set(n, t);
    saveCheckpoint(bestDir, {
      params: trainer.params,
      trainerState: { epoch: state.best!.epoch, averagedEpochs: state.top.map((t) => t.epoch) },
    });
  } else if (state.best && existsSync(join(bestDir, 'trainer.json'))) {
    const best = loadCheckpoint(bestDir, { expect: trainer.graph, optimizer: false });
    for (const [n, t] of best.params.entries()) trainer.params.set(n, t);
  }
  return { trainer, predictor, state, resumed, seconds: (performance.now() - t0) / 1000 };
}
