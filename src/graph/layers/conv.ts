/**
 * Convolution layers with Hugging Face / PyTorch parameter names and layouts:
 * torch.nn.Conv1d (`weight` [C_out, C_in / groups, K], `bias` [C_out]) and
 * weight-normalised Conv1d as wav2vec2's positional convolution embedding uses it.
 */
import type { ParamInit, Tensor } from '../graph.js';
import { div, mul, sqrt } from '../ops/elementwise.js';
import { conv1d } from '../ops/conv.js';
import { reduceSum } from '../ops/reduce.js';

export interface Conv1dLayerOptions {
  outChannels: number;
  kernel: number;
  stride?: number;
  /** Zeros on both sides (a number) or [left, right]. */
  padding?: number | readonly [number, number];
  dilation?: number;
  groups?: number;
  /** Default true (as torch.nn.Conv1d). */
  bias?: boolean;
  /** Weight init; default torch's Conv1d default, uniform(+-1 / sqrt(fan_in)). */
  init?: ParamInit;
}

function inChannels(x: Tensor, layer: string, name: string, groups: number): number {
  const c = x.shape[1];
  if (x.rank !== 3 || typeof c !== 'number')
    throw x.graph.error(
      layer,
      `'${name}' needs input [batch, channels, time] with static channels, got rank ${x.rank}`,
      [x],
    );
  if (c % groups !== 0)
    throw x.graph.error(layer, `'${name}': groups ${groups} does not divide the ${c} input channels`, [x]);
  return c;
}

/** torch.nn.Conv1d: params `<name>.weight` [C_out, C_in / groups, K] and `<name>.bias` [C_out]. */
export function conv1dLayer(x: Tensor, name: string, opts: Conv1dLayerOptions): Tensor {
  const g = x.graph;
  const groups = opts.groups ?? 1;
  const cIn = inChannels(x, 'conv1dLayer', name, groups);
  const fanIn = (cIn / groups) * opts.kernel;
  const bound = 1 / Math.sqrt(fanIn);
  return g.scope(name, () => {
    const w = g.param('weight', [opts.outChannels, cIn / groups, opts.kernel], {
      init: opts.init ?? { kind: 'uniform', low: -bound, high: bound },
    });
    const b =
      (opts.bias ?? true)
        ? g.param('bias', [opts.outChannels], { init: { kind: 'uniform', low: -bound, high: bound } })
        : null;
    return conv1d(x, w, b, { stride: opts.stride, padding: opts.padding, dilation: opts.dilation, groups });
  });
}

export interface WeightNormConv1dOptions extends Conv1dLayerOptions {
  /** The dim torch's weight_norm keeps (norm over all the others); wav2vec2 uses 2. */
  dim?: 0 | 1 | 2;
  /**
   * Parameter names: 'legacy' = `weight_g` / `weight_v` (torch.nn.utils.weight_norm,
   * older checkpoints); 'parametrizations' = `parametrizations.weight.original0` (g) /
   * `parametrizations.weight.original1` (v) (torch.nn.utils.parametrizations.weight_norm,
   * newer checkpoints).
   */
  paramNames?: 'legacy' | 'parametrizations';
}

/** The effective weight g * v / ||v||, the norm taken over every axis but `dim` (torch's _weight_norm). */
export function weightNorm(v: Tensor, gain: Tensor, dim: number): Tensor {
  const axes = Array.from({ length: v.rank }, (_, i) => i).filter((i) => i !== dim);
  const norm = sqrt(reduceSum(mul(v, v), axes, true));
  return mul(v, div(gain, norm));
}

/**
 * Weight-normalised Conv1d (wav2vec2's `pos_conv_embed.conv`): params `weight_g`
 * (shape 1 everywhere but `dim`, e.g. [1, 1, K] for dim 2), `weight_v`
 * [C_out, C_in / groups, K] and `bias` [C_out] under `<name>`, or their
 * parametrizations names (see `paramNames`). Only the convolution: wav2vec2's
 * same-pad trim and GELU are the model's.
 */
export function weightNormConv1d(x: Tensor, name: string, opts: WeightNormConv1dOptions): Tensor {
  const g = x.graph;
  const groups = opts.groups ?? 1;
  const dim = opts.dim ?? 2;
  const cIn = inChannels(x, 'weightNormConv1d', name, groups);
  const vShape = [opts.outChannels, cIn / groups, opts.kernel];
  const gShape = vShape.map((d, i) => (i === dim ? d : 1));
  // wav2vec2's init: v ~ normal(0, 2 / sqrt(K * C_in)); torch then sets g = ||v||, which
  // for that v is about std * sqrt(number of values per kept index).
  const std = 2 / Math.sqrt(opts.kernel * cIn);
  const perKept = vShape.reduce((a, b) => a * b, 1) / vShape[dim];
  const [gName, vName] =
    (opts.paramNames ?? 'legacy') === 'legacy'
      ? ['weight_g', 'weight_v']
      : ['parametrizations.weight.original0', 'parametrizations.weight.original1'];
  return g.scope(name, () => {
    const gain = g.param(gName, gShape, { init: { kind: 'constant', value: std * Math.sqrt(perKept) } });
    const v = g.param(vName, vShape, { init: opts.init ?? { kind: 'normal', std } });
    const w = weightNorm(v, gain, dim);
    const bound = 1 / Math.sqrt((cIn / groups) * opts.kernel);
    const b =
      (opts.bias ?? true)
        ? g.param('bias', [opts.outChannels], { init: { kind: 'uniform', low: -bound, high: bound } })
        : null;
    return conv1d(x, w, b, { stride: opts.stride, padding: opts.padding, dilation: opts.dilation, groups });
  });
}
