/** Normalisation layers that map to fused ONNX ops. */
import { f, type FloatAttr } from '../graph.js';
import { defineGradient } from '../gradients.js';
import type { Tensor } from '../graph.js';
import { requireFloat } from './util.js';
import { add, mul, reciprocal, sqrt, sub } from './elementwise.js';
import { reduceMean, reduceSum } from './reduce.js';

/**
 * LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta.
 * Uses ONNX LayerNormalization, whose Mean and InvStdDev outputs serve the backward.
 */
export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
  const g = x.graph;
  requireFloat('LayerNormalization', x, gamma, beta);
  const d = x.shape[x.rank - 1];
  if (gamma.rank !== 1 || beta.rank !== 1 || gamma.shape[0] !== d || beta.shape[0] !== d)
    throw g.error('LayerNormalization', `gamma and beta must be [${d}]`, [x, gamma, beta]);
  const stat = [...x.shape.slice(0, -1), 1];
  // ORT's CPU kernel keeps the statistics in float32 (stash_type 1) even for float64
  // input; the float64 backward recomputes them (see the rule) to stay exact.
  return g.node(
    'LayerNormalization',
    [x, gamma, beta],
    [
      { dtype: x.dtype, shape: x.shape },
      { dtype: 'float32', shape: stat },
      { dtype: 'float32', shape: stat },
    ],
    // stash_type: the statistics' type follows the input (float64 for gradient checks).
    { axis: -1, epsilon: f(eps), stash_type: 1 },
  )[0];
}

defineGradient('LayerNormalization', ({ node, x, y, dy, needs }) => {
  const [xin, gamma] = [x[0]!, x[1]!];
  let [mean, invStd] = [y[1], y[2]];
  if (mean.dtype !== xin.dtype) {
    const eps = (node.attrs.epsilon as FloatAttr).value;
    mean = reduceMean(xin, -1, true);
    const centred = sub(xin, mean);
    invStd = reciprocal(sqrt(add(reduceMean(mul(centred, centred), -1, true), eps)));
  }
  const d = dy[0]!;
  const xhat = mul(sub(xin, mean), invStd);
  const lead = Array.from({ length: xin.rank - 1 }, (_, i) => i);
  let dx: Tensor | null = null;
  if (needs(0)) {
    // dx = invStd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    const dxhat = mul(d, gamma);
    const m1 = reduceMean(dxhat, -1, true);
    const m2 = reduceMean(mul(dxhat, xhat), -1, true);
    dx = mul(invStd, sub(sub(dxhat, m1), mul(xhat, m2)));
  }
  return [dx, needs(1) ? reduceSum(mul(d, xhat), lead) : null, needs(2) ? reduceSum(d, lead) : null];
});
