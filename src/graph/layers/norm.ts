/**
 * Normalisation layers with Hugging Face / PyTorch parameter names: LayerNorm over the
 * last axis, GroupNorm and BatchNorm1d over [batch, channels, time].
 */
import type { Graph, Tensor } from '../graph.js';
import { add, cast, div, mul, reciprocal, sqrt, sub } from '../ops/elementwise.js';
import { layerNorm } from '../ops/norm.js';
import { instanceNorm } from '../ops/conv.js';
import { reduceMean } from '../ops/reduce.js';
import { reshape, squeeze } from '../ops/shape.js';
import { markTrainingOnly, stopGradient } from '../ops/random.js';
import { node1, shapeOf } from '../ops/util.js';

/** torch.nn.LayerNorm over the last axis: params `<name>.weight` (ones) and `<name>.bias` (zeros). */
export function layerNormLayer(x: Tensor, name: string, eps = 1e-5): Tensor {
  const g = x.graph;
  const d = x.shape[x.rank - 1];
  if (typeof d !== 'number')
    throw g.error('layerNormLayer', `'${name}' needs a static last dim, got '${d}'`, [x]);
  return g.scope(name, () =>
    layerNorm(
      x,
      g.param('weight', [d], { init: { kind: 'ones' } }),
      g.param('bias', [d], { init: { kind: 'zeros' } }),
      eps,
    ),
  );
}

function channels(x: Tensor, layer: string, name: string): number {
  const c = x.shape[1];
  if ((x.rank !== 3 && x.rank !== 2) || typeof c !== 'number')
    throw x.graph.error(
      layer,
      `'${name}' needs input [batch, channels, time] or [batch, channels] with static channels`,
      [x],
    );
  return c;
}

/** A per-channel [C] vector shaped to broadcast over x ([C, 1] for rank-3 x). */
const perChannel = (v: Tensor, x: Tensor): Tensor => (x.rank === 3 ? reshape(v, [v.shape[0], 1]) : v);

export interface GroupNormOptions {
  groups: number;
  eps?: number;
  /** Learnable per-channel `weight` (ones) and `bias` (zeros); default true. */
  affine?: boolean;
  /** 'fused' (default): ONNX InstanceNormalization; 'decomposed': ReduceMean / Sub / Mul / Sqrt. Same maths. */
  impl?: 'fused' | 'decomposed';
}

/**
 * torch.nn.GroupNorm over x [N, C, T] (T may be symbolic): each sample's channels are
 * split into `groups` groups of C/groups channels; each group is normalised over its
 * channels and time with the biased variance, then scaled and shifted per channel.
 * wav2vec2's first feature-extractor layer uses groups == channels == 512 (each
 * channel normalised over time). Params `<name>.weight`, `<name>.bias` [C].
 *
 * Lowering: groups == channels is exactly ONNX InstanceNormalization with the affine
 * folded in (one node, one fused kernel, its own lean gradient rule in ops/conv.ts);
 * other group counts run InstanceNormalization on x reshaped to [N, G, C/G * T] with
 * constant unit scale, then the per-channel affine. Measured on the wav2vec2 first
 * layer (conv + GroupNorm(512) + GELU over batch 4 x 48000 samples, forward +
 * backward, 2 threads, interleaved runs, medians): 146 ms this way, 174 ms with
 * LayerNormalization (unit scale) + a separate affine, 217 ms decomposed; forward
 * 11 ms for the InstanceNormalization node.
 */
export function groupNorm(x: Tensor, name: string, opts: GroupNormOptions): Tensor {
  const g = x.graph;
  const c = channels(x, 'groupNorm', name);
  return g.scope(name, () => {
    const affine = opts.affine ?? true;
    const w = affine ? g.param('weight', [c], { init: { kind: 'ones' } }) : null;
    const b = affine ? g.param('bias', [c], { init: { kind: 'zeros' } }) : null;
    return groupNormalization(x, opts.groups, w, b, opts.eps ?? 1e-5, opts.impl);
  });
}

/** The functional form of `groupNorm`: x [N, C, T], optional per-channel weight and bias [C]. */
export function groupNormalization(
  x: Tensor,
  groups: number,
  weight: Tensor | null,
  bias: Tensor | null,
  eps = 1e-5,
  impl: 'fused' | 'decomposed' = 'fused',
): Tensor {
  const g = x.graph;
  const c = x.shape[1];
  if (x.rank !== 3 || typeof c !== 'number')
    throw g.error('groupNorm', 'needs input [batch, channels, time] with static channels', [x]);
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0)
    throw g.error('groupNorm', `${groups} groups do not divide the ${c} channels`, [x]);
  for (const p of [weight, bias])
    if (p && (p.rank !== 1 || p.shape[0] !== c))
      throw g.error('groupNorm', `weight and bias must be [${c}]`, [x, p]);
  const constant = (v: number, n: number): Tensor =>
    g.constant({
      dtype: x.dtype,
      shape: [n],
      data: x.dtype === 'float64' ? new Float64Array(n).fill(v) : new Float32Array(n).fill(v),
    });
  if (impl === 'fused' && groups === c)
    return instanceNorm(x, weight ?? constant(1, c), bias ?? constant(0, c), eps);
  // Each group's values on the last axis: [N, G, C/G * T] (for G == C, x itself).
  const flat = groups === c ? x : reshape(x, [0, groups, -1]);
  let y: Tensor;
  if (impl === 'fused') {
    y = instanceNorm(flat, constant(1, groups), constant(0, groups), eps);
  } else {
    const mean = reduceMean(flat, 2, true);
    const centred = sub(flat, mean);
    const variance = reduceMean(mul(centred, centred), 2, true);
    y = mul(centred, reciprocal(sqrt(add(variance, eps))));
  }
  if (flat !== x) y = node1(g, 'Reshape', [y, shapeOf(x)], x.dtype, x.shape);
  if (weight) y = mul(y, perChannel(weight, x));
  if (bias) y = add(y, perChannel(bias, x));
  return y;
}

export interface BatchNormOptions {
  eps?: number;
  /** Weight of the new batch statistic in the running averages (torch's default 0.1). */
  momentum?: number;
  /** Learnable `weight` and `bias`; default true. */
  affine?: boolean;
  /** Batch statistics (true) or running statistics (false); default: the graph's training flag. */
  training?: boolean;
  /**
   * Declare torch's `<name>.num_batches_tracked` buffer (int64 scalar; +1 per training
   * forward) so that checkpoints carry it as PyTorch writes them. It counts only: the
   * momentum is fixed (torch's `momentum=None` cumulative average is not built). Default false.
   */
  trackBatches?: boolean;
}

export interface BatchNormResult {
  y: Tensor;
  /** In training form: the updated running statistics (for a graph output); null in eval form. */
  runningMean: Tensor | null;
  runningVar: Tensor | null;
}

/**
 * New values of non-trainable buffers computed in a training graph (BatchNorm's
 * running statistics and batch counter), keyed by full parameter name: see
 * `Graph.updateBuffer`. The Trainer writes them back after each step.
 */
export function bufferUpdates(g: Graph): Map<string, Tensor> {
  return g.bufferUpdates;
}

/**
 * torch.nn.BatchNorm1d over x [N, C, T] or [N, C]. Params `<name>.weight` (ones),
 * `<name>.bias` (zeros), and the non-trainable buffers `<name>.running_mean` (zeros)
 * and `<name>.running_var` (ones), plus `<name>.num_batches_tracked` with `trackBatches`.
 *
 * Eval form: (x - running_mean) / sqrt(running_var + eps) * weight + bias, folded into
 * one per-channel scale and shift. Training form: normalised with the batch's mean and
 * biased variance over batch and time; the running statistics move by `momentum`
 * towards the batch mean and the unbiased variance (torch's rule), recorded in
 * `bufferUpdates` for the Trainer to write back.
 *
 * Micro-batches: each chunk is normalised with its own statistics and updates the
 * running statistics once, chained (PyTorch's behaviour with gradient accumulation over
 * the same chunks, not that of one full-batch forward).
 */
export function batchNorm1dWithStats(x: Tensor, name: string, opts: BatchNormOptions = {}): BatchNormResult {
  const g = x.graph;
  const c = channels(x, 'batchNorm1d', name);
  const eps = opts.eps ?? 1e-5;
  const momentum = opts.momentum ?? 0.1;
  if (!(momentum >= 0 && momentum <= 1))
    throw g.error('batchNorm1d', `'${name}': momentum must be in [0, 1], got ${momentum}`, [x]);
  const training = opts.training ?? g.training;
  return g.scope(name, () => {
    const scope = g.currentScope;
    const w = (opts.affine ?? true) ? g.param('weight', [c], { init: { kind: 'ones' } }) : null;
    const b = (opts.affine ?? true) ? g.param('bias', [c], { init: { kind: 'zeros' } }) : null;
    const rm = g.param('running_mean', [c], { init: { kind: 'zeros' }, trainable: false });
    const rv = g.param('running_var', [c], { init: { kind: 'ones' }, trainable: false });
    const nbt = opts.trackBatches
      ? g.param('num_batches_tracked', [], { init: { kind: 'zeros' }, trainable: false, dtype: 'int64' })
      : null;
    if (!training)
      return { y: batchNormInference(x, rm, rv, w, b, eps), runningMean: null, runningVar: null };
    const r = batchNormTraining(x, w, b, eps);
    const [rmName, rvName, nbtName] = ['running_mean', 'running_var', 'num_batches_tracked'].map(
      (n) => `${scope}.${n}`,
    );
    // Statistics carry no gradient: the running averages are not on any loss path.
    const newMean = add(mul(g.bufferValue(rmName), 1 - momentum), mul(stopGradient(r.mean), momentum));
    const newVar = add(mul(g.bufferValue(rvName), 1 - momentum), mul(stopGradient(r.unbiasedVar), momentum));
    g.updateBuffer(rmName, newMean);
    g.updateBuffer(rvName, newVar);
    if (nbt) g.updateBuffer(nbtName, add(g.bufferValue(nbtName), g.scalar(1, 'int64')));
    markTrainingOnly(r.y, 'batch statistics (BatchNorm in training form)');
    return { y: r.y, runningMean: newMean, runningVar: newVar };
  });
}

function checkPerChannel(op: string, x: Tensor, ps: (Tensor | null)[]): void {
  const c = x.shape[1];
  if ((x.rank !== 3 && x.rank !== 2) || typeof c !== 'number')
    throw x.graph.error(op, 'needs input [batch, channels, time] or [batch, channels] with static channels', [
      x,
    ]);
  for (const p of ps)
    if (p && (p.rank !== 1 || p.shape[0] !== c))
      throw x.graph.error(op, `per-channel parameters must be [${c}]`, [x, p]);
}

/** Eval-form batch norm: one per-channel scale and shift from the running statistics. */
export function batchNormInference(
  x: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  eps = 1e-5,
): Tensor {
  checkPerChannel('batchNorm', x, [runningMean, runningVar, weight, bias]);
  let scale = reciprocal(sqrt(add(runningVar, eps)));
  if (weight) scale = mul(scale, weight);
  let shift = mul(runningMean, scale).neg();
  if (bias) shift = add(shift, bias);
  return add(mul(x, perChannel(scale, x)), perChannel(shift, x));
}

/**
 * Training-form batch norm: normalised with the batch mean and biased variance over
 * batch (and time); also returns the batch mean and the unbiased variance [C] that
 * the running statistics follow.
 */
export function batchNormTraining(
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  eps = 1e-5,
): { y: Tensor; mean: Tensor; unbiasedVar: Tensor } {
  checkPerChannel('batchNorm', x, [weight, bias]);
  const g = x.graph;
  const c = x.shape[1] as number;
  const axes = x.rank === 3 ? [0, 2] : [0];
  const mean = reduceMean(x, axes, true);
  const centred = sub(x, mean);
  const variance = reduceMean(mul(centred, centred), axes, true);
  let scale = reciprocal(sqrt(add(variance, eps)));
  if (weight) scale = mul(scale, perChannel(weight, x));
  let y = mul(centred, scale);
  if (bias) y = add(y, perChannel(bias, x));
  // n = values per channel (batch x time), known at run time.
  const n = cast(div(node1(g, 'Size', [x], 'int64', []), g.scalar(c, 'int64')), x.dtype);
  const unbiased = mul(variance, div(n, sub(n, 1)));
  return { y, mean: squeeze(mean, axes), unbiasedVar: squeeze(unbiased, axes) };
}

/** BatchNorm1d returning only the normalised tensor (training-form updates go to `bufferUpdates`). */
export function batchNorm1d(x: Tensor, name: string, opts: BatchNormOptions = {}): Tensor {
  return batchNorm1dWithStats(x, name, opts).y;
}
