/**
 * Random ops (uniform draws, dropout, Gumbel-softmax) and the gradient-stopping and
 * argmax helpers they need.
 *
 * Seeding, checked on onnxruntime-node 1.30 (test/graph/random.test.ts): a
 * RandomUniformLike node with a `seed` attribute gets its generator once, when the
 * session is created, and advances it on every run. So one session draws a new mask
 * each training step, and a fresh session built from the same graph (same seeds)
 * repeats the first session's draws run for run. Each random op takes its own seed
 * from `g.nextSeed()` (graph seed + op order), so two dropouts never share a mask.
 */
import { ONNX_DTYPE } from '../dtype.js';
import { defineNonDifferentiable } from '../gradients.js';
import { f, type Graph, type Tensor } from '../graph.js';
import { add, cast, div, equal, less, log, mul, neg, sub, where } from './elementwise.js';
import { softmax } from './reduce.js';
import { axesOf, node1, requireFloat, shapeOf } from './util.js';

export interface RandomUniformOptions {
  low?: number;
  high?: number;
  /** Generator seed; default: a fresh one from `g.nextSeed()`. */
  seed?: number;
}

/** Uniform draws in [low, high) with x's shape and dtype (ONNX RandomUniformLike). No gradient. */
export function randomUniformLike(x: Tensor, opts: RandomUniformOptions = {}): Tensor {
  const g = x.graph;
  requireFloat('RandomUniformLike', x);
  const low = opts.low ?? 0;
  const high = opts.high ?? 1;
  if (!(high > low)) throw g.error('RandomUniformLike', `needs low < high, got [${low}, ${high})`, [x]);
  const seed = opts.seed ?? g.nextSeed();
  return node1(g, 'RandomUniformLike', [x], x.dtype, x.shape, {
    dtype: ONNX_DTYPE[x.dtype],
    low: f(low),
    high: f(high),
    seed: f(seed),
  });
}

/**
 * An identity in the forward pass that stops gradients (torch's `.detach()`,
 * `jax.lax.stop_gradient`). Serialised as an ONNX Identity; the node is flagged so that
 * autodiff neither propagates through it nor counts its output as depending on its input.
 */
export function stopGradient(x: Tensor): Tensor {
  const y = node1(x.graph, 'Identity', [x], x.dtype, x.shape);
  y.producer!.stopGradient = true;
  return y;
}

/**
 * Flags the node that produced `t` as belonging only in training graphs (dropout's
 * mask, BatchNorm's batch statistics): evaluation and Predictor graphs refuse it
 * (`trainingOnlyNodes`), so that an inference graph built in training mode fails
 * loudly instead of returning noisy or batch-dependent outputs.
 */
export function markTrainingOnly(t: Tensor, what: string): void {
  if (t.producer) t.producer.trainingOnly = what;
}

/** The nodes of `g` flagged by `markTrainingOnly`, as 'what (scope)' lines. */
export function trainingOnlyNodes(g: Graph): string[] {
  return g.nodes.filter((n) => n.trainingOnly).map((n) => `${n.trainingOnly} at ${n.scope || '(top level)'}`);
}

/**
 * Inverted dropout: in training, each element is zeroed with probability p and the
 * survivors are scaled by 1/(1-p); outside training (or p = 0) it is the identity and
 * adds no node. The keep mask is `RandomUniformLike(x) >= p`; it carries no gradient, so
 * dx = dy * mask / (1-p) (the Where and Mul rules).
 */
export function dropout(x: Tensor, p: number, opts: { seed?: number } = {}): Tensor {
  const g = x.graph;
  requireFloat('Dropout', x);
  if (!(p >= 0 && p < 1)) throw g.error('Dropout', `p must be in [0, 1), got ${p}`, [x]);
  if (!g.training || p === 0) return x;
  const u = randomUniformLike(x, { seed: opts.seed });
  markTrainingOnly(u, `dropout p=${p}`);
  return where(less(u, p), 0, mul(x, 1 / (1 - p)));
}

/**
 * One-hot of the argmax along `axis` (first index wins ties, as torch.argmax), same
 * shape and dtype as x. No gradient.
 */
export function oneHotArgmax(x: Tensor, axis = -1): Tensor {
  requireFloat('oneHotArgmax', x);
  const a = axesOf('ArgMax', x, axis)[0];
  return cast(equal(rangeAlong(x, a), argmax(x, a, true)), x.dtype);
}

/** int64 index of the largest value along `axis` (the first one on ties, as torch.argmax). No gradient. */
export function argmax(x: Tensor, axis = -1, keepDims = false): Tensor {
  const a = axesOf('ArgMax', x, axis)[0];
  const shape = keepDims ? x.shape.map((d, i) => (i === a ? 1 : d)) : x.shape.filter((_, i) => i !== a);
  return node1(x.graph, 'ArgMax', [x], 'int64', shape, {
    axis: a,
    keepdims: keepDims ? 1 : 0,
    select_last_index: 0,
  });
}

/**
 * 0, 1, ..., n-1 along axis `a` of x (n = x's size there, known or not), shaped to
 * broadcast against x: [n, 1, ..., 1] with as many trailing ones as x has axes after a.
 */
export function rangeAlong(x: Tensor, a: number): Tensor {
  const g = x.graph;
  const n = x.shape[a];
  let r: Tensor;
  if (typeof n === 'number') {
    r = g.int64s(Array.from({ length: n }, (_, i) => i));
  } else {
    const size = node1(g, 'Gather', [shapeOf(x), g.scalar(a, 'int64')], 'int64', [], { axis: 0 });
    r = node1(g, 'Range', [g.scalar(0, 'int64'), size, g.scalar(1, 'int64')], 'int64', [n]);
  }
  const trailing = x.rank - 1 - a;
  if (trailing === 0) return r;
  const axes = Array.from({ length: trailing }, (_, i) => i + 1);
  return node1(g, 'Unsqueeze', [r, g.int64s(axes)], 'int64', [n, ...axes.map(() => 1)]);
}

export interface GumbelSoftmaxOptions {
  /** Forward pass gives the argmax one-hot, backward the soft gradient (straight-through). */
  hard?: boolean;
  axis?: number;
  /**
   * Uniform draws in (0, 1) to turn into Gumbel noise instead of drawing them in the
   * graph (reproducible tests; noise shared across calls).
   */
  uniform?: Tensor;
  /**
   * Draw noise even outside training. Default: noise only when `g.training` (or when
   * `uniform` is given), so that an eval-mode quantizer picks the plain argmax, as
   * Hugging Face's wav2vec2 quantizer does.
   */
  noiseInEval?: boolean;
}

/**
 * Gumbel-softmax over `axis`: softmax((logits + G) / tau) with G = -log(-log(U)). With
 * `hard`, the forward value is the one-hot of its argmax and the gradient is the soft
 * one: y_hard - stopGradient(y_soft) + y_soft (torch.nn.functional.gumbel_softmax).
 */
export function gumbelSoftmax(logits: Tensor, tau: number, opts: GumbelSoftmaxOptions = {}): Tensor {
  const g = logits.graph;
  requireFloat('gumbelSoftmax', logits);
  if (!(tau > 0)) throw g.error('gumbelSoftmax', `tau must be > 0, got ${tau}`, [logits]);
  const axis = axesOf('gumbelSoftmax', logits, opts.axis ?? -1)[0];
  let z = logits;
  const noisy = opts.uniform !== undefined || g.training || opts.noiseInEval === true;
  if (noisy) {
    let u = opts.uniform;
    if (u) {
      if (u.dtype !== logits.dtype)
        throw g.error('gumbelSoftmax', `uniform draws must be ${logits.dtype}, got ${u.dtype}`, [logits, u]);
    } else {
      u = randomUniformLike(logits);
    }
    // Keep U inside (0, 1): log(0) and log(-log(1)) would give infinite noise.
    const tiny = logits.dtype === 'float32' ? 1e-7 : 1e-12;
    const uc = node1(g, 'Clip', [u, g.scalar(tiny, u.dtype), g.scalar(1 - tiny, u.dtype)], u.dtype, u.shape);
    const gumbel = neg(log(neg(log(uc))));
    z = add(z, stopGradient(gumbel));
  }
  const ySoft = softmax(tau === 1 ? z : div(z, tau), axis);
  if (!opts.hard) return ySoft;
  const yHard = oneHotArgmax(ySoft, axis);
  return add(sub(yHard, stopGradient(ySoft)), ySoft);
}

defineNonDifferentiable(
  'RandomUniformLike',
  'RandomNormalLike',
  'RandomUniform',
  'RandomNormal',
  'Bernoulli',
);
defineNonDifferentiable('ArgMax', 'ArgMin', 'Range', 'GreaterOrEqual', 'LessOrEqual');
